/**
 * Test fixtures (used only by *.test.ts): a temp data root with small generated SST-2 files and a GloVe text vector
 * file, the real embedding service on port 0, and the dataset service on port 0 wired to it.
 */
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatasetService } from '@ch8/contracts/dataset';
import { EmbeddingService } from '@ch8/contracts/embedding';
import { parseEmbeddingConfig } from '@ch8/embedding-service/config';
import { createEmbeddingServer } from '@ch8/embedding-service/server';
import { randomEntries, writeVectorFile } from '@ch8/embeddings/write';
import { createClient, type Client } from '@ch8/service-kit/client';
import { silentLogger } from '@ch8/service-kit/logger';
import { parseDatasetConfig } from './config.ts';
import { createDatasetServer } from './server.ts';
import type { StreamHooks } from './stream.ts';
import { uniform01 } from '@ch8/random';

/** Words the vector file has (plus common English words so the builtin review sets keep most sentences). */
export const KNOWN = Array.from({ length: 40 }, (_, i) => `w${i}`);
export const COMMON = [
  'the',
  'a',
  'good',
  'bad',
  'great',
  'movie',
  'film',
  'food',
  'is',
  'was',
  'not',
  'it',
  'and',
  'this',
  'i',
  '.',
  ',',
];
/** Words the vector file lacks. */
export const UNKNOWN = Array.from({ length: 10 }, (_, i) => `zz${i}`);

export interface GeneratedRows {
  lines: string[];
  /** Rows made only of unknown words (dropped as empty): every 10th row, and a few short ones by chance. */
  allOov: number;
  tokens: number;
  oovTokens: number;
}

/** `n` SST-2 rows (lower-case tokens, trailing space as in GLUE); every 10th row has only unknown words. */
export function sst2Rows(n: number, seed: number, maxLen = 12): GeneratedRows {
  const rnd = uniform01(seed);
  const lines: string[] = [];
  let allOov = 0;
  let tokens = 0;
  let oovTokens = 0;
  for (let i = 0; i < n; i++) {
    const len = 1 + Math.floor(rnd() * maxLen);
    const onlyOov = i % 10 === 9;
    const words: string[] = [];
    let known = 0;
    for (let k = 0; k < len; k++) {
      const oov = onlyOov || rnd() < 0.15;
      const pool = oov ? UNKNOWN : KNOWN;
      words.push(pool[Math.floor(rnd() * pool.length)] as string);
      if (oov) oovTokens++;
      else known++;
    }
    if (known === 0) allOov++;
    tokens += len;
    lines.push(`${words.join(' ')} \t${Math.floor(rnd() * 2)}`);
  }
  return { lines, allOov, tokens, oovTokens };
}

export function tsv(lines: readonly string[], header = 'sentence\tlabel', eol = '\n'): string {
  return [header, ...lines].join(eol) + eol;
}

export interface Stack {
  root: string;
  vectors: string;
  embeddingAddr: string;
  datasetAddr: string;
  dataset: Client<typeof DatasetService>;
  embedding: Client<typeof EmbeddingService>;
  train: GeneratedRows;
  dev: GeneratedRows;
  stop(): Promise<void>;
}

export interface StackOptions {
  maxBufferedBatches?: number;
  streamHooks?: StreamHooks;
  trainRows?: number;
}

/** Writes the fixtures under a fresh temp root and starts both services on port 0. */
export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const root = await mkdtemp(join(tmpdir(), 'ch8-dataset-'));
  const vectors = join(root, 'vectors.txt');
  await writeVectorFile(vectors, 'glove-text', randomEntries([...KNOWN, ...COMMON, 'unused1', 'unused2'], 8, 7), 8);
  const train = sst2Rows(options.trainRows ?? 300, 1);
  const dev = sst2Rows(40, 2);
  await mkdir(join(root, 'sst2'));
  await writeFile(join(root, 'sst2', 'train.tsv'), tsv(train.lines));
  await writeFile(join(root, 'sst2', 'dev.tsv'), tsv(dev.lines));

  const emb = createEmbeddingServer({
    config: parseEmbeddingConfig({ CH8_DATA_ROOTS: root, CH8_CACHE_DIR: join(root, 'cache'), CH8_LOG_LEVEL: 'error' }),
    logger: silentLogger,
    defaultSource: vectors,
    cwd: root,
  });
  const embeddingAddr = `127.0.0.1:${await emb.server.listen('127.0.0.1:0')}`;
  emb.server.ready();

  const ds = createDatasetServer({
    config: parseDatasetConfig({
      CH8_EMBEDDING_ADDR: embeddingAddr,
      CH8_DATA_ROOTS: root,
      CH8_MAX_BUFFERED_BATCHES: String(options.maxBufferedBatches ?? 8),
      CH8_LOG_LEVEL: 'error',
    }),
    logger: silentLogger,
    ...(options.streamHooks ? { streamHooks: options.streamHooks } : {}),
  });
  const datasetAddr = `127.0.0.1:${await ds.server.listen('127.0.0.1:0')}`;
  ds.server.ready();
  const dataset = createClient(DatasetService, datasetAddr);
  const embedding = createClient(EmbeddingService, embeddingAddr);
  return {
    root,
    vectors,
    embeddingAddr,
    datasetAddr,
    dataset,
    embedding,
    train,
    dev,
    async stop() {
      dataset.close();
      embedding.close();
      await ds.server.shutdown(500);
      await ds.close();
      await emb.server.shutdown(500);
      await emb.close();
      await rm(root, { recursive: true, force: true });
    },
  };
}
