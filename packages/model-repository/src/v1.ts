/**
 * formatVersion 1 model directories (what `@ch8/models/io` `saveModel` wrote, e.g. `ch8 train --out`): converted
 * into a formatVersion 2 manifest in memory, so they load like any version. The weights file is the same format.
 * A v1 directory that lacks what serving needs (the vocabulary tokens and the tokenizer, which `ch8 train` stored
 * in `metadata`) is refused with FailedPreconditionError saying how to get a v2 model.
 */
import { FailedPreconditionError, InvalidInputError, VocabularyMismatchError } from '@ch8/errors';
import { vocabularyHash } from '@ch8/embeddings/vocabulary';
import type { ModelConfig } from '@ch8/models/config';
import { parseTokenizerSpec, type TokenizerSpec } from '@ch8/tokenizer';
import {
  LABELS,
  MANIFEST_VERSION,
  MODEL_FORMAT,
  SIGNATURE,
  validateManifest,
  type EpochRecord,
  type ModelManifest,
} from './manifest.ts';

export const V1_FORMAT_VERSION = 1;

const HOW_TO_UPGRADE =
  'retrain and export the model into a model repository (formatVersion 2, @ch8/model-repository exportModel)';

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function finite(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}

/** `ch8 train`'s epoch reports (snake_case) as EpochRecords; undefined when they do not have that shape. */
function convertEpochs(raw: unknown): EpochRecord[] | undefined {
  if (!Array.isArray(raw)) return undefined;
  const out: EpochRecord[] = [];
  for (const r of raw) {
    if (!isRecord(r)) return undefined;
    const { epoch, train_loss, train_accuracy, examples_per_second, train_seconds, dev_loss, dev_accuracy } = r;
    if (!finite(epoch) || !finite(train_loss) || !finite(train_accuracy)) return undefined;
    if (!finite(examples_per_second) || !finite(train_seconds)) return undefined;
    const e: EpochRecord = {
      epoch,
      trainLoss: train_loss,
      trainAccuracy: train_accuracy,
      trainExamplesPerSecond: examples_per_second,
      seconds: train_seconds,
    };
    if (dev_loss !== undefined) {
      if (!finite(dev_loss)) return undefined;
      e.devLoss = dev_loss;
    }
    if (dev_accuracy !== undefined) {
      if (!finite(dev_accuracy)) return undefined;
      e.devAccuracy = dev_accuracy;
    }
    out.push(e);
  }
  return out;
}

/** v2 field names of the converted manifest -> the v1 fields they came from, for error messages. */
function v1Field(field: string | undefined): string | undefined {
  if (field === undefined) return undefined;
  if (field.startsWith('model.')) return `config.${field.slice('model.'.length)}`;
  if (field.startsWith('vocabulary.tokens')) return `metadata.vocabulary${field.slice('vocabulary.tokens'.length)}`;
  if (field.startsWith('vocabulary.')) return 'metadata.vocabulary';
  if (field.startsWith('tokenizer.')) return 'metadata.tokenizer';
  if (field.startsWith('metrics.')) return 'metadata.epochs';
  if (field.startsWith('backend.')) return 'metadata.backend';
  return field;
}

/**
 * Converts a parsed formatVersion 1 manifest. `where` says what the directory stands for (its name and version
 * in the repository layout, or derived from the directory name) and when it was written (the file's mtime).
 */
