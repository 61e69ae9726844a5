/**
 * A model's training state (`SentimentModel.getTrainingState()`) as bytes, so a training run can resume after a
 * crash and end bit-identical to an uninterrupted run.
 *
 * Layout (self-describing): the magic `CH8STATE`, a little-endian uint32 header length, the header (UTF-8 JSON,
 * space-padded to a multiple of 8 bytes: format, version, config, step, the optimizers' scalars and a table of
 * arrays with dtype, length and byte offset), the arrays' data (little-endian float32 / int32, each at a multiple
 * of 8 bytes), then the SHA-256 of everything before it (32 bytes). Decoding checks all of it.
 */
import { createHash } from 'node:crypto';
import { endianness } from 'node:os';
import { InvalidInputError, isInvalidInput } from '@ch8/errors';
import { resolveConfig, type ModelConfig } from './config.ts';
import type { TrainingState } from './model.ts';
import { buildNet } from './nets.ts';

export type { TrainingState, DenseAdamState, SparseAdamState } from './model.ts';

export const TRAINING_STATE_FORMAT = 'ch8-training-state';
export const TRAINING_STATE_VERSION = 1;

const MAGIC = Buffer.from('CH8STATE', 'ascii');
const PREFIX = MAGIC.length + 4;
const DIGEST = 32;
const LITTLE_ENDIAN = endianness() === 'LE';

type Dtype = 'float32' | 'int32';
type NumericArray = Float32Array | Int32Array;

interface ArrayEntry {
  name: string;
  dtype: Dtype;
  length: number;
  /** Byte offset from the start of the data section. */
  offset: number;
}

interface Header {
  format: string;
  formatVersion: number;
  config: ModelConfig;
  step: number;
  learningRate: number;
  adam: { iterations: number; accBeta1: number; accBeta2: number } | null;
  embeddingAdam: { t: number } | null;
  arrays: ArrayEntry[];
  dataBytes: number;
}

const align8 = (n: number): number => Math.ceil(n / 8) * 8;

function littleEndianBytes(a: NumericArray): Uint8Array {
  if (LITTLE_ENDIAN) return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const out = new Uint8Array(a.byteLength);
  const view = new DataView(out.buffer);
  for (let i = 0; i < a.length; i++) {
    if (a instanceof Float32Array) view.setFloat32(i * 4, a[i]!, true);
    else view.setInt32(i * 4, a[i]!, true);
  }
  return out;
}

function readArray(bytes: Uint8Array, start: number, dtype: Dtype, length: number): NumericArray {
  const out = dtype === 'float32' ? new Float32Array(length) : new Int32Array(length);
  const src = bytes.subarray(start, start + length * 4);
  if (LITTLE_ENDIAN) {
    new Uint8Array(out.buffer).set(src);
  } else {
    const view = new DataView(src.buffer, src.byteOffset, src.byteLength);
    for (let i = 0; i < length; i++)
      out[i] = dtype === 'float32' ? view.getFloat32(i * 4, true) : view.getInt32(i * 4, true);
  }
  return out;
}

