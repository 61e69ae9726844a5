import { isAbsolute, join, resolve } from 'node:path';
import { BACKENDS } from '@ch8/backend/names';
import { ch8Home, parseConfig, type FieldSpec } from '@ch8/service-kit/config';
import { parseMetricsAddress } from '@ch8/service-kit/metrics';
import { tlsConfigSpec } from '@ch8/service-kit/tls';
import {
  healthAddressSpec,
  limitsConfigSpec,
  logLevelSpec,
  metricsAddressSpec,
  transportFromConfig,
} from '@ch8/service-kit/transport';

export const trainerConfigSpec = {
  address: { env: 'CH8_TRAINER_ADDR', kind: 'string', default: '127.0.0.1:50053', doc: 'address to listen on' },
  embeddingAddress: {
    env: 'CH8_EMBEDDING_ADDR',
    kind: 'string',
    default: '127.0.0.1:50051',
    doc: 'embedding service address',
  },
  datasetAddress: {
    env: 'CH8_DATASET_ADDR',
    kind: 'string',
    default: '127.0.0.1:50052',
    doc: 'dataset service address',
  },
  modelRepository: {
    env: 'CH8_MODEL_REPOSITORY',
    kind: 'string',
    default: '',
    doc: 'directory of exported, versioned models (default <CH8_HOME>/models)',
  },
  stateDir: {
    env: 'CH8_TRAINER_STATE_DIR',
    kind: 'string',
    default: '',
    doc: 'run records, events and checkpoints, kept across restarts (default <CH8_HOME>/trainer)',
  },
  maxConcurrentRuns: {
    env: 'CH8_MAX_CONCURRENT_RUNS',
    kind: 'int',
    min: 1,
    max: 64,
    default: 1,
    doc: 'runs that train at once (one worker thread each); the rest wait as PENDING, first come first served',
  },
  datasetTimeoutMs: {
    env: 'CH8_DATASET_TIMEOUT_MS',
    kind: 'int',
    min: 100,
    max: 3_600_000,
    default: 900_000,
    doc: 'deadline of a dataset-service call made by StartRun in ms (preparing a data set against a large vector source takes minutes)',
  },
  backend: {
    env: 'CH8_BACKEND',
    kind: 'enum',
    values: ['auto', ...BACKENDS] as const,
    default: 'auto',
    doc: 'compute backend of a run whose config says "auto" (or nothing)',
  },
  ...metricsAddressSpec('CH8_TRAINER', '127.0.0.1:9463'),
  ...tlsConfigSpec,
  ...healthAddressSpec('CH8_TRAINER'),
  // StartRun may prepare a data set for up to CH8_DATASET_TIMEOUT_MS (15 min); WatchRun lasts a whole run: it has no
  // default and no longest deadline (WATCH_DEADLINES).
  ...limitsConfigSpec('CH8_TRAINER', {
    maxMessageBytes: 16 * 1024 * 1024,
    maxConcurrentCalls: 256,
    defaultDeadlineMs: 900_000,
    maxDeadlineMs: 3_600_000,
  }),
  ...logLevelSpec,
} satisfies Record<string, FieldSpec>;

/** WatchRun follows a run to its end (hours on a large data set): no deadline unless its caller sets one. */
export const WATCH_DEADLINES = { WatchRun: { defaultDeadlineMs: 0, maxDeadlineMs: 0 } } as const;

export type TrainerConfig = ReturnType<typeof parseTrainerConfig>;

/**
 * Parses the trainer's settings from `env`. Paths resolve against `cwd`; the model repository and the state
 * directory default to `<CH8_HOME>/models` and `<CH8_HOME>/trainer` (CH8_HOME defaults to `.cache` in the
 * workspace root), never to a path relative to the package folder.
 */
export function parseTrainerConfig(env: Record<string, string | undefined>, cwd: string = process.cwd()) {
  const c = parseConfig(trainerConfigSpec, env);
  const home = ch8Home(env, cwd);
  const path = (given: string, fallback: string): string =>
    given === '' ? join(home, fallback) : isAbsolute(given) ? given : resolve(cwd, given);
  return {
    ...c,
    modelRepository: path(c.modelRepository, 'models'),
    stateDir: path(c.stateDir, 'trainer'),
    metricsAddress: parseMetricsAddress(c.metricsAddress, 'CH8_TRAINER_METRICS_ADDR'),
    transport: transportFromConfig(c, 'CH8_TRAINER', WATCH_DEADLINES),
  };
}
