/**
 * Synchronous data-parallel training in one process: the training thread (the primary, replica 0) and `workers - 1`
 * worker threads, each with a replica of the model. For every batch:
 *
 * 1. the primary brings the rows the batch uses up to date (dense embedding Adam) and copies the batch into the
 *    shared input buffer, and bumps a generation word (Atomics.notify);
 * 2. every replica computes the gradients of its share of the batch's rows (strided: rows k, k + N, ..., so the
 *    shares keep the longest-first order and get about as many tokens each), with the whole batch's dropout masks
 *    (`SentimentModel.computeGradients`); workers write theirs into their shared slot and count themselves done;
 * 3. the primary waits (Atomics.waitAsync, so its event loop stays free for its data feed) and adds every share's
 *    gradients (GradientAccumulator: dense element-wise, embedding rows merged by id); it publishes the summed dense
 *    gradient in shared memory and applies the ONE update of the step (`applyGradients`), while every worker
 *    applies the same dense update to its replica (the same tfjs Adam on the same numbers: the same parameters,
 *    with no copy of them per step). Only the primary updates the embedding table (one SharedArrayBuffer,
 *    `sharedEmbeddings`) and its embedding optimizer.
 *
 * Before the first step, and whenever the primary's model changed other than by this class's steps (a restored
 * training state, new weights or parameters, a step taken directly), the replicas load its parameters and dense
 * Adam state from shared memory (a sync). A learning-rate change travels with each step.
 *
 * The result equals single-thread training on the same batches up to float summation order. Workers run on the
 * primary's tfjs backend (wasm or cpu; a GPU or native backend keeps one thread). A worker that fails, or whose
 * thread ends, fails the step with its error; every worker is then terminated.
 */
import { Worker } from 'node:worker_threads';
import { errorFromPlain, InvalidInputError } from '@ch8/errors';
import type { ModelConfigInput } from '@ch8/models/config';
import {
  SentimentModel,
  createModel,
  type GradientAccumulator,
  type GradientSum,
  type ModelBatch,
  type NamedWeight,
  type StepResult,
  type TrainingState,
} from '@ch8/models/model';
import {
  APPLIED,
  COLS,
  DONE,
  FAILED,
  FIRST,
  GEN,
  OP,
  PART,
  RESULT_FIELDS,
  ROWS,
  SEQ,
  STEP,
  STOP,
  SUM_EXAMPLES,
  SUM_LEARNING_RATE,
  SYNC,
  SYNC_BETA1,
  SYNC_BETA2,
  SYNC_ITERATIONS,
  SYNC_LEARNING_RATE,
  SYNC_STEP,
  allocateBuffers,
  writeInput,
  type SharedBuffers,
  type WorkerFault,
  type WorkerInit,
  type WorkerMessage,
} from './parallel-shared.ts';

export type { WorkerFault } from './parallel-shared.ts';

/** Most replicas of one run. */
export const MAX_WORKERS = 64;

/** tfjs backends on which a run can use more than one worker thread. */
export const PARALLEL_BACKENDS = ['wasm', 'cpu'] as const;
export type ParallelBackend = (typeof PARALLEL_BACKENDS)[number];

export function isParallelBackend(tfBackend: string): tfBackend is ParallelBackend {
  return (PARALLEL_BACKENDS as readonly string[]).includes(tfBackend);
}

export interface DataParallelOptions {
  /** Replicas in all, this thread included (2 .. MAX_WORKERS). */
  workers: number;
  /** The tfjs backend of this thread (`tf.getBackend()`); the workers select the same. */
  backend: ParallelBackend;
  /** Test only: make a worker fail. */
  fault?: WorkerFault;
}

// Node 20 does not apply `--import tsx` to a worker's entry module: the worker registers tsx itself, then imports
// the TypeScript entry (the trainer service starts its run workers the same way).
const TSX_API = import.meta.resolve('tsx/esm/api');
const ENTRY = new URL('./parallel-worker.ts', import.meta.url).href;
const BOOTSTRAP = `import(${JSON.stringify(TSX_API)}).then(({ register }) => { register(); return import(${JSON.stringify(ENTRY)}); })`;

