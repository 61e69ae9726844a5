/**
 * The model zoo's runtime object: build a model from a config (and a pretrained matrix), train on collated
 * batches, evaluate, predict probabilities.
 *
 * Hot path of a step: the embedding matrix lives on the host; the batch's token rows are copied into one tfjs
 * tensor [B*T, d] (PAD rows zero; tfjs wasm's gather is ~5 us per row, a host copy is ~50x cheaper); forward and
 * backward run in tfjs; the dense parameters are one flat tfjs variable updated by one tfjs Adam (a dozen kernels
 * per step instead of a dozen per parameter); the gradient w.r.t. the token rows is summed per distinct id and
 * applied by a lazy (sparse) Adam to the rows the batch used, never to PAD.
 */
import * as tf from '@tensorflow/tfjs';
import { FailedPreconditionError, InvalidInputError } from '@ch8/errors';
import { resolveConfig, type ModelConfig, type ModelConfigInput } from './config.ts';
import { BatchPreparer, type ModelBatch, type PreparedBatch } from './batch.ts';
import { buildNet, type Net } from './nets.ts';
import { bceWithLogits } from './ops.ts';
import { Rng } from './rng.ts';
import { SparseRowAdam, type SparseAdamState } from './sparse-adam.ts';
import {
  DropoutStream,
  GradientAccumulator,
  checkShare,
  shareRows,
  takeRows,
  type BatchShare,
  type GradientSum,
} from './gradients.ts';

export type { Batch, ModelBatch } from './batch.ts';
export type { SparseAdamState } from './sparse-adam.ts';
export type { BatchShare, GradientSum } from './gradients.ts';
export { DropoutStream, GradientAccumulator } from './gradients.ts';

export interface CreateModelOptions {
  /** Pretrained matrix, vocabSize x dim row-major, row 0 = PAD (forced to zeros). Default: random U(-sqrt3, sqrt3). */
  embeddings?: Float32Array;
  /**
   * The embedding table itself, kept as given (not copied): a view of a SharedArrayBuffer, so that replicas of the
   * model in other threads read the rows this model's optimizer updates (data-parallel training). vocabSize x dim,
   * row 0 (PAD) must be zeros. Excludes `embeddings`.
   */
  sharedEmbeddings?: Float32Array;
}

/** What {@link SentimentModel.computeGradients} computes. */
export interface GradientOptions {
  /** Only this share of the batch's rows (strided, see @ch8/models/gradients). Default: every row. */
  share?: BatchShare;
  /**
   * The step's dropout masks. Default: a fresh stream for this model's next step. The chunks of one accumulated step
   * share one stream; a replica passes `dropoutStream(step)` with the step number of the model it mirrors.
   */
  stream?: DropoutStream;
}

export interface StepResult {
  /** Mean loss of the batch (before the update). */
  loss: number;
  /** Correct predictions in the batch (before the update). */
  correct: number;
  examples: number;
}

/** [[tn, fp], [fn, tp]]: rows are the true label (0, 1), columns the prediction (logit > 0). */
export type ConfusionMatrix = [[number, number], [number, number]];

export interface EvalResult {
  loss: number;
  accuracy: number;
  examples: number;
  confusion: ConfusionMatrix;
}

/** tfjs Adam's state for the flat dense parameter vector, exactly as tfjs holds it. */
export interface DenseAdamState {
  /** Updates applied (tfjs's `iterations`). */
  iterations: number;
  /**
   * beta1^t and beta2^t as tfjs accumulates them: float32 scalars multiplied by beta once per step. Recomputing
   * them with Math.pow is not bit-identical, so they are stored.
   */
  accBeta1: number;
  accBeta2: number;
  /** First and second moments of the flat parameter vector. */
  m: Float32Array;
  v: Float32Array;
}

/** Everything the next training step depends on: what a checkpoint stores to resume bit-identically. */
export interface TrainingState {
  /** The resolved config of the model (a restore requires the same). */
  config: ModelConfig;
  /** Training steps taken; dropout masks derive from the seed and this count. */
  step: number;
  /** The learning rate of the next step (differs from `config.learningRate` after `setLearningRate`). */
  learningRate: number;
  /** The flat dense parameter vector, parameters in build order (the order of `getWeights()`). */
  params: Float32Array;
  /**
   * The host embedding table (vocabSize x dim) as it is, not flushed: in `dense` embedding-Adam mode a row catches
   * up on the steps it missed when it is next used, and the checkpoint keeps that pending.
   */
  embeddings: Float32Array;
  /** Undefined before the first step. */
  adam: DenseAdamState | undefined;
  /** SparseRowAdam of the fine-tuned embedding rows; undefined when frozen or before the first step. */
  embeddingAdam: SparseAdamState | undefined;
}

/** A named weight as saved: dense parameters by name, plus `embeddings` (vocabSize x dim). */
export interface NamedWeight {
  name: string;
  shape: number[];
  values: Float32Array;
}

export interface Gradients {
  loss: number;
  /** Gradient per dense parameter. */
  params: Map<string, Float32Array>;
  /** Distinct non-PAD ids of the batch, and the gradient rows of the embedding table for them (fine-tuning only). */
  embeddingRows: Int32Array;
  embeddings: Float32Array | undefined;
}

interface Slot {
  name: string;
  shape: number[];
  offset: number;
  size: number;
}

let modelCounter = 0;

/** The private fields of tfjs 4.22's AdamOptimizer that hold its state (see tfjs-core's adam_optimizer.js). */
interface TfjsAdamInternals {
  learningRate: number;
  accBeta1: tf.Variable;
  accBeta2: tf.Variable;
  accumulatedFirstMoment: { originalName: string; variable: tf.Variable }[];
  accumulatedSecondMoment: { originalName: string; variable: tf.Variable }[];
  iterations_: number | undefined;
}

