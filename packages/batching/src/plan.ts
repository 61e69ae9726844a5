/**
 * Epoch batch plans: seeded shuffling, optional length bucketing, every example exactly once per epoch.
 */
import { InvalidInputError } from '@ch8/errors';
import { collate, type Batch, type BatchExample } from './collate.ts';
import { mix32, shuffleInPlace, uniform01 } from '@ch8/random';

export type Bucketing = 'none' | 'chunk' | 'global';

export interface BatchPlanOptions {
  /** Examples per batch (> 0). The last batch of an epoch may be smaller unless `dropLast`. */
  batchSize: number;
  /** Any safe integer. Default 0. */
  seed?: number;
  /** Epoch number (>= 0): each epoch of a seed has its own order. Default 0. */
  epoch?: number;
  /** Shuffle examples (and, with bucketing, batch order). Default true. Without it, order is deterministic. */
  shuffle?: boolean;
  /**
   * Group examples of similar length to cut padding:
   * - `none` (default): batches are consecutive runs of the (shuffled) order;
   * - `chunk`: the shuffled order is cut into chunks of `bucketChunk` examples, each chunk is sorted by length
   *   (longest first, stable) and cut into batches, then the batch order is shuffled;
   * - `global`: like `chunk` with one chunk holding every example (least padding, least randomness: batches are
   *   fixed runs of the length order, only ties and batch order vary between epochs).
   */
  bucketing?: Bucketing;
  /** Chunk size for `chunk` bucketing, rounded up to a multiple of batchSize. Default 100 * batchSize. */
  bucketChunk?: number;
  /** Drop the one batch smaller than batchSize, if any. Default false (every example appears exactly once). */
  dropLast?: boolean;
}

// ---------------------------------------------------------------------------------------------------------------
// PRNG

/**
 * A seeded PRNG (mulberry32) returning uniform floats in [0, 1). The state is a hash of `seed` (any safe
 * integer, both halves used) and `stream` (e.g. the epoch), so nearby seeds and epochs give unrelated sequences.
 */
export function createRng(seed: number, stream = 0): () => number {
  const lo = seed >>> 0;
  const hi = Math.floor(seed / 0x100000000) >>> 0;
  return uniform01(mix32(lo ^ mix32(hi ^ mix32(stream ^ 0x9e3779b9))));
}

export { shuffleInPlace };

// ---------------------------------------------------------------------------------------------------------------

function checkInt(value: unknown, field: string, min: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new InvalidInputError(`${field} must be an integer >= ${min}, got ${String(value)}`, { field });
  }
  return value;
}

/** Positions `order[from..to)` sorted by length, longest first, stable (counting sort). */
function sortByLengthDesc(order: Int32Array, from: number, to: number, lengths: ArrayLike<number>): void {
  let max = 0;
  for (let i = from; i < to; i++) {
    const l = lengths[order[i] as number] as number;
    if (l > max) max = l;
  }
  const n = to - from;
  if (max > 8 * n + 1024) {
    const part = Array.from(order.subarray(from, to));
    part.sort((x, y) => (lengths[y] as number) - (lengths[x] as number));
    order.set(part, from);
    return;
  }
  const counts = new Int32Array(max + 2);
  for (let i = from; i < to; i++) counts[max - (lengths[order[i] as number] as number) + 1]! += 1;
  for (let k = 1; k < counts.length; k++) counts[k]! += counts[k - 1] as number;
  const out = new Int32Array(n);
  for (let i = from; i < to; i++) {
    const p = order[i] as number;
    const slot = max - (lengths[p] as number);
    out[counts[slot] as number] = p;
    counts[slot]! += 1;
  }
  order.set(out, from);
}

/**
 * The batches of one epoch as positions into the example list (`lengths[i]` is example i's token count).
 * Deterministic in (lengths, options). Bad options -> InvalidInputError (field `batch_size`, `seed`, `epoch`,
 * `bucketing`, `bucket_chunk`).
 */
