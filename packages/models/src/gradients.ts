/**
 * Gradients as plain host arrays, for steps computed in parts: the chunks of a full-batch step (problem 73) and the
 * shares of a data-parallel step (@ch8/training's workers). A part's gradient is of the SUM of its examples'
 * losses, so parts add up; the one update divides by the total number of examples (the mean loss's gradient).
 *
 * A data-parallel step splits each batch into `count` shares by rows, strided (share k takes rows k, k + count,
 * ...): a collated batch is ordered longest first, so every share keeps that order and gets about the same number
 * of tokens. Every share keeps the batch's padded length, and its dropout masks are the rows of the whole batch's
 * masks ({@link ShareRng}), so the shares of a step compute exactly the parts of the single-thread step.
 */
import { InvalidInputError } from '@ch8/errors';
import type { ModelBatch } from './batch.ts';
import { Rng } from './rng.ts';

/** The gradient of the summed loss of some examples (a chunk, a share, or several added up). */
export interface GradientSum {
  /** Examples the sums run over. */
  examples: number;
  /** Sum of the examples' losses (before the update). */
  lossSum: number;
  /** Correct predictions among them (before the update). */
  correct: number;
  /** d(sum of losses)/d(flat dense parameters), `parameterCount` values in build order. */
  grad: Float32Array;
  /**
   * Fine-tuning only: the distinct non-PAD embedding rows the examples use and d(sum of losses)/d(row), rows x dim
   * (row r of `values` belongs to `rows[r]`).
   */
  embeddingGrad?: { rows: Int32Array; values: Float32Array };
}

/** Share `index` (0-based) of `count`: rows index, index + count, ... of a batch. */
export interface BatchShare {
  index: number;
  count: number;
}

/** Throws InvalidInputError unless `share` is a valid share spec. */
export function checkShare(share: BatchShare): void {
  const { index, count } = share;
  if (!Number.isInteger(count) || count < 1)
    throw new InvalidInputError(`must be a positive integer, got ${count}`, { field: 'share.count' });
  if (!Number.isInteger(index) || index < 0 || index >= count)
    throw new InvalidInputError(`must be an integer in [0, ${count - 1}], got ${index}`, { field: 'share.index' });
}

/** The batch rows of a share: index, index + count, ... below batchSize. */
export function shareRows(batchSize: number, share: BatchShare): Int32Array {
  const n = Math.max(0, Math.ceil((batchSize - share.index) / share.count));
  const rows = new Int32Array(n);
  for (let r = 0; r < n; r++) rows[r] = share.index + r * share.count;
  return rows;
}

/** The rows `rows` of a batch (ids and labels copied), its padded length kept. */
export function takeRows(batch: ModelBatch, rows: Int32Array): ModelBatch {
  const T = batch.maxLength;
  const inputIds = new Int32Array(rows.length * T);
  for (let r = 0; r < rows.length; r++) inputIds.set(batch.inputIds.subarray(rows[r]! * T, (rows[r]! + 1) * T), r * T);
  const out: ModelBatch = { inputIds, batchSize: rows.length, maxLength: T };
  if (batch.labels !== undefined) out.labels = Float32Array.from(rows, (r) => batch.labels![r]!);
  return out;
}

/**
 * The dropout stream of one share of a step: it draws every mask for the whole batch (`batchSize` rows) from the
 * step's stream and keeps the share's rows. Every dropout input of the zoo is batch-major (example b's values are
 * one contiguous block of n / rows), so the share's masks are exactly the single-thread step's masks of its rows,
 * and the stream advances as the whole batch's would (the chunks of a step continue it).
 */
export class ShareRng extends Rng {
  private rows: Int32Array = new Int32Array(0);
  private batchSize = 0;

  constructor(private readonly base: Rng) {
    super(0);
    // Draws other than masks (none in the zoo today) continue the step's stream too.
    (this as { next: () => number }).next = base.next;
  }

  /** The rows (of a batch of `batchSize`) the next forward pass computes. */
  select(rows: Int32Array, batchSize: number): void {
    this.rows = rows;
    this.batchSize = batchSize;
  }

  override dropoutMask(n: number, rate: number): Float32Array {
    const b = this.rows.length;
    if (b === this.batchSize) return this.base.dropoutMask(n, rate);
    if (b === 0 || n % b !== 0) throw new Error(`internal: a mask of ${n} values over ${b} rows`);
    const per = n / b;
    // Row by row through the whole batch's draws (one value of the stream per mask value): the share's rows keep
    // theirs, the others' are skipped, so no mask of the whole batch is made.
    const at = new Int32Array(this.batchSize).fill(-1);
    this.rows.forEach((row, i) => (at[row] = i));
    const out = new Float32Array(n);
    for (let row = 0; row < this.batchSize; row++) {
      if (at[row]! >= 0) out.set(this.base.dropoutMask(per, rate), at[row]! * per);
      else for (let j = 0; j < per; j++) this.base.next();
    }
    return out;
  }
}

/**
 * The dropout masks of one training step: pass the same stream to every chunk of an accumulated step (the masks
 * continue over the chunks); `SentimentModel.dropoutStream(step)` makes one.
 */
