/**
 * A training run's configuration: what the trainer service's RunConfig and `ch8 train`'s flags both resolve to.
 * Every field is checked here, once, before any work starts; errors name the field as the contract spells it.
 */
import { BACKENDS, type BackendPreference } from '@ch8/backend/names';
import type { Bucketing } from '@ch8/batching/plan';
import { InvalidInputError } from '@ch8/errors';
import { checkModelName } from '@ch8/model-repository/names';
import { MODEL_KINDS, isModelKind, type ModelKind } from '@ch8/models/config';

export const BUCKETINGS: readonly Bucketing[] = ['none', 'chunk', 'global'];

/** Most data-parallel workers (replicas, the training thread included) of one run. */
export const MAX_WORKERS = 64;

/** Backends a run with more than one worker may name: the CPU ones a worker thread can run (auto may pick one). */
const PARALLEL_PREFERENCES: readonly string[] = ['auto', 'wasm', 'cpu'];

/** Largest seed: seeds travel as JSON numbers and uint64 on the wire; both hold integers up to 2^53 - 1 exactly. */
export const MAX_SEED = Number.MAX_SAFE_INTEGER;

export interface TrainingConfig {
  model: ModelKind;
  /** Train the embedding matrix (sparse row updates); false keeps it frozen. */
  finetune: boolean;
  /** Adam's learning rate; null = the model's default (1e-2 for bow-frozen, 1e-3 otherwise). */
  learningRate: number | null;
  /** Examples per step; 0 = the whole train split per step (full batch), computed in chunks. */
  batchSize: number;
  /** Maximum epochs (>= 1). */
  epochs: number;
  seed: number;
  /** Epochs without a better dev accuracy before stopping; 0 = never stop early. */
  patience: number;
  bucketing: Bucketing;
  trainSplit: string;
  /** Split scored after every epoch; null = none (no early stopping, the last epoch is exported). */
  devSplit: string | null;
  /** Export name in the model repository. */
  exportName: string;
  backend: BackendPreference;
  /** Dropout before the output layer; null = the model's default. */
  dropout: number | null;
  /** Stop each epoch after this many batches; 0 = all. */
  maxBatchesPerEpoch: number;
  /** Learning rate factor after an epoch without a better dev accuracy; 1 = constant. */
  lrDecay: number;
  /**
   * Data-parallel replicas: the training thread plus workers - 1 worker threads, each computing the gradients of
   * its share of every batch (summed in shared memory, one update). 1 = single-threaded. Only on wasm and cpu: a
   * run whose auto backend turns out to be a GPU or native one trains with 1 (and says so).
   */
  workers: number;
  /**
   * Per-step decay of an exponential moving average of the weights (average.ts); 0 = off. When on, dev scoring,
   * early stopping, the best epoch and the export use the average instead of the raw weights.
   */
  weightAverage: number;
  /** Word dropout: each token of a training batch left out with this probability (@ch8/batching/augment); 0 = off. */
  wordDropout: number;
}

/** What a caller may give: `model` is required, everything else has a default. */
export type TrainingConfigInput = { model: string } & Partial<Omit<TrainingConfig, 'model' | 'finetune'>> & {
    /** Default: false for bow-frozen, true for every other model. */
    finetune?: boolean | null;
  };

function bad(field: string, message: string): InvalidInputError {
  return new InvalidInputError(message, { field });
}

function integer(value: unknown, field: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw bad(field, `must be an integer in [${min}, ${max}], got ${String(value)}`);
  }
  return value;
}

/**
 * Optimisation steps one epoch of `config` takes over `trainExamples` training examples: 1 in full-batch training
 * (batchSize 0), else the batches, at most maxBatchesPerEpoch when that is set.
 */
export function stepsPerEpoch(config: TrainingConfig, trainExamples: number): number {
  if (config.batchSize === 0) return 1;
  const batches = Math.ceil(trainExamples / config.batchSize);
  return config.maxBatchesPerEpoch > 0 ? Math.min(batches, config.maxBatchesPerEpoch) : batches;
}

/** The model's default: frozen embeddings for bow-frozen only. */
export function defaultFinetune(model: ModelKind): boolean {
  return model !== 'bow-frozen';
}

