/**
 * Save and load a model directory without tfjs-node: `manifest.json` (format, resolved config, vocabulary hash,
 * caller metadata, weight table with a SHA-256 of the weights) and `weights.bin` (little-endian float32, in the
 * manifest's order). Writes go to a temporary sibling directory that is renamed into place, so a reader never sees
 * a half-written model. Loading gives bit-identical predictions on the same backend.
 */
import { createHash } from 'node:crypto';
import { chmod, mkdir, mkdtemp, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { endianness } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import {
  AlreadyExistsError,
  InvalidInputError,
  NotFoundError,
  VocabularyMismatchError,
  isKnownError,
} from '@ch8/errors';
import { resolveConfig, type ModelConfig } from './config.ts';
import { SentimentModel, type NamedWeight } from './model.ts';

export const MODEL_FORMAT = 'ch8-sentiment-model';
export const MODEL_FORMAT_VERSION = 1;
export const MANIFEST_FILE = 'manifest.json';
export const WEIGHTS_FILE = 'weights.bin';

export interface WeightEntry {
  name: string;
  shape: number[];
  /** Byte offset in weights.bin. */
  offset: number;
  /** Number of float32 values. */
  length: number;
}

export interface ModelManifest {
  format: typeof MODEL_FORMAT;
  formatVersion: number;
  config: ModelConfig;
  /** Hash of the vocabulary the ids refer to (the embeddings package's), or null when not given. */
  vocabHash: string | null;
  /** Whatever the caller stores: vocabulary file, tokenizer spec, metrics, training config... */
  metadata: Record<string, unknown>;
  weights: { file: string; byteLength: number; sha256: string; dtype: 'float32'; entries: WeightEntry[] };
}

export interface SaveOptions {
  vocabHash?: string;
  metadata?: Record<string, unknown>;
  /** Replace an existing directory (atomically: the old one is moved aside, then removed). Default false. */
  overwrite?: boolean;
}

export interface LoadOptions {
  /** Refuse (VocabularyMismatchError) a model saved for another vocabulary. */
  expectedVocabHash?: string;
}

function toLittleEndian(bytes: Buffer): Buffer {
  if (endianness() === 'LE') return bytes;
  return Buffer.from(bytes).swap32();
}

/** Writes `model` to directory `dir` atomically; returns the manifest written. */
export async function saveModel(model: SentimentModel, dir: string, options: SaveOptions = {}): Promise<ModelManifest> {
  const target = resolve(dir);
  const parent = dirname(target);
  await mkdir(parent, { recursive: true });
  if (!options.overwrite && (await exists(target))) {
    throw new AlreadyExistsError('model directory already exists (pass overwrite: true to replace it)', { file: target });
  }
  // Asynchronous read: saving works on every backend, webgpu included.
  const weights = await model.getWeightsAsync();
  const entries: WeightEntry[] = [];
  let offset = 0;
  for (const w of weights) {
    entries.push({ name: w.name, shape: w.shape, offset, length: w.values.length });
    offset += w.values.length * 4;
  }
  const data = Buffer.alloc(offset);
  for (let i = 0; i < weights.length; i++) {
    const w = weights[i]!;
    data.set(new Uint8Array(w.values.buffer, w.values.byteOffset, w.values.byteLength), entries[i]!.offset);
  }
  const bytes = toLittleEndian(data);
  const manifest: ModelManifest = {
    format: MODEL_FORMAT,
    formatVersion: MODEL_FORMAT_VERSION,
    config: model.config,
    vocabHash: options.vocabHash ?? null,
    metadata: options.metadata ?? {},
    weights: {
      file: WEIGHTS_FILE,
      byteLength: bytes.length,
      sha256: createHash('sha256').update(bytes).digest('hex'),
      dtype: 'float32',
      entries,
    },
  };
  const tmp = await mkdtemp(join(parent, `.${basename(target)}.tmp-`));
  try {
    // mkdtemp creates 0700; a model directory is read by other processes (the gateway), possibly as another user.
    await chmod(tmp, 0o755);
    await writeDurably(join(tmp, WEIGHTS_FILE), bytes);
    await writeDurably(join(tmp, MANIFEST_FILE), Buffer.from(JSON.stringify(manifest, null, 2) + '\n'));
    if (await exists(target)) {
      const old = await mkdtemp(join(parent, `.${basename(target)}.old-`));
      await rename(target, join(old, 'model'));
      await rename(tmp, target);
      await rm(old, { recursive: true, force: true });
    } else {
      await rename(tmp, target);
    }
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
  return manifest;
}

async function writeDurably(file: string, bytes: Buffer): Promise<void> {
  const fh = await open(file, 'w');
  try {
    await fh.writeFile(bytes);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

async function readOrThrow(file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new NotFoundError('file not found', { file }, { cause: e });
    if (code === 'EISDIR') throw new InvalidInputError('is a directory, expected a file', { file }, { cause: e });
    throw e;
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Reads and validates `manifest.json` of a model directory. */
export async function readManifest(dir: string): Promise<ModelManifest> {
  const file = join(resolve(dir), MANIFEST_FILE);
  const text = (await readOrThrow(file)).toString('utf8');
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new InvalidInputError(`not valid JSON: ${(e as Error).message}`, { file }, { cause: e });
  }
  const bad = (field: string, message: string): InvalidInputError => new InvalidInputError(message, { file, field });
  if (!isRecord(raw)) throw bad('manifest', 'must be a JSON object');
  if (raw.format !== MODEL_FORMAT) throw bad('format', `expected ${MODEL_FORMAT}, got ${JSON.stringify(raw.format)}`);
  if (raw.formatVersion !== MODEL_FORMAT_VERSION) {
    throw bad('formatVersion', `unsupported version ${JSON.stringify(raw.formatVersion)} (this reader: ${MODEL_FORMAT_VERSION})`);
  }
  if (!isRecord(raw.config)) throw bad('config', 'must be an object');
  let config: ModelConfig;
  try {
    config = resolveConfig(raw.config as unknown as ModelConfig);
  } catch (e) {
    if (e instanceof InvalidInputError) throw bad(`config.${e.field ?? ''}`, e.detail);
    throw e;
  }
  if (raw.vocabHash !== null && typeof raw.vocabHash !== 'string') throw bad('vocabHash', 'must be a string or null');
  if (raw.metadata !== undefined && !isRecord(raw.metadata)) throw bad('metadata', 'must be an object');
  const w = raw.weights;
  if (!isRecord(w)) throw bad('weights', 'must be an object');
  if (w.file !== WEIGHTS_FILE) throw bad('weights.file', `expected ${WEIGHTS_FILE}`);
  if (w.dtype !== 'float32') throw bad('weights.dtype', 'only float32 is supported');
  if (typeof w.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(w.sha256)) throw bad('weights.sha256', 'must be a hex SHA-256');
  if (typeof w.byteLength !== 'number' || !Number.isInteger(w.byteLength) || w.byteLength < 0) {
    throw bad('weights.byteLength', 'must be a non-negative integer');
  }
  if (!Array.isArray(w.entries)) throw bad('weights.entries', 'must be a list');
  const entries: WeightEntry[] = w.entries.map((e: unknown, i: number) => {
    const field = `weights.entries[${i}]`;
    if (!isRecord(e) || typeof e.name !== 'string' || !Array.isArray(e.shape)) throw bad(field, 'needs name and shape');
    const shape = e.shape as unknown[];
    if (!shape.every((n) => typeof n === 'number' && Number.isInteger(n) && n >= 0)) throw bad(`${field}.shape`, 'bad shape');
    const length = (shape as number[]).reduce((a, b) => a * b, 1);
    if (e.length !== length) throw bad(`${field}.length`, `must be ${length} (product of the shape)`);
    if (typeof e.offset !== 'number' || !Number.isInteger(e.offset) || e.offset < 0 || e.offset % 4 !== 0) {
      throw bad(`${field}.offset`, 'must be a non-negative multiple of 4');
    }
    if (e.offset + length * 4 > (w.byteLength as number)) throw bad(field, 'extends past the end of the weights');
    return { name: e.name, shape: shape as number[], offset: e.offset, length };
  });
  return {
    format: MODEL_FORMAT,
    formatVersion: MODEL_FORMAT_VERSION,
    config,
    vocabHash: (raw.vocabHash as string | null | undefined) ?? null,
    metadata: (raw.metadata as Record<string, unknown> | undefined) ?? {},
    weights: { file: WEIGHTS_FILE, byteLength: w.byteLength, sha256: w.sha256, dtype: 'float32', entries },
  };
}

/** Loads a model directory written by `saveModel`. Missing files: NotFoundError; corrupt ones: InvalidInputError. */
export async function loadModel(
  dir: string,
  options: LoadOptions = {},
): Promise<{ model: SentimentModel; manifest: ModelManifest }> {
  const manifest = await readManifest(dir);
  if (options.expectedVocabHash !== undefined && manifest.vocabHash !== options.expectedVocabHash) {
    throw new VocabularyMismatchError(
      `model was saved for vocabulary ${String(manifest.vocabHash)}, expected ${options.expectedVocabHash}`,
      { file: join(resolve(dir), MANIFEST_FILE), field: 'vocabHash' },
    );
  }
  const file = join(resolve(dir), WEIGHTS_FILE);
  const bytes = await readOrThrow(file);
  if (bytes.length !== manifest.weights.byteLength) {
    throw new InvalidInputError(`has ${bytes.length} bytes, manifest says ${manifest.weights.byteLength}`, { file });
  }
  if (createHash('sha256').update(bytes).digest('hex') !== manifest.weights.sha256) {
    throw new InvalidInputError('SHA-256 does not match the manifest (corrupt or replaced)', { file, field: 'sha256' });
  }
  const host = endianness() === 'LE' ? bytes : Buffer.from(bytes).swap32();
  const aligned = new Uint8Array(host.length);
  aligned.set(host);
  const weights: NamedWeight[] = manifest.weights.entries.map((e) => ({
    name: e.name,
    shape: e.shape,
    values: new Float32Array(aligned.buffer, e.offset, e.length),
  }));
  const model = new SentimentModel(manifest.config);
  try {
    model.setWeights(weights);
  } catch (e) {
    model.dispose();
    if (isKnownError(e)) throw new InvalidInputError(`weights do not fit the config: ${e.message}`, { file }, { cause: e });
    throw e;
  }
  return { model, manifest };
}
