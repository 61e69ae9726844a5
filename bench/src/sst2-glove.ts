/**
 * The data of the model benchmarks: SST-2 train/dev with the chapter's tokenizer, ids from wink GloVe-100d pruned
 * to the words of train + dev (the pruned table is cached in the temp directory), and dev cut into ordered batches.
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Batch } from '@ch8/batching/collate';
import { epochBatches } from '@ch8/batching/plan';
import { collectWords, prepareSplit, type Example } from '@ch8/datasets/prepare';
import { readSst2Tsv } from '@ch8/datasets/sst2';
import { loadOrBuildTable } from '@ch8/embeddings/cache';
import { defaultVectorsPath } from '@ch8/embeddings/prune';
import type { EmbeddingTable } from '@ch8/embeddings/table';
import { chapterTokenize } from '@ch8/tokenizer';

export interface Sst2Glove {
  table: EmbeddingTable;
  cacheHit: boolean;
  train: Example[];
  dev: Example[];
  /** Token counts of the train examples, for batch plans. */
  trainLengths: Int32Array;
}

export async function loadSst2Glove(sst2Dir: string): Promise<Sst2Glove> {
  const [trainRows, devRows] = await Promise.all([
    readSst2Tsv(join(sst2Dir, 'train.tsv')),
    readSst2Tsv(join(sst2Dir, 'dev.tsv')),
  ]);
  const words = collectWords(devRows, chapterTokenize, collectWords(trainRows, chapterTokenize));
  const { table, cacheHit } = await loadOrBuildTable({
    source: defaultVectorsPath(),
    words,
    cacheDir: join(tmpdir(), 'ch8-bench-models-cache'),
  });
  const idOf = (t: string): number | undefined => table.vocab.idOf(t);
  const train = prepareSplit(trainRows, { tokenize: chapterTokenize, idOf }).examples;
  const dev = prepareSplit(devRows, { tokenize: chapterTokenize, idOf }).examples;
  return { table, cacheHit, train, dev, trainLengths: Int32Array.from(train, (e) => e.inputIds.length) };
}

/** Examples collated in their own order, `size` at a time. */
export function inOrder(examples: readonly Example[], size: number): Batch[] {
  return [...epochBatches(examples, { batchSize: size, shuffle: false })];
}
