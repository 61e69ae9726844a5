/**
 * The shared memory of a data-parallel run (parallel.ts's primary and parallel-worker.ts's replicas): one control
 * block of int32 words driven with Atomics, the dense parameters and their Adam moments (for a full sync), the
 * summed dense gradient of the last step (every replica applies it), the embedding table, the batch being trained
 * on, and one gradient slot per worker. Nothing large ever crosses a MessagePort; messages carry only errors and
 * "ready".
 */
import type { ModelConfig } from '@ch8/models/config';
import type { ModelBatch } from '@ch8/models/model';

/** Control words (indices into the Int32Array of `ctrl`). */
export const GEN = 0; // bumped by the primary for every command
export const OP = 1; // the command: PART, SYNC or STOP (or none yet)
export const DONE = 2; // workers that finished the current PART or SYNC
export const FAILED = 3; // 0, or the index of a worker that failed
export const ROWS = 4; // batch size of the part
export const COLS = 5; // padded length of the part
export const STEP = 6; // the model's step number (its dropout stream)
export const FIRST = 7; // 1: the first part of a step (fresh dropout stream); 0: the next chunk
export const SEQ = 8; // the PART or SYNC command's number: a worker runs each once
export const APPLIED = 9; // the number of the last summed gradient published (`sum`): replicas apply each once
const CTRL_WORDS = 16;

export const PART = 1;
export const SYNC = 2;
export const STOP = 3;

/** Float64 words of `scalars`: the published sum's examples and learning rate; a SYNC's Adam scalars. */
export const SUM_EXAMPLES = 0;
export const SUM_LEARNING_RATE = 1;
export const SYNC_STEP = 2;
export const SYNC_LEARNING_RATE = 3;
/** 0: no dense Adam state yet (no step taken); else its `iterations`. */
export const SYNC_ITERATIONS = 4;
export const SYNC_BETA1 = 5;
export const SYNC_BETA2 = 6;
const SCALARS = 8;

/** Per worker, in `results` (float64): lossSum, correct, examples, distinct embedding rows. */
export const RESULT_FIELDS = 4;

/** Largest batch the input buffer grows to (ids + labels). */
const MAX_INPUT_BYTES = 1 << 30;

/** A test-only failure injected into a worker (TrainOptions.parallel.fault). */
export interface WorkerFault {
  /** Which worker (1 .. workers - 1; 0 is the training thread itself). */
  worker: number;
  /** At the first part of this model step (0-based). */
  step: number;
  /** `throw`: the part throws (reported like any error of the worker); `exit`: the thread exits without a word. */
  kind: 'throw' | 'exit';
}

export interface SharedBuffers {
  ctrl: SharedArrayBuffer;
  /** float64, SCALARS words. */
  scalars: SharedArrayBuffer;
  /** The dense parameters (a SYNC). */
  theta: SharedArrayBuffer;
  /** The dense Adam moments m then v, 2 x parameters (a SYNC). */
  moments: SharedArrayBuffer;
  /** The summed dense gradient of the last step (of the sum of the losses, over SUM_EXAMPLES examples). */
  sum: SharedArrayBuffer;
  table: SharedArrayBuffer;
  /** Growable: the part's ids (int32 rows x cols) then labels (float32 rows). */
  input: SharedArrayBuffer;
  /** float64, RESULT_FIELDS per worker (index 0 unused). */
  results: SharedArrayBuffer;
  /** Per worker (index 0 unused, empty): its dense gradient, float32 x parameters. */
  grads: SharedArrayBuffer[];
  /** Per worker, growable: its embedding rows (int32 x n) then their gradients (float32 x n x dim). */
  rows: SharedArrayBuffer[];
}

/** What a worker thread is started with (its workerData). */
export interface WorkerInit {
  index: number;
  count: number;
  config: ModelConfig;
  /** The tfjs backend of the primary: the replicas run on the same. */
  backend: 'wasm' | 'cpu';
  buffers: SharedBuffers;
  fault: WorkerFault | null;
}

/** Worker -> primary. */
export type WorkerMessage =
  | { type: 'ready' }
  | { type: 'error'; error: { name: string; message: string; field?: string }; stack: string | undefined };

type GrowableConstructor = new (length: number, options: { maxByteLength: number }) => SharedArrayBuffer;

function growable(length: number, maxByteLength: number): SharedArrayBuffer {
  return new (SharedArrayBuffer as unknown as GrowableConstructor)(length, { maxByteLength });
}

/** Grows a growable SharedArrayBuffer to at least `bytes` (doubling), or throws when past its maximum. */
export function ensureBytes(buffer: SharedArrayBuffer, bytes: number, what: string): void {
  if (buffer.byteLength >= bytes) return;
  const max = (buffer as unknown as { maxByteLength: number }).maxByteLength;
  if (bytes > max) throw new RangeError(`${what} needs ${bytes} bytes of shared memory, more than ${max}`);
  (buffer as unknown as { grow(n: number): void }).grow(Math.min(max, Math.max(bytes, buffer.byteLength * 2)));
}

/** The buffers of `count` replicas of a model with `parameters` dense values; `table` is the shared embedding table. */
export function allocateBuffers(
  count: number,
  parameters: number,
  table: SharedArrayBuffer,
  vocabSize: number,
  dim: number,
  finetune: boolean,
): SharedBuffers {
  const rowBytes = 4 * (vocabSize + vocabSize * dim);
  return {
    ctrl: new SharedArrayBuffer(4 * CTRL_WORDS),
    scalars: new SharedArrayBuffer(8 * SCALARS),
    theta: new SharedArrayBuffer(4 * parameters),
    moments: new SharedArrayBuffer(8 * parameters),
    sum: new SharedArrayBuffer(4 * parameters),
    table,
    input: growable(64 * 1024, MAX_INPUT_BYTES),
    results: new SharedArrayBuffer(8 * RESULT_FIELDS * count),
    grads: Array.from({ length: count }, (_, k) => new SharedArrayBuffer(k === 0 ? 0 : 4 * parameters)),
    rows: Array.from({ length: count }, (_, k) =>
      growable(k === 0 || !finetune ? 0 : Math.min(rowBytes, 64 * 1024), k === 0 || !finetune ? 0 : rowBytes),
    ),
  };
}

/** Writes a part (ids and labels) into the input buffer; its shape goes into the control words by the caller. */
export function writeInput(input: SharedArrayBuffer, batch: ModelBatch): void {
  const n = batch.batchSize * batch.maxLength;
  if (batch.labels === undefined) throw new Error('internal: a training part without labels');
  ensureBytes(input, 4 * (n + batch.batchSize), 'a batch');
  new Int32Array(input, 0, n).set(batch.inputIds);
  new Float32Array(input, 4 * n, batch.batchSize).set(batch.labels);
}

/** The part in the input buffer, as views (the reader copies what it keeps). */
export function readInput(input: SharedArrayBuffer, rows: number, cols: number): ModelBatch {
  const n = rows * cols;
  return {
    inputIds: new Int32Array(input, 0, n),
    batchSize: rows,
    maxLength: cols,
    labels: new Float32Array(input, 4 * n, rows),
  };
}