function adamInternals(optimizer: tf.Optimizer): TfjsAdamInternals {
  const o = optimizer as unknown as Partial<TfjsAdamInternals>;
  if (
    !(o.accBeta1 instanceof tf.Variable) ||
    !(o.accBeta2 instanceof tf.Variable) ||
    !Array.isArray(o.accumulatedFirstMoment) ||
    !Array.isArray(o.accumulatedSecondMoment)
  ) {
    throw new Error('internal: tfjs AdamOptimizer no longer keeps its state where tfjs 4.22 does');
  }
  return o as TfjsAdamInternals;
}

/** What a chunk leaves for the host to read. */
interface ChunkTensors {
  prep: PreparedBatch;
  loss: tf.Tensor;
  logits: tf.Tensor;
  tokenGrad: tf.Tensor | undefined;
}

export class SentimentModel {
  readonly config: ModelConfig;
  private readonly net: Net;
  private readonly table: Float32Array;
  private readonly slots: Slot[] = [];
  private readonly theta: tf.Variable;
  private readonly preparer: BatchPreparer;
  private optimizer: tf.Optimizer | undefined;
  private embeddingOptimizer: SparseRowAdam | undefined;
  private stepCount = 0;
  /** The learning rate in effect (config.learningRate until setLearningRate). */
  private lr: number;
  private busy = false;
  private rowViews: Float32Array[] | undefined;
  private disposed = false;

  constructor(input: ModelConfigInput, options: CreateModelOptions = {}) {
    this.config = resolveConfig(input);
    this.lr = this.config.learningRate;
    const { vocabSize: V, dim: d, seed } = this.config;
    this.net = buildNet(this.config);
    const shared = options.sharedEmbeddings;
    if (shared !== undefined) {
      if (options.embeddings !== undefined)
        throw new InvalidInputError('give embeddings or sharedEmbeddings, not both', { field: 'sharedEmbeddings' });
      if (!(shared instanceof Float32Array) || shared.length !== V * d) {
        throw new InvalidInputError(`must be a Float32Array of vocabSize*dim = ${V * d} values`, {
          field: 'sharedEmbeddings',
        });
      }
      for (let j = 0; j < d; j++)
        if (shared[j] !== 0) throw new InvalidInputError('row 0 (PAD) must be zeros', { field: 'sharedEmbeddings' });
      this.table = shared;
    } else if (options.embeddings !== undefined) {
      if (!(options.embeddings instanceof Float32Array) || options.embeddings.length !== V * d) {
        throw new InvalidInputError(`must be a Float32Array of vocabSize*dim = ${V * d} values`, {
          field: 'embeddings',
        });
      }
      this.table = Float32Array.from(options.embeddings);
      this.table.fill(0, 0, d);
    } else {
      this.table = new Rng(seed ^ 0x5eed).uniform(new Float32Array(V * d), Math.sqrt(3));
      this.table.fill(0, 0, d);
    }
    this.preparer = new BatchPreparer(V);
    const rng = new Rng(seed);
    let offset = 0;
    const inits: Float32Array[] = [];
    for (const spec of this.net.params) {
      const values = spec.init(rng);
      this.slots.push({ name: spec.name, shape: spec.shape, offset, size: values.length });
      inits.push(values);
      offset += values.length;
    }
    const flat = new Float32Array(offset);
    inits.forEach((v, i) => flat.set(v, this.slots[i]!.offset));
    this.theta = tf.tidy(() => tf.variable(tf.tensor1d(flat), true, `ch8model${++modelCounter}/theta`));
  }

  /** Training steps taken so far. */
  get steps(): number {
    return this.stepCount;
  }

  /** The learning rate of the next step: `config.learningRate` unless changed by {@link setLearningRate}. */
  get learningRate(): number {
    return this.lr;
  }

  /**
   * Changes the learning rate of both optimizers from the next step on (a schedule, e.g. decay on a plateau).
   * In dense embedding-Adam mode the rows' pending moves are applied first with the old rate. A checkpoint taken
   * afterwards carries the new rate. Refused while a step runs; not positive and finite: InvalidInputError.
   */
  setLearningRate(learningRate: number): void {
    this.checkIdle();
    if (!(typeof learningRate === 'number' && learningRate > 0 && Number.isFinite(learningRate))) {
      throw new InvalidInputError(`must be a positive number, got ${learningRate}`, { field: 'learningRate' });
    }
    this.embeddingOptimizer?.setLearningRate(this.table, learningRate);
    if (this.optimizer !== undefined) adamInternals(this.optimizer).learningRate = learningRate;
    this.lr = learningRate;
  }

  /** Number of dense (non-embedding) parameters. */
  get parameterCount(): number {
    return this.theta.size;
  }

  private checkAlive(): void {
    if (this.disposed) throw new Error('model used after dispose()');
  }

  /** Brings the host table up to date (dense-semantics embedding Adam applies missed moves lazily). */
  private syncTable(): void {
    this.embeddingOptimizer?.flush(this.table);
  }

