/**
 * The model zoo's runtime object: build a model from a config (and a pretrained matrix), train on collated
 * batches, evaluate, predict probabilities. The embedding matrix lives on the host; each step gathers only the
 * rows its batch uses into a small tfjs tensor, the forward/backward pass runs in tfjs, dense parameters are
 * updated by tfjs Adam and the touched embedding rows by a lazy (sparse) Adam, never the PAD row.
 */
import * as tf from '@tensorflow/tfjs';
import { InvalidInputError } from '@ch8/errors';
import { resolveConfig, type ModelConfig, type ModelConfigInput } from './config.ts';
import { BatchPreparer, type Batch, type PreparedBatch } from './batch.ts';
import { buildNet, type Net } from './nets.ts';
import { bceWithLogits } from './ops.ts';
import { Rng } from './rng.ts';
import { SparseRowAdam } from './sparse-adam.ts';

export type { Batch } from './batch.ts';

export interface CreateModelOptions {
  /** Pretrained matrix, vocabSize x dim row-major, row 0 = PAD (forced to zeros). Default: N(0, 1)-ish random. */
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

/** Named weights, as saved: dense parameters by name plus `embeddings` (vocabSize x dim). */
export interface NamedWeight {
  name: string;
  shape: number[];
  values: Float32Array;
}

export interface Gradients {
  loss: number;
  /** Gradient per dense parameter. */
  params: Map<string, Float32Array>;
  /** Gradient rows of the embedding table (same order as `embeddingRows`), only when fine-tuning. */
  embeddingRows: Int32Array;
  embeddings: Float32Array | undefined;
}

let modelCounter = 0;

export class SentimentModel {
  readonly config: ModelConfig;
  private readonly net: Net;
  private readonly table: Float32Array;
  private readonly vars = new Map<string, tf.Variable>();
  private readonly preparer: BatchPreparer;
  private optimizer: tf.Optimizer | undefined;
  private embeddingOptimizer: SparseRowAdam | undefined;
  private stepCount = 0;
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
    const prefix = `ch8model${++modelCounter}`;
    for (const spec of this.net.params) {
      const values = spec.init(rng);
      this.vars.set(spec.name, tf.tidy(() => tf.variable(tf.tensor(values, spec.shape), true, `${prefix}/${spec.name}`)));
    }
  }

  /** Training steps taken so far. */
  get steps(): number {
    return this.stepCount;
  }

  private checkAlive(): void {
    if (this.disposed) throw new Error('model used after dispose()');
  }

  private batchTable(prep: PreparedBatch): tf.Tensor2D {
    const d = this.config.dim;
    const U = prep.rows.length;
    const rows = new Float32Array((U + 1) * d);
    for (let r = 0; r < U; r++) {
      const o = prep.rows[r]! * d;
      rows.set(this.table.subarray(o, o + d), (r + 1) * d);
    }
    return tf.tensor2d(rows, [U + 1, d]);
  }

  private forward(prep: PreparedBatch, table: tf.Tensor, params: ReadonlyMap<string, tf.Tensor>, training: boolean): tf.Tensor {
    // Dropout masks depend on (seed, step) only, so every backend sees the same masks.
    const rng = new Rng((this.config.seed * 1000003 + this.stepCount * 7919 + 17) >>> 0);
    return this.net.forward({ prep, table, params, training, rng });
  }

  /** Loss and gradients of one batch without updating anything (for tests and diagnostics). */
  gradients(batch: Batch, options: { training?: boolean } = {}): Gradients {
    this.checkAlive();
    const prep = this.preparer.prepare(batch, true);
    const names = [...this.vars.keys()];
    const params = new Map<string, Float32Array>();
    let loss = 0;
    let embeddings: Float32Array | undefined;
    tf.tidy(() => {
      const r = this.lossAndGrads(prep, options.training ?? false);
      const offset = this.config.finetune ? 1 : 0;
      names.forEach((n, i) => params.set(n, Float32Array.from(r.grads[i + offset]!.dataSync())));
      if (this.config.finetune) embeddings = Float32Array.from(r.grads[0]!.dataSync());
      loss = r.loss.dataSync()[0]!;
      r.logits.forEach((t) => t.dispose());
    });
    return { loss, params, embeddingRows: prep.rows, embeddings };
  }

  private lossAndGrads(prep: PreparedBatch, training: boolean): { loss: tf.Tensor; logits: tf.Tensor[]; grads: tf.Tensor[] } {
    const table = this.batchTable(prep);
    const names = [...this.vars.keys()];
    const labels = tf.tensor1d(prep.labels!);
    const logitsOut: tf.Tensor[] = [];
    const f = (...xs: tf.Tensor[]): tf.Tensor => {
      const offset = this.config.finetune ? 1 : 0;
      const params = new Map<string, tf.Tensor>();
      names.forEach((n, i) => params.set(n, xs[i + offset]!));
      const logits = this.forward(prep, this.config.finetune ? xs[0]! : table, params, training);
      logitsOut.push(tf.keep(logits));
      return bceWithLogits(logits, labels);
    };
    const xs: tf.Tensor[] = [...this.vars.values()];
    if (this.config.finetune) xs.unshift(table);
    const { value, grads } = tf.valueAndGrads(f)(xs);
    return { loss: value, logits: logitsOut, grads };
  }

