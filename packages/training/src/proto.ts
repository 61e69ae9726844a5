/**
 * RunConfig (ch8.trainer.v1) <-> TrainingConfig. The wire's zero values mean "default" where the contract says so
 * (learning_rate 0, empty splits, empty export name, BUCKETING_UNSPECIFIED = chunk, workers 0 = 1); epochs 0 stays an error.
 */
import type { MessageInitShape } from '@bufbuild/protobuf';
import { Bucketing as WireBucketing } from '@ch8/contracts/dataset';
import { EmbeddingMode, type RunConfig, type RunConfigSchema } from '@ch8/contracts/trainer';
import type { Bucketing } from '@ch8/batching/plan';
import { InvalidInputError } from '@ch8/errors';
import type { BackendPreference } from '@ch8/backend/names';
import { MAX_SEED, resolveTrainingConfig, type TrainingConfig } from './config.ts';

const FROM_WIRE: Record<number, Bucketing | undefined> = {
  [WireBucketing.UNSPECIFIED]: 'chunk',
  [WireBucketing.NONE]: 'none',
  [WireBucketing.CHUNK]: 'chunk',
  [WireBucketing.GLOBAL]: 'global',
};

const TO_WIRE: Record<Bucketing, WireBucketing> = {
  none: WireBucketing.NONE,
  chunk: WireBucketing.CHUNK,
  global: WireBucketing.GLOBAL,
};

export function bucketingToWire(b: Bucketing): WireBucketing {
  return TO_WIRE[b];
}

/** The training part of a RunConfig, resolved and checked (the data fields are the caller's). */
export function trainingConfigFromProto(c: RunConfig): TrainingConfig {
  const bucketing = FROM_WIRE[c.bucketing];
  if (bucketing === undefined) throw new InvalidInputError(`unknown bucketing ${c.bucketing}`, { field: 'bucketing' });
  let finetune: boolean | null;
  switch (c.embeddingMode) {
    case EmbeddingMode.UNSPECIFIED:
      finetune = null;
      break;
    case EmbeddingMode.FROZEN:
      finetune = false;
      break;
    case EmbeddingMode.FINETUNE:
      finetune = true;
      break;
    default:
      throw new InvalidInputError(`unknown embedding mode ${c.embeddingMode}`, { field: 'embedding_mode' });
  }
  if (c.seed > BigInt(MAX_SEED))
    throw new InvalidInputError(`must be at most ${MAX_SEED}, got ${c.seed}`, { field: 'seed' });
  if (c.learningRate < 0 || !Number.isFinite(c.learningRate)) {
    throw new InvalidInputError(`must be a positive number (0 = the model's default), got ${c.learningRate}`, {
      field: 'learning_rate',
    });
  }
  return resolveTrainingConfig({
    model: c.model,
    finetune,
    learningRate: c.learningRate === 0 ? null : c.learningRate,
    batchSize: c.batchSize,
    epochs: c.epochs,
    seed: Number(c.seed),
    patience: c.earlyStoppingPatience,
    bucketing,
    trainSplit: c.trainSplit === '' ? 'train' : c.trainSplit,
    devSplit: c.devSplit === '' ? 'dev' : c.devSplit === '-' ? null : c.devSplit,
    exportName: c.exportName === '' ? c.model : c.exportName,
    backend: (c.backend === '' ? 'auto' : c.backend) as BackendPreference,
    dropout: c.dropout ?? null,
    maxBatchesPerEpoch: c.maxBatchesPerEpoch,
    lrDecay: c.lrDecay === 0 ? 1 : c.lrDecay,
    workers: c.workers === 0 ? 1 : c.workers,
    weightAverage: c.weightAverage,
    wordDropout: c.wordDropout,
  });
}

/** A TrainingConfig as RunConfig fields (without the data fields). */
export function trainingConfigToProto(t: TrainingConfig): MessageInitShape<typeof RunConfigSchema> {
  return {
    model: t.model,
    embeddingMode: t.finetune ? EmbeddingMode.FINETUNE : EmbeddingMode.FROZEN,
    learningRate: t.learningRate ?? 0,
    batchSize: t.batchSize,
    epochs: t.epochs,
    seed: BigInt(t.seed),
    earlyStoppingPatience: t.patience,
    bucketing: TO_WIRE[t.bucketing],
    trainSplit: t.trainSplit,
    devSplit: t.devSplit ?? '-',
    exportName: t.exportName,
    backend: t.backend,
    ...(t.dropout === null ? {} : { dropout: t.dropout }),
    maxBatchesPerEpoch: t.maxBatchesPerEpoch,
    lrDecay: t.lrDecay,
    workers: t.workers,
    weightAverage: t.weightAverage,
    wordDropout: t.wordDropout,
  };
}
