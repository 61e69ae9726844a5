/**
 * `manifest.json` of a model version (formatVersion 2): what the trainer writes and the gateway reads. Everything
 * a server needs to serve the weights without guessing: the resolved model config, the vocabulary (tokens and
 * hash), the tokenizers, labels, the inference signature, training run and metrics, and the weight table of
 * `weights.bin` with its SHA-256. {@link validateManifest} checks every field and names the one that is wrong.
 */
import { isDeepStrictEqual } from 'node:util';
import { describeValue, InvalidInputError, VocabularyMismatchError, isKnownError } from '@ch8/errors';
import { PAD_TOKEN, vocabularyHash } from '@ch8/embeddings/vocabulary';
import { resolveConfig, type ModelConfig, type ModelConfigInput } from '@ch8/models/config';
import { getTokenizer, parseTokenizerSpec, type TokenizerSpec } from '@ch8/tokenizer';
import { checkModelName } from './names.ts';

export const MODEL_FORMAT = 'ch8-sentiment-model';
export const MANIFEST_VERSION = 2;
export const MANIFEST_FILE = 'manifest.json';
export const WEIGHTS_FILE = 'weights.bin';
/** Class names by label id: 0 = negative, 1 = positive (SST-2's labels). */
export const LABELS = ['negative', 'positive'] as const;

/** One input or output of the inference signature (Open Inference Protocol names and datatypes). */
export interface TensorSpec {
  name: string;
  datatype: 'BYTES' | 'FP32';
  shape: number[];
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/**
 * What every model of this format takes and gives: a batch of texts; P(positive) per text and the label name
 * (`positive` when P(positive) > 0.5, i.e. logit > 0, as the model counts accuracy; else `negative`).
 */
export const SIGNATURE: { inputs: TensorSpec[]; outputs: TensorSpec[] } = deepFreeze({
  inputs: [{ name: 'TEXT', datatype: 'BYTES', shape: [-1] }],
  outputs: [
    { name: 'PROBABILITY', datatype: 'FP32', shape: [-1] },
    { name: 'LABEL', datatype: 'BYTES', shape: [-1] },
  ],
});

/** Scores of one split (train, dev, test ...) with the exported weights; predicted positive when P > 0.5. */
export interface SplitMetrics {
  /** Examples scored (after dropping). */
  examples: number;
  /** Examples dropped before scoring (left empty after removing out-of-vocabulary tokens). */
  dropped: number;
  /** Mean binary cross-entropy. */
  loss: number;
  accuracy: number;
  /** Of the positive class; 0 when nothing was predicted positive. */
  precision: number;
  /** Of the positive class; 0 when the split has no positive example. */
  recall: number;
  /** Harmonic mean of precision and recall; 0 when both are 0. */
  f1: number;
  /** [[tn, fp], [fn, tp]]: rows = true label 0, 1; columns = predicted label 0, 1. */
  confusion: [[number, number], [number, number]];
}

export interface EpochRecord {
  /** 1-based. */
  epoch: number;
  trainLoss: number;
  trainAccuracy: number;
  devLoss?: number;
  devAccuracy?: number;
  trainExamplesPerSecond: number;
  /** Wall time of the epoch, scoring included. */
  seconds: number;
  /** Training wall time of the epoch (steps and waits for data). */
  trainSeconds?: number;
  /** Share of trainSeconds spent waiting for batches. */
  dataWaitShare?: number;
  /** Adam's learning rate in this epoch. */
  learningRate?: number;
}

export interface WeightEntry {
  name: string;
  shape: number[];
  /** Byte offset in weights.bin. */
  offset: number;
  /** Number of float32 values (the product of the shape). */
  length: number;
}

export interface ModelManifest {
  format: typeof MODEL_FORMAT;
  formatVersion: 2;
  name: string;
  version: number;
  /** The resolved config (every field of ModelConfig). */
  model: ModelConfig;
  /** tokens[0] = '<pad>'; hash = vocabularyHash(tokens, dim); size = tokens.length = model.vocabSize. */
  vocabulary: { size: number; dim: number; hash: string; tokens: string[] };
  /** The tokenizer the training data went through, and the one to apply to raw user text. */
  tokenizer: { training: TokenizerSpec; raw: TokenizerSpec };
  labels: ['negative', 'positive'];
  signature: typeof SIGNATURE;
  /** Run config as resolved, and a description of the data (free-form JSON). */
  training: Record<string, unknown>;
  metrics: {
    epochs: EpochRecord[];
    /** The epoch whose weights this version holds; null when unknown (no epoch recorded). */
    bestEpoch: number | null;
    /** Dev accuracy of the weights this version holds; null when there was no dev split. */
    devAccuracy: number | null;
    splits: Record<string, SplitMetrics>;
  };
  backend: { backend: string; device: string };
  /** Seconds, e.g. totalSeconds, trainSeconds. */
  timings: Record<string, number>;
  /** ISO 8601. */
  createdAt: string;
  runId?: string;
  weights: { file: 'weights.bin'; byteLength: number; sha256: string; dtype: 'float32'; entries: WeightEntry[] };
}

/** What a caller of exportModel provides; the repository fills in the rest. */
export type ManifestInput = Omit<
  ModelManifest,
  'format' | 'formatVersion' | 'name' | 'version' | 'labels' | 'signature' | 'weights' | 'createdAt'
> & { createdAt?: string };

/**
 * Split metrics from a confusion matrix `[[tn, fp], [fn, tp]]`, with the conventions {@link validateManifest}
 * checks (precision, recall, f1 are 0 where their denominator is 0).
 */
export function computeSplitMetrics(
  confusion: [[number, number], [number, number]],
  loss: number,
  dropped = 0,
): SplitMetrics {
  const [[tn, fp], [fn, tp]] = confusion;
  const examples = tn + fp + fn + tp;
  const ratio = (a: number, b: number): number => (b > 0 ? a / b : 0);
  return {
    examples,
    dropped,
    loss,
    accuracy: ratio(tn + tp, examples),
    precision: ratio(tp, tp + fp),
    recall: ratio(tp, tp + fn),
    f1: ratio(2 * tp, 2 * tp + fp + fn),
    confusion: [
      [tn, fp],
      [fn, tp],
    ],
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Validation.

const TOP_REQUIRED = [
  'format',
  'formatVersion',
  'name',
  'version',
  'model',
  'vocabulary',
  'tokenizer',
  'labels',
  'signature',
  'training',
  'metrics',
  'backend',
  'timings',
  'createdAt',
  'weights',
] as const;
const ISO_8601 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})$/;
const SHA256 = /^[0-9a-f]{64}$/;
/** Tolerance of the split metrics' consistency with their confusion matrix. */
const METRIC_TOLERANCE = 1e-9;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function join(prefix: string, key: string): string {
  return prefix === '' ? key : `${prefix}.${key}`;
}

/** Field-by-field checks that throw InvalidInputError naming the file and the field path. */
class Checker {
  constructor(readonly file: string) {}