  /** The batch's token rows [B*T, d] copied from the host table (PAD rows zero). */
  private tokenRows(prep: PreparedBatch): tf.Tensor2D {
    const d = this.config.dim;
    const n = prep.local.length;
    const out = new Float32Array(n * d);
    // One view per table row, made once: a copy per token without allocating a subarray per token.
    this.rowViews ??= Array.from({ length: this.config.vocabSize }, (_, id) =>
      this.table.subarray(id * d, (id + 1) * d),
    );
    const views = this.rowViews;
    const rows = prep.rows;
    for (let i = 0; i < n; i++) {
      const r = prep.local[i]!;
      if (r !== 0) out.set(views[rows[r - 1]!]!, i * d);
    }
    return tf.tensor2d(out, [n, d]);
  }

  /** Views of the flat parameter vector, one per named parameter. */
  private paramViews(theta: tf.Tensor): Map<string, tf.Tensor> {
    const parts =
      this.slots.length > 1
        ? tf.split(
            theta,
            this.slots.map((s) => s.size),
          )
        : [theta];
    const m = new Map<string, tf.Tensor>();
    this.slots.forEach((s, i) => m.set(s.name, tf.reshape(parts[i]!, s.shape)));
    return m;
  }

  /**
   * The dropout stream of the current step. Masks depend on (seed, step) only, so every backend sees the same
   * masks; the chunks of an accumulated step draw from one stream in turn.
   */
  private stepRng(): Rng {
    return new Rng(this.stepSeed(this.stepCount));
  }

  private stepSeed(step: number): number {
    return (this.config.seed * 1000003 + step * 7919 + 17) >>> 0;
  }

  /**
   * The dropout masks of training step `step` (default: the next step of this model). Every thread that computes a
   * part of one step uses a stream of the same step: the parts' masks are then the whole step's.
   */
  dropoutStream(step: number = this.stepCount): DropoutStream {
    if (!Number.isSafeInteger(step) || step < 0)
      throw new InvalidInputError(`must be a non-negative integer, got ${step}`, { field: 'step' });
    return new DropoutStream(this.stepSeed(step));
  }

  private forward(
    prep: PreparedBatch,
    tokens: tf.Tensor,
    params: ReadonlyMap<string, tf.Tensor>,
    training: boolean,
    rng: Rng = this.stepRng(),
  ): tf.Tensor {
    return this.net.forward({ prep, tokens, params, training, rng });
  }

  /**
   * Loss, logits (kept; the caller disposes them) and gradients: w.r.t. the flat parameters, and w.r.t. the token
   * rows when fine-tuning.
   */
  private lossAndGrads(prep: PreparedBatch, training: boolean, rng: Rng = this.stepRng()) {
    const tokens = this.tokenRows(prep);
    const labels = tf.tensor1d(prep.labels!);
    const views = this.paramViews(this.theta);
    const names = [...views.keys()];
    const finetune = this.config.finetune;
    let logits: tf.Tensor | undefined;
    const f = (...xs: tf.Tensor[]): tf.Tensor => {
      const offset = finetune ? 1 : 0;
      const params = new Map<string, tf.Tensor>();
      names.forEach((n, i) => params.set(n, xs[i + offset]!));
      logits = tf.keep(this.forward(prep, finetune ? xs[0]! : tokens, params, training, rng));
      return bceWithLogits(logits, labels);
    };
    const xs: tf.Tensor[] = [...views.values()];
    if (finetune) xs.unshift(tokens);
    // Parameters a batch does not reach (the recurrent kernel when T = 1) get zero gradients.
    const { value, grads: maybe } = tf.engine().gradients(() => f(...xs), xs, undefined, true);
    const grads = maybe.map((g, i) => g ?? tf.zerosLike(xs[i]!));
    const offset = finetune ? 1 : 0;
    const paramGrads = grads.slice(offset);
    const flatGrad =
      paramGrads.length > 1 ? tf.concat(paramGrads.map((g) => tf.reshape(g, [-1]))) : tf.reshape(paramGrads[0]!, [-1]);
    return { loss: value, logits: logits!, flatGrad, tokenGrad: finetune ? grads[0]! : undefined };
  }

  /** Loss and gradients of one batch, nothing updated (for tests and diagnostics). Dropout off unless `training`. */
  gradients(batch: ModelBatch, options: { training?: boolean } = {}): Gradients {
    this.checkAlive();
    this.syncTable();
    const prep = this.preparer.prepare(batch, true);
    const params = new Map<string, Float32Array>();
    let loss = 0;
    let embeddings: Float32Array | undefined;
    tf.tidy(() => {
      const r = this.lossAndGrads(prep, options.training ?? false);
      const flat = r.flatGrad.dataSync() as Float32Array;
      for (const s of this.slots) params.set(s.name, flat.slice(s.offset, s.offset + s.size));
      if (r.tokenGrad !== undefined) {
        const d = this.config.dim;
        const tg = r.tokenGrad.dataSync();
        embeddings = new Float32Array(prep.rows.length * d);
        for (let i = 0; i < prep.local.length; i++) {
          const row = prep.local[i]!;
          if (row === 0) continue;
          for (let j = 0; j < d; j++) embeddings[(row - 1) * d + j]! += tg[i * d + j]!;
        }
      }
      loss = r.loss.dataSync()[0]!;
      r.logits.dispose();
    });
    return { loss, params, embeddingRows: prep.rows, embeddings };
  }

  private checkIdle(): void {
    this.checkAlive();
    if (this.busy) throw new FailedPreconditionError('a training step is already running on this model');
  }

  private ensureOptimizers(): void {
    const { finetune, vocabSize, dim } = this.config;
    const learningRate = this.lr;
    this.optimizer ??= tf.train.adam(learningRate, 0.9, 0.999, 1e-8);
    if (finetune)
      this.embeddingOptimizer ??= new SparseRowAdam(vocabSize, dim, learningRate, this.config.embeddingOptimizer);
  }