  /** One optimisation step on a collated batch (labels required). Dropout is on. */
  trainStep(batch: Batch): StepResult {
    this.checkAlive();
    const prep = this.preparer.prepare(batch, true);
    const { finetune, learningRate, vocabSize, dim } = this.config;
    this.optimizer ??= tf.train.adam(learningRate, 0.9, 0.999, 1e-8);
    if (finetune) this.embeddingOptimizer ??= new SparseRowAdam(vocabSize, dim, learningRate);
    const names = [...this.vars.values()].map((v) => v.name);
    let loss = 0;
    let correct = 0;
    tf.tidy(() => {
      const r = this.lossAndGrads(prep, true);
      const offset = finetune ? 1 : 0;
      this.optimizer!.applyGradients(names.map((name, i) => ({ name, tensor: r.grads[i + offset]! })));
      if (finetune) this.embeddingOptimizer!.step(this.table, prep.rows, r.grads[0]!.dataSync() as Float32Array);
      correct = countCorrect(r.logits[0]!.dataSync(), prep.labels!);
      loss = r.loss.dataSync()[0]!;
      r.logits.forEach((t) => t.dispose());
    });
    this.stepCount++;
    return { loss, correct, examples: prep.batchSize };
  }

  /** Logits [B] as a tensor the caller disposes (dropout off unless `training`). */
  logits(batch: Batch, training = false): tf.Tensor {
    this.checkAlive();
    const prep = this.preparer.prepare(batch, false);
    return tf.tidy(() => this.forward(prep, this.batchTable(prep), this.vars, training));
  }

  /** P(label = 1) per example. */
  predictProbabilities(batch: Batch): Float32Array {
    this.checkAlive();
    const prep = this.preparer.prepare(batch, false);
    let out = new Float32Array(0);
    tf.tidy(() => {
      out = Float32Array.from(tf.sigmoid(this.forward(prep, this.batchTable(prep), this.vars, false)).dataSync());
    });
    return out;
  }

  /** Mean loss and accuracy over batches (dropout off). */
  evaluate(batches: Iterable<Batch>): EvalResult {
    let loss = 0;
    let correct = 0;
    let n = 0;
    for (const batch of batches) {
      const prep = this.preparer.prepare(batch, true);
      const labels = prep.labels!;
      const r = { loss: 0, correct: 0 };
      tf.tidy(() => {
        const z = this.forward(prep, this.batchTable(prep), this.vars, false);
        r.loss = bceWithLogits(z, tf.tensor1d(labels)).dataSync()[0]!;
        r.correct = countCorrect(z.dataSync(), labels);
      });
      loss += r.loss * prep.batchSize;
      correct += r.correct;
      n += prep.batchSize;
    }
    return { loss: n > 0 ? loss / n : 0, accuracy: n > 0 ? correct / n : 0, examples: n };
  }

  /** A copy of the embedding matrix (vocabSize x dim). */
  getEmbeddings(): Float32Array {
    return Float32Array.from(this.table);
  }

  /** All weights (dense parameters in build order, then `embeddings`), copied. */
  getWeights(): NamedWeight[] {
    this.checkAlive();
    const out: NamedWeight[] = [];
    for (const [name, v] of this.vars) out.push({ name, shape: [...v.shape], values: Float32Array.from(v.dataSync()) });
    out.push({ name: 'embeddings', shape: [this.config.vocabSize, this.config.dim], values: this.getEmbeddings() });
    return out;
  }

  /** Replaces weights by name; shapes must match. Unknown or missing names are InvalidInputError. */
  setWeights(weights: readonly NamedWeight[]): void {
    this.checkAlive();
    const seen = new Set<string>();
    for (const w of weights) {
      const expected = w.name === 'embeddings' ? [this.config.vocabSize, this.config.dim] : this.vars.get(w.name)?.shape;
      if (expected === undefined) throw new InvalidInputError(`unknown weight ${w.name}`, { field: w.name });
      const n = expected.reduce((a, b) => a * b, 1);
      if (w.shape.join('x') !== expected.join('x') || w.values.length !== n) {
        throw new InvalidInputError(`shape ${w.shape.join('x')} != expected ${expected.join('x')}`, { field: w.name });
      }
      seen.add(w.name);
    }
    for (const name of [...this.vars.keys(), 'embeddings']) {
      if (!seen.has(name)) throw new InvalidInputError(`weight ${name} missing`, { field: name });
    }
    for (const w of weights) {
      if (w.name === 'embeddings') {
        this.table.set(w.values);
        this.table.fill(0, 0, this.config.dim);
      } else {
        const v = this.vars.get(w.name)!;
        tf.tidy(() => v.assign(tf.tensor(w.values, v.shape)));
      }
    }
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const v of this.vars.values()) v.dispose();
    this.optimizer?.dispose();
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