type WaitAsync = (
  a: Int32Array,
  index: number,
  value: number,
) => { async: false; value: string } | { async: true; value: Promise<string> };
const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;

interface Deferred {
  promise: Promise<never>;
  reject: (e: Error) => void;
}

function deferredFailure(): Deferred {
  let reject!: (e: Error) => void;
  const promise = new Promise<never>((_, r) => (reject = r));
  promise.catch(() => undefined); // observed where it matters; never an unhandled rejection
  return { promise, reject };
}

/**
 * The primary's model: a SentimentModel that reports every change of its parameters or optimizer state made from
 * outside a data-parallel step, so that the replicas load them again before the next step.
 */
class PrimaryModel extends SentimentModel {
  /** Set when the replicas no longer hold this model's parameters and dense Adam state. */
  changed = true;

  override setTrainingState(state: TrainingState): void {
    super.setTrainingState(state);
    this.changed = true;
  }

  override setWeights(weights: readonly NamedWeight[]): void {
    super.setWeights(weights);
    this.changed = true;
  }

  override setParams(values: Float32Array): void {
    super.setParams(values);
    this.changed = true;
  }
}

/** The primary side of a data-parallel run; `model` is the replica this thread trains and evaluates. */
export class DataParallel {
  private readonly ctrl: Int32Array;
  private readonly scalars: Float64Array;
  private readonly acc: GradientAccumulator;
  private readonly failure = deferredFailure();
  private failed: Error | undefined;
  private readonly alive = new Set<number>();
  private readonly exited: Promise<void>[] = [];
  private closed = false;
  private busy = false;
  /** The primary model's step count when the replicas last matched it (a sync or a step of this class). */
  private syncedSteps = -1;

  private constructor(
    private readonly primary: PrimaryModel,
    readonly workers: number,
    private readonly buffers: SharedBuffers,
    private readonly threads: Worker[],
  ) {
    this.ctrl = new Int32Array(buffers.ctrl);
    this.scalars = new Float64Array(buffers.scalars);
    this.acc = primary.newAccumulator();
  }

  /** The model this thread trains and evaluates (replica 0). */
  get model(): SentimentModel {
    return this.primary;
  }

  /**
   * Builds the primary model on a shared embedding table (a copy of `embeddings`, or the model's random one) and
   * starts `workers - 1` worker threads with replicas; resolves once every replica is ready. A worker that fails to
   * start rejects with its error (the others are terminated).
   */
  static async start(
    config: ModelConfigInput,
    embeddings: Float32Array | undefined,
    options: DataParallelOptions,
  ): Promise<DataParallel> {
    const { workers, backend } = options;
    if (!Number.isInteger(workers) || workers < 2 || workers > MAX_WORKERS)
      throw new InvalidInputError(`must be an integer in [2, ${MAX_WORKERS}], got ${workers}`, { field: 'workers' });
    if (!isParallelBackend(backend))
      throw new InvalidInputError(`data-parallel workers run on ${PARALLEL_BACKENDS.join(' or ')}, not ${backend}`, {
        field: 'workers',
      });
    // The model checks the config; its table then moves into shared memory.
    const probe = createModel(config, embeddings === undefined ? {} : { embeddings });
    const { vocabSize, dim, finetune } = probe.config;
    const table = new SharedArrayBuffer(4 * vocabSize * dim);
    new Float32Array(table).set(probe.getEmbeddings());
    probe.dispose();
    const model = new PrimaryModel(probe.config, { sharedEmbeddings: new Float32Array(table) });
    const buffers = allocateBuffers(workers, model.parameterCount, table, vocabSize, dim, finetune);
    const threads: Worker[] = [];
    const dp = new DataParallel(model, workers, buffers, threads);
    const ready: Promise<void>[] = [];
    for (let index = 1; index < workers; index++) {
      const init: WorkerInit = { index, count: workers, config: model.config, backend, buffers, fault: null };
      if (options.fault !== undefined && options.fault.worker === index) init.fault = { ...options.fault };
      const thread = new Worker(BOOTSTRAP, { eval: true, execArgv: [], workerData: init });
      threads.push(thread);
      dp.alive.add(index);
      dp.exited.push(new Promise<void>((resolve) => thread.once('exit', () => resolve())));
      ready.push(dp.watch(thread, index));
    }
    try {
      await Promise.race([Promise.all(ready), dp.failure.promise]);
    } catch (e) {
      await dp.close();
      throw e;
    }
    return dp;
  }