export function convertV1Manifest(
  raw: Record<string, unknown>,
  file: string,
  where: { name: string; version: number; createdAt: string },
): ModelManifest {
  const refuse = (field: string, what: string): FailedPreconditionError =>
    new FailedPreconditionError(`formatVersion 1 model ${what}, so it cannot be served; ${HOW_TO_UPGRADE}`, {
      file,
      field,
    });
  const metadata = raw.metadata;
  if (!isRecord(metadata)) throw refuse('metadata', 'has no metadata (vocabulary, tokenizer)');
  const tokens = metadata.vocabulary;
  if (!Array.isArray(tokens)) throw refuse('metadata.vocabulary', 'does not carry its vocabulary tokens');
  if (metadata.tokenizer === undefined) throw refuse('metadata.tokenizer', 'does not record its tokenizer');
  let training: TokenizerSpec;
  const spec = metadata.tokenizer;
  // @ch8/tokenizer puts a bad kind or version in its message with JSON.stringify (a deeply nested list overflows it).
  if (isRecord(spec) && [spec.kind, spec.version].some((v) => typeof v === 'object' && v !== null)) {
    throw new InvalidInputError('kind and version must be a string and a number', {
      file,
      field: 'metadata.tokenizer',
    });
  }
  try {
    training = parseTokenizerSpec(spec);
  } catch (e) {
    if (e instanceof InvalidInputError)
      throw new InvalidInputError(e.detail, { file, field: 'metadata.tokenizer' }, { cause: e });
    throw e;
  }
  if (!isRecord(raw.config)) throw new InvalidInputError('must be a JSON object', { file, field: 'config' });
  const config = raw.config as unknown as ModelConfig;
  const dim = config.dim;
  // The hash v1 recorded must be the one the stored tokens give (else the tokens are not the ids' vocabulary).
  if (raw.vocabHash !== null && raw.vocabHash !== undefined && tokens.every((t) => typeof t === 'string')) {
    const actual = Number.isSafeInteger(dim) && dim > 0 ? vocabularyHash(tokens as string[], dim) : undefined;
    if (actual !== raw.vocabHash) {
      throw new VocabularyMismatchError(
        `is ${typeof raw.vocabHash === 'string' ? raw.vocabHash : `a ${Array.isArray(raw.vocabHash) ? 'list' : typeof raw.vocabHash}`} but metadata.vocabulary and config.dim hash to ${String(actual)}`,
        { file, field: 'vocabHash' },
      );
    }
  }
  const epochs = convertEpochs(metadata.epochs) ?? [];
  const last = epochs.at(-1);
  const backend = isRecord(metadata.backend) ? metadata.backend : {};
  const { vocabulary: _tokens, ...rest } = metadata;
  const converted = {
    format: MODEL_FORMAT,
    formatVersion: MANIFEST_VERSION,
    name: where.name,
    version: where.version,
    model: raw.config,
    vocabulary: {
      size: tokens.length,
      dim,
      hash:
        Number.isSafeInteger(dim) && dim > 0 && tokens.every((t) => typeof t === 'string')
          ? vocabularyHash(tokens as string[], dim)
          : '',
      tokens,
    },
    // v1 recorded one tokenizer (the training data's); raw user text goes through the raw tokenizer of that version.
    tokenizer: { training, raw: { kind: 'raw', version: training.version } },
    labels: [...LABELS],
    signature: SIGNATURE,
    training: { convertedFrom: { format: MODEL_FORMAT, formatVersion: V1_FORMAT_VERSION }, ...rest },
    metrics: {
      epochs,
      // v1 stored the weights after the last epoch.
      bestEpoch: last?.epoch ?? null,
      devAccuracy: last?.devAccuracy ?? null,
      splits: {},
    },
    backend: {
      backend: typeof backend.backend === 'string' && backend.backend !== '' ? backend.backend : 'unknown',
      device: typeof backend.device === 'string' && backend.device !== '' ? backend.device : 'unknown',
    },
    timings: {},
    createdAt: where.createdAt,
    weights: raw.weights,
  };
  try {
    // Not through JSON.stringify/parse to copy it: deeply nested metadata would overflow the stack (RangeError).
    return validateManifest(converted, file);
  } catch (e) {
    const where = { file, field: v1Field((e as InvalidInputError).field) };
    const detail = `${(e as InvalidInputError).detail} (formatVersion 1 manifest)`;
    if (e instanceof VocabularyMismatchError) throw new VocabularyMismatchError(detail, where, { cause: e });
    if (e instanceof InvalidInputError) throw new InvalidInputError(detail, where, { cause: e });
    throw e;
  }
}