  bad(field: string, message: string): InvalidInputError {
    return new InvalidInputError(message, { file: this.file, field: field === '' ? 'manifest' : field });
  }

  /** An object with exactly the required keys, plus any of the optional ones. */
  object(
    v: unknown,
    field: string,
    required: readonly string[],
    optional: readonly string[] = [],
  ): Record<string, unknown> {
    if (!isRecord(v)) throw this.bad(field, `must be a JSON object, got ${describe(v)}`);
    for (const k of required) if (!(k in v)) throw this.bad(join(field, k), 'missing');
    for (const k of Object.keys(v)) {
      if (!required.includes(k) && !optional.includes(k)) throw this.bad(join(field, k), 'unknown field');
    }
    return v;
  }

  array(v: unknown, field: string): unknown[] {
    if (!Array.isArray(v)) throw this.bad(field, `must be a list, got ${describe(v)}`);
    return v;
  }

  string(v: unknown, field: string): string {
    if (typeof v !== 'string' || v === '') throw this.bad(field, `must be a non-empty string, got ${describe(v)}`);
    return v;
  }

  number(v: unknown, field: string, min = -Infinity, max = Infinity): number {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) {
      const range =
        max === Infinity
          ? min === -Infinity
            ? 'a finite number'
            : `a finite number >= ${min}`
          : `in [${min}, ${max}]`;
      throw this.bad(field, `must be ${range}, got ${describe(v)}`);
    }
    return v;
  }

