/**
 * A model repository on a file system: `<root>/<name>/<version>/{manifest.json,weights.bin}`, versions 1, 2, ...
 *
 * Export writes a version into a temporary sibling `<root>/<name>/.tmp-<random>` (files fsynced), then renames it
 * to the next free version number. A visible version directory is therefore always complete; readers skip every
 * entry that is not a version number. Concurrent exports (in one process or many) race only on the rename, which
 * fails when the target exists and is not empty; the loser rewrites its manifest for the next number and retries,
 * so every export gets its own version and the manifest's `version` always equals its directory's name.
 */
import { createHash, type Hash } from 'node:crypto';
import { chmod, mkdir, mkdtemp, open, readFile, readdir, rename, rm, stat } from 'node:fs/promises';
import type { Dirent } from 'node:fs';
import { endianness } from 'node:os';
import { isDeepStrictEqual } from 'node:util';
import { basename, dirname, join, resolve } from 'node:path';
import { InvalidInputError, NotFoundError, VocabularyMismatchError, isKnownError } from '@ch8/errors';
import { resolveConfig, type ModelConfig } from '@ch8/models/config';
import type { NamedWeight, SentimentModel } from '@ch8/models/model';
import {
  LABELS,
  MANIFEST_FILE,
  MANIFEST_VERSION,
  MODEL_FORMAT,
  SIGNATURE,
  WEIGHTS_FILE,
  validateManifest,
  type ManifestInput,
  type ModelManifest,
  type WeightEntry,
} from './manifest.ts';
import { MODEL_NAME_PATTERN, checkModelName, parseVersion } from './names.ts';
import { V1_FORMAT_VERSION, convertV1Manifest } from './v1.ts';

export interface ExportHooks {
  /** Called after each file is written into the temporary directory (tests throw here to inject a write error). */
  afterWrite?: (file: string) => void | Promise<void>;
  /** Called just before the temporary directory is renamed into place (tests throw here to simulate a crash). */
  beforeRename?: (tmpDir: string) => void | Promise<void>;
}

export interface ExportOptions {
  hooks?: ExportHooks;
  /** Field named when `name` is refused (default `name`; a service passes its request field, e.g. `export_name`). */
  nameField?: string;
}

export interface ExportedVersion {
  name: string;
  version: number;
  /** Absolute path of the version directory. */
  path: string;
  manifest: ModelManifest;
}

/** Prefix of the temporary directories export writes into (inside `<root>/<name>/`); readers ignore them. */
export const TEMP_PREFIX = '.tmp-';

/** Renames given up after this many collisions in a row (only reachable if something keeps creating entries). */
const MAX_RENAME_ATTEMPTS = 10_000;

/** Errors of rename(2) when the target already exists (a non-empty directory, or a file). */
const TARGET_EXISTS = new Set(['ENOTEMPTY', 'EEXIST', 'ENOTDIR', 'EISDIR']);

function littleEndianBytes(values: Float32Array): Uint8Array {
  const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  return endianness() === 'LE' ? bytes : Buffer.from(bytes).swap32();
}

function checkWeights(weights: readonly NamedWeight[]): void {
  const list: unknown = weights;
  if (!Array.isArray(list)) throw new InvalidInputError('must be a list of named weights', { field: 'weights' });
  const seen = new Set<string>();
  weights.forEach((w, i) => {
    const field = `weights[${i}]`;
    if (typeof w?.name !== 'string' || w.name === '') throw new InvalidInputError('needs a name', { field });
    if (seen.has(w.name)) throw new InvalidInputError(`weight ${w.name} occurs twice`, { field });
    seen.add(w.name);
    const shape: unknown = w.shape;
    if (!Array.isArray(shape) || !shape.every((n) => Number.isSafeInteger(n) && n >= 0)) {
      throw new InvalidInputError(`weight ${w.name}: shape must be a list of non-negative integers`, { field });
    }
    const n = w.shape.reduce((a, b) => a * b, 1);
    if (!(w.values instanceof Float32Array) || w.values.length !== n) {
      throw new InvalidInputError(
        `weight ${w.name}: values must be a Float32Array of ${n} values (shape ${w.shape.join('x')})`,
        {
          field,
        },
      );
    }
  });
}

