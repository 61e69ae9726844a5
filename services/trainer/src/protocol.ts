/**
 * What crosses between the trainer's main thread and a run's worker thread (structured-clone plain data only).
 */
import type { JsonValue } from '@bufbuild/protobuf';
import type { BackendPreference } from '@ch8/backend/names';
import type { SplitMetrics } from '@ch8/model-repository/manifest';
import type { TrainingConfig } from '@ch8/training/config';
import type { EpochEvent, StepEvent, StopReason } from '@ch8/training/run';

/** Failures a test can inject into a run's export (see TrainerDeps.faults). */
export type ExportFault = 'after-write' | 'before-rename';

/** Everything a worker needs to run one run, given as workerData. */
export interface RunJob {
  runId: string;
  config: TrainingConfig;
  /** Backend to select when `config.backend` is "auto" (the trainer's CH8_BACKEND). */
  defaultBackend: BackendPreference;
  embeddingAddress: string;
  datasetAddress: string;
  /** The data set prepared at StartRun. */
  datasetId: string;
  /** Its source (PrepareDatasetRequest as protobuf JSON) when the run named one: prepared again if the dataset service forgot the id. */
  prepare: JsonValue | null;
  modelRepository: string;
  checkpointDir: string;
  /** Test only: make the export fail. */
  exportFault: ExportFault | null;
}

/** Main -> worker. `cancel` ends the run CANCELLED; `interrupt` stops it for a shutdown (resumable). */
export type ToWorker = { type: 'cancel' } | { type: 'interrupt' };

export interface CrossError {
  name: string;
  message: string;
  /** gRPC status code name, e.g. UNAVAILABLE; INTERNAL for an error that is none of ours. */
  code: string;
}

export interface RunSummary {
  epochs: EpochEvent[];
  bestEpoch: number;
  devAccuracy: number | null;
  splits: Record<string, SplitMetrics>;
  dataWaitShare: number;
  resumedFromEpoch: number;
  stopReason: StopReason;
  seconds: number;
}

/** Worker -> main. Exactly one of done / failed / aborted ends a run. */
export type FromWorker =
  | { type: 'log'; level: 'debug' | 'info' | 'warn' | 'error'; msg: string; fields?: Record<string, unknown> }
  | { type: 'backend'; backend: string; device: string }
  | { type: 'dataset'; datasetId: string }
  /** The checkpoint store was read: the epochs restored (0 and [] for a fresh start). */
  | { type: 'restored'; epoch: number; history: EpochEvent[] }
  | { type: 'step'; step: StepEvent }
  | { type: 'epoch'; epoch: EpochEvent }
  | { type: 'message'; text: string }
  | { type: 'done'; summary: RunSummary; exported: { name: string; version: number; path: string } }
  | { type: 'failed'; error: CrossError; phase: string }
  | { type: 'aborted' };