export function batchPlan(lengths: ArrayLike<number>, options: BatchPlanOptions): Int32Array[] {
  const batchSize = checkInt(options.batchSize, 'batch_size', 1);
  const seed = options.seed ?? 0;
  if (typeof seed !== 'number' || !Number.isSafeInteger(seed)) {
    throw new InvalidInputError(`seed must be a safe integer, got ${String(seed)}`, { field: 'seed' });
  }
  const epoch = checkInt(options.epoch ?? 0, 'epoch', 0);
  const shuffle = options.shuffle ?? true;
  const bucketing = options.bucketing ?? 'none';
  if (bucketing !== 'none' && bucketing !== 'chunk' && bucketing !== 'global') {
    throw new InvalidInputError(`bucketing must be none, chunk or global, got ${String(bucketing)}`, {
      field: 'bucketing',
    });
  }
  const chunkOpt = checkInt(options.bucketChunk ?? 100 * batchSize, 'bucket_chunk', 1);

  const n = lengths.length;
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  const random = createRng(seed, epoch);
  if (shuffle) shuffleInPlace(order, random);

  const batches: Int32Array[] = [];
  const cut = (from: number, to: number): void => {
    for (let s = from; s < to; s += batchSize) batches.push(order.slice(s, Math.min(to, s + batchSize)));
  };
  if (bucketing === 'none') {
    cut(0, n);
  } else {
    const chunk = bucketing === 'global' ? Math.max(n, 1) : Math.ceil(chunkOpt / batchSize) * batchSize;
    for (let from = 0; from < n; from += chunk) {
      const to = Math.min(n, from + chunk);
      sortByLengthDesc(order, from, to, lengths);
      cut(from, to);
    }
    if (shuffle) {
      const perm = shuffleInPlace(
        Int32Array.from(batches, (_, i) => i),
        random,
      );
      const shuffled = Array.from(perm, (i) => batches[i] as Int32Array);
      batches.length = 0;
      batches.push(...shuffled);
    }
  }
  if (options.dropLast === true) {
    const small = batches.findIndex((b) => b.length < batchSize);
    if (small >= 0) batches.splice(small, 1);
  }
  return batches;
}

/** One batch of an epoch with its place in the epoch. */
export interface PlannedBatch {
  /** 0-based position of the batch in its epoch. */
  batchIndex: number;
  /** Batches in the epoch. */
  batchesInEpoch: number;
  batch: Batch;
}

/**
 * The one epoch iteration: the epoch is planned up front with `batchPlan` (positions only, cheap), and each batch
 * is collated only when the iteration reaches it, so a consumer that stops early (or a stream that is cancelled)
 * collates nothing more. Bad options throw InvalidInputError on the first `next()`, as `batchPlan` does.
 */
export function* plannedBatches(examples: readonly BatchExample[], options: BatchPlanOptions): Generator<PlannedBatch> {
  const lengths = Int32Array.from(examples, (e) => e.inputIds.length);
  const plan = batchPlan(lengths, options);
  for (let b = 0; b < plan.length; b++) {
    const positions = plan[b] as Int32Array;
    const members = new Array<BatchExample>(positions.length);
    for (let k = 0; k < positions.length; k++) members[k] = examples[positions[k] as number] as BatchExample;
    yield { batchIndex: b, batchesInEpoch: plan.length, batch: collate(members) };
  }
}

/** The collated batches of one epoch, lazily: `plannedBatches` without the positions. */
export function* epochBatches(examples: readonly BatchExample[], options: BatchPlanOptions): Generator<Batch> {
  for (const planned of plannedBatches(examples, options)) yield planned.batch;
}

export interface PaddingStats {
  /** Real tokens. */
  tokens: number;
  /** Cells of all padded batches (sum of B * T). */
  cells: number;
  /** cells - tokens. */
  padTokens: number;
  /** padTokens / cells (0 when there are none). */
  padShare: number;
}

/** How much padding a plan costs. */
export function paddingStats(plan: readonly Int32Array[], lengths: ArrayLike<number>): PaddingStats {
  let tokens = 0;
  let cells = 0;
  for (const batch of plan) {
    let t = 0;
    for (const p of batch) {
      const l = lengths[p] as number;
      tokens += l;
      if (l > t) t = l;
    }
    cells += t * batch.length;
  }
  return { tokens, cells, padTokens: cells - tokens, padShare: cells === 0 ? 0 : (cells - tokens) / cells };
}