  /** Resolves when the worker says it is ready; failures go to `this.failure`. */
  private watch(thread: Worker, index: number): Promise<void> {
    return new Promise<void>((resolve) => {
      thread.on('message', (m: WorkerMessage) => {
        if (m.type === 'ready') resolve();
        else this.fail(index, m.error, m.stack);
      });
      thread.on('error', (e) => this.fail(index, { name: e.name, message: e.message }, e.stack));
      thread.on('exit', (code) => {
        this.alive.delete(index);
        if (!this.closed) this.fail(index, { name: 'Error', message: `its thread exited (code ${code})` }, undefined);
      });
    });
  }

  private fail(index: number, error: { name: string; message: string; field?: string }, stack: string | undefined) {
    if (this.failed !== undefined) return;
    const e = errorFromPlain({
      ...error,
      message: `data-parallel worker ${index} of ${this.workers}: ${error.message}`,
    });
    if (stack !== undefined) {
      const cause = new Error(error.message);
      cause.stack = stack;
      (e as Error & { cause?: unknown }).cause = cause;
    }
    this.failed = e;
    this.failure.reject(e);
  }

  /** Worker threads still running. */
  get liveWorkers(): number {
    return this.alive.size;
  }

  /** One step on `batch` split across the replicas: the gradients of every share summed, one update. */
  async step(batch: ModelBatch): Promise<StepResult> {
    return this.exclusive(async () => {
      await this.syncReplicas();
      this.acc.reset();
      await this.part(batch, true);
      return this.apply();
    });
  }

  /**
   * One step over several chunks (full-batch training), each chunk split across the replicas: as
   * `SentimentModel.trainStepAccumulated`, the dropout stream continuing over the chunks.
   */
  async stepAccumulated(chunks: Iterable<ModelBatch> | AsyncIterable<ModelBatch>): Promise<StepResult> {
    return this.exclusive(async () => {
      await this.syncReplicas();
      this.acc.reset();
      let first = true;
      for await (const chunk of chunks) {
        await this.part(chunk, first);
        first = false;
      }
      if (first) throw new InvalidInputError('no batches to train on', { field: 'chunks' });
      return this.apply();
    });
  }

  /**
   * The step's one update: the summed dense gradient is published first, so the workers apply it to their replicas
   * while this thread applies it (and the embedding rows) to the primary.
   */
  private apply(): StepResult {
    const { primary, ctrl, scalars } = this;
    const sum = this.acc.result();
    if (!(Number.isInteger(sum.examples) && sum.examples > 0))
      throw new InvalidInputError(`bad example count ${sum.examples}`, { field: 'examples' });
    new Float32Array(this.buffers.sum).set(sum.grad);
    scalars[SUM_EXAMPLES] = sum.examples;
    scalars[SUM_LEARNING_RATE] = primary.learningRate;
    Atomics.add(ctrl, APPLIED, 1);
    Atomics.add(ctrl, GEN, 1);
    Atomics.notify(ctrl, GEN);
    try {
      const r = primary.applyGradients(sum);
      this.syncedSteps = primary.steps;
      return r;
    } catch (e) {
      primary.changed = true; // the replicas took a step the primary did not
      throw e;
    }
  }

  /**
   * Before a step: when the primary changed other than by this class's steps, the replicas load its parameters and
   * dense Adam state (a sync through shared memory).
   */
  private async syncReplicas(): Promise<void> {
    const { primary, scalars } = this;
    if (!primary.changed && primary.steps === this.syncedSteps) return;
    const state = await primary.getTrainingState();
    const P = primary.parameterCount;
    new Float32Array(this.buffers.theta).set(state.params);
    scalars[SYNC_STEP] = state.step;
    scalars[SYNC_LEARNING_RATE] = state.learningRate;
    scalars[SYNC_ITERATIONS] = state.adam?.iterations ?? 0;
    if (state.adam !== undefined) {
      scalars[SYNC_BETA1] = state.adam.accBeta1;
      scalars[SYNC_BETA2] = state.adam.accBeta2;
      new Float32Array(this.buffers.moments, 0, P).set(state.adam.m);
      new Float32Array(this.buffers.moments, 4 * P, P).set(state.adam.v);
    }
    this.command(SYNC);
    await this.waitDone();
    primary.changed = false;
    this.syncedSteps = primary.steps;
  }

