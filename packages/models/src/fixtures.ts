/** Tiny deterministic fixtures shared by the tests (not exported from the package). */
import { batchRow, collate as collateExamples, type Batch } from '@ch8/batching/collate';
import type { ModelConfigInput, ModelKind } from './config.ts';
import { Rng } from './rng.ts';

export const V = 12;
export const D = 6;

export function tinyConfig(kind: ModelKind, extra: Partial<ModelConfigInput> = {}): ModelConfigInput {
  return { kind, vocabSize: V, dim: D, hidden: 4, filters: 3, widths: [2, 3], heads: 2, seed: 7, ...extra };
}

export function tinyEmbeddings(seed = 11): Float32Array {
  const e = new Rng(seed).uniform(new Float32Array(V * D), 1);
  e.fill(0, 0, D);
  return e;
}

/**
 * A batch of id lists through problem 75's collate (@ch8/batching): rows ordered longest first (stable),
 * `indices[r]` = the position in `rows` of batch row r. `maxLength` widens it with PAD columns (a padded copy of
 * the same batch). Labels default to 0 (prediction ignores them).
 */
export function batchOf(rows: readonly number[][], labels?: readonly number[], maxLength?: number): Batch {
  const batch = collateExamples(rows.map((inputIds, index) => ({ inputIds, label: labels?.[index] ?? 0, index })));
  return maxLength === undefined ? batch : widen(batch, maxLength);
}

/** The same batch with its rows padded to `T` (>= maxLength) columns. */
export function widen(batch: Batch, T: number): Batch {
  if (T < batch.maxLength) throw new Error(`cannot narrow ${batch.maxLength} columns to ${T}`);
  const inputIds = new Int32Array(batch.batchSize * T);
  for (let r = 0; r < batch.batchSize; r++) inputIds.set(batchRow(batch, r), r * T);
  return { ...batch, inputIds, maxLength: T };
}

/** Batch rows in `indices` order, i.e. back in the order the examples were given. */
export function inInputOrder(batch: Batch, values: ArrayLike<number>): number[] {
  const out = new Array<number>(batch.batchSize);
  for (let r = 0; r < batch.batchSize; r++) out[batch.indices[r]!] = values[r]!;
  return out;
}

/** Not longest first: collate reorders them (5, 4, 1 tokens). */
export const ROWS = [[1, 2, 9, 2], [8], [3, 4, 5, 6, 7]];
export const LABELS = [0, 1, 1];

export function relClose(a: ArrayLike<number>, b: ArrayLike<number>, rel: number, abs = 1e-6): string | undefined {
  if (a.length !== b.length) return `length ${a.length} != ${b.length}`;
  let scale = 0;
  for (let i = 0; i < b.length; i++) scale = Math.max(scale, Math.abs(b[i]!));
  for (let i = 0; i < a.length; i++) {
    const diff = Math.abs(a[i]! - b[i]!);
    if (diff > rel * scale + abs) return `index ${i}: ${a[i]} vs ${b[i]} (max |ref| ${scale})`;
  }
  return undefined;
}