  /** Forward, backward and the dense update; keeps what the host still has to read (loss, logits, token grads). */
  private beginStep(batch: ModelBatch): ChunkTensors {
    this.checkIdle();
    const prep = this.preparer.prepare(batch, true);
    this.ensureOptimizers();
    this.embeddingOptimizer?.catchUpRows(this.table, prep.rows);
    const out = tf.tidy(() => {
      const r = this.lossAndGrads(prep, true);
      this.optimizer!.applyGradients([{ name: this.theta.name, tensor: r.flatGrad }]);
      return {
        loss: tf.keep(r.loss),
        logits: r.logits,
        tokenGrad: r.tokenGrad === undefined ? undefined : tf.keep(r.tokenGrad),
      };
    });
    this.busy = true;
    return { prep, ...out };
  }

  /** The host half of a step: the sparse embedding update, from values read back. */
  private endStep(
    prep: PreparedBatch,
    loss: number,
    logits: ArrayLike<number>,
    tokenGrad: Float32Array | undefined,
  ): StepResult {
    if (tokenGrad !== undefined) this.embeddingOptimizer!.step(this.table, prep.rows, prep.local, tokenGrad);
    this.stepCount++;
    return { loss, correct: countCorrect(logits, prep.labels!), examples: prep.batchSize };
  }

  /** One optimisation step on a collated batch (labels required). Dropout is on. Reads back synchronously. */
  trainStep(batch: ModelBatch): StepResult {
    const s = this.beginStep(batch);
    try {
      const grad = s.tokenGrad?.dataSync() as Float32Array | undefined;
      return this.endStep(s.prep, s.loss.dataSync()[0]!, s.logits.dataSync(), grad);
    } finally {
      this.busy = false;
      tf.dispose([s.loss, s.logits, ...(s.tokenGrad ? [s.tokenGrad] : [])]);
    }
  }

  /** `trainStep` reading back with `await data()` (required on webgpu, where dataSync is unavailable in Node). */
  async trainStepAsync(batch: ModelBatch): Promise<StepResult> {
    const s = this.beginStep(batch);
    try {
      const [loss, logits, grad] = await Promise.all([s.loss.data(), s.logits.data(), s.tokenGrad?.data()]);
      return this.endStep(s.prep, loss[0]!, logits, grad as Float32Array | undefined);
    } finally {
      this.busy = false;
      tf.dispose([s.loss, s.logits, ...(s.tokenGrad ? [s.tokenGrad] : [])]);
    }
  }

  /**
   * One optimisation step over several chunks, as if they were one batch (problem 73's full-batch training with
   * bounded memory): {@link computeGradients} chunk by chunk (nothing updated), the gradients of the summed losses
   * added up, then ONE {@link applyGradients} with the gradient of the mean loss over all examples (dense Adam, and
   * one sparse Adam step on the union of the fine-tuned rows). Dropout masks continue one stream over the chunks, so
   * for a net with one dropout layer (mlp, cnn, bilstm, gru) the step equals `trainStep` on the chunks stacked in
   * order (attention's encoder dropout draws per position: its masks depend on each chunk's T). Returns the mean
   * loss and the correct count over all chunks (before the update). Reads back synchronously.
   */
  trainStepAccumulated(chunks: Iterable<ModelBatch>): StepResult {
    this.checkIdle();
    this.busy = true;
    try {
      const acc = this.newAccumulator();
      const stream = this.dropoutStream();
      for (const batch of chunks) acc.add(this.gradientsOf(batch, undefined, stream));
      return this.applySum(acc.result(), 'chunks');
    } finally {
      this.busy = false;
    }
  }

  /** {@link trainStepAccumulated} over sync or async chunks, reading back with `await data()` (webgpu). */
  async trainStepAccumulatedAsync(chunks: Iterable<ModelBatch> | AsyncIterable<ModelBatch>): Promise<StepResult> {
    this.checkIdle();
    this.busy = true;
    try {
      const acc = this.newAccumulator();
      const stream = this.dropoutStream();
      for await (const batch of chunks) acc.add(await this.gradientsOfAsync(batch, undefined, stream));
      return this.applySum(acc.result(), 'chunks');
    } finally {
      this.busy = false;
    }
  }

  /** An empty accumulator of this model's gradients (see {@link GradientAccumulator}). */
  newAccumulator(): GradientAccumulator {
    const { finetune, vocabSize, dim } = this.config;
    return finetune
      ? new GradientAccumulator(this.theta.size, vocabSize, dim)
      : new GradientAccumulator(this.theta.size);
  }

  /**
   * The gradient of the summed loss of a batch, or of one share of its rows, with dropout on: nothing is updated
   * (the fine-tuned rows it reads are brought up to date first, as a step would see them). Parts computed this way
   * and added up (GradientAccumulator) give, through {@link applyGradients}, the step `trainStep` would take on the
   * whole batch, up to float summation order. An empty share (batchSize < share.count) gives zero gradients, and
   * still advances `stream` as the batch would. Reads back synchronously.
   */
  computeGradients(batch: ModelBatch, options: GradientOptions = {}): GradientSum {
    this.checkIdle();
    return this.gradientsOf(batch, options.share, options.stream);
  }

  /** {@link computeGradients} reading back with `await data()` (webgpu). */
  async computeGradientsAsync(batch: ModelBatch, options: GradientOptions = {}): Promise<GradientSum> {
    this.checkIdle();
    this.busy = true;
    try {
      return await this.gradientsOfAsync(batch, options.share, options.stream);
    } finally {
      this.busy = false;
    }
  }