export class DropoutStream {
  /** @internal */
  readonly rng: ShareRng;

  constructor(seed: number) {
    this.rng = new ShareRng(new Rng(seed));
  }
}

/**
 * Adds up GradientSums (float64 sums): dense gradients element-wise, embedding rows merged by id (each distinct
 * row once, in first-seen order). `result()` is the sum as a GradientSum. The first part after a reset, and each
 * row's first gradient, are copied rather than added to zeros: one pass less over the dense gradient per step.
 */
export class GradientAccumulator {
  private readonly dense: Float64Array;
  private readonly slot: Int32Array | undefined;
  private ids: number[] = [];
  private rowGrad = new Float64Array(0);
  private readonly denseOut: Float32Array;
  private rowsOut = new Int32Array(0);
  private valuesOut = new Float32Array(0);
  /** No part added since the last reset: `dense` holds nothing of this step. */
  private empty = true;
  examples = 0;
  lossSum = 0;
  correct = 0;

  /** `vocabSize` and `dim` for fine-tuned embeddings; omit them when the embeddings are frozen. */
  constructor(
    readonly parameterCount: number,
    readonly vocabSize = 0,
    readonly dim = 0,
  ) {
    this.dense = new Float64Array(parameterCount);
    this.denseOut = new Float32Array(parameterCount);
    this.slot = vocabSize > 0 ? new Int32Array(vocabSize) : undefined;
  }

  add(g: GradientSum): void {
    if (g.grad.length !== this.parameterCount) {
      throw new InvalidInputError(`has ${g.grad.length} values, expected ${this.parameterCount}`, { field: 'grad' });
    }
    const e = g.embeddingGrad;
    const d = this.dim;
    if (e !== undefined && e.rows.length > 0) {
      if (this.slot === undefined)
        throw new InvalidInputError('embedding gradients for frozen embeddings', { field: 'grad' });
      if (e.values.length !== e.rows.length * d) {
        throw new InvalidInputError(`has ${e.values.length} values, expected rows*dim = ${e.rows.length * d}`, {
          field: 'embeddingGrad.values',
        });
      }
      for (let r = 0; r < e.rows.length; r++) {
        const id = e.rows[r]!;
        if (!(id > 0 && id < this.slot.length)) {
          throw new InvalidInputError(`row ${id} is PAD or outside the vocabulary of ${this.slot.length}`, {
            field: 'embeddingGrad.rows',
          });
        }
      }
    }
    this.examples += g.examples;
    this.lossSum += g.lossSum;
    this.correct += g.correct;
    const dense = this.dense;
    const grad = g.grad;
    if (this.empty) dense.set(grad);
    else for (let i = 0; i < grad.length; i++) dense[i]! += grad[i]!;
    this.empty = false;
    if (e === undefined || e.rows.length === 0) return;
    const slot = this.slot!;
    const need = (this.ids.length + e.rows.length) * d;
    if (this.rowGrad.length < need) {
      const next = new Float64Array(Math.max(need, this.rowGrad.length * 2));
      next.set(this.rowGrad.subarray(0, this.ids.length * d));
      this.rowGrad = next;
    }
    const acc = this.rowGrad;
    const values = e.values;
    for (let r = 0; r < e.rows.length; r++) {
      const id = e.rows[r]!;
      const s = r * d;
      if (slot[id] === 0) {
        this.ids.push(id);
        slot[id] = this.ids.length;
        acc.set(values.subarray(s, s + d), (this.ids.length - 1) * d);
        continue;
      }
      const o = (slot[id]! - 1) * d;
      for (let j = 0; j < d; j++) acc[o + j]! += values[s + j]!;
    }
  }

  /**
   * The sum so far, in float32 arrays that this accumulator owns and reuses: valid until its next `result()` (a
   * step is applied at once; nothing is allocated per step).
   */
  result(): GradientSum {
    if (this.empty) this.denseOut.fill(0);
    else this.denseOut.set(this.dense);
    const out: GradientSum = {
      examples: this.examples,
      lossSum: this.lossSum,
      correct: this.correct,
      grad: this.denseOut,
    };
    if (this.slot !== undefined) {
      const n = this.ids.length;
      const d = this.dim;
      if (this.rowsOut.length < n) {
        this.rowsOut = new Int32Array(Math.max(n, this.rowsOut.length * 2));
        this.valuesOut = new Float32Array(this.rowsOut.length * d);
      }
      for (let r = 0; r < n; r++) this.rowsOut[r] = this.ids[r]!;
      const values = this.valuesOut.subarray(0, n * d);
      values.set(this.rowGrad.subarray(0, n * d));
      out.embeddingGrad = { rows: this.rowsOut.subarray(0, n), values };
    }
    return out;
  }

  /** Empties the accumulator for the next step. */
  reset(): void {
    this.examples = 0;
    this.lossSum = 0;
    this.correct = 0;
    this.empty = true;
    if (this.slot !== undefined) for (const id of this.ids) this.slot[id] = 0;
    this.ids = [];
  }
}
