/** A trainer service's Run as the CLI prints it (--json): snake_case, states spelled PENDING ... CANCELLED. */
import { timestampDate, type Timestamp } from '@bufbuild/protobuf/wkt';
import { RunState, type EpochMetrics, type Run, type WatchRunResponse } from '@ch8/contracts/trainer';
import type { Progress } from './progress.ts';
import type { SplitMetrics } from '@ch8/model-repository/manifest';
import type { EpochReport } from './commands/train.ts';

const STATES: Record<number, string> = {
  [RunState.UNSPECIFIED]: 'UNSPECIFIED',
  [RunState.PENDING]: 'PENDING',
  [RunState.RUNNING]: 'RUNNING',
  [RunState.SUCCEEDED]: 'SUCCEEDED',
  [RunState.FAILED]: 'FAILED',
  [RunState.CANCELLED]: 'CANCELLED',
};

export function stateName(s: RunState): string {
  return STATES[s] ?? String(s);
}

export function isFinal(s: RunState): boolean {
  return s === RunState.SUCCEEDED || s === RunState.FAILED || s === RunState.CANCELLED;
}

export interface RunView {
  run_id: string;
  state: string;
  model: string;
  export_name: string;
  dataset_id: string;
  backend: string;
  device: string;
  epochs: EpochReport[];
  best_epoch: number;
  dev_accuracy: number;
  splits: Record<string, SplitMetrics>;
  data_wait_share: number;
  resumed_from_epoch: number;
  model_dir: string | null;
  model_name: string | null;
  model_version: number | null;
  error: string | null;
  error_code: string | null;
  created_at: string | null;
  started_at: string | null;
  finished_at: string | null;
}

const iso = (t: Timestamp | undefined): string | null => (t === undefined ? null : timestampDate(t).toISOString());

export function epochView(e: EpochMetrics): EpochReport {
  return {
    epoch: e.epoch,
    train_loss: e.trainLoss,
    train_accuracy: e.trainAccuracy,
    dev_loss: e.devLoss,
    dev_accuracy: e.devAccuracy,
    train_examples_per_second: e.trainExamplesPerSecond,
    seconds: e.seconds,
    data_wait_share: e.dataWaitShare,
    learning_rate: e.learningRate,
  };
}

export function runView(r: Run): RunView {
  return {
    run_id: r.runId,
    state: stateName(r.state),
    model: r.config?.model ?? '',
    export_name: r.config?.exportName ?? '',
    dataset_id: r.datasetId,
    backend: r.backend,
    device: r.device,
    epochs: r.epochs.map(epochView),
    best_epoch: r.bestEpoch,
    dev_accuracy: r.bestDevAccuracy,
    splits: Object.fromEntries(
      r.finalMetrics.map((m) => [
        m.split,
        {
          examples: Number(m.examples),
          dropped: Number(m.dropped),
          loss: m.loss,
          accuracy: m.accuracy,
          precision: m.precision,
          recall: m.recall,
          f1: m.f1,
          confusion: [
            [Number(m.tn), Number(m.fp)],
            [Number(m.fn), Number(m.tp)],
          ],
        },
      ]),
    ),
    data_wait_share: r.dataWaitShare,
    resumed_from_epoch: r.resumedFromEpoch,
    model_dir: r.exported?.path || null,
    model_name: r.exported?.name || null,
    model_version: r.exported?.version || null,
    error: r.error || null,
    error_code: r.errorCode || null,
    created_at: iso(r.createdAt),
    started_at: iso(r.startedAt),
    finished_at: iso(r.finishedAt),
  };
}

/**
 * Shows a run's WatchRun stream on `progress` until the stream ends: steps on the live line, epochs, state changes,
 * messages and the export as lines. `epochs`: the run's maximum when known (else the epochs seen so far).
 */
export async function showRunEvents(
  runId: string,
  events: AsyncIterable<WatchRunResponse>,
  progress: Progress,
  epochs?: number,
): Promise<void> {
  let seen = 0;
  let epochStart = performance.now();
  for await (const ev of events) {
    const e = ev.event;
    switch (e.case) {
      case 'step':
        progress.step({
          ...e.value,
          epochs: epochs ?? Math.max(seen, e.value.epoch),
          elapsed: (performance.now() - epochStart) / 1000,
        });
        break;
      case 'epochEnd':
        seen = e.value.epoch;
        epochStart = performance.now();
        progress.epoch({ ...e.value, examplesPerSecond: e.value.trainExamplesPerSecond });
        break;
      case 'state':
        progress.log(`run ${runId}: ${stateName(e.value)}`);
        break;
      case 'message':
        progress.log(e.value);
        break;
      case 'exported':
        progress.log(`exported ${e.value.name} version ${e.value.version} to ${e.value.path}`);
        break;
    }
  }
  progress.done();
}
