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
import { BatchPreparer, type Batch, type PreparedBatch } from './batch.ts';
import { buildNet, type Net } from './nets.ts';
import { bceWithLogits } from './ops.ts';
import { Rng } from './rng.ts';
import { SparseRowAdam } from './sparse-adam.ts';

export type { Batch } from './batch.ts';

export interface CreateModelOptions {
  /** Pretrained matrix, vocabSize x dim row-major, row 0 = PAD (forced to zeros). Default: random U(-sqrt3, sqrt3). */
  embeddings?: Float32Array;
}

export interface StepResult {
  /** Mean loss of the batch (before the update). */
  loss: number;
  /** Correct predictions in the batch (before the update). */
  correct: number;
  examples: number;
}

export interface EvalResult {
  loss: number;
  accuracy: number;
  examples: number;
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
  private busy = false;
  private rowViews: Float32Array[] | undefined;
  private disposed = false;

  constructor(input: ModelConfigInput, options: CreateModelOptions = {}) {
    this.config = resolveConfig(input);
    const { vocabSize: V, dim: d, seed } = this.config;
    this.net = buildNet(this.config);
    if (options.embeddings !== undefined) {
      if (!(options.embeddings instanceof Float32Array) || options.embeddings.length !== V * d) {
        throw new InvalidInputError(`must be a Float32Array of vocabSize*dim = ${V * d} values`, { field: 'embeddings' });
      }
      this.table = Float32Array.from(options.embeddings);
    } else {
      this.table = new Rng(seed ^ 0x5eed).uniform(new Float32Array(V * d), Math.sqrt(3));
    }
    this.table.fill(0, 0, d);
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
    this.rowViews ??= Array.from({ length: this.config.vocabSize }, (_, id) => this.table.subarray(id * d, (id + 1) * d));
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
    const parts = this.slots.length > 1 ? tf.split(theta, this.slots.map((s) => s.size)) : [theta];
    const m = new Map<string, tf.Tensor>();
    this.slots.forEach((s, i) => m.set(s.name, tf.reshape(parts[i]!, s.shape)));
    return m;
  }

  private forward(prep: PreparedBatch, tokens: tf.Tensor, params: ReadonlyMap<string, tf.Tensor>, training: boolean): tf.Tensor {
    // Dropout masks depend on (seed, step) only, so every backend sees the same masks.
    const rng = new Rng((this.config.seed * 1000003 + this.stepCount * 7919 + 17) >>> 0);
    return this.net.forward({ prep, tokens, params, training, rng });
  }