/** The state as bytes (see the module comment for the layout). */
export function encodeTrainingState(state: TrainingState): Buffer {
  const arrays: [string, NumericArray][] = [
    ['params', state.params],
    ['embeddings', state.embeddings],
  ];
  if (state.adam !== undefined) arrays.push(['adam.m', state.adam.m], ['adam.v', state.adam.v]);
  if (state.embeddingAdam !== undefined) {
    const e = state.embeddingAdam;
    arrays.push(['embeddingAdam.m', e.m], ['embeddingAdam.v', e.v], ['embeddingAdam.last', e.last]);
  }
  let offset = 0;
  const entries: ArrayEntry[] = arrays.map(([name, a]) => {
    const entry: ArrayEntry = { name, dtype: a instanceof Int32Array ? 'int32' : 'float32', length: a.length, offset };
    offset = align8(offset + a.byteLength);
    return entry;
  });
  const header: Header = {
    format: TRAINING_STATE_FORMAT,
    formatVersion: TRAINING_STATE_VERSION,
    config: state.config,
    step: state.step,
    learningRate: state.learningRate,
    adam:
      state.adam === undefined
        ? null
        : { iterations: state.adam.iterations, accBeta1: state.adam.accBeta1, accBeta2: state.adam.accBeta2 },
    embeddingAdam: state.embeddingAdam === undefined ? null : { t: state.embeddingAdam.t },
    arrays: entries,
    dataBytes: offset,
  };
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const headerBytes = align8(PREFIX + json.length) - PREFIX;
  const total = PREFIX + headerBytes + offset + DIGEST;
  const out = Buffer.alloc(total, 0);
  MAGIC.copy(out, 0);
  out.writeUInt32LE(headerBytes, MAGIC.length);
  out.fill(0x20, PREFIX, PREFIX + headerBytes);
  json.copy(out, PREFIX);
  const dataStart = PREFIX + headerBytes;
  arrays.forEach(([, a], i) => out.set(littleEndianBytes(a), dataStart + entries[i]!.offset));
  createHash('sha256')
    .update(out.subarray(0, total - DIGEST))
    .digest()
    .copy(out, total - DIGEST);
  return out;
}

const isRecord = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
const isCount = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x) && x >= 0;

/**
 * Reads {@link encodeTrainingState}'s bytes back. A truncated or corrupted file, another format or version, or
 * arrays that do not fit the config are InvalidInputError with `file` (when given) and the field at fault.
 */
