/**
 * Checkpoints of a run in a directory: one file per completed epoch (`epoch-<n>.ckpt`), written beside and renamed
 * into place, the two newest kept. A file is a magic, a JSON header (run key, epoch, history, best epoch, patience
 * and learning-rate state), the model's training state (@ch8/models/checkpoint), the best epoch's weights and the
 * running weight average (when the run averages), then a SHA-256 of all of it. Loading takes the newest file that verifies; a corrupt newest file falls back to the one
 * before, and when every file is corrupt the load fails naming them.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { FailedPreconditionError, InvalidInputError } from '@ch8/errors';
import { decodeTrainingState, encodeTrainingState } from '@ch8/models/checkpoint';
import type { NamedWeight } from '@ch8/models/model';
import type { Checkpoint, CheckpointStore } from './run.ts';

const MAGIC = Buffer.from('CH8CKPT\x01', 'latin1');
const FILE = /^epoch-(\d+)\.ckpt$/;
const KEEP = 2;

interface Header {
  key: string;
  epoch: number;
  history: Checkpoint['history'];
  best: {
    epoch: number;
    devAccuracy: number;
    weights: Array<{ name: string; shape: number[]; length: number }>;
  } | null;
  /** The weight average's layout (its floats follow the best weights'); absent or null: none. */
  average?: Array<{ name: string; shape: number[]; length: number }> | null;
  badEpochs: number;
  learningRate: number;
  stateBytes: number;
}

/** Serializes a checkpoint (little-endian floats). */
export function encodeCheckpoint(c: Checkpoint): Buffer {
  const state = encodeTrainingState(c.state);
  const best = c.best?.weights ?? [];
  const average = c.average ?? [];
  const weights = [...best, ...average];
  const layout = (ws: NamedWeight[]): Array<{ name: string; shape: number[]; length: number }> =>
    ws.map((w) => ({ name: w.name, shape: w.shape, length: w.values.length }));
  const header: Header = {
    key: c.key,
    epoch: c.epoch,
    history: c.history,
    best:
      c.best === null
        ? null
        : {
            epoch: c.best.epoch,
            devAccuracy: c.best.devAccuracy,
            weights: layout(best),
          },
    average: c.average === null ? null : layout(average),
    badEpochs: c.badEpochs,
    learningRate: c.learningRate,
    stateBytes: state.length,
  };
  const json = Buffer.from(JSON.stringify(header));
  const floats = weights.reduce((n, w) => n + w.values.length, 0);
  const body = Buffer.alloc(MAGIC.length + 4 + json.length + state.length + floats * 4);
  let o = MAGIC.copy(body, 0);
  o = body.writeUInt32LE(json.length, o);
  o += json.copy(body, o);
  o += state.copy(body, o);
  for (const w of weights) {
    for (let i = 0; i < w.values.length; i++) o = body.writeFloatLE(w.values[i]!, o);
  }
  return Buffer.concat([body, createHash('sha256').update(body).digest()]);
}

