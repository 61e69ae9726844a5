/** Tiny deterministic fixtures shared by the tests (not exported from the package). */
import type { Batch } from './batch.ts';
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

/** Collates id lists (longest first is up to the caller), padding with 0 to `maxLength` (default: the longest). */
export function collate(rows: number[][], labels: number[] | undefined, maxLength?: number): Batch {
  const T = maxLength ?? Math.max(...rows.map((r) => r.length));
  const inputIds = new Int32Array(rows.length * T);
  rows.forEach((r, b) => inputIds.set(r, b * T));
  const batch: Batch = { inputIds, batchSize: rows.length, maxLength: T };
  if (labels !== undefined) batch.labels = Float32Array.from(labels);
  return batch;
}

export const ROWS = [
  [3, 4, 5, 6, 7],
  [1, 2, 9, 2],
  [8],
];
export const LABELS = [1, 0, 1];

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
