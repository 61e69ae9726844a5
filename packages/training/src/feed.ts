/**
 * Where a training run gets its matrix and batches: one interface, two implementations. `localFeed` serves a data
 * set prepared in-process (@ch8/datasets/local); `openGrpcFeed` (grpc-feed.ts) pulls the pruned matrix from the
 * embedding service and Arrow batches from the dataset service. Both build the batches of an epoch with
 * @ch8/batching's plan for (seed, epoch, bucketing), so the same config gives the same batches either way.
 */
import type { Batch } from '@ch8/batching/collate';
import { epochBatches, type Bucketing } from '@ch8/batching/plan';
import type { LocalPreparation, LocalSplit } from '@ch8/datasets/local';
import { InvalidInputError } from '@ch8/errors';
import type { TokenizerSpec } from '@ch8/tokenizer';

export interface FeedSplit {
  name: string;
  /** Examples kept (after dropping OOV tokens and empty examples). */
  examples: number;
  rowsRead: number;
  /** Rows dropped because no known token was left. */
  dropped: number;
}

export interface FeedInfo {
  /** The dataset service's id of the data set (null in-process). */
  datasetId: string | null;
  description: string;
  tokenizer: TokenizerSpec;
  /** The vector source the vocabulary was pruned from. */
  vectors: string;
  /** tokens[id]; tokens[0] = '<pad>'. */
  tokens: readonly string[];
  vocabHash: string;
  dim: number;
  splits: FeedSplit[];
}

export interface EpochOptions {
  batchSize: number;
  seed: number;
  /** 0-based. */
  epoch: number;
  shuffle: boolean;
  bucketing: Bucketing;
}

export interface DataFeed {
  readonly info: FeedInfo;
  /** The pruned embedding matrix, tokens.length x dim, row 0 = PAD. */
  matrix(): Promise<Float32Array>;
  /** The collated batches of one epoch of `split`, in order. Stops early (and frees its resources) on break/abort. */
  batches(split: string, options: EpochOptions, signal?: AbortSignal): AsyncIterable<Batch>;
  close(): Promise<void>;
}

/** Throws InvalidInputError naming `field` unless `info` has a split `name`. */
export function checkSplit(info: FeedInfo, name: string, field: string): FeedSplit {
  const s = info.splits.find((x) => x.name === name);
  if (s === undefined) {
    throw new InvalidInputError(
      `the data set has no split ${JSON.stringify(name)} (splits: ${info.splits.map((x) => x.name).join(', ')})`,
      { field },
    );
  }
  return s;
}

/**
 * Data prepared in this process: @ch8/datasets/local's LocalPreparation, of which a feed needs the vocabulary, the
 * matrix and per split the examples and three counts (tests build one by hand).
 */
export type PreparedData = Pick<
  LocalPreparation,
  'description' | 'tokenizer' | 'vectors' | 'tokens' | 'vocabHash' | 'dim' | 'matrix'
> & {
  splits: ReadonlyArray<
    Pick<LocalSplit, 'name' | 'examples'> & { stats: Pick<LocalSplit['stats'], 'rows' | 'kept' | 'droppedEmpty'> }
  >;
};

/** A feed over data prepared in this process. */
export function localFeed(data: PreparedData): DataFeed {
  const info: FeedInfo = {
    datasetId: null,
    description: data.description,
    tokenizer: data.tokenizer,
    vectors: data.vectors,
    tokens: data.tokens,
    vocabHash: data.vocabHash,
    dim: data.dim,
    splits: data.splits.map((s) => ({
      name: s.name,
      examples: s.stats.kept,
      rowsRead: s.stats.rows,
      dropped: s.stats.droppedEmpty,
    })),
  };
  return {
    info,
    matrix: async () => data.matrix,
    async *batches(split, options, signal) {
      checkSplit(info, split, 'split');
      const examples = data.splits.find((s) => s.name === split)!.examples;
      for (const batch of epochBatches(examples, options)) {
        if (signal?.aborted) return;
        yield batch;
      }
    },
    close: async () => {},
  };
}
