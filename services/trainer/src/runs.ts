/**
 * The trainer's runs: the state machine (PENDING -> RUNNING -> SUCCEEDED / FAILED / CANCELLED), a FIFO queue with
 * at most `maxConcurrent` runs training at once (one worker thread each), the event history every watcher replays,
 * persistence (store.ts) and resume after a restart: runs left PENDING or RUNNING are queued again, and a run
 * that had written a checkpoint continues from it.
 */
import { clone, create, toJson, type JsonValue, type MessageInitShape } from '@bufbuild/protobuf';
import { timestampFromDate, timestampNow } from '@bufbuild/protobuf/wkt';
import { PrepareDatasetRequestSchema } from '@ch8/contracts/dataset';
import {
  EpochMetricsSchema,
  ExportedModelSchema,
  RunSchema,
  RunState,
  SplitMetricsSchema,
  WatchRunResponseSchema,
  type EpochMetrics,
  type Run,
  type RunConfig,
  type WatchRunResponse,
} from '@ch8/contracts/trainer';
import { DependencyUnavailableError, FailedPreconditionError, InvalidInputError, NotFoundError } from '@ch8/errors';
import type { BackendPreference } from '@ch8/backend/names';
import type { Logger } from '@ch8/service-kit/logger';
import { codeName, statusOf } from '@ch8/service-kit/status';
import type { TrainingConfig } from '@ch8/training/config';
import { trainingConfigFromProto } from '@ch8/training/proto';
import type { EpochEvent } from '@ch8/training/run';
import type { ExportFault, FromWorker, RunJob, RunSummary } from './protocol.ts';
import { startWorker, type RunWorker, type WorkerCallbacks } from './runner.ts';
import { newRunId, RunStore } from './store.ts';

export type WorkerStarter = (job: RunJob, callbacks: WorkerCallbacks) => RunWorker;

export interface RunManagerOptions {
  stateDir: string;
  modelRepository: string;
  embeddingAddress: string;
  datasetAddress: string;
  defaultBackend: BackendPreference;
  maxConcurrent: number;
  logger: Logger;
  exportFault?: ExportFault;
  /** How long a worker may take to stop after a cancel or a shutdown before it is terminated (default 20 s). */
  stopTimeoutMs?: number;
  /** Called for each epoch a run completes (metrics). */
  onEpoch?: (epoch: EpochEvent) => void;
}

/** What the metrics read at a scrape: runs by state, and the progress of the running ones. */
export interface RunStats {
  byState: Map<RunState, number>;
  running: { runId: string; examplesPerSecond: number | undefined; dataWaitShare: number | undefined }[];
}

export function isFinal(state: RunState): boolean {
  return state === RunState.SUCCEEDED || state === RunState.FAILED || state === RunState.CANCELLED;
}

type Event = MessageInitShape<typeof WatchRunResponseSchema>['event'];

interface Entry {
  run: Run;
  events: WatchRunResponse[];
  /** Watchers waiting for the next event. */
  wake: Set<() => void>;
  training: TrainingConfig | undefined;
  worker?: RunWorker;
  /** Why the worker was asked to stop. */
  stop?: 'cancel' | 'interrupt';
  /** Resolves when the current worker is done with the run (final state, or interrupted by a shutdown). */
  settled?: Promise<void>;
  settle?: () => void;
  /** Training examples/s of the current epoch so far, from the latest step event. */
  examplesPerSecond?: number;
}

function epochMetrics(e: EpochEvent): EpochMetrics {
  return create(EpochMetricsSchema, {
    epoch: e.epoch,
    trainLoss: e.trainLoss,
    trainAccuracy: e.trainAccuracy,
    devLoss: e.devLoss ?? 0,
    devAccuracy: e.devAccuracy ?? 0,
    trainExamplesPerSecond: e.trainExamplesPerSecond,
    seconds: e.seconds,
    dataWaitShare: e.dataWaitShare,
    learningRate: e.learningRate,
  });
}

function splitMetrics(summary: RunSummary) {
  return Object.entries(summary.splits).map(([split, m]) =>
    create(SplitMetricsSchema, {
      split,
      examples: BigInt(m.examples),
      loss: m.loss,
      accuracy: m.accuracy,
      precision: m.precision,
      recall: m.recall,
      f1: m.f1,
      tn: BigInt(m.confusion[0][0]),
      fp: BigInt(m.confusion[0][1]),
      fn: BigInt(m.confusion[1][0]),
      tp: BigInt(m.confusion[1][1]),
    }),
  );
}