  /**
   * ONE optimisation step with the gradient of the mean loss of `sum`'s examples: dense Adam on `sum.grad /
   * examples`, and (fine-tuning) one sparse Adam step on `sum.embeddingGrad`'s rows, exactly as
   * {@link trainStepAccumulated} finishes a step. Returns the mean loss and correct count `sum` carries.
   */
  applyGradients(sum: GradientSum): StepResult {
    this.checkIdle();
    return this.applySum(sum, 'examples');
  }

  /**
   * Dense embedding-Adam mode: brings the rows `batch` uses up to date, as the step's forward pass must see them.
   * Call before replicas in other threads read those rows of a shared table ({@link CreateModelOptions}); a step on
   * this model does it by itself.
   */
  syncRows(batch: ModelBatch): void {
    this.checkIdle();
    if (this.embeddingOptimizer === undefined) return;
    this.embeddingOptimizer.catchUpRows(this.table, this.preparer.prepare(batch, false).rows);
  }

  /** The flat dense parameter vector (build order), into `out` when given. Reads synchronously. */
  getParams(out: Float32Array = new Float32Array(this.theta.size)): Float32Array {
    this.checkAlive();
    if (out.length !== this.theta.size)
      throw new InvalidInputError(`must have ${this.theta.size} values, got ${out.length}`, { field: 'params' });
    out.set(this.theta.dataSync() as Float32Array);
    return out;
  }

  /** Replaces the flat dense parameter vector (copied); the optimizers' state is left as it is. */
  setParams(values: Float32Array): void {
    this.checkIdle();
    if (!(values instanceof Float32Array) || values.length !== this.theta.size)
      throw new InvalidInputError(`must be a Float32Array of ${this.theta.size} values`, { field: 'params' });
    // The cpu backend keeps the array it is given (`values` may be shared memory that changes later); the others
    // copy it into their own memory at once.
    const data = tf.getBackend() === 'cpu' ? values.slice() : values;
    tf.tidy(() => this.theta.assign(tf.tensor1d(data)));
  }

  /** The part of the batch to compute, and the rows of the dropout masks to keep. */
  private partOf(
    batch: ModelBatch,
    share: BatchShare | undefined,
    stream: DropoutStream | undefined,
  ): { part: ModelBatch | undefined; rng: Rng; rows: Int32Array } {
    const rng = (stream ?? this.dropoutStream()).rng;
    const all = batch.batchSize;
    let rows: Int32Array;
    let part: ModelBatch | undefined = batch;
    if (share === undefined || share.count === 1) {
      if (share !== undefined) checkShare(share);
      rows = shareRows(all, { index: 0, count: 1 });
    } else {
      checkShare(share);
      rows = shareRows(all, share);
      if (rows.length === 0) {
        // Nothing to compute, but the stream must advance as the whole batch's would: a forward pass over any one
        // row draws every mask of the batch (ShareRng), so the next chunk of the step gets its own masks.
        const one = shareRows(all, { index: 0, count: all });
        rng.select(one, all);
        const prep = this.preparer.prepare(takeRows(batch, one), false);
        tf.tidy(() => {
          this.forward(prep, this.tokenRows(prep), this.paramViews(this.theta), true, rng);
        });
        part = undefined;
      } else {
        part = takeRows(batch, rows);
      }
    }
    rng.select(rows, all);
    return { part, rng, rows };
  }

  private zeroGradients(): GradientSum {
    const g: GradientSum = { examples: 0, lossSum: 0, correct: 0, grad: new Float32Array(this.theta.size) };
    if (this.config.finetune) g.embeddingGrad = { rows: new Int32Array(0), values: new Float32Array(0) };
    return g;
  }

  /** Forward and backward of a part (no update): the tensors the host reads, gradients of the summed loss. */
  private gradientTensors(part: ModelBatch, rng: Rng): ChunkTensors & { grad: tf.Tensor } {
    const prep = this.preparer.prepare(part, true);
    // Every part must see the rows as they are at this step (dense semantics: caught up to it).
    this.embeddingOptimizer?.catchUpRows(this.table, prep.rows);
    const out = tf.tidy(() => {
      const r = this.lossAndGrads(prep, true, rng);
      return {
        grad: tf.mul(r.flatGrad, prep.batchSize),
        loss: r.loss,
        logits: r.logits,
        tokenGrad: r.tokenGrad,
      };
    });
    return { prep, ...out };
  }

  /** The host arrays of a part's gradients; `tokenGrad` [B*T, d] is summed per distinct row and scaled to the sum. */
  private hostGradients(
    prep: PreparedBatch,
    loss: number,
    logits: ArrayLike<number>,
    grad: Float32Array,
    tokenGrad: Float32Array | undefined,
  ): GradientSum {
    const B = prep.batchSize;
    const out: GradientSum = {
      examples: B,
      lossSum: loss * B,
      correct: countCorrect(logits, prep.labels!),
      // A read-back array: a copy on wasm and webgpu, the backend's own (never changed, dropped on dispose) on cpu.
      grad,
    };
    if (tokenGrad !== undefined) {
      const d = this.config.dim;
      const sum = new Float64Array(prep.rows.length * d);
      for (let i = 0; i < prep.local.length; i++) {
        const r = prep.local[i]!;
        if (r === 0) continue;
        const go = (r - 1) * d;
        const so = i * d;
        for (let j = 0; j < d; j++) sum[go + j]! += tokenGrad[so + j]!;
      }
      const values = new Float32Array(sum.length);
      for (let i = 0; i < sum.length; i++) values[i] = sum[i]! * B;
      out.embeddingGrad = { rows: prep.rows, values };
    }
    return out;
  }