  integer(v: unknown, field: string, min: number): number {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
      throw this.bad(field, `must be an integer >= ${min}, got ${describe(v)}`);
    }
    return v;
  }

  probability(v: unknown, field: string): number {
    return this.number(v, field, 0, 1);
  }
}

const describe = describeValue;

/** Rethrows a known error of another package with this file and a prefixed field. */
function relocate(e: unknown, file: string, prefix: string, fallbackField: string): never {
  if (e instanceof VocabularyMismatchError) {
    throw new VocabularyMismatchError(
      e.detail,
      { file, field: e.field ? join(prefix, lastPart(e.field)) : fallbackField },
      { cause: e },
    );
  }
  if (e instanceof InvalidInputError) {
    throw new InvalidInputError(
      e.detail,
      { file, field: e.field ? join(prefix, lastPart(e.field)) : fallbackField },
      { cause: e },
    );
  }
  throw e;
}

/** `tokenizer.kind` -> `kind` (the tokenizer package names its fields from its own root). */
function lastPart(field: string): string {
  return field.startsWith('tokenizer.') ? field.slice('tokenizer.'.length) : field;
}

function checkModel(c: Checker, raw: unknown): ModelConfig {
  if (!isRecord(raw)) throw c.bad('model', `must be a JSON object, got ${describe(raw)}`);
  // Every field is a number, string or boolean (widths: a list of them). resolveConfig puts values in its messages
  // with String(), which throws TypeError for an object such as {"toString": []}.
  for (const [k, v] of Object.entries(raw)) {
    const values = k === 'widths' && Array.isArray(v) ? v : [v];
    values.forEach((x, i) => {
      if (typeof x === 'object' && x !== null) {
        throw c.bad(
          `model.${k}${values === v ? `[${i}]` : ''}`,
          `must be a number, string or boolean, got ${describe(x)}`,
        );
      }
    });
  }
  let config: ModelConfig;
  try {
    config = resolveConfig(raw as unknown as ModelConfigInput);
  } catch (e) {
    if (isKnownError(e)) relocate(e, c.file, 'model', 'model');
    throw e;
  }
  // The manifest stores the resolved config: a field left to a default could change meaning with a new default.
  // Own keys only: `"__proto__"` or `"constructor"` is not a field because every object inherits one.
  // A value resolveConfig changes (null, which it takes for "use the default") is not in resolved form either.
  for (const k of Object.keys(config) as (keyof ModelConfig)[]) {
    if (!Object.hasOwn(raw, k)) throw c.bad(`model.${k}`, 'missing (the manifest stores the fully resolved config)');
    if (!isDeepStrictEqual(raw[k], config[k])) {
      throw c.bad(`model.${k}`, `must be the resolved value ${JSON.stringify(config[k])}, got ${describe(raw[k])}`);
    }
  }
  for (const k of Object.keys(raw)) if (!Object.hasOwn(config, k)) throw c.bad(`model.${k}`, 'unknown field');
  return config;
}

function checkVocabulary(c: Checker, raw: unknown, model: ModelConfig): ModelManifest['vocabulary'] {
  const v = c.object(raw, 'vocabulary', ['size', 'dim', 'hash', 'tokens']);
  const tokens = c.array(v.tokens, 'vocabulary.tokens');
  const seen = new Set<string>();
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (typeof t !== 'string') throw c.bad(`vocabulary.tokens[${i}]`, `must be a string, got ${describe(t)}`);
    if (seen.has(t)) throw c.bad(`vocabulary.tokens[${i}]`, `token ${JSON.stringify(t)} occurs twice`);
    seen.add(t);
  }
  if (tokens[0] !== PAD_TOKEN) throw c.bad('vocabulary.tokens[0]', `must be ${JSON.stringify(PAD_TOKEN)}`);
  const size = c.integer(v.size, 'vocabulary.size', 2);
  if (size !== tokens.length) throw c.bad('vocabulary.size', `is ${size} but there are ${tokens.length} tokens`);
  if (size !== model.vocabSize) throw c.bad('vocabulary.size', `is ${size} but model.vocabSize is ${model.vocabSize}`);
  const dim = c.integer(v.dim, 'vocabulary.dim', 1);
  if (dim !== model.dim) throw c.bad('vocabulary.dim', `is ${dim} but model.dim is ${model.dim}`);
  if (typeof v.hash !== 'string' || !SHA256.test(v.hash))
    throw c.bad('vocabulary.hash', 'must be a lower-case hex SHA-256');
  const actual = vocabularyHash(tokens as string[], dim);
  if (actual !== v.hash) {
    throw new VocabularyMismatchError(`is ${v.hash} but the tokens and dim hash to ${actual}`, {
      file: c.file,
      field: 'vocabulary.hash',
    });
  }
  return { size, dim, hash: v.hash, tokens: tokens as string[] };
}