/** Parses and verifies a checkpoint; anything wrong -> InvalidInputError naming the file. */
export function decodeCheckpoint(bytes: Buffer, file: string): Checkpoint {
  const bad = (why: string): InvalidInputError => new InvalidInputError(`not a valid checkpoint: ${why}`, { file });
  if (bytes.length < MAGIC.length + 4 + 32) throw bad('too short');
  if (!bytes.subarray(0, MAGIC.length).equals(MAGIC)) throw bad('wrong magic');
  const body = bytes.subarray(0, bytes.length - 32);
  if (
    !createHash('sha256')
      .update(body)
      .digest()
      .equals(bytes.subarray(bytes.length - 32))
  )
    throw bad('SHA-256 mismatch (truncated or corrupt)');
  const jsonLength = body.readUInt32LE(MAGIC.length);
  let o = MAGIC.length + 4;
  if (o + jsonLength > body.length) throw bad('header past the end');
  let header: Header;
  try {
    header = JSON.parse(body.subarray(o, o + jsonLength).toString('utf8')) as Header;
  } catch (e) {
    throw bad(`header is not JSON (${(e as Error).message})`);
  }
  o += jsonLength;
  if (
    typeof header.key !== 'string' ||
    !Number.isInteger(header.epoch) ||
    !Array.isArray(header.history) ||
    !Number.isInteger(header.stateBytes)
  ) {
    throw bad('header fields missing');
  }
  if (o + header.stateBytes > body.length) throw bad('state past the end');
  const state = decodeTrainingState(body.subarray(o, o + header.stateBytes), file);
  o += header.stateBytes;
  const readWeights = (layout: Array<{ name: string; shape: number[]; length: number }>): NamedWeight[] => {
    if (!Array.isArray(layout)) throw bad('weight layout is not a list');
    const weights: NamedWeight[] = [];
    for (const w of layout) {
      if (!Number.isSafeInteger(w.length) || w.length < 0 || o + w.length * 4 > body.length)
        throw bad(`weight ${w.name} past the end`);
      const values = new Float32Array(w.length);
      for (let i = 0; i < w.length; i++, o += 4) values[i] = body.readFloatLE(o);
      weights.push({ name: w.name, shape: w.shape, values });
    }
    return weights;
  };
  let best: Checkpoint['best'] = null;
  if (header.best !== null) {
    const weights = readWeights(header.best.weights);
    best = { epoch: header.best.epoch, devAccuracy: header.best.devAccuracy ?? Number.NaN, weights };
  }
  const average = header.average === undefined || header.average === null ? null : readWeights(header.average);
  if (o !== body.length) throw bad('trailing bytes');
  return {
    key: header.key,
    epoch: header.epoch,
    history: header.history,
    best,
    average,
    badEpochs: header.badEpochs,
    learningRate: header.learningRate,
    state,
  };
}

/** Test hooks: inject a failure while a checkpoint is written. */
export interface CheckpointHooks {
  beforeRename?: (tmp: string) => void | Promise<void>;
}

/** A checkpoint store in `dir` (created on first save). `log` hears about skipped corrupt files. */
export function directoryCheckpointStore(
  dir: string,
  options: { log?: (line: string) => void; hooks?: CheckpointHooks } = {},
): CheckpointStore & { files(): Promise<string[]> } {
  const files = async (): Promise<string[]> => {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    return names
      .map((n) => ({ n, m: FILE.exec(n) }))
      .filter((x) => x.m !== null)
      .sort((a, b) => Number(b.m![1]) - Number(a.m![1]))
      .map((x) => join(dir, x.n));
  };
  return {
    files,
    async load() {
      const all = await files();
      const problems: string[] = [];
      for (const f of all) {
        try {
          return decodeCheckpoint(await readFile(f), f);
        } catch (e) {
          problems.push((e as Error).message);
          options.log?.(`skipping a checkpoint that does not verify: ${(e as Error).message}`);
        }
      }
      if (all.length > 0)
        throw new FailedPreconditionError(`no checkpoint verifies: ${problems.join('; ')}`, { file: dir });
      return undefined;
    },
    async save(c) {
      await mkdir(dir, { recursive: true });
      const target = join(dir, `epoch-${c.epoch}.ckpt`);
      const tmp = join(dir, `.tmp-${randomBytes(6).toString('hex')}`);
      try {
        const fh = await open(tmp, 'w');
        try {
          await fh.writeFile(encodeCheckpoint(c));
          await fh.sync();
        } finally {
          await fh.close();
        }
        await options.hooks?.beforeRename?.(tmp);
        await rename(tmp, target);
      } catch (e) {
        await rm(tmp, { force: true });
        throw e;
      }
      for (const old of (await files()).slice(KEEP)) await rm(old, { force: true });
    },
  };
}
