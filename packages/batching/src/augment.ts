/**
 * Training-time augmentation of collated batches. `dropTokens` is word dropout as in deep averaging networks (Iyyer
 * et al., 2015): every real token of every example is left out with probability `rate`, so a model cannot lean on
 * any one word. An example that would lose all its tokens keeps one of them, picked at random. The result is
 * collated again (longest first, padded to the new longest row), so it is an ordinary batch for every model.
 */
import { InvalidInputError } from '@ch8/errors';
import { collate, type Batch, type BatchExample } from './collate.ts';

/** `batch` with each real token dropped with probability `rate` in [0, 1); `random` gives uniforms in [0, 1). */
export function dropTokens(batch: Batch, rate: number, random: () => number): Batch {
  if (!(rate >= 0 && rate < 1)) throw new InvalidInputError(`must be in [0, 1), got ${rate}`, { field: 'rate' });
  if (rate === 0) return batch;
  const T = batch.maxLength;
  const examples: BatchExample[] = [];
  for (let r = 0; r < batch.batchSize; r++) {
    const n = batch.lengths[r]!;
    const row = batch.inputIds.subarray(r * T, r * T + n);
    const kept: number[] = [];
    for (let t = 0; t < n; t++) if (random() >= rate) kept.push(row[t]!);
    if (kept.length === 0 && n > 0) kept.push(row[Math.min(n - 1, Math.floor(random() * n))]!);
    examples.push({ inputIds: kept, label: batch.labels[r]!, index: batch.indices[r]! });
  }
  return collate(examples);
}
