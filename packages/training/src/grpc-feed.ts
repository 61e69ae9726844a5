/**
 * A DataFeed over the running services: the data set from the dataset service (an existing id, or prepared from a
 * source, prepared again when the service has forgotten it), the pruned matrix from the embedding service
 * (StreamMatrix), and each epoch's batches from StreamBatches as Arrow IPC, decoded and prefetched ahead of the
 * training loop so the model does not wait for the network.
 */
import type { MessageInitShape } from '@bufbuild/protobuf';
import { decodeBatch } from '@ch8/batching/arrow';
import type { Batch } from '@ch8/batching/collate';
import type { DatasetInfo, DatasetService, PrepareDatasetRequestSchema } from '@ch8/contracts/dataset';
import type { EmbeddingService } from '@ch8/contracts/embedding';
import { assembleMatrix } from '@ch8/embeddings/matrix-stream';
import { FailedPreconditionError, InvalidInputError, NotFoundError, VocabularyMismatchError } from '@ch8/errors';
import type { Client } from '@ch8/service-kit/client';
import { dependencyError } from '@ch8/service-kit/status';
import { parseTokenizerSpec } from '@ch8/tokenizer';
import { checkSplit, type DataFeed, type EpochOptions, type FeedInfo } from './feed.ts';
import { bucketingToWire } from './proto.ts';

export type PrepareRequest = MessageInitShape<typeof PrepareDatasetRequestSchema>;

export interface GrpcFeedOptions {
  embedding: Pick<Client<typeof EmbeddingService>, 'getVocabulary' | 'streamMatrix'>;
  dataset: Pick<Client<typeof DatasetService>, 'getDataset' | 'prepareDataset' | 'streamBatches'>;
  /** A data set the dataset service prepared earlier. */
  datasetId?: string;
  /** The source to prepare; with datasetId too, used only when the service no longer knows that id. */
  prepare?: PrepareRequest;
  /** Batches decoded ahead of the consumer (default 16). */
  prefetch?: number;
  /** Deadline of each unary call, ms (default 15 minutes: a first prune of a large vector file takes minutes). */
  timeoutMs?: number;
  signal?: AbortSignal;
  log?: (line: string) => void;
}

function isNotFound(e: unknown): boolean {
  return e instanceof NotFoundError;
}