  private gradientsOf(
    batch: ModelBatch,
    share: BatchShare | undefined,
    stream: DropoutStream | undefined,
  ): GradientSum {
    this.checkAlive();
    const { part, rng } = this.partOf(batch, share, stream);
    if (part === undefined) return this.zeroGradients();
    const c = this.gradientTensors(part, rng);
    try {
      const tokenGrad = c.tokenGrad?.dataSync() as Float32Array | undefined;
      return this.hostGradients(
        c.prep,
        c.loss.dataSync()[0]!,
        c.logits.dataSync(),
        c.grad.dataSync() as Float32Array,
        tokenGrad,
      );
    } finally {
      tf.dispose([c.loss, c.logits, c.grad, ...(c.tokenGrad ? [c.tokenGrad] : [])]);
    }
  }

  private async gradientsOfAsync(
    batch: ModelBatch,
    share: BatchShare | undefined,
    stream: DropoutStream | undefined,
  ): Promise<GradientSum> {
    this.checkAlive();
    const { part, rng } = this.partOf(batch, share, stream);
    if (part === undefined) return this.zeroGradients();
    const c = this.gradientTensors(part, rng);
    try {
      const [loss, logits, grad, tokenGrad] = await Promise.all([
        c.loss.data(),
        c.logits.data(),
        c.grad.data(),
        c.tokenGrad?.data(),
      ]);
      return this.hostGradients(c.prep, loss[0]!, logits, grad as Float32Array, tokenGrad as Float32Array | undefined);
    } finally {
      tf.dispose([c.loss, c.logits, c.grad, ...(c.tokenGrad ? [c.tokenGrad] : [])]);
    }
  }

  /** The one update of a step from the gradient of the summed loss of `sum.examples` examples. */
  private applySum(sum: GradientSum, field: string): StepResult {
    const n = sum.examples;
    if (!(Number.isInteger(n) && n > 0))
      throw new InvalidInputError(n === 0 ? 'no examples to train on' : `bad example count ${n}`, { field });
    if (!(sum.grad instanceof Float32Array) || sum.grad.length !== this.theta.size) {
      throw new InvalidInputError(`must be a Float32Array of ${this.theta.size} values`, { field: 'grad' });
    }
    const { finetune, dim } = this.config;
    const e = sum.embeddingGrad;
    if (e !== undefined) {
      if (!finetune) throw new InvalidInputError('this model keeps its embeddings frozen', { field: 'embeddingGrad' });
      if (e.values.length !== e.rows.length * dim) {
        throw new InvalidInputError(`has ${e.values.length} values, expected rows*dim = ${e.rows.length * dim}`, {
          field: 'embeddingGrad.values',
        });
      }
    }
    this.ensureOptimizers();
    const grad = sum.grad;
    tf.tidy(() => this.optimizer!.applyGradients([{ name: this.theta.name, tensor: tf.div(tf.tensor1d(grad), n) }]));
    if (finetune) {
      // One sparse step even when no row was used: the embedding optimizer counts steps with the dense one.
      const rows = e?.rows ?? new Int32Array(0);
      const values = new Float32Array(rows.length * dim);
      if (e !== undefined) for (let i = 0; i < values.length; i++) values[i] = e.values[i]! / n;
      this.embeddingOptimizer!.stepRows(this.table, rows, values);
    }
    this.stepCount++;
    return { loss: sum.lossSum / n, correct: sum.correct, examples: n };
  }

  /** Logits [B] as a tensor the caller disposes (dropout off unless `training`). */
  logits(batch: ModelBatch, training = false): tf.Tensor {
    this.checkAlive();
    this.syncTable();
    const prep = this.preparer.prepare(batch, false);
    return tf.tidy(() => this.forward(prep, this.tokenRows(prep), this.paramViews(this.theta), training));
  }

  /** P(label = 1) per example. */
  predictProbabilities(batch: ModelBatch): Float32Array {
    this.checkAlive();
    this.syncTable();
    const prep = this.preparer.prepare(batch, false);
    let out = new Float32Array(0);
    tf.tidy(() => {
      const z = this.forward(prep, this.tokenRows(prep), this.paramViews(this.theta), false);
      out = Float32Array.from(tf.sigmoid(z).dataSync());
    });
    return out;
  }

  /** `predictProbabilities` reading back with `await data()` (works on every backend, webgpu included). */
  async predictProbabilitiesAsync(batch: ModelBatch): Promise<Float32Array> {
    this.checkAlive();
    this.syncTable();
    const prep = this.preparer.prepare(batch, false);
    const p = tf.tidy(() => tf.sigmoid(this.forward(prep, this.tokenRows(prep), this.paramViews(this.theta), false)));
    try {
      return Float32Array.from(await p.data());
    } finally {
      p.dispose();
    }
  }

  /** Mean loss, accuracy and the confusion matrix over batches (dropout off). */
  evaluate(batches: Iterable<ModelBatch>): EvalResult {
    const tally = new EvalTally();
    for (const { batchSize, labels, z, loss } of this.evalTensors(batches)) {
      try {
        tally.add(batchSize, labels, z.dataSync(), loss.dataSync()[0]!);
      } finally {
        tf.dispose([z, loss]);
      }
    }
    return tally.result();
  }

  /** {@link evaluate} reading results with `await data()` (webgpu cannot read synchronously in Node). */
  async evaluateAsync(batches: Iterable<ModelBatch>): Promise<EvalResult> {
    const tally = new EvalTally();
    for (const { batchSize, labels, z, loss } of this.evalTensors(batches)) {
      try {
        const [zv, lv] = await Promise.all([z.data(), loss.data()]);
        tally.add(batchSize, labels, zv, lv[0]!);
      } finally {
        tf.dispose([z, loss]);
      }
    }
    return tally.result();
  }

