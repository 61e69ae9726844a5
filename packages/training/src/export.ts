/**
 * A finished run into the model repository: the best epoch's weights with everything needed to serve them
 * (vocabulary, training and raw-text tokenizers, labels, signature), the training config, per-epoch and final
 * metrics, backend and timings. The repository writes it as the next version, atomically.
 */
import type { BackendInfo } from '@ch8/backend/select';
import { exportModel, type ExportHooks, type ExportedVersion } from '@ch8/model-repository/repository';
import { RAW_TOKENIZER } from '@ch8/tokenizer';
import type { FeedInfo } from './feed.ts';
import type { TrainResult } from './run.ts';

export interface ExportContext {
  feed: FeedInfo;
  backend: Pick<BackendInfo, 'backend' | 'device'>;
  runId?: string;
  /** Extra description of the data (paths, source) recorded under training.data. */
  data?: Record<string, unknown>;
  hooks?: ExportHooks;
}

/** Writes `result` as the next version of `result.config.exportName` under `root`. */
export async function exportRun(root: string, result: TrainResult, ctx: ExportContext): Promise<ExportedVersion> {
  const { feed } = ctx;
  return exportModel(
    root,
    result.config.exportName,
    { config: result.model, weights: result.weights },
    {
      model: result.model,
      vocabulary: { size: feed.tokens.length, dim: feed.dim, hash: feed.vocabHash, tokens: [...feed.tokens] },
      tokenizer: { training: { ...feed.tokenizer }, raw: { ...RAW_TOKENIZER } },
      training: {
        ...result.config,
        workers: result.workers,
        stopReason: result.stopReason,
        resumedFromEpoch: result.resumedFromEpoch,
        data: {
          datasetId: feed.datasetId,
          description: feed.description,
          vectors: feed.vectors,
          splits: feed.splits,
          ...ctx.data,
        },
      },
      metrics: {
        epochs: result.epochs,
        bestEpoch: result.bestEpoch,
        devAccuracy: result.devAccuracy,
        splits: result.splits,
      },
      backend: { backend: ctx.backend.backend, device: ctx.backend.device },
      timings: { totalSeconds: result.seconds, trainSeconds: result.trainSeconds, dataWaitShare: result.dataWaitShare },
      ...(ctx.runId === undefined ? {} : { runId: ctx.runId }),
    },
    { nameField: 'export_name', ...(ctx.hooks === undefined ? {} : { hooks: ctx.hooks }) },
  );
}