export function decodeTrainingState(bytes: Uint8Array, file?: string): TrainingState {
  const bad = (what: string, field?: string): InvalidInputError =>
    new InvalidInputError(what, { ...(file !== undefined ? { file } : {}), ...(field !== undefined ? { field } : {}) });
  if (!(bytes instanceof Uint8Array)) throw bad('training state must be bytes');
  if (bytes.length < PREFIX + DIGEST) throw bad(`truncated: ${bytes.length} bytes is too short for a training state`);
  if (!MAGIC.equals(bytes.subarray(0, MAGIC.length))) throw bad(`not a training state (no ${MAGIC.toString()} magic)`);
  const body = bytes.subarray(0, bytes.length - DIGEST);
  const digest = createHash('sha256').update(body).digest();
  if (!digest.equals(bytes.subarray(bytes.length - DIGEST))) {
    throw bad('checksum mismatch: the training state is truncated or corrupt', 'sha256');
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerBytes = view.getUint32(MAGIC.length, true);
  if (PREFIX + headerBytes > body.length) throw bad(`header length ${headerBytes} runs past the end`, 'header');
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(bytes.subarray(PREFIX, PREFIX + headerBytes)).toString('utf8'));
  } catch (e) {
    throw new InvalidInputError(
      'header is not JSON',
      { ...(file !== undefined ? { file } : {}), field: 'header' },
      { cause: e },
    );
  }
  if (!isRecord(raw)) throw bad('header must be a JSON object', 'header');
  if (raw.format !== TRAINING_STATE_FORMAT) {
    throw bad(`expected ${TRAINING_STATE_FORMAT}, got ${JSON.stringify(raw.format)}`, 'format');
  }
  if (raw.formatVersion !== TRAINING_STATE_VERSION) {
    throw bad(
      `unsupported version ${JSON.stringify(raw.formatVersion)} (this reader: ${TRAINING_STATE_VERSION})`,
      'formatVersion',
    );
  }
  if (!isRecord(raw.config)) throw bad('must be an object', 'config');
  let config: ModelConfig;
  try {
    config = resolveConfig(raw.config as unknown as ModelConfig);
  } catch (e) {
    if (isInvalidInput(e)) throw bad(e.detail, `config.${e.field ?? ''}`);
    throw e;
  }
  if (!isCount(raw.step)) throw bad('must be a non-negative integer', 'step');
  const lr = raw.learningRate;
  if (typeof lr !== 'number' || !(lr > 0) || !Number.isFinite(lr))
    throw bad('must be a positive number', 'learningRate');
  const dataStart = PREFIX + headerBytes;
  const dataBytes = body.length - dataStart;
  if (raw.dataBytes !== dataBytes)
    throw bad(`says ${String(raw.dataBytes)} data bytes, the file has ${dataBytes}`, 'dataBytes');
  if (!Array.isArray(raw.arrays)) throw bad('must be a list', 'arrays');

  // The lengths the config implies; every array is checked against them.
  const { vocabSize: V, dim: d, finetune } = config;
  const P = buildNet(config)
    .params.map((p) => p.shape.reduce((a, b) => a * b, 1))
    .reduce((a, b) => a + b, 0);
  const expected = new Map<string, [Dtype, number]>([
    ['params', ['float32', P]],
    ['embeddings', ['float32', V * d]],
  ]);
  const adam = raw.adam;
  if (adam !== null) {
    if (!isRecord(adam)) throw bad('must be an object or null', 'adam');
    if (!isCount(adam.iterations) || adam.iterations < 1) throw bad('must be a positive integer', 'adam.iterations');
    for (const k of ['accBeta1', 'accBeta2'] as const) {
      if (typeof adam[k] !== 'number' || !Number.isFinite(adam[k])) throw bad('must be a number', `adam.${k}`);
    }
    expected.set('adam.m', ['float32', P]).set('adam.v', ['float32', P]);
  }
  const sparse = raw.embeddingAdam;
  if (sparse !== null) {
    if (!finetune) throw bad('present, but the config keeps the embeddings frozen', 'embeddingAdam');
    if (!isRecord(sparse) || !isCount(sparse.t))
      throw bad('must be { t } with a non-negative integer t', 'embeddingAdam');
    expected
      .set('embeddingAdam.m', ['float32', V * d])
      .set('embeddingAdam.v', ['float32', V * d])
      .set('embeddingAdam.last', ['int32', config.embeddingOptimizer === 'dense' ? V : 0]);
  }
  const arrays = new Map<string, NumericArray>();
  raw.arrays.forEach((entry: unknown, i: number) => {
    const field = `arrays[${i}]`;
    if (!isRecord(entry) || typeof entry.name !== 'string') throw bad('needs a name', field);
    const want = expected.get(entry.name);
    if (want === undefined) throw bad(`unexpected array ${JSON.stringify(entry.name)}`, `${field}.name`);
    if (arrays.has(entry.name)) throw bad(`${entry.name} given twice`, `${field}.name`);
    const [dtype, length] = want;
    if (entry.dtype !== dtype) throw bad(`${entry.name} must be ${dtype}`, `${field}.dtype`);
    if (entry.length !== length)
      throw bad(`${entry.name} must have ${length} values for this config`, `${field}.length`);
    if (!isCount(entry.offset) || entry.offset % 4 !== 0 || entry.offset + length * 4 > dataBytes) {
      throw bad(`${entry.name}: offset ${String(entry.offset)} is outside the data`, `${field}.offset`);
    }
    arrays.set(entry.name, readArray(bytes, dataStart + entry.offset, dtype, length));
  });
  for (const name of expected.keys()) if (!arrays.has(name)) throw bad(`array ${name} missing`, 'arrays');
  const get = <T extends NumericArray>(name: string): T => arrays.get(name) as T;
  return {
    config,
    step: raw.step,
    learningRate: lr,
    params: get('params'),
    embeddings: get('embeddings'),
    adam: isRecord(adam)
      ? {
          iterations: adam.iterations as number,
          accBeta1: adam.accBeta1 as number,
          accBeta2: adam.accBeta2 as number,
          m: get('adam.m'),
          v: get('adam.v'),
        }
      : undefined,
    embeddingAdam: isRecord(sparse)
      ? { t: sparse.t as number, m: get('embeddingAdam.m'), v: get('embeddingAdam.v'), last: get('embeddingAdam.last') }
      : undefined,
  };
}