  /** Per batch: the logits and the mean loss (dropout off), for the caller to read and dispose. */
  private *evalTensors(
    batches: Iterable<ModelBatch>,
  ): Generator<{ batchSize: number; labels: Float32Array; z: tf.Tensor; loss: tf.Tensor }> {
    this.checkAlive();
    this.syncTable();
    for (const batch of batches) {
      const prep = this.preparer.prepare(batch, true);
      const labels = prep.labels!;
      const [z, loss] = tf.tidy(() => {
        const z = this.forward(prep, this.tokenRows(prep), this.paramViews(this.theta), false);
        return [z, bceWithLogits(z, tf.tensor1d(labels))];
      });
      yield { batchSize: prep.batchSize, labels, z: z!, loss: loss! };
    }
  }

  /** A copy of the embedding matrix (vocabSize x dim). */
  getEmbeddings(): Float32Array {
    this.syncTable();
    return Float32Array.from(this.table);
  }

  /** All weights (dense parameters in build order, then `embeddings`), copied. */
  getWeights(): NamedWeight[] {
    this.checkAlive();
    return this.namedWeights(this.theta.dataSync() as Float32Array);
  }

  /** {@link getWeights} reading the parameters with `await data()` (webgpu cannot read synchronously in Node). */
  async getWeightsAsync(): Promise<NamedWeight[]> {
    this.checkAlive();
    return this.namedWeights((await this.theta.data()) as Float32Array);
  }

  private namedWeights(flat: Float32Array): NamedWeight[] {
    const out: NamedWeight[] = this.slots.map((s) => ({
      name: s.name,
      shape: [...s.shape],
      values: Float32Array.from(flat.subarray(s.offset, s.offset + s.size)),
    }));
    out.push({ name: 'embeddings', shape: [this.config.vocabSize, this.config.dim], values: this.getEmbeddings() });
    return out;
  }

  /** Replaces all weights by name; every weight must be given with its exact shape (else InvalidInputError). */
  setWeights(weights: readonly NamedWeight[]): void {
    this.checkAlive();
    this.syncTable();
    const byName = new Map<string, NamedWeight>();
    for (const w of weights) byName.set(w.name, w);
    const expected = [
      ...this.slots.map((s) => ({ name: s.name, shape: s.shape })),
      { name: 'embeddings', shape: [this.config.vocabSize, this.config.dim] },
    ];
    for (const w of weights) {
      if (!expected.some((e) => e.name === w.name))
        throw new InvalidInputError(`unknown weight ${w.name}`, { field: w.name });
    }
    for (const e of expected) {
      const w = byName.get(e.name);
      if (w === undefined) throw new InvalidInputError(`weight ${e.name} missing`, { field: e.name });
      const n = e.shape.reduce((a, b) => a * b, 1);
      if (w.shape.join('x') !== e.shape.join('x') || !(w.values instanceof Float32Array) || w.values.length !== n) {
        throw new InvalidInputError(`shape ${w.shape.join('x')} != expected ${e.shape.join('x')}`, { field: e.name });
      }
    }
    const flat = new Float32Array(this.theta.size);
    for (const s of this.slots) flat.set(byName.get(s.name)!.values, s.offset);
    tf.tidy(() => this.theta.assign(tf.tensor1d(flat)));
    this.table.set(byName.get('embeddings')!.values);
    this.table.fill(0, 0, this.config.dim);
  }

  /**
   * Everything the next training step depends on (see {@link TrainingState}), copied. Reads with `await data()`,
   * so it works on every backend, webgpu included. Refused (FailedPreconditionError) while a step is running.
   */
  async getTrainingState(): Promise<TrainingState> {
    this.checkIdle();
    // Take everything now: a step started while the reads are pending must not change what is returned. Clones
    // share their data with the originals (no copy); assigning a variable leaves the clone's data alone.
    const step = this.stepCount;
    const learningRate = this.lr;
    const embeddings = Float32Array.from(this.table);
    const embeddingAdam = this.embeddingOptimizer?.getState();
    const adam = this.optimizer === undefined ? undefined : adamInternals(this.optimizer);
    const started = adam !== undefined && adam.accumulatedFirstMoment.length > 0;
    const iterations = this.optimizer?.iterations ?? 0;
    const tensors = tf.tidy(() =>
      [
        this.theta,
        ...(started
          ? [
              adam.accBeta1,
              adam.accBeta2,
              adam.accumulatedFirstMoment[0]!.variable,
              adam.accumulatedSecondMoment[0]!.variable,
            ]
          : []),
      ].map((t) => tf.clone(t)),
    );
    try {
      const [params, beta1, beta2, m, v] = (await Promise.all(tensors.map((t) => t.data()))) as Float32Array[];
      return {
        config: structuredClone(this.config),
        step,
        learningRate,
        params: Float32Array.from(params!),
        embeddings,
        adam: started
          ? {
              iterations,
              accBeta1: beta1![0]!,
              accBeta2: beta2![0]!,
              m: Float32Array.from(m!),
              v: Float32Array.from(v!),
            }
          : undefined,
        embeddingAdam,
      };
    } finally {
      tf.dispose(tensors);
    }
  }