  /** Issues a PART, SYNC or STOP (its words written by the caller): OP, then SEQ, then the generation word. */
  private command(op: typeof PART | typeof SYNC | typeof STOP): void {
    const { ctrl } = this;
    Atomics.store(ctrl, DONE, 0);
    Atomics.store(ctrl, OP, op);
    Atomics.add(ctrl, SEQ, 1);
    Atomics.add(ctrl, GEN, 1);
    Atomics.notify(ctrl, GEN);
  }

  private async exclusive<T>(f: () => Promise<T>): Promise<T> {
    if (this.closed) throw new Error('data-parallel trainer used after close()');
    if (this.failed !== undefined) throw this.failed;
    if (this.busy) throw new Error('internal: a data-parallel step is already running');
    this.busy = true;
    try {
      return await f();
    } finally {
      this.busy = false;
    }
  }

  private async part(batch: ModelBatch, first: boolean): Promise<void> {
    const { primary: model, ctrl, workers } = this;
    model.syncRows(batch); // validates the batch too, before any worker sees it
    if (batch.labels === undefined) throw new InvalidInputError('labels are required here', { field: 'labels' });
    writeInput(this.buffers.input, batch);
    ctrl[ROWS] = batch.batchSize;
    ctrl[COLS] = batch.maxLength;
    ctrl[STEP] = model.steps;
    ctrl[FIRST] = first ? 1 : 0;
    this.command(PART);
    if (first) this.stream = model.dropoutStream();
    try {
      // This thread's share, added up while the workers may still compute theirs.
      this.acc.add(model.computeGradients(batch, { share: { index: 0, count: workers }, stream: this.stream! }));
    } finally {
      // Never leave while workers still read the input or write their slots.
      await this.waitDone();
    }
    for (let k = 1; k < workers; k++) this.acc.add(this.slot(k));
  }

  private stream: ReturnType<SentimentModel['dropoutStream']> | undefined;

  /** Waits until every worker counted itself done with the current PART or SYNC; a failure rejects. */
  private async waitDone(): Promise<void> {
    const { ctrl } = this;
    const target = this.workers - 1;
    for (;;) {
      if (this.failed !== undefined) throw this.failed;
      const done = Atomics.load(ctrl, DONE);
      if (done >= target) break;
      const w = waitAsync(ctrl, DONE, done);
      if (w.async) await Promise.race([w.value, this.failure.promise]);
    }
    if (Atomics.load(ctrl, FAILED) !== 0) {
      // The worker posted its error before counting itself done; it arrives with the next turns of the event loop.
      await this.failure.promise;
    }
  }

  /** Worker k's gradients, as views of its slot (added up at once). */
  private slot(k: number): GradientSum {
    const r = new Float64Array(this.buffers.results, 8 * RESULT_FIELDS * k, RESULT_FIELDS);
    const g: GradientSum = {
      lossSum: r[0]!,
      correct: r[1]!,
      examples: r[2]!,
      grad: new Float32Array(this.buffers.grads[k]!),
    };
    if (this.model.config.finetune) {
      const n = r[3]!;
      const d = this.model.config.dim;
      const rows = this.buffers.rows[k]!;
      g.embeddingGrad = { rows: new Int32Array(rows, 0, n), values: new Float32Array(rows, 4 * n, n * d) };
    }
    return g;
  }

  /**
   * Stops the workers and waits for their threads to end (healthy ones finish their loop; after a failure, or when
   * one does not end within `graceMs`, they are terminated). The model stays usable on this thread.
   */
  async close(graceMs = 2000): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.command(STOP);
    const all = Promise.all(this.exited);
    if (this.failed === undefined) {
      let timer: NodeJS.Timeout | undefined;
      const late = await Promise.race([
        all.then(() => false),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), graceMs))),
      ]);
      clearTimeout(timer);
      if (!late) return;
    }
    await Promise.all(this.threads.map((t) => t.terminate()));
    await all;
  }
}
