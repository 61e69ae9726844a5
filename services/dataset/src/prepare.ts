/**
 * PrepareDataset's work on a loaded data set: ask the embedding service (over gRPC) for the vocabulary pruned to
 * the data set's words (`datasetWords`), and map every split with it (`prepareSplits`): the same two steps, in the
 * same library, as the in-process preparation (@ch8/datasets/local), so both give the same ids. Nothing is
 * registered here: the caller registers the result only when all of it succeeded.
 */
import { createHash } from 'node:crypto';
import type { EmbeddingService } from '@ch8/contracts/embedding';
import { datasetWords, type DatasetSplit, type LoadedDataset } from '@ch8/datasets/dataset';
import { prepareSplits, type Example, type SplitStats } from '@ch8/datasets/prepare';
import { Vocabulary } from '@ch8/embeddings/vocabulary';
import { VocabularyMismatchError, isInvalidInput } from '@ch8/errors';
import type { Client } from '@ch8/service-kit/client';
import { dependencyError } from '@ch8/service-kit/status';
import { formatTokenizerSpec, type TokenizerSpec } from '@ch8/tokenizer';

export type EmbeddingClient = Pick<Client<typeof EmbeddingService>, 'loadTable' | 'getVocabulary'>;

export interface PreparedSplit {
  name: string;
  examples: Example[];
  stats: SplitStats;
}

export interface PreparedDataset {
  id: string;
  name: string;
  description: string;
  tableId: string;
  vocabHash: string;
  /** tokens[id], tokens[0] = "<pad>". */
  tokens: readonly string[];
  dim: number;
  tokenizer: TokenizerSpec;
  splits: PreparedSplit[];
  prepareSeconds: number;
}

export interface PrepareOptions {
  /** Vector source for the embedding service ("" = its default). */
  embeddingSource: string;
  name: string;
  /** Deadline for each embedding call, ms. */
  timeoutMs: number;
  signal?: AbortSignal;
}

/** A hash of the rows themselves (split names, labels, texts): the source's identity, however it was named. */
export function contentHash(splits: readonly DatasetSplit[]): string {
  const h = createHash('sha256');
  for (const s of splits) {
    h.update(`split\0${s.name}\0${s.rows.length}\0`);
    for (const r of s.rows) h.update(`${r.label}\0${r.text}\n`);
  }
  return h.digest('hex');
}

/** The data set id: content of the rows + tokenizer + embedding source + vocabulary hash. */
export function datasetId(dataset: LoadedDataset, embeddingSource: string, vocabHash: string): string {
  const h = createHash('sha256');
  h.update(
    `ch8.dataset.v1\0${contentHash(dataset.splits)}\0${formatTokenizerSpec(dataset.tokenizer)}\0${embeddingSource}\0${vocabHash}`,
  );
  return `ds-${h.digest('hex').slice(0, 20)}`;
}

/**
 * Prunes and maps `dataset`. Embedding-service failures as typed errors (the kit's `dependencyError`: unreachable,
 * too slow or failing DependencyUnavailableError, its NOT_FOUND NotFoundError, ...); a vocabulary that is malformed
 * or does not hash to what LoadTable reported -> VocabularyMismatchError.
 */
export async function prepareDataset(
  dataset: LoadedDataset,
  embedding: EmbeddingClient,
  options: PrepareOptions,
): Promise<PreparedDataset> {
  const started = performance.now();
  const words = datasetWords(dataset);
  const call = { timeoutMs: options.timeoutMs, ...(options.signal ? { signal: options.signal } : {}) };
  let table;
  try {
    table = (await embedding.loadTable({ source: options.embeddingSource, words }, call)).table;
  } catch (e) {
    throw dependencyError(e, 'embedding service LoadTable');
  }
  if (!table) throw new Error('embedding service LoadTable returned no table');
  let res;
  try {
    res = await embedding.getVocabulary({ tableId: table.tableId }, call);
  } catch (e) {
    throw dependencyError(e, 'embedding service GetVocabulary');
  }
  let vocabulary: Vocabulary;
  try {
    vocabulary = new Vocabulary(res.tokens, res.dim);
  } catch (e) {
    if (!isInvalidInput(e)) throw e;
    throw new VocabularyMismatchError(
      `the vocabulary of table ${table.tableId} is malformed: ${e.detail}`,
      {},
      { cause: e },
    );
  }
  if (vocabulary.hash !== table.vocabHash) {
    throw new VocabularyMismatchError(
      `the vocabulary of table ${table.tableId} hashes to ${vocabulary.hash}, LoadTable reported ${table.vocabHash}`,
    );
  }
  return {
    id: datasetId(dataset, options.embeddingSource, table.vocabHash),
    name: options.name === '' ? dataset.description : options.name,
    description: dataset.description,
    tableId: table.tableId,
    vocabHash: table.vocabHash,
    tokens: vocabulary.tokens,
    dim: vocabulary.dim,
    tokenizer: dataset.tokenizer,
    splits: prepareSplits(dataset, vocabulary),
    prepareSeconds: (performance.now() - started) / 1000,
  };
}