/** Fills defaults and checks every field; InvalidInputError names the field (RunConfig's names). */
export function resolveTrainingConfig(input: TrainingConfigInput): TrainingConfig {
  const model = input.model;
  if (typeof model !== 'string' || !isModelKind(model)) {
    throw bad('model', `unknown model ${JSON.stringify(model)}; one of ${MODEL_KINDS.join(', ')}`);
  }
  const finetune = input.finetune ?? defaultFinetune(model);
  if (model === 'bow-frozen' && finetune)
    throw bad('embedding_mode', 'bow-frozen keeps the embeddings frozen (use bow-finetune)');
  if (model === 'bow-finetune' && !finetune)
    throw bad('embedding_mode', 'bow-finetune trains the embeddings (use bow-frozen)');
  const learningRate = input.learningRate ?? null;
  if (
    learningRate !== null &&
    !(typeof learningRate === 'number' && Number.isFinite(learningRate) && learningRate > 0)
  ) {
    throw bad('learning_rate', `must be a positive number, got ${String(learningRate)}`);
  }
  const batchSize = integer(input.batchSize ?? 64, 'batch_size', 0, 1 << 20);
  const epochs = integer(input.epochs ?? 3, 'epochs', 1, 100_000);
  const seed = integer(input.seed ?? 1, 'seed', 0, MAX_SEED);
  const patience = integer(input.patience ?? 0, 'early_stopping_patience', 0, 100_000);
  const bucketing = input.bucketing ?? 'chunk';
  if (!BUCKETINGS.includes(bucketing))
    throw bad('bucketing', `must be one of ${BUCKETINGS.join(', ')}, got ${JSON.stringify(bucketing)}`);
  const trainSplit = input.trainSplit ?? 'train';
  if (typeof trainSplit !== 'string' || trainSplit === '') throw bad('train_split', 'must name a split');
  const devSplit = input.devSplit === undefined ? 'dev' : input.devSplit;
  if (devSplit !== null && (typeof devSplit !== 'string' || devSplit === ''))
    throw bad('dev_split', 'must name a split or be null');
  if (devSplit === trainSplit) throw bad('dev_split', `must differ from the train split ${JSON.stringify(trainSplit)}`);
  const exportName = checkModelName(input.exportName ?? model, 'export_name');
  const backend = input.backend ?? 'auto';
  if (backend !== 'auto' && !(BACKENDS as readonly string[]).includes(backend)) {
    throw bad('backend', `must be auto or one of ${BACKENDS.join(', ')}, got ${JSON.stringify(backend)}`);
  }
  const dropout = input.dropout ?? null;
  if (dropout !== null && !(typeof dropout === 'number' && dropout >= 0 && dropout < 1)) {
    throw bad('dropout', `must be in [0, 1), got ${String(dropout)}`);
  }
  const maxBatchesPerEpoch = integer(input.maxBatchesPerEpoch ?? 0, 'max_batches_per_epoch', 0);
  const lrDecay = input.lrDecay ?? 1;
  if (!(typeof lrDecay === 'number' && lrDecay > 0 && lrDecay <= 1))
    throw bad('lr_decay', `must be in (0, 1], got ${String(lrDecay)}`);
  if (lrDecay < 1 && devSplit === null)
    throw bad('lr_decay', 'needs a dev split to tell when dev accuracy stops improving');
  if (patience > 0 && devSplit === null) throw bad('early_stopping_patience', 'needs a dev split');
  const workers = integer(input.workers ?? 1, 'workers', 1, MAX_WORKERS);
  const weightAverage = input.weightAverage ?? 0;
  if (!(typeof weightAverage === 'number' && weightAverage >= 0 && weightAverage < 1))
    throw bad('weight_average', `must be in [0, 1) (0 = off), got ${String(weightAverage)}`);
  const wordDropout = input.wordDropout ?? 0;
  if (!(typeof wordDropout === 'number' && wordDropout >= 0 && wordDropout < 1))
    throw bad('word_dropout', `must be in [0, 1) (0 = off), got ${String(wordDropout)}`);
  if (wordDropout > 0 && batchSize === 0)
    throw bad('word_dropout', 'applies to mini-batch steps; batch_size 0 (full batch) trains on the data as it is');
  if (workers > 1 && !PARALLEL_PREFERENCES.includes(backend))
    throw bad('workers', `more than one worker runs on wasm or cpu only (backend ${backend} keeps 1)`);
  return {
    model,
    finetune,
    learningRate,
    batchSize,
    epochs,
    seed,
    patience,
    bucketing,
    trainSplit,
    devSplit,
    exportName,
    backend,
    dropout,
    maxBatchesPerEpoch,
    lrDecay,
    workers,
    weightAverage,
    wordDropout,
  };
}
