/**
 * The one in-process preparation (problems 70 + 71 without services): read the data set a spec names, prune the
 * vectors to its words (through the @ch8/embeddings disk cache), map every split to ids. For the same source and
 * vectors it gives exactly what the dataset service gets from the embedding service: the same vocabulary (tokens,
 * order, hash), the same ids and the same examples in the same order, because both read with `loadDataset`, ask for
 * `datasetWords` and map with `prepareSplits`.
 */
import { loadOrBuildTable } from '@ch8/embeddings/cache';
import { defaultVectorsPath } from '@ch8/embeddings/prune';
import type { TokenizerSpec } from '@ch8/tokenizer';
import { datasetWords, loadDataset, type DatasetSpec } from './dataset.ts';
import { prepareSplits, type Example, type SplitStats } from './prepare.ts';

export interface LocalOptions {
  /** Vector file to prune (any format @ch8/embeddings reads). Default: `defaultVectorsPath()`, wink GloVe 100-d. */
  vectors?: string;
  /** Folder of the pruned-table cache (created when missing). */
  cacheDir: string;
  /** Progress lines (what is pruned, cache hit or build). */
  log?: (line: string) => void;
  /** Aborts the pruning pass (CancelledError). */
  signal?: AbortSignal;
}

export interface LocalSplit {
  name: string;
  examples: Example[];
  stats: SplitStats;
}

export interface LocalPreparation {
  /** `loadDataset`'s description of the source. */
  description: string;
  tokenizer: TokenizerSpec;
  /** The vector file pruned. */
  vectors: string;
  /** tokens[id]; tokens[0] = `<pad>`. */
  tokens: readonly string[];
  vocabHash: string;
  dim: number;
  /** The pruned matrix, tokens.length x dim, row-major, row 0 zeros. */
  matrix: Float32Array;
  /** True when the pruned table came from the cache. */
  cacheHit: boolean;
  /** The data set's splits, in its order. */
  splits: LocalSplit[];
}

/**
 * Prepares a data set in this process. Errors as `loadDataset` throws them (bad spec, bad or missing file), as
 * `loadOrBuildTable` does (missing vector file NotFoundError, a data set without any token InvalidInputError on
 * `words`), and InvalidInputError for a label other than 0/1.
 */
export async function prepareLocal(spec: DatasetSpec, options: LocalOptions): Promise<LocalPreparation> {
  const log = options.log ?? (() => {});
  const dataset = await loadDataset(spec);
  const words = datasetWords(dataset);
  const vectors = options.vectors ?? defaultVectorsPath();
  log(`pruning ${vectors} to ${words.length} words (cache ${options.cacheDir}) ...`);
  const { table, cacheHit, seconds } = await loadOrBuildTable({
    source: vectors,
    words,
    cacheDir: options.cacheDir,
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  });
  log(
    `vocabulary: ${table.vocab.size} tokens (dim ${table.dim}), ${cacheHit ? 'from the cache' : 'built'} in ${seconds.toFixed(2)} s`,
  );
  return {
    description: dataset.description,
    tokenizer: dataset.tokenizer,
    vectors,
    tokens: table.vocab.tokens,
    vocabHash: table.vocab.hash,
    dim: table.dim,
    matrix: table.matrix,
    cacheHit,
    splits: prepareSplits(dataset, table.vocab),
  };
}