  /**
   * Restores {@link getTrainingState}'s output, normally into a fresh model built with the same config (and any
   * embeddings: the state's table replaces them); training then continues exactly where the state was taken.
   * Everything is checked before anything changes: a different config, or a missing or misshapen field, is an
   * InvalidInputError naming the field (`config.hidden`, `params`, `adam.m`, `embeddingAdam.last` ...).
   */
  setTrainingState(state: TrainingState): void {
    this.checkIdle();
    const bad = (field: string, what: string): InvalidInputError => new InvalidInputError(what, { field });
    if (state === null || typeof state !== 'object') throw bad('state', 'must be an object');
    if (state.config === null || typeof state.config !== 'object') throw bad('config', 'must be an object');
    for (const key of Object.keys(this.config) as (keyof ModelConfig)[]) {
      const mine = JSON.stringify(this.config[key]);
      const theirs = JSON.stringify(state.config[key]);
      if (mine !== theirs) throw bad(`config.${key}`, `is ${theirs} in the state, ${mine} in this model`);
    }
    if (!Number.isInteger(state.step) || state.step < 0)
      throw bad('step', `must be a non-negative integer, got ${state.step}`);
    const P = this.theta.size;
    const { vocabSize: V, dim: d, finetune } = this.config;
    const learningRate = state.learningRate;
    if (!(typeof learningRate === 'number' && learningRate > 0 && Number.isFinite(learningRate))) {
      throw bad('learningRate', `must be a positive number, got ${learningRate}`);
    }
    const floats = (x: unknown, n: number, field: string): void => {
      if (!(x instanceof Float32Array) || x.length !== n) throw bad(field, `must be a Float32Array of ${n} values`);
    };
    floats(state.params, P, 'params');
    floats(state.embeddings, V * d, 'embeddings');
    for (let j = 0; j < d; j++) if (state.embeddings[j] !== 0) throw bad('embeddings', 'row 0 (PAD) must be zeros');
    const adam = state.adam;
    if (adam !== undefined) {
      if (adam === null || typeof adam !== 'object') throw bad('adam', 'must be an object or undefined');
      if (!Number.isInteger(adam.iterations) || adam.iterations < 1)
        throw bad('adam.iterations', 'must be a positive integer');
      for (const k of ['accBeta1', 'accBeta2'] as const) {
        const b = adam[k];
        if (typeof b !== 'number' || !(b >= 0 && b < 1) || Math.fround(b) !== b)
          throw bad(`adam.${k}`, 'must be a float32 in [0, 1)');
      }
      floats(adam.m, P, 'adam.m');
      floats(adam.v, P, 'adam.v');
    }
    let embeddingOptimizer: SparseRowAdam | undefined;
    if (state.embeddingAdam !== undefined) {
      if (!finetune) throw bad('embeddingAdam', 'this model keeps its embeddings frozen');
      if (state.embeddingAdam === null || typeof state.embeddingAdam !== 'object')
        throw bad('embeddingAdam', 'must be an object or undefined');
      embeddingOptimizer = new SparseRowAdam(V, d, learningRate, this.config.embeddingOptimizer);
      embeddingOptimizer.setState(state.embeddingAdam, 'embeddingAdam.');
    }
    // Checked: now replace.
    this.optimizer?.dispose();
    this.optimizer = undefined;
    if (adam !== undefined) {
      const optimizer = tf.train.adam(learningRate, 0.9, 0.999, 1e-8);
      const internals = adamInternals(optimizer);
      tf.tidy(() => {
        internals.accBeta1.assign(tf.scalar(adam.accBeta1));
        internals.accBeta2.assign(tf.scalar(adam.accBeta2));
      });
      const moment = (values: Float32Array, suffix: string) => ({
        originalName: `${this.theta.name}/${suffix}`,
        variable: tf.tidy(() => tf.variable(tf.tensor1d(values), false)),
      });
      internals.accumulatedFirstMoment = [moment(adam.m, 'm')];
      internals.accumulatedSecondMoment = [moment(adam.v, 'v')];
      internals.iterations_ = adam.iterations;
      this.optimizer = optimizer;
    }
    this.embeddingOptimizer = embeddingOptimizer;
    this.lr = learningRate;
    tf.tidy(() => this.theta.assign(tf.tensor1d(state.params)));
    this.table.set(state.embeddings);
    this.stepCount = state.step;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.theta.dispose();
    this.optimizer?.dispose();
  }
}

/** Running sums of an evaluation. */
class EvalTally {
  private loss = 0;
  private n = 0;
  /** Counts by true label * 2 + prediction: tn, fp, fn, tp. */
  private readonly counts = [0, 0, 0, 0];

  add(batchSize: number, labels: Float32Array, logits: ArrayLike<number>, meanLoss: number): void {
    this.loss += meanLoss * batchSize;
    for (let i = 0; i < labels.length; i++) this.counts[labels[i]! * 2 + (logits[i]! > 0 ? 1 : 0)]!++;
    this.n += batchSize;
  }

  result(): EvalResult {
    const n = this.n;
    const [tn, fp, fn, tp] = this.counts as [number, number, number, number];
    return {
      loss: n > 0 ? this.loss / n : 0,
      accuracy: n > 0 ? (tn + tp) / n : 0,
      examples: n,
      confusion: [
        [tn, fp],
        [fn, tp],
      ],
    };
  }
}

function countCorrect(logits: ArrayLike<number>, labels: Float32Array): number {
  let c = 0;
  for (let i = 0; i < labels.length; i++) if ((logits[i]! > 0 ? 1 : 0) === labels[i]) c++;
  return c;
}

/** Builds a model from typed arguments (see `ModelConfigInput` for defaults). */
export function createModel(config: ModelConfigInput, options: CreateModelOptions = {}): SentimentModel {
  return new SentimentModel(config, options);
}
