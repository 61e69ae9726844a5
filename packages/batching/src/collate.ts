/**
 * Problem 75's collate: pad a list of examples into one batch.
 */
import { InvalidInputError } from '@ch8/errors';

/** What collate needs of an example (`@ch8/datasets/prepare`'s `Example` fits). */
export interface BatchExample {
  /** Token ids; 0 is the pad id. */
  inputIds: ArrayLike<number>;
  /** 1.0 or 0.0. */
  label: number;
  /** Example index (position in the source), carried through to the batch. */
  index: number;
}

/** A padded batch. `inputIds` is `[batchSize, maxLength]` row-major. */
export interface Batch {
  /** B*T ids, row-major, rows padded with 0 to T. */
  inputIds: Int32Array;
  /** B */
  batchSize: number;
  /** T: the longest row. */
  maxLength: number;
  /** B labels: the `[B, 1]` float labels. */
  labels: Float32Array;
  /** B real (unpadded) lengths. */
  lengths: Int32Array;
  /** B example indices. */
  indices: Int32Array;
}

/**
 * Pad every sequence with 0 to the longest in the batch and order rows by token count, longest first; rows of
 * equal length keep their input order (stable). An empty list gives an empty batch (B = 0, T = 0).
 */
export function collate(examples: readonly BatchExample[]): Batch {
  const b = examples.length;
  const order = new Array<number>(b);
  let t = 0;
  for (let i = 0; i < b; i++) {
    const ex = examples[i] as BatchExample;
    if (ex === null || typeof ex !== 'object' || ex.inputIds === undefined || typeof ex.inputIds.length !== 'number') {
      throw new InvalidInputError('example has no inputIds', { entry: i + 1, field: 'input_ids' });
    }
    order[i] = i;
    if (ex.inputIds.length > t) t = ex.inputIds.length;
  }
  order.sort((x, y) => {
    const d = (examples[y] as BatchExample).inputIds.length - (examples[x] as BatchExample).inputIds.length;
    return d !== 0 ? d : x - y;
  });
  const inputIds = new Int32Array(b * t);
  const labels = new Float32Array(b);
  const lengths = new Int32Array(b);
  const indices = new Int32Array(b);
  for (let row = 0; row < b; row++) {
    const ex = examples[order[row] as number] as BatchExample;
    const ids = ex.inputIds;
    if (ids instanceof Int32Array) inputIds.set(ids, row * t);
    else for (let k = 0; k < ids.length; k++) inputIds[row * t + k] = ids[k] as number;
    labels[row] = ex.label;
    lengths[row] = ids.length;
    indices[row] = ex.index;
  }
  return { inputIds, batchSize: b, maxLength: t, labels, lengths, indices };
}

/** Row `r` of a batch's ids, padding included (a view, no copy). */
export function batchRow(batch: Batch, r: number): Int32Array {
  return batch.inputIds.subarray(r * batch.maxLength, (r + 1) * batch.maxLength);
}

/** Throws InvalidInputError unless the arrays of `batch` agree with its B and T. */
export function checkBatch(batch: Batch): void {
  const { batchSize: b, maxLength: t } = batch;
  const field = (ok: boolean, name: string, what: string): void => {
    if (!ok) throw new InvalidInputError(what, { field: name });
  };
  field(Number.isInteger(b) && b >= 0, 'batch_size', `batch size must be a non-negative integer, got ${b}`);
  field(Number.isInteger(t) && t >= 0, 'max_length', `max length must be a non-negative integer, got ${t}`);
  field(
    batch.inputIds instanceof Int32Array && batch.inputIds.length === b * t,
    'input_ids',
    `input_ids must be an Int32Array of ${b}*${t}`,
  );
  field(
    batch.labels instanceof Float32Array && batch.labels.length === b,
    'label',
    `labels must be a Float32Array of ${b}`,
  );
  field(
    batch.lengths instanceof Int32Array && batch.lengths.length === b,
    'length',
    `lengths must be an Int32Array of ${b}`,
  );
  field(
    batch.indices instanceof Int32Array && batch.indices.length === b,
    'index',
    `indices must be an Int32Array of ${b}`,
  );
}
