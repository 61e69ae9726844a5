/**
 * The trainer's own Prometheus metrics, beside the service kit's per-call ones on the same registry (`ch8_trainer_`):
 * runs by state and the progress of the running runs (read from the run manager at each scrape), and what the
 * completed epochs add up to.
 */
import { RunState } from '@ch8/contracts/trainer';
import type { ServiceMetrics } from '@ch8/service-kit/metrics';
import type { EpochEvent } from '@ch8/training/run';
import type { RunStats } from './runs.ts';

/** Label values of `runs{state}`: the run states, lower case. */
export const RUN_STATES: ReadonlyMap<RunState, string> = new Map([
  [RunState.PENDING, 'pending'],
  [RunState.RUNNING, 'running'],
  [RunState.SUCCEEDED, 'succeeded'],
  [RunState.FAILED, 'failed'],
  [RunState.CANCELLED, 'cancelled'],
]);

export interface TrainerMetrics {
  /** One epoch a run completed. */
  epoch(e: EpochEvent): void;
}

export function createTrainerMetrics(service: ServiceMetrics, stats: () => RunStats): TrainerMetrics {
  service.gauge<'state'>({
    name: 'runs',
    help: 'Runs known to the trainer (kept across restarts), by state',
    labelNames: ['state'],
    collect: (g) => {
      const { byState } = stats();
      for (const [state, name] of RUN_STATES) g.set({ state: name }, byState.get(state) ?? 0);
    },
  });
  service.gauge<'run_id'>({
    name: 'run_examples_per_second',
    help: 'Training examples/s of each running run over its current epoch so far (from its latest step)',
    labelNames: ['run_id'],
    collect: (g) => {
      g.reset();
      for (const r of stats().running)
        if (r.examplesPerSecond !== undefined) g.set({ run_id: r.runId }, r.examplesPerSecond);
    },
  });
  service.gauge<'run_id'>({
    name: 'run_data_wait_share',
    help: "Share of each running run's last completed epoch spent waiting for batches (0-1)",
    labelNames: ['run_id'],
    collect: (g) => {
      g.reset();
      for (const r of stats().running) if (r.dataWaitShare !== undefined) g.set({ run_id: r.runId }, r.dataWaitShare);
    },
  });
  const epochs = service.counter({ name: 'epochs_completed_total', help: 'Training epochs completed, all runs' });
  const trainSeconds = service.counter({
    name: 'train_seconds_total',
    help: 'Training time of the completed epochs (steps and waits for data, scoring excluded), seconds',
  });
  const waitSeconds = service.counter({
    name: 'data_wait_seconds_total',
    help: 'Time the completed epochs waited for batches, seconds (over train_seconds_total: the data-wait share)',
  });
  return {
    epoch(e) {
      epochs.inc();
      trainSeconds.inc(e.trainSeconds);
      waitSeconds.inc(e.trainSeconds * e.dataWaitShare);
    },
  };
}