/** Opens the data set on the services; fails before any training with the dependency's meaning (NOT_FOUND, UNAVAILABLE...). */
export async function openGrpcFeed(options: GrpcFeedOptions): Promise<DataFeed> {
  const { embedding, dataset, prepare, signal } = options;
  const call = { timeoutMs: options.timeoutMs ?? 900_000, ...(signal ? { signal } : {}) };
  const prefetch = Math.max(1, options.prefetch ?? 64);
  if (options.datasetId === undefined && prepare === undefined) {
    throw new InvalidInputError('name the data: a dataset_id or a source to prepare', { field: 'dataset_id' });
  }

  const prepareNow = async (expectedId = options.datasetId): Promise<DatasetInfo> => {
    options.log?.('preparing the data set on the dataset service');
    let res;
    try {
      res = await dataset.prepareDataset(prepare!, call);
    } catch (e) {
      throw dependencyError(e, 'dataset service PrepareDataset');
    }
    if (res.dataset === undefined)
      throw new FailedPreconditionError('the dataset service PrepareDataset returned no data set');
    if (expectedId !== undefined && res.dataset.datasetId !== expectedId) {
      throw new FailedPreconditionError(
        `preparing the source again gave data set ${res.dataset.datasetId}, not ${expectedId} (the files or the vectors changed)`,
        { field: 'dataset_id' },
      );
    }
    return res.dataset;
  };
  const lookUp = async (id: string): Promise<DatasetInfo> => {
    try {
      const res = await dataset.getDataset({ datasetId: id }, call);
      if (res.dataset === undefined)
        throw new NotFoundError(`no data set ${JSON.stringify(id)}`, { field: 'dataset_id' });
      return res.dataset;
    } catch (e) {
      const err = dependencyError(e, 'dataset service GetDataset');
      if (isNotFound(err) && prepare !== undefined) return prepareNow(id);
      if (isNotFound(err))
        throw new NotFoundError(
          `the dataset service has no data set ${JSON.stringify(id)}`,
          { field: 'dataset_id' },
          { cause: e },
        );
      throw err;
    }
  };

  let ds = options.datasetId !== undefined ? await lookUp(options.datasetId) : await prepareNow();
  let vocab;
  try {
    vocab = await embedding.getVocabulary({ tableId: ds.tableId }, call);
  } catch (e) {
    throw dependencyError(e, 'embedding service GetVocabulary');
  }
  if (vocab.vocabHash !== ds.vocabHash || vocab.tokens.length !== ds.vocabSize) {
    throw new VocabularyMismatchError(
      `data set ${ds.datasetId} was prepared against vocabulary ${ds.vocabHash} (${ds.vocabSize} tokens), the embedding service's table ${ds.tableId} has ${vocab.vocabHash} (${vocab.tokens.length})`,
      { field: 'dataset_id' },
    );
  }
  const info: FeedInfo = {
    datasetId: ds.datasetId,
    description: ds.name,
    tokenizer: parseTokenizerSpec(ds.tokenizerVersion),
    vectors: ds.tableId,
    tokens: vocab.tokens,
    vocabHash: ds.vocabHash,
    dim: ds.dim,
    splits: ds.splits.map((s) => ({
      name: s.split,
      examples: Number(s.kept),
      rowsRead: Number(s.rowsRead),
      dropped: Number(s.droppedEmpty),
    })),
  };

  const matrix = async (): Promise<Float32Array> => {
    let m;
    try {
      m = await assembleMatrix(embedding.streamMatrix({ tableId: ds.tableId }, signal ? { signal } : {}));
    } catch (e) {
      throw dependencyError(e, 'embedding service StreamMatrix');
    }
    if (m.vocabHash !== info.vocabHash || m.vocabSize !== info.tokens.length || m.dim !== info.dim) {
      throw new VocabularyMismatchError(
        `the matrix of table ${ds.tableId} (${m.vocabSize} x ${m.dim}, vocabulary ${m.vocabHash}) does not match data set ${info.datasetId} (${info.tokens.length} x ${info.dim}, ${info.vocabHash})`,
        { field: 'dataset_id' },
      );
    }
    return m.matrix;
  };

  /** One epoch's stream, `skip` batches dropped from its start (after a re-prepare mid-epoch). */
  const stream = (split: string, o: EpochOptions, skip: number, abort: AbortSignal): AsyncIterable<Batch> => {
    const messages = dataset.streamBatches(
      {
        datasetId: ds.datasetId,
        split,
        batchSize: o.batchSize,
        shuffle: o.shuffle,
        seed: BigInt(o.seed),
        epoch: o.epoch,
        bucketing: bucketingToWire(o.bucketing),
      },
      { signal: abort },
    );
    return (async function* () {
      let n = 0;
      for await (const m of messages) if (n++ >= skip) yield decodeBatch(m.arrowIpc);
    })();
  };

  async function* batches(split: string, o: EpochOptions, callerSignal?: AbortSignal): AsyncGenerator<Batch> {
    checkSplit(info, split, 'split');
    const abort = new AbortController();
    const onAbort = (): void => abort.abort();
    callerSignal?.addEventListener('abort', onAbort, { once: true });
    signal?.addEventListener('abort', onAbort, { once: true });
    // The pump reads ahead into a bounded queue; the consumer takes from it.
    const queue: Batch[] = [];
    let done = false;
    let failure: unknown;
    let wake: (() => void) | undefined;
    let space: (() => void) | undefined;
    const notify = (): void => {
      wake?.();
      wake = undefined;
    };
    const pump = (async () => {
      let produced = 0;
      for (let attempt = 0; ; attempt++) {
        try {
          for await (const b of stream(split, o, produced, abort.signal)) {
            queue.push(b);
            produced++;
            notify();
            while (queue.length >= prefetch && !abort.signal.aborted) await new Promise<void>((r) => (space = r));
            if (abort.signal.aborted) return;
          }
          return;
        } catch (e) {
          if (abort.signal.aborted) return;
          const err = dependencyError(e, 'dataset service StreamBatches');
          // The dataset service restarted and forgot the data set: prepare it again, continue where the stream broke.
          if (isNotFound(err) && prepare !== undefined && attempt === 0) {
            ds = await prepareNow(ds.datasetId);
            continue;
          }
          throw err;
        }
      }
    })().then(
      () => {
        done = true;
        notify();
      },
      (e: unknown) => {
        failure = e;
        done = true;
        notify();
      },
    );
    try {
      for (;;) {
        if (queue.length > 0) {
          const b = queue.shift()!;
          space?.();
          space = undefined;
          yield b;
          continue;
        }
        if (done) {
          if (failure !== undefined) throw failure;
          return;
        }
        await new Promise<void>((r) => (wake = r));
      }
    } finally {
      abort.abort();
      space?.();
      callerSignal?.removeEventListener('abort', onAbort);
      signal?.removeEventListener('abort', onAbort);
      await pump;
    }
  }

  return { info, matrix, batches, close: async () => {} };
}
