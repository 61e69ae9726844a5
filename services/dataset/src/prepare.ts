/**
 * PrepareDataset's work: tokenize every split, ask the embedding service (over gRPC) for the vocabulary pruned to
 * the data set's words, map tokens to ids, drop OOV tokens and empty examples, and count what happened. Nothing is
 * registered here: the caller registers the result only when all of it succeeded.
 */
import { createHash } from 'node:crypto';
import type { EmbeddingService } from '@ch8/contracts/embedding';
import { collectWords, prepareSplit, type Example, type SplitStats } from '@ch8/datasets/prepare';
import { DependencyUnavailableError, VocabularyMismatchError } from '@ch8/errors';
import type { Client } from '@ch8/service-kit/client';
import { Code, GrpcError, isGrpcError } from '@ch8/service-kit/status';
import { formatTokenizerSpec, getTokenizer, type TokenizerSpec } from '@ch8/tokenizer';
import { contentHash, type LoadedSource } from './sources.ts';

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
  tokens: string[];
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

/** An embedding-service failure as the dataset service reports it: unreachable -> UNAVAILABLE, else its own status. */
function embeddingFailure(e: unknown, what: string): Error {
  if (isGrpcError(e)) {
    if (e.code === Code.UNAVAILABLE || e.code === Code.DEADLINE_EXCEEDED) {
      return new DependencyUnavailableError(`embedding service unavailable (${what}): ${e.details}`, {}, { cause: e });
    }
    if (e.code === Code.CANCELLED) return e;
    return new GrpcError(e.code, `embedding service ${what}: ${e.details}`, { cause: e });
  }
  return e instanceof Error ? e : new Error(String(e));
}

/** The data set id: content of the rows + tokenizer + embedding source + vocabulary hash. */
export function datasetId(source: LoadedSource, embeddingSource: string, vocabHash: string): string {
  const h = createHash('sha256');
  h.update(`ch8.dataset.v1\0${contentHash(source.splits)}\0${formatTokenizerSpec(source.tokenizer)}\0${embeddingSource}\0${vocabHash}`);
  return `ds-${h.digest('hex').slice(0, 20)}`;
}

export async function prepareDataset(source: LoadedSource, embedding: EmbeddingClient, options: PrepareOptions): Promise<PreparedDataset> {
  const started = performance.now();
  const tokenize = getTokenizer(source.tokenizer);
  const words = new Set<string>();
  for (const s of source.splits) collectWords(s.rows, tokenize, words);
  const call = { timeoutMs: options.timeoutMs, ...(options.signal ? { signal: options.signal } : {}) };
  let table;
  try {
    const res = await embedding.loadTable({ source: options.embeddingSource, words: [...words].sort() }, call);
    table = res.table;
  } catch (e) {
    throw embeddingFailure(e, 'LoadTable');
  }
  if (!table) throw new GrpcError(Code.INTERNAL, 'embedding service LoadTable returned no table');
  let vocab;
  try {
    vocab = await embedding.getVocabulary({ tableId: table.tableId }, call);
  } catch (e) {
    throw embeddingFailure(e, 'GetVocabulary');
  }
  if (vocab.vocabHash !== table.vocabHash) {
    throw new VocabularyMismatchError(`vocabulary hash ${vocab.vocabHash} of table ${table.tableId} differs from LoadTable's ${table.vocabHash}`);
  }
  const ids = new Map<string, number>();
  for (let i = 1; i < vocab.tokens.length; i++) {
    const t = vocab.tokens[i] as string;
    if (!ids.has(t)) ids.set(t, i);
  }
  const idOf = (t: string) => ids.get(t);
  const splits = source.splits.map((s) => {
    const { examples, stats } = prepareSplit(s.rows, { tokenize, idOf });
    return { name: s.name, examples, stats };
  });
  const id = datasetId(source, options.embeddingSource, table.vocabHash);
  return {
    id,
    name: options.name === '' ? source.description : options.name,
    description: source.description,
    tableId: table.tableId,
    vocabHash: table.vocabHash,
    tokens: vocab.tokens,
    dim: vocab.dim,
    tokenizer: source.tokenizer,
    splits,
    prepareSeconds: (performance.now() - started) / 1000,
  };
}
