import type { Batch } from '@ch8/batching/collate';
import { InvalidInputError } from '@ch8/errors';

/** A collated batch: @ch8/batching's type (problem 75's collate), re-exported for the model's callers. */
export type { Batch };

/**
 * What the model reads of a {@link Batch}: row-major ids B*T (PAD = 0) and, for training and evaluation, the labels
 * (ignored for prediction). Any @ch8/batching batch is one; so is a hand-made `{ inputIds, batchSize, maxLength }`.
 */
export type ModelBatch = Pick<Batch, 'inputIds' | 'batchSize' | 'maxLength'> & Partial<Pick<Batch, 'labels'>>;

/**
 * A batch seen from the embedding table: the distinct non-PAD ids it uses (`rows`, global ids) and the inputs
 * remapped to local ids (0 = PAD, r + 1 = rows[r]). Only those rows are gathered, trained and updated.
 */
export interface PreparedBatch {
  batchSize: number;
  maxLength: number;
  rows: Int32Array;
  local: Int32Array;
  /** Non-PAD tokens per example (always >= 1). */
  lengths: Int32Array;
  labels: Float32Array | undefined;
}

/** Reusable id -> local-id map over the vocabulary (stamped, so it is never cleared). */
export class BatchPreparer {
  private readonly stamp: Int32Array;
  private readonly slot: Int32Array;
  private generation = 0;

  constructor(readonly vocabSize: number) {
    this.stamp = new Int32Array(vocabSize);
    this.slot = new Int32Array(vocabSize);
  }

  prepare(batch: ModelBatch, needLabels: boolean): PreparedBatch {
    const { inputIds, batchSize: B, maxLength: T } = batch;
    if (!(inputIds instanceof Int32Array)) throw new InvalidInputError('must be an Int32Array', { field: 'inputIds' });
    if (!Number.isInteger(B) || B <= 0) throw new InvalidInputError(`bad batch size ${B}`, { field: 'batchSize' });
    if (!Number.isInteger(T) || T <= 0) throw new InvalidInputError(`bad max length ${T}`, { field: 'maxLength' });
    if (inputIds.length !== B * T) {
      throw new InvalidInputError(`has ${inputIds.length} ids, expected batchSize*maxLength = ${B * T}`, {
        field: 'inputIds',
      });
    }
    let labels = batch.labels;
    if (labels !== undefined) {
      if (!(labels instanceof Float32Array) || labels.length !== B) {
        throw new InvalidInputError(`must be a Float32Array of ${B} labels`, { field: 'labels' });
      }
      for (let i = 0; i < B; i++) {
        const y = labels[i];
        if (y !== 0 && y !== 1)
          throw new InvalidInputError(`label ${y} of example ${i} is not 0 or 1`, { field: 'labels' });
      }
    } else if (needLabels) {
      throw new InvalidInputError('labels are required here', { field: 'labels' });
    } else {
      labels = undefined;
    }
    const V = this.vocabSize;
    this.generation++;
    if (this.generation === 0x7fffffff) {
      this.stamp.fill(0);
      this.generation = 1;
    }
    const gen = this.generation;
    const local = new Int32Array(B * T);
    const lengths = new Int32Array(B);
    const rows: number[] = [];
    for (let b = 0; b < B; b++) {
      let n = 0;
      for (let t = 0; t < T; t++) {
        const i = b * T + t;
        const id = inputIds[i]!;
        if (id === 0) continue;
        if (id < 0 || id >= V || !Number.isInteger(id)) {
          throw new InvalidInputError(`id ${id} at example ${b}, position ${t} is outside the vocabulary of ${V}`, {
            field: 'inputIds',
          });
        }
        n++;
        if (this.stamp[id] !== gen) {
          this.stamp[id] = gen;
          rows.push(id);
          this.slot[id] = rows.length;
        }
        local[i] = this.slot[id]!;
      }
      if (n === 0) throw new InvalidInputError(`example ${b} has no tokens (all PAD)`, { field: 'inputIds' });
      lengths[b] = n;
    }
    return { batchSize: B, maxLength: T, rows: Int32Array.from(rows), local, lengths, labels };
  }
}