export class RunManager {
  private readonly runs = new Map<string, Entry>();
  private readonly queue: Entry[] = [];
  private readonly active = new Set<Entry>();
  private readonly store: RunStore;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly options: RunManagerOptions,
    private readonly startWorkerFn: WorkerStarter = startWorker,
  ) {
    this.store = new RunStore(options.stateDir, options.logger);
    this.restore();
  }

  get isClosing(): boolean {
    return this.closing !== undefined;
  }

  // ---------------------------------------------------------------------------------------------------------
  // Queries.

  private entry(runId: string): Entry {
    if (runId === '') throw new InvalidInputError('run_id is required', { field: 'run_id' });
    const e = this.runs.get(runId);
    if (e === undefined) throw new NotFoundError(`no run ${JSON.stringify(runId)}`, { field: 'run_id' });
    return e;
  }

  get(runId: string): Run {
    return clone(RunSchema, this.entry(runId).run);
  }

  /** Every run, oldest first. */
  list(): Run[] {
    return [...this.runs.values()].map((e) => clone(RunSchema, e.run));
  }

  stats(): RunStats {
    const byState = new Map<RunState, number>();
    const running: RunStats['running'] = [];
    for (const e of this.runs.values()) {
      byState.set(e.run.state, (byState.get(e.run.state) ?? 0) + 1);
      if (e.run.state === RunState.RUNNING) {
        running.push({
          runId: e.run.runId,
          examplesPerSecond: e.examplesPerSecond,
          dataWaitShare: e.run.epochs.at(-1)?.dataWaitShare,
        });
      }
    }
    return { byState, running };
  }

  /** Past events, then live ones; ends after a final state. Throws UNAVAILABLE when the trainer shuts down first. */
  async *watch(runId: string, signal: AbortSignal): AsyncGenerator<WatchRunResponse> {
    const e = this.entry(runId);
    let next = 0;
    for (;;) {
      while (next < e.events.length) yield e.events[next++]!;
      if (isFinal(e.run.state)) return;
      if (signal.aborted) return;
      if (this.closing !== undefined) {
        throw new DependencyUnavailableError('the trainer is shutting down; the run continues when it starts again');
      }
      await new Promise<void>((resolve) => {
        const done = (): void => {
          e.wake.delete(done);
          signal.removeEventListener('abort', done);
          resolve();
        };
        e.wake.add(done);
        signal.addEventListener('abort', done, { once: true });
      });
    }
  }

  // ---------------------------------------------------------------------------------------------------------
  // Changes.

  /** Registers a validated run as PENDING and queues it. */
  create(init: { config: RunConfig; training: TrainingConfig; datasetId: string }): Run {
    if (this.closing !== undefined) throw new DependencyUnavailableError('the trainer is shutting down');
    const now = new Date();
    let runId = newRunId(now);
    while (this.runs.has(runId)) runId = newRunId(now);
    const run = create(RunSchema, {
      runId,
      config: init.config,
      state: RunState.PENDING,
      datasetId: init.datasetId,
      createdAt: timestampFromDate(now),
    });
    const e: Entry = { run, events: [], wake: new Set(), training: init.training };
    this.runs.set(runId, e);
    this.options.logger.info('run created', { run_id: runId, model: init.training.model, dataset_id: init.datasetId });
    this.emit(e, { case: 'state', value: RunState.PENDING });
    void this.store.saveRun(run);
    // The caller gets the run as created (PENDING); it may start right away.
    const created = clone(RunSchema, run);
    this.queue.push(e);
    this.pump();
    return created;
  }

  /** Cancels a pending run at once, a running one within a batch (waits for it); a finished one is FAILED_PRECONDITION. */
  async cancel(runId: string): Promise<Run> {
    const e = this.entry(runId);
    if (isFinal(e.run.state)) {
      throw new FailedPreconditionError(`run ${runId} already ended ${RunState[e.run.state]}`, { field: 'run_id' });
    }
    const queued = this.queue.indexOf(e);
    if (queued >= 0) {
      this.queue.splice(queued, 1);
      this.emit(e, { case: 'message', value: 'cancelled before it started' });
      await this.finish(e, RunState.CANCELLED);
    } else if (e.worker !== undefined && e.stop === undefined) {
      e.stop = 'cancel';
      e.worker.send({ type: 'cancel' });
      await this.settleWithin(e);
    } else if (e.settled !== undefined) {
      await e.settled;
    }
    return clone(RunSchema, e.run);
  }

  /** Stops every worker after its current step (their runs stay RUNNING, resumable), ends watchers, flushes the records. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const running = [...this.active];
      for (const e of running) {
        if (e.worker !== undefined && e.stop === undefined) {
          e.stop = 'interrupt';
          e.worker.send({ type: 'interrupt' });
        }
      }
      await Promise.all(running.map((e) => this.settleWithin(e)));
      for (const e of this.runs.values()) for (const wake of [...e.wake]) wake();
      await this.store.flush();
    })();
    return this.closing;
  }

  // ---------------------------------------------------------------------------------------------------------
  // Internals.

  private emit(e: Entry, event: Event): void {
    const message = create(WatchRunResponseSchema, { runId: e.run.runId, time: timestampNow(), event });
    e.events.push(message);
    void this.store.appendEvent(e.run.runId, message);
    for (const wake of [...e.wake]) wake();
  }

  private setState(e: Entry, state: RunState): void {
    e.run.state = state;
    if (state === RunState.RUNNING && e.run.startedAt === undefined) e.run.startedAt = timestampNow();
    if (isFinal(state)) e.run.finishedAt = timestampNow();
    this.emit(e, { case: 'state', value: state });
    void this.store.saveRun(e.run);
  }

  /** Removes the run's checkpoints, then sets the final state: a run seen final has no checkpoint left on disk. */
  private async finish(e: Entry, state: RunState): Promise<void> {
    await this.store.removeCheckpoints(e.run.runId);
    this.setState(e, state);
    this.options.logger.info('run ended', {
      run_id: e.run.runId,
      state: RunState[state],
      ...(e.run.errorCode === '' ? {} : { error_code: e.run.errorCode, error: e.run.error }),
    });
  }

  /** Waits for the worker to settle; past the timeout it is terminated (the exit handler then settles the run). */
  private async settleWithin(e: Entry): Promise<void> {
    if (e.settled === undefined) return;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), this.options.stopTimeoutMs ?? 20_000);
    });
    const outcome = await Promise.race([e.settled.then(() => 'settled' as const), late]);
    clearTimeout(timer);
    if (outcome === 'late') {
      this.options.logger.warn('the run did not stop in time; terminating its worker', { run_id: e.run.runId });
      await e.worker?.terminate();
      await e.settled;
    }
  }

  private pump(): void {
    while (this.closing === undefined && this.active.size < this.options.maxConcurrent && this.queue.length > 0) {
      this.launch(this.queue.shift()!);
    }
  }

  private launch(e: Entry): void {
    const run = e.run;
    if (e.training === undefined) return;
    this.active.add(e);
    e.stop = undefined;
    e.examplesPerSecond = undefined;
    e.settled = new Promise<void>((resolve) => (e.settle = resolve));
    this.setState(e, RunState.RUNNING);
    const log = this.options.logger.child({ run_id: run.runId });
    const job: RunJob = {
      runId: run.runId,
      config: e.training,
      defaultBackend: this.options.defaultBackend,
      embeddingAddress: this.options.embeddingAddress,
      datasetAddress: this.options.datasetAddress,
      datasetId: run.datasetId,
      prepare:
        run.config?.data === undefined ? null : (toJson(PrepareDatasetRequestSchema, run.config.data) as JsonValue),
      modelRepository: this.options.modelRepository,
      checkpointDir: this.store.checkpointDirOf(run.runId),
      exportFault: this.options.exportFault ?? null,
    };
    /** The worker has said (or shown, by exiting) how the run ends; later messages are ignored. */
    let ended = false;
    /** The run's outcome is recorded: release the worker's slot, start the next run. */
    const release = (): void => {
      this.active.delete(e);
      const w = e.worker;
      e.worker = undefined;
      void w?.terminate();
      e.settle?.();
      this.pump();
    };
    log.info('run started', { model: job.config.model, dataset_id: job.datasetId });
    e.worker = this.startWorkerFn(job, {
      onMessage: (m) => {
        if (ended) return;
        const outcome = this.onWorkerMessage(e, m, log);
        if (outcome !== undefined) {
          ended = true;
          void outcome.then(release);
        }
      },
      onExit: (code, error) => {
        if (ended) return;
        ended = true;
        let outcome: Promise<void>;
        if (e.stop === 'interrupt') {
          outcome = this.interrupted(e);
        } else if (e.stop === 'cancel') {
          outcome = this.finish(e, RunState.CANCELLED);
        } else {
          log.error('the run worker exited without a result', {
            exit_code: code,
            ...(error === undefined ? {} : { err: error }),
          });
          run.error = `the run's worker thread exited unexpectedly (exit code ${code})`;
          run.errorCode = 'INTERNAL';
          outcome = this.finish(e, RunState.FAILED);
        }
        void outcome.then(release);
      },
    });
  }

  private async interrupted(e: Entry): Promise<void> {
    this.emit(e, {
      case: 'message',
      value: 'interrupted: the trainer is shutting down; the run resumes from its last checkpoint when it starts again',
    });
    this.options.logger.info('run interrupted by the shutdown', { run_id: e.run.runId });
    await this.store.saveRun(e.run);
  }

  /** Applies a worker's message to the run; for the last message (done / failed / aborted), the recording of the outcome. */
  private onWorkerMessage(e: Entry, m: FromWorker, log: Logger): Promise<void> | undefined {
    const run = e.run;
    switch (m.type) {
      case 'log':
        log[m.level](m.msg, m.fields);
        return;
      case 'backend':
        run.backend = m.backend;
        run.device = m.device;
        this.emit(e, { case: 'message', value: `backend ${m.backend}: ${m.device}` });
        void this.store.saveRun(run);
        return;
      case 'dataset':
        if (m.datasetId !== run.datasetId) {
          run.datasetId = m.datasetId;
          void this.store.saveRun(run);
        }
        return;
      case 'restored':
        run.epochs = m.history.map(epochMetrics);
        run.resumedFromEpoch = m.epoch;
        this.best(run);
        void this.store.saveRun(run);
        return;
      case 'step':
        e.examplesPerSecond = m.step.examplesPerSecond;
        this.emit(e, {
          case: 'step',
          value: {
            epoch: m.step.epoch,
            step: m.step.step,
            stepsInEpoch: m.step.stepsInEpoch,
            loss: m.step.loss,
            accuracy: m.step.accuracy,
            examplesPerSecond: m.step.examplesPerSecond,
          },
        });
        return;
      case 'epoch': {
        const metrics = epochMetrics(m.epoch);
        this.options.onEpoch?.(m.epoch);
        run.epochs = [...run.epochs.filter((x) => x.epoch < metrics.epoch), metrics];
        this.best(run);
        this.emit(e, { case: 'epochEnd', value: metrics });
        void this.store.saveRun(run);
        return;
      }
      case 'message':
        log.info('run message', { text: m.text });
        this.emit(e, { case: 'message', value: m.text });
        return;
      case 'done': {
        const s = m.summary;
        run.epochs = s.epochs.map(epochMetrics);
        run.bestEpoch = s.bestEpoch;
        run.bestDevAccuracy = s.devAccuracy ?? 0;
        run.finalMetrics = splitMetrics(s);
        run.dataWaitShare = s.dataWaitShare;
        run.resumedFromEpoch = s.resumedFromEpoch;
        run.exported = create(ExportedModelSchema, m.exported);
        this.emit(e, { case: 'exported', value: run.exported });
        return this.finish(e, RunState.SUCCEEDED);
      }
      case 'failed':
        run.errorCode = m.error.code;
        run.error =
          m.error.code === 'INTERNAL'
            ? `internal error during ${m.phase} (details in the trainer's log)`
            : m.error.message;
        this.emit(e, { case: 'message', value: `failed during ${m.phase}: ${run.error}` });
        return this.finish(e, RunState.FAILED);
      case 'aborted':
        return e.stop === 'interrupt' ? this.interrupted(e) : this.finish(e, RunState.CANCELLED);
    }
  }

  /** Best epoch so far by dev accuracy (the first of equals), as train() picks it. */
  private best(run: Run): void {
    let best: EpochMetrics | undefined;
    for (const x of run.epochs) if (best === undefined || x.devAccuracy > best.devAccuracy) best = x;
    run.bestEpoch = best?.epoch ?? 0;
    run.bestDevAccuracy = best?.devAccuracy ?? 0;
  }

  /** Reads the runs on disk; queues again those left PENDING or RUNNING (oldest first). */
  private restore(): void {
    const stored = this.store.loadAll();
    stored.sort((a, b) => {
      const ta =
        a.run.createdAt === undefined ? 0n : a.run.createdAt.seconds * 1_000_000_000n + BigInt(a.run.createdAt.nanos);
      const tb =
        b.run.createdAt === undefined ? 0n : b.run.createdAt.seconds * 1_000_000_000n + BigInt(b.run.createdAt.nanos);
      return ta < tb ? -1 : ta > tb ? 1 : a.run.runId < b.run.runId ? -1 : 1;
    });
    for (const { run, events } of stored) {
      const e: Entry = { run, events, wake: new Set(), training: undefined };
      this.runs.set(run.runId, e);
      if (isFinal(run.state)) continue;
      const wasRunning = run.state === RunState.RUNNING;
      try {
        if (run.config === undefined) throw new InvalidInputError('the run record has no config', { field: 'config' });
        e.training = trainingConfigFromProto(run.config);
      } catch (err) {
        const s = statusOf(err);
        run.errorCode = codeName(s.code);
        run.error = `cannot resume: ${s.internal ? 'internal error' : s.details}`;
        void this.finish(e, RunState.FAILED);
        continue;
      }
      if (wasRunning) {
        this.emit(e, {
          case: 'message',
          value: 'the trainer restarted: the run is queued again and resumes from its last checkpoint',
        });
        this.setState(e, RunState.PENDING);
      }
      this.queue.push(e);
    }
    if (stored.length > 0)
      this.options.logger.info('runs restored', { runs: stored.length, queued: this.queue.length });
    this.pump();
  }
}