function checkTokenizerSpec(c: Checker, raw: unknown, field: string): TokenizerSpec {
  const spec = c.object(raw, field, ['kind', 'version']);
  // @ch8/tokenizer puts a bad kind or version in its message with JSON.stringify (a deeply nested list overflows it).
  for (const k of ['kind', 'version'] as const) {
    if (typeof spec[k] === 'object' && spec[k] !== null) {
      throw c.bad(`${field}.${k}`, `must be a ${k === 'kind' ? 'string' : 'number'}, got ${describe(spec[k])}`);
    }
  }
  try {
    const spec = parseTokenizerSpec(raw);
    getTokenizer(spec); // an unknown version: VocabularyMismatchError
    return spec;
  } catch (e) {
    if (isKnownError(e)) relocate(e, c.file, field, field);
    throw e;
  }
}

function checkEpochs(c: Checker, raw: unknown): EpochRecord[] {
  const list = c.array(raw, 'metrics.epochs');
  let previous = 0;
  return list.map((r, i) => {
    const f = `metrics.epochs[${i}]`;
    const e = c.object(
      r,
      f,
      ['epoch', 'trainLoss', 'trainAccuracy', 'trainExamplesPerSecond', 'seconds'],
      ['devLoss', 'devAccuracy', 'trainSeconds', 'dataWaitShare', 'learningRate'],
    );
    const epoch = c.integer(e.epoch, `${f}.epoch`, 1);
    if (epoch <= previous) throw c.bad(`${f}.epoch`, `must be greater than the previous epoch ${previous}`);
    previous = epoch;
    const out: EpochRecord = {
      epoch,
      trainLoss: c.number(e.trainLoss, `${f}.trainLoss`, 0),
      trainAccuracy: c.probability(e.trainAccuracy, `${f}.trainAccuracy`),
      trainExamplesPerSecond: c.number(e.trainExamplesPerSecond, `${f}.trainExamplesPerSecond`, 0),
      seconds: c.number(e.seconds, `${f}.seconds`, 0),
    };
    if (e.devLoss !== undefined) out.devLoss = c.number(e.devLoss, `${f}.devLoss`, 0);
    if (e.devAccuracy !== undefined) out.devAccuracy = c.probability(e.devAccuracy, `${f}.devAccuracy`);
    if (e.trainSeconds !== undefined) out.trainSeconds = c.number(e.trainSeconds, `${f}.trainSeconds`, 0);
    if (e.dataWaitShare !== undefined) out.dataWaitShare = c.probability(e.dataWaitShare, `${f}.dataWaitShare`);
    if (e.learningRate !== undefined)
      out.learningRate = c.number(e.learningRate, `${f}.learningRate`, Number.MIN_VALUE);
    return out;
  });
}

function checkSplit(c: Checker, raw: unknown, f: string): SplitMetrics {
  const s = c.object(raw, f, ['examples', 'dropped', 'loss', 'accuracy', 'precision', 'recall', 'f1', 'confusion']);
  const rows = c.array(s.confusion, `${f}.confusion`);
  if (rows.length !== 2) throw c.bad(`${f}.confusion`, 'must be [[tn, fp], [fn, tp]]');
  const cells = rows.map((row, i) => {
    const r = c.array(row, `${f}.confusion[${i}]`);
    if (r.length !== 2) throw c.bad(`${f}.confusion[${i}]`, 'must have 2 counts');
    return r.map((n, j) => c.integer(n, `${f}.confusion[${i}][${j}]`, 0));
  });
  const confusion: SplitMetrics['confusion'] = [
    [cells[0]![0]!, cells[0]![1]!],
    [cells[1]![0]!, cells[1]![1]!],
  ];
  const examples = c.integer(s.examples, `${f}.examples`, 0);
  const out: SplitMetrics = {
    examples,
    dropped: c.integer(s.dropped, `${f}.dropped`, 0),
    loss: c.number(s.loss, `${f}.loss`, 0),
    accuracy: c.probability(s.accuracy, `${f}.accuracy`),
    precision: c.probability(s.precision, `${f}.precision`),
    recall: c.probability(s.recall, `${f}.recall`),
    f1: c.probability(s.f1, `${f}.f1`),
    confusion,
  };
  const total = confusion[0][0] + confusion[0][1] + confusion[1][0] + confusion[1][1];
  if (total !== examples) throw c.bad(`${f}.confusion`, `counts sum to ${total} but examples is ${examples}`);
  const expected = computeSplitMetrics(confusion, out.loss, out.dropped);
  for (const k of ['accuracy', 'precision', 'recall', 'f1'] as const) {
    if (Math.abs(out[k] - expected[k]) > METRIC_TOLERANCE) {
      throw c.bad(`${f}.${k}`, `is ${out[k]} but the confusion matrix gives ${expected[k]}`);
    }
  }
  return out;
}

