/**
 * The dataset service (problems 71 and 75): PrepareDataset reads and maps a data set with a vocabulary from the
 * embedding service, StreamBatches sends collated Arrow batches with bounded buffering, GetExamples / GetDataset /
 * ListDatasets let a user inspect what was prepared.
 */
import { DatasetService } from '@ch8/contracts/dataset';
import { EmbeddingService } from '@ch8/contracts/embedding';
import { TokenizerKind } from '@ch8/contracts/dataset';
import { InvalidInputError, NotFoundError } from '@ch8/errors';
import { createClient } from '@ch8/service-kit/client';
import type { Logger } from '@ch8/service-kit/logger';
import { createServiceMetrics } from '@ch8/service-kit/metrics';
import { createServer, type Ch8Server } from '@ch8/service-kit/server';
import { loadDataset } from '@ch8/datasets/dataset';
import { datasetSpecFromProto } from '@ch8/datasets/proto';
import { formatTokenizerSpec } from '@ch8/tokenizer';
import type { DatasetConfig } from './config.ts';
import { createDatasetMetrics } from './metrics.ts';
import { resolveSpecPaths } from './paths.ts';
import { prepareDataset, type EmbeddingClient, type PreparedDataset, type PreparedSplit } from './prepare.ts';
import { produceBatches, streamPlan, type StreamHooks } from './stream.ts';

export interface DatasetDeps {
  config: DatasetConfig;
  logger: Logger;
  /** The embedding service client; default: one to `config.embeddingAddress` (closed by `close`). */
  embedding?: EmbeddingClient;
  /** Instrumentation of StreamBatches' producer (tests count the batches built). */
  streamHooks?: StreamHooks;
}

/** GetExamples returns at most this many examples per call. */
export const MAX_EXAMPLES_PER_CALL = 1000;

function splitInfo(s: PreparedSplit) {
  const st = s.stats;
  return {
    split: s.name,
    rowsRead: BigInt(st.rows),
    kept: BigInt(st.kept),
    droppedEmpty: BigInt(st.droppedEmpty),
    tokens: BigInt(st.tokens),
    oovTokens: BigInt(st.oovTokens),
    lengths: { min: st.length.min, max: st.length.max, mean: st.length.mean, p50: st.length.p50, p95: st.length.p95 },
  };
}

function info(d: PreparedDataset) {
  return {
    datasetId: d.id,
    name: d.name,
    tableId: d.tableId,
    vocabHash: d.vocabHash,
    vocabSize: d.tokens.length,
    dim: d.dim,
    tokenizer: d.tokenizer.kind === 'chapter' ? TokenizerKind.CHAPTER : TokenizerKind.RAW,
    tokenizerVersion: formatTokenizerSpec(d.tokenizer),
    splits: d.splits.map(splitInfo),
    prepareSeconds: d.prepareSeconds,
  };
}

export function createDatasetServer(deps: DatasetDeps): { server: Ch8Server; close: () => Promise<void> } {
  const { config } = deps;
  const ownClient = deps.embedding === undefined ? createClient(EmbeddingService, config.embeddingAddress) : undefined;
  const embedding: EmbeddingClient = deps.embedding ?? (ownClient as EmbeddingClient);
  /** Prepared data sets by id, in registration order. Only complete preparations are ever added. */
  const registry = new Map<string, PreparedDataset>();
  const metrics = createServiceMetrics('dataset');
  const recorded = createDatasetMetrics(metrics, () => registry.size);

  const find = (id: string): PreparedDataset => {
    const d = registry.get(id);
    if (!d) throw new NotFoundError(`no data set ${JSON.stringify(id)}`, { field: 'dataset_id' });
    return d;
  };
  const splitOf = (d: PreparedDataset, name: string): PreparedSplit => {
    const s = d.splits.find((x) => x.name === name);
    if (!s) {
      throw new InvalidInputError(
        `data set ${d.id} has no split ${JSON.stringify(name)} (splits: ${d.splits.map((x) => x.name).join(', ')})`,
        {
          field: 'split',
        },
      );
    }
    return s;
  };

  const server = createServer({
    name: 'dataset',
    logger: deps.logger,
    maxBufferedResponses: config.maxBufferedBatches,
    metrics,
  }).add(DatasetService, {
    async prepareDataset(req, ctx) {
      // The request as a spec (checked), its paths confined to the data roots, then the one library reader.
      const spec = await resolveSpecPaths(datasetSpecFromProto(req), config.dataRoots);
      const dataset = await loadDataset(spec);
      const prepared = await prepareDataset(dataset, embedding, {
        embeddingSource: req.embedding?.source ?? '',
        name: req.name,
        timeoutMs: config.embeddingTimeoutMs,
        signal: ctx.signal,
      });
      const existing = registry.get(prepared.id);
      const kept = existing ?? prepared;
      if (!existing) registry.set(prepared.id, prepared);
      recorded.prepared(kept, existing === undefined);
      ctx.logger.info('data set prepared', {
        dataset_id: kept.id,
        table_id: kept.tableId,
        vocab_hash: kept.vocabHash,
        splits: kept.splits.map((s) => `${s.name}: ${s.stats.rows} -> ${s.stats.kept}`).join(', '),
        seconds: prepared.prepareSeconds,
        already_registered: existing !== undefined,
      });
      return { dataset: info(kept) };
    },

    async *streamBatches(req, ctx) {
      const d = find(req.datasetId);
      const split = splitOf(d, req.split);
      const plan = streamPlan(req);
      const started = performance.now();
      yield* produceBatches(split, plan, ctx.signal, {
        ...(deps.streamHooks?.onBatch ? { onBatch: deps.streamHooks.onBatch } : {}),
        onEnd: (end) => {
          ctx.logger.debug('stream ended', {
            dataset_id: d.id,
            split: split.name,
            batch_size: plan.batchSize,
            epochs: plan.epochs,
            batches: end.built,
            completed: end.completed,
            seconds: (performance.now() - started) / 1000,
          });
          deps.streamHooks?.onEnd?.(end);
        },
      });
    },

    getExamples(req) {
      const d = find(req.datasetId);
      const split = splitOf(d, req.split);
      const limit = Math.min(req.limit === 0 ? 4 : req.limit, MAX_EXAMPLES_PER_CALL);
      const slice = split.examples.slice(req.offset, req.offset + limit);
      return {
        total: BigInt(split.examples.length),
        examples: slice.map((e) => ({
          index: e.index,
          text: e.text,
          label: e.label,
          inputIds: Array.from(e.inputIds),
          tokens: Array.from(e.inputIds, (id) => d.tokens[id] ?? ''),
        })),
      };
    },

    getDataset(req) {
      return { dataset: info(find(req.datasetId)) };
    },

    listDatasets() {
      return { datasets: [...registry.values()].map(info) };
    },
  });
  return {
    server,
    close: async () => {
      ownClient?.close();
      registry.clear();
    },
  };
}