  /**
   * Loss, logits (kept; the caller disposes them) and gradients: w.r.t. the flat parameters, and w.r.t. the token
   * rows when fine-tuning.
   */
  private lossAndGrads(prep: PreparedBatch, training: boolean) {
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
      logits = tf.keep(this.forward(prep, finetune ? xs[0]! : tokens, params, training));
      return bceWithLogits(logits, labels);
    };
    const xs: tf.Tensor[] = [...views.values()];
    if (finetune) xs.unshift(tokens);
    // Parameters a batch does not reach (the recurrent kernel when T = 1) get zero gradients.
    const { value, grads: maybe } = tf.engine().gradients(() => f(...xs), xs, undefined, true);
    const grads = maybe.map((g, i) => g ?? tf.zerosLike(xs[i]!));
    const offset = finetune ? 1 : 0;
    const paramGrads = grads.slice(offset);
    const flatGrad = paramGrads.length > 1 ? tf.concat(paramGrads.map((g) => tf.reshape(g, [-1]))) : tf.reshape(paramGrads[0]!, [-1]);
    return { loss: value, logits: logits!, flatGrad, tokenGrad: finetune ? grads[0]! : undefined };
  }

  /** Loss and gradients of one batch, nothing updated (for tests and diagnostics). Dropout off unless `training`. */
  gradients(batch: Batch, options: { training?: boolean } = {}): Gradients {
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

  /** Forward, backward and the dense update; keeps what the host still has to read (loss, logits, token grads). */
  private beginStep(batch: Batch): { prep: PreparedBatch; loss: tf.Tensor; logits: tf.Tensor; tokenGrad: tf.Tensor | undefined } {
    this.checkAlive();
    if (this.busy) throw new FailedPreconditionError('a training step is already running on this model');
    const prep = this.preparer.prepare(batch, true);
    const { finetune, learningRate, vocabSize, dim } = this.config;
    this.optimizer ??= tf.train.adam(learningRate, 0.9, 0.999, 1e-8);
    if (finetune) this.embeddingOptimizer ??= new SparseRowAdam(vocabSize, dim, learningRate, this.config.embeddingOptimizer);
    this.embeddingOptimizer?.catchUpRows(this.table, prep.rows);
    const out = tf.tidy(() => {
      const r = this.lossAndGrads(prep, true);
      this.optimizer!.applyGradients([{ name: this.theta.name, tensor: r.flatGrad }]);
      return { loss: tf.keep(r.loss), logits: r.logits, tokenGrad: r.tokenGrad === undefined ? undefined : tf.keep(r.tokenGrad) };
    });
    this.busy = true;
    return { prep, ...out };
  }

  /** The host half of a step: the sparse embedding update, from values read back. */
  private endStep(prep: PreparedBatch, loss: number, logits: ArrayLike<number>, tokenGrad: Float32Array | undefined): StepResult {
    if (tokenGrad !== undefined) this.embeddingOptimizer!.step(this.table, prep.rows, prep.local, tokenGrad);
    this.stepCount++;
    return { loss, correct: countCorrect(logits, prep.labels!), examples: prep.batchSize };
  }

  /** One optimisation step on a collated batch (labels required). Dropout is on. Reads back synchronously. */
  trainStep(batch: Batch): StepResult {
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
  async trainStepAsync(batch: Batch): Promise<StepResult> {
    const s = this.beginStep(batch);
    try {
      const [loss, logits, grad] = await Promise.all([s.loss.data(), s.logits.data(), s.tokenGrad?.data()]);
      return this.endStep(s.prep, loss[0]!, logits, grad as Float32Array | undefined);
    } finally {
      this.busy = false;
      tf.dispose([s.loss, s.logits, ...(s.tokenGrad ? [s.tokenGrad] : [])]);
    }
  }

  /** Logits [B] as a tensor the caller disposes (dropout off unless `training`). */
  logits(batch: Batch, training = false): tf.Tensor {
    this.checkAlive();
    this.syncTable();
    const prep = this.preparer.prepare(batch, false);
    return tf.tidy(() => this.forward(prep, this.tokenRows(prep), this.paramViews(this.theta), training));
  }

  /** P(label = 1) per example. */
  predictProbabilities(batch: Batch): Float32Array {
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
  async predictProbabilitiesAsync(batch: Batch): Promise<Float32Array> {
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

  /** Mean loss and accuracy over batches (dropout off). */
  evaluate(batches: Iterable<Batch>): EvalResult {
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
  async evaluateAsync(batches: Iterable<Batch>): Promise<EvalResult> {
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
  private *evalTensors(batches: Iterable<Batch>): Generator<{ batchSize: number; labels: Float32Array; z: tf.Tensor; loss: tf.Tensor }> {
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
    const expected = [...this.slots.map((s) => ({ name: s.name, shape: s.shape })), { name: 'embeddings', shape: [this.config.vocabSize, this.config.dim] }];
    for (const w of weights) {
      if (!expected.some((e) => e.name === w.name)) throw new InvalidInputError(`unknown weight ${w.name}`, { field: w.name });
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
  private correct = 0;
  private n = 0;

  add(batchSize: number, labels: Float32Array, logits: ArrayLike<number>, meanLoss: number): void {
    this.loss += meanLoss * batchSize;
    this.correct += countCorrect(logits, labels);
    this.n += batchSize;
  }

  result(): EvalResult {
    const n = this.n;
    return { loss: n > 0 ? this.loss / n : 0, accuracy: n > 0 ? this.correct / n : 0, examples: n };
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