function checkMetrics(c: Checker, raw: unknown): ModelManifest['metrics'] {
  const m = c.object(raw, 'metrics', ['epochs', 'bestEpoch', 'devAccuracy', 'splits']);
  const epochs = checkEpochs(c, m.epochs);
  let bestEpoch: number | null = null;
  if (m.bestEpoch !== null) {
    bestEpoch = c.integer(m.bestEpoch, 'metrics.bestEpoch', 1);
    if (!epochs.some((e) => e.epoch === bestEpoch)) {
      throw c.bad('metrics.bestEpoch', `epoch ${bestEpoch} is not among metrics.epochs`);
    }
  }
  const devAccuracy = m.devAccuracy === null ? null : c.probability(m.devAccuracy, 'metrics.devAccuracy');
  const rawSplits = isObjectMap(c, m.splits, 'metrics.splits');
  // fromEntries defines own keys: assigning splits["__proto__"] would set the object's prototype instead.
  const splits: Record<string, SplitMetrics> = Object.fromEntries(
    Object.entries(rawSplits).map(([name, s]) => {
      if (name === '') throw c.bad('metrics.splits', 'a split name must not be empty');
      return [name, checkSplit(c, s, `metrics.splits.${name}`)];
    }),
  );
  return { epochs, bestEpoch, devAccuracy, splits };
}

function isObjectMap(c: Checker, raw: unknown, field: string): Record<string, unknown> {
  if (!isRecord(raw)) throw c.bad(field, `must be a JSON object, got ${describe(raw)}`);
  return raw;
}

function checkWeights(c: Checker, raw: unknown, model: ModelConfig): ModelManifest['weights'] {
  const w = c.object(raw, 'weights', ['file', 'byteLength', 'sha256', 'dtype', 'entries']);
  if (w.file !== WEIGHTS_FILE)
    throw c.bad('weights.file', `must be ${JSON.stringify(WEIGHTS_FILE)}, got ${describe(w.file)}`);
  if (w.dtype !== 'float32') throw c.bad('weights.dtype', `must be "float32", got ${describe(w.dtype)}`);
  if (typeof w.sha256 !== 'string' || !SHA256.test(w.sha256))
    throw c.bad('weights.sha256', 'must be a lower-case hex SHA-256');
  const byteLength = c.integer(w.byteLength, 'weights.byteLength', 0);
  const names = new Set<string>();
  let offset = 0;
  const entries = c.array(w.entries, 'weights.entries').map((r, i): WeightEntry => {
    const f = `weights.entries[${i}]`;
    const e = c.object(r, f, ['name', 'shape', 'offset', 'length']);
    const name = c.string(e.name, `${f}.name`);
    if (names.has(name)) throw c.bad(`${f}.name`, `weight ${JSON.stringify(name)} occurs twice`);
    names.add(name);
    const shape = c.array(e.shape, `${f}.shape`).map((n, j) => c.integer(n, `${f}.shape[${j}]`, 0));
    const length = shape.reduce((a, b) => a * b, 1);
    if (e.length !== length)
      throw c.bad(`${f}.length`, `must be ${length} (the product of the shape), got ${describe(e.length)}`);
    // Entries are packed in order: the first at 0, each right after the previous one.
    if (e.offset !== offset)
      throw c.bad(`${f}.offset`, `must be ${offset} (entries are packed in order), got ${describe(e.offset)}`);
    offset += length * 4;
    if (name === 'embeddings' && (shape.length !== 2 || shape[0] !== model.vocabSize || shape[1] !== model.dim)) {
      throw c.bad(
        `${f}.shape`,
        `embeddings must be [${model.vocabSize}, ${model.dim}] (vocabSize, dim), got [${shape.join(', ')}]`,
      );
    }
    return { name, shape, offset: e.offset, length };
  });
  if (offset !== byteLength) throw c.bad('weights.byteLength', `is ${byteLength} but the entries take ${offset} bytes`);
  if (!names.has('embeddings')) throw c.bad('weights.entries', 'has no "embeddings" entry');
  return { file: WEIGHTS_FILE, byteLength, sha256: w.sha256, dtype: 'float32', entries };
}

