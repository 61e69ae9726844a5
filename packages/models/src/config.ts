import { describeValue, InvalidInputError } from '@ch8/errors';

/** Model ids of the zoo (problems 72, 78, 79). */
export const MODEL_KINDS = ['bow-frozen', 'bow-finetune', 'mlp', 'cnn', 'bilstm', 'gru', 'attention'] as const;
export type ModelKind = (typeof MODEL_KINDS)[number];

export function isModelKind(s: string): s is ModelKind {
  return (MODEL_KINDS as readonly string[]).includes(s);
}

/** What a caller may give; everything but kind, vocabSize and dim has a default (see `resolveConfig`). */
export interface ModelConfigInput {
  kind: ModelKind;
  /** Rows of the embedding matrix, PAD (row 0) included. */
  vocabSize: number;
  /** Embedding dimension. */
  dim: number;
  /** Train the embedding matrix. Default: false for bow-frozen, true otherwise. */
  finetune?: boolean;
  /** Seed of inits and dropout masks. Default 1. */
  seed?: number;
  /** Adam learning rate. Default 1e-2 for bow-frozen, 1e-3 otherwise. */
  learningRate?: number;
  /** Dropout before the output layer (mlp, cnn, bilstm, gru, attention). Default 0.5. */
  dropout?: number;
  /** mlp hidden units (256), RNN hidden units per direction (128), attention feed-forward units (256). */
  hidden?: number;
  /** cnn filter widths (3,4,5) and filters per width (100). */
  widths?: number[];
  filters?: number;
  /** RNNs: run a backward direction too. Default true. */
  bidirectional?: boolean;
  /**
   * Fine-tuned embedding rows: 'dense' (default) = dense Adam's trajectory computed lazily (as the PyTorch reference
   * trains), 'lazy' = SparseAdam/LazyAdam semantics. Both cost only the rows a batch touches.
   */
  embeddingOptimizer?: 'dense' | 'lazy';
  /** attention: heads (4; must divide dim) and dropout inside the encoder layer (0.1). */
  heads?: number;
  encoderDropout?: number;
}

/** A fully resolved configuration: what the manifest stores. */
export interface ModelConfig {
  kind: ModelKind;
  vocabSize: number;
  dim: number;
  finetune: boolean;
  seed: number;
  learningRate: number;
  dropout: number;
  hidden: number;
  widths: number[];
  filters: number;
  bidirectional: boolean;
  embeddingOptimizer: 'dense' | 'lazy';
  heads: number;
  encoderDropout: number;
}

function bad(field: string, message: string): InvalidInputError {
  return new InvalidInputError(message, { field });
}

function positiveInt(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0)
    throw bad(field, `must be a positive integer, got ${describeValue(v)}`);
  return v;
}

function rate(v: unknown, field: string): number {
  if (typeof v !== 'number' || !(v >= 0 && v < 1)) throw bad(field, `must be in [0, 1), got ${describeValue(v)}`);
  return v;
}

/** Fills defaults (the PyTorch reference's) and validates; throws InvalidInputError naming the field. */
export function resolveConfig(input: ModelConfigInput): ModelConfig {
  const kind = input.kind;
  if (typeof kind !== 'string' || !isModelKind(kind)) {
    throw bad('kind', `unknown model kind ${describeValue(kind)}; one of ${MODEL_KINDS.join(', ')}`);
  }
  const vocabSize = positiveInt(input.vocabSize, 'vocabSize');
  if (vocabSize < 2) throw bad('vocabSize', 'needs PAD plus at least one word');
  const dim = positiveInt(input.dim, 'dim');
  const finetune = input.finetune ?? kind !== 'bow-frozen';
  if (typeof finetune !== 'boolean') throw bad('finetune', 'must be a boolean');
  if (kind === 'bow-frozen' && finetune) throw bad('finetune', 'bow-frozen keeps the embeddings frozen');
  if (kind === 'bow-finetune' && !finetune) throw bad('finetune', 'bow-finetune trains the embeddings');
  const seed = input.seed ?? 1;
  if (!Number.isInteger(seed)) throw bad('seed', 'must be an integer');
  const learningRate = input.learningRate ?? (kind === 'bow-frozen' ? 1e-2 : 1e-3);
  if (!(typeof learningRate === 'number' && learningRate > 0 && Number.isFinite(learningRate))) {
    throw bad('learningRate', 'must be a positive number');
  }
  const hidden = positiveInt(input.hidden ?? (kind === 'bilstm' || kind === 'gru' ? 128 : 256), 'hidden');
  const widths = input.widths ?? [3, 4, 5];
  if (!Array.isArray(widths) || widths.length === 0) throw bad('widths', 'must be a non-empty list');
  widths.forEach((w, i) => positiveInt(w, `widths[${i}]`));
  const filters = positiveInt(input.filters ?? 100, 'filters');
  const heads = positiveInt(input.heads ?? 4, 'heads');
  if (kind === 'attention' && dim % heads !== 0) throw bad('heads', `must divide dim ${dim}`);
  const bidirectional = input.bidirectional ?? true;
  if (typeof bidirectional !== 'boolean') throw bad('bidirectional', 'must be a boolean');
  const embeddingOptimizer = input.embeddingOptimizer ?? 'dense';
  if (embeddingOptimizer !== 'dense' && embeddingOptimizer !== 'lazy')
    throw bad('embeddingOptimizer', "must be 'dense' or 'lazy'");
  return {
    kind,
    vocabSize,
    dim,
    finetune,
    seed,
    learningRate,
    dropout: rate(input.dropout ?? 0.5, 'dropout'),
    hidden,
    widths: [...widths],
    filters,
    bidirectional,
    embeddingOptimizer,
    heads,
    encoderDropout: rate(input.encoderDropout ?? 0.1, 'encoderDropout'),
  };
}