async function syncDir(dir: string): Promise<void> {
  let fh;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch (e) {
    // Some platforms cannot open or fsync a directory; the rename is still atomic there.
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EPERM' && code !== 'EINVAL' && code !== 'EBADF') throw e;
  } finally {
    await fh?.close();
  }
}

async function writeManifestFile(file: string, manifest: ModelManifest): Promise<void> {
  const fh = await open(file, 'w', 0o644);
  try {
    await fh.writeFile(JSON.stringify(manifest, null, 2) + '\n');
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function writeWeightsFile(file: string, weights: readonly NamedWeight[]): Promise<void> {
  const fh = await open(file, 'w', 0o644);
  try {
    for (const w of weights) {
      const bytes = littleEndianBytes(w.values);
      let done = 0;
      while (done < bytes.length) done += (await fh.write(bytes, done, bytes.length - done)).bytesWritten;
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Entries of a directory; a missing directory has none. */
async function entriesOf(dir: string): Promise<Dirent[]> {
  try {
    return await readdir(dir, { withFileTypes: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return [];
    if (code === 'ENOTDIR') throw new InvalidInputError('is not a directory', { file: dir }, { cause: e });
    throw e;
  }
}

async function isDirectory(dir: string, entry: Dirent): Promise<boolean> {
  if (entry.isDirectory()) return true;
  if (!entry.isSymbolicLink()) return false;
  try {
    return (await stat(join(dir, entry.name))).isDirectory();
  } catch {
    return false;
  }
}

/** Version numbers of the version directories in a model directory, ascending. */
async function versionsIn(modelDir: string): Promise<number[]> {
  const out: number[] = [];
  for (const e of await entriesOf(modelDir)) {
    const v = parseVersion(e.name);
    if (v !== undefined && (await isDirectory(modelDir, e))) out.push(v);
  }
  return out.sort((a, b) => a - b);
}

/** The largest version-like name in a model directory, whatever the entry is (so a stray file `7` is skipped too). */
async function highestTaken(modelDir: string): Promise<number> {
  let max = 0;
  for (const e of await entriesOf(modelDir)) max = Math.max(max, parseVersion(e.name) ?? 0);
  return max;
}

/**
 * Writes a new version of model `name` under `root` and returns it. The version number is the next free one;
 * the version directory appears complete or not at all (on any failure the temporary directory is removed and the
 * error rethrown). Throws InvalidInputError for a bad name, weights or manifest field (checked before anything is
 * written, with the same checks `loadModel` applies), VocabularyMismatchError when the vocabulary hash is not
 * the one its tokens give.
 */
export async function exportModel(
  root: string,
  name: string,
  weights: { config: ModelConfig; weights: NamedWeight[] },
  input: ManifestInput,
  options: ExportOptions = {},
): Promise<ExportedVersion> {
  checkModelName(name, options.nameField ?? 'name');
  checkWeights(weights.weights);
  const entries: WeightEntry[] = [];
  const hash: Hash = createHash('sha256');
  let offset = 0;
  for (const w of weights.weights) {
    entries.push({ name: w.name, shape: [...w.shape], offset, length: w.values.length });
    hash.update(littleEndianBytes(w.values));
    offset += w.values.byteLength;
  }
  const modelDir = join(resolve(root), name);
  const { createdAt, runId, ...rest } = input;
  // Fields the repository owns come last, so an input that is a whole manifest (re-export) cannot override them.
  const draft = {
    ...rest,
    format: MODEL_FORMAT,
    formatVersion: MANIFEST_VERSION,
    name,
    version: (await highestTaken(modelDir)) + 1,
    labels: [...LABELS],
    signature: SIGNATURE,
    createdAt: createdAt ?? new Date().toISOString(),
    ...(runId === undefined ? {} : { runId }),
    weights: { file: WEIGHTS_FILE, byteLength: offset, sha256: hash.digest('hex'), dtype: 'float32', entries },
  };
  // What gets written is exactly what a reader will parse and check: refuse now what loadModel would refuse later.
  const source = `export of model ${JSON.stringify(name)}`;
  let manifest = validateManifest(JSON.parse(JSON.stringify(draft)), source);
  if (!isDeepStrictEqual(manifest.model, resolveConfig(weights.config))) {
    throw new InvalidInputError("differs from the weights' config", { file: source, field: 'model' });
  }

  await mkdir(modelDir, { recursive: true, mode: 0o755 });
  const tmp = await mkdtemp(join(modelDir, TEMP_PREFIX));
  const hooks = options.hooks ?? {};
  try {
    // mkdtemp creates 0700; a version directory is read by other processes (the gateway), possibly as another user.
    await chmod(tmp, 0o755);
    const weightsFile = join(tmp, WEIGHTS_FILE);
    await writeWeightsFile(weightsFile, weights.weights);
    await hooks.afterWrite?.(weightsFile);
    const manifestFile = join(tmp, MANIFEST_FILE);
    await writeManifestFile(manifestFile, manifest);
    await hooks.afterWrite?.(manifestFile);
    await syncDir(tmp);
    await hooks.beforeRename?.(tmp);
    for (let attempt = 1; ; attempt++) {
      const target = join(modelDir, String(manifest.version));
      try {
        await rename(tmp, target);
        await syncDir(modelDir);
        return { name, version: manifest.version, path: target, manifest };
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === undefined || !TARGET_EXISTS.has(code) || attempt >= MAX_RENAME_ATTEMPTS) throw e;
      }
      // Another export took this number first: take the next free one and say so in the manifest.
      const next = Math.max(manifest.version + 1, (await highestTaken(modelDir)) + 1);
      manifest = { ...manifest, version: next };
      await writeManifestFile(manifestFile, manifest);
      await hooks.afterWrite?.(manifestFile);
      await syncDir(tmp);
    }
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** Names of the models under `root` that have at least one version, sorted. A missing root has none. */
export async function listModels(root: string): Promise<string[]> {
  const dir = resolve(root);
  const out: string[] = [];
  for (const e of await entriesOf(dir)) {
    if (!MODEL_NAME_PATTERN.test(e.name) || !(await isDirectory(dir, e))) continue;
    if ((await versionsIn(join(dir, e.name))).length > 0) out.push(e.name);
  }
  return out.sort();
}

/** Versions of model `name` under `root`, ascending (temporary and other entries ignored; none if it is missing). */
export async function listVersions(root: string, name: string): Promise<number[]> {
  checkModelName(name);
  return versionsIn(join(resolve(root), name));
}

async function isFile(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isFile();
  } catch {
    return false;
  }
}

/**
 * The version directory `dir` stands for: `dir` itself when it holds a manifest.json (a version directory, or a
 * formatVersion 1 directory), else its newest version when it is a model directory; NotFoundError otherwise.
 * Returns an absolute path.
 */
export async function resolveModelDir(dir: string): Promise<string> {
  const abs = resolve(dir);
  if (await isFile(join(abs, MANIFEST_FILE))) return abs;
  let versions: number[];
  try {
    versions = await versionsIn(abs);
  } catch (e) {
    if (e instanceof InvalidInputError) versions = [];
    else throw e;
  }
  const newest = versions.at(-1);
  if (newest === undefined) {
    throw new NotFoundError(
      `neither a model version directory (no ${MANIFEST_FILE}) nor a model directory with version subdirectories`,
      { file: abs },
    );
  }
  return join(abs, String(newest));
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

/**
 * Name and version a directory stands for: in the repository layout `<root>/<name>/<version>` they come from the
 * path; a formatVersion 1 directory elsewhere (`ch8 train --out models/cnn`) is version 1 of its directory's name
 * made into a valid model name.
 */
function placeOf(dir: string): { name: string; version: number } | undefined {
  const version = parseVersion(basename(dir));
  const parent = basename(dirname(dir));
  if (version !== undefined && MODEL_NAME_PATTERN.test(parent)) return { name: parent, version };
  return undefined;
}

function nameFromDirectory(dir: string): string {
  const s = basename(dir)
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, '-')
    .replace(/^[^a-z0-9]+/, '')
    .slice(0, 64);
  return MODEL_NAME_PATTERN.test(s) ? s : 'model';
}

/**
 * Reads and checks `manifest.json` of a version directory (see `validateManifest`). When the directory sits in
 * the repository layout, the manifest's name and version must be the directory's. A formatVersion 1 manifest is
 * converted (see README). Missing file: NotFoundError; bad JSON or field: InvalidInputError naming file and field.
 */
export async function readManifest(versionDir: string): Promise<ModelManifest> {
  const dir = resolve(versionDir);
  const file = join(dir, MANIFEST_FILE);
  const bytes = await readOrThrow(file);
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw new InvalidInputError(`not valid JSON: ${(e as Error).message}`, { file }, { cause: e });
  }
  const place = placeOf(dir);
  if (isRecord(raw) && raw.format === MODEL_FORMAT && raw.formatVersion === V1_FORMAT_VERSION) {
    const createdAt = (await stat(file)).mtime.toISOString();
    return convertV1Manifest(raw, file, { ...(place ?? { name: nameFromDirectory(dir), version: 1 }), createdAt });
  }
  const manifest = validateManifest(raw, file);
  if (place !== undefined) {
    if (manifest.version !== place.version) {
      throw new InvalidInputError(`is ${manifest.version} but the directory is version ${place.version}`, {
        file,
        field: 'version',
      });
    }
    if (manifest.name !== place.name) {
      throw new InvalidInputError(
        `is ${JSON.stringify(manifest.name)} but the directory is model ${JSON.stringify(place.name)}`,
        {
          file,
          field: 'name',
        },
      );
    }
  }
  return manifest;
}

/**
 * Loads a version directory: the manifest (every check of `readManifest`), then weights.bin (byte length and
 * SHA-256 against the manifest), then a SentimentModel with those weights (shapes against the config).
 * `expectedVocabHash`: refuse (VocabularyMismatchError) a model trained on another vocabulary.
 * The caller disposes the model.
 */
export async function loadModel(
  versionDir: string,
  options: { expectedVocabHash?: string } = {},
): Promise<{ model: SentimentModel; manifest: ModelManifest }> {
  const dir = resolve(versionDir);
  const manifest = await readManifest(dir);
  const manifestFile = join(dir, MANIFEST_FILE);
  if (options.expectedVocabHash !== undefined && manifest.vocabulary.hash !== options.expectedVocabHash) {
    throw new VocabularyMismatchError(
      `model was trained on vocabulary ${manifest.vocabulary.hash}, expected ${options.expectedVocabHash}`,
      { file: manifestFile, field: 'vocabulary.hash' },
    );
  }
  const file = join(dir, WEIGHTS_FILE);
  const bytes = await readOrThrow(file);
  if (bytes.length !== manifest.weights.byteLength) {
    throw new InvalidInputError(`has ${bytes.length} bytes, the manifest says ${manifest.weights.byteLength}`, {
      file,
      field: 'weights.byteLength',
    });
  }
  if (createHash('sha256').update(bytes).digest('hex') !== manifest.weights.sha256) {
    throw new InvalidInputError('SHA-256 does not match the manifest (corrupt or replaced)', {
      file,
      field: 'weights.sha256',
    });
  }
  // Float32Array views need 4-byte alignment; a read buffer may sit at any offset of a shared pool.
  let host =
    bytes.byteOffset % 4 === 0 ? new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length) : Uint8Array.from(bytes);
  if (endianness() !== 'LE') host = Buffer.from(host).swap32();
  const named: NamedWeight[] = manifest.weights.entries.map((e) => ({
    name: e.name,
    shape: e.shape,
    values: new Float32Array(host.buffer, host.byteOffset + e.offset, e.length),
  }));
  // Imported here, not at the top: exporting and listing never need tfjs (a process that only exports starts fast).
  const { SentimentModel } = await import('@ch8/models/model');
  const model = new SentimentModel(manifest.model);
  try {
    model.setWeights(named);
  } catch (e) {
    model.dispose();
    if (isKnownError(e)) {
      const i = manifest.weights.entries.findIndex((w) => w.name === e.field);
      throw new InvalidInputError(
        `weights do not fit model ${manifest.model.kind}: ${e.detail}`,
        { file: manifestFile, field: i >= 0 ? `weights.entries[${i}]` : 'weights.entries' },
        { cause: e },
      );
    }
    throw e;
  }
  return { model, manifest };
}