/**
 * Checks a parsed `manifest.json` of formatVersion 2 field by field and returns it typed. Structural problems:
 * InvalidInputError `{ file, field }` with the field's path (`metrics.epochs[2].trainLoss`); a vocabulary hash
 * that the tokens do not reproduce, or a tokenizer version this build does not have: VocabularyMismatchError.
 * (formatVersion 1 directories are converted by `readManifest`, not here.)
 */
export function validateManifest(raw: unknown, file: string): ModelManifest {
  const c = new Checker(file);
  if (!isRecord(raw)) throw c.bad('', `must be a JSON object, got ${describe(raw)}`);
  if (raw.format !== MODEL_FORMAT)
    throw c.bad('format', `must be ${JSON.stringify(MODEL_FORMAT)}, got ${describe(raw.format)}`);
  if (raw.formatVersion !== MANIFEST_VERSION) {
    throw c.bad(
      'formatVersion',
      `unsupported formatVersion ${describe(raw.formatVersion)} (this reader validates ${MANIFEST_VERSION})`,
    );
  }
  const m = c.object(raw, '', TOP_REQUIRED, ['runId']);
  let name: string;
  try {
    name = checkModelName(m.name as string, 'name');
  } catch (e) {
    relocate(e, file, '', 'name');
  }
  const version = c.integer(m.version, 'version', 1);
  const model = checkModel(c, m.model);
  const vocabulary = checkVocabulary(c, m.vocabulary, model);
  const t = c.object(m.tokenizer, 'tokenizer', ['training', 'raw']);
  const tokenizer = {
    training: checkTokenizerSpec(c, t.training, 'tokenizer.training'),
    raw: checkTokenizerSpec(c, t.raw, 'tokenizer.raw'),
  };
  if (!isDeepStrictEqual(m.labels, [...LABELS])) throw c.bad('labels', `must be ${JSON.stringify(LABELS)}`);
  if (!isDeepStrictEqual(m.signature, JSON.parse(JSON.stringify(SIGNATURE)))) {
    throw c.bad('signature', `must be ${JSON.stringify(SIGNATURE)}`);
  }
  const training = isObjectMap(c, m.training, 'training');
  const metrics = checkMetrics(c, m.metrics);
  const b = c.object(m.backend, 'backend', ['backend', 'device']);
  const backend = { backend: c.string(b.backend, 'backend.backend'), device: c.string(b.device, 'backend.device') };
  const timings: Record<string, number> = Object.fromEntries(
    Object.entries(isObjectMap(c, m.timings, 'timings')).map(([k, v]) => [k, c.number(v, `timings.${k}`, 0)]),
  );
  if (typeof m.createdAt !== 'string' || !ISO_8601.test(m.createdAt) || !Number.isFinite(Date.parse(m.createdAt))) {
    throw c.bad(
      'createdAt',
      `must be an ISO 8601 date-time such as 2025-01-31T12:00:00.000Z, got ${describe(m.createdAt)}`,
    );
  }
  const weights = checkWeights(c, m.weights, model);
  const manifest: ModelManifest = {
    format: MODEL_FORMAT,
    formatVersion: MANIFEST_VERSION,
    name,
    version,
    model,
    vocabulary,
    tokenizer,
    labels: [LABELS[0], LABELS[1]],
    signature: SIGNATURE,
    training,
    metrics,
    backend,
    timings,
    createdAt: m.createdAt,
    weights,
  };
  if (m.runId !== undefined) manifest.runId = c.string(m.runId, 'runId');
  return manifest;
}
