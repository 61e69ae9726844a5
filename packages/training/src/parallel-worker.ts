/**
 * Entry of a data-parallel worker thread (started by parallel.ts): a replica of the model on the shared embedding
 * table. It blocks in Atomics.wait between commands (it has no other work); each time it wakes it first applies
 * the summed dense gradient the primary published since (its own tfjs Adam on its own parameters: the replicas'
 * parameters and dense optimizer state stay equal to the primary's without copying them), then runs the command:
 * PART (the gradients of its share of the part's rows, written into its slot) or SYNC (parameters and dense Adam
 * state loaded from shared memory). It reports an error once, then stops.
 *
 * The replica's embedding optimizer is `lazy` and never sees a row: the primary alone updates the shared table and
 * brings rows up to date before a part (`syncRows`).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { selectBackend } from '@ch8/backend/select';
import { errorToPlain } from '@ch8/errors';
import { createModel, type DropoutStream, type GradientSum, type SentimentModel } from '@ch8/models/model';
import {
  APPLIED,
  COLS,
  DONE,
  FAILED,
  FIRST,
  GEN,
  OP,
  PART,
  RESULT_FIELDS,
  ROWS,
  SEQ,
  STEP,
  STOP,
  SUM_EXAMPLES,
  SUM_LEARNING_RATE,
  SYNC,
  SYNC_BETA1,
  SYNC_BETA2,
  SYNC_ITERATIONS,
  SYNC_LEARNING_RATE,
  SYNC_STEP,
  ensureBytes,
  readInput,
  type WorkerInit,
  type WorkerMessage,
} from './parallel-shared.ts';

const port = parentPort;
if (port === null) throw new Error('parallel-worker.ts runs as a worker thread (see parallel.ts)');
const init = workerData as WorkerInit;
const { index, count, buffers, fault } = init;
const post = (m: WorkerMessage): void => port.postMessage(m);

function writeSlot(g: GradientSum, dim: number): void {
  new Float32Array(buffers.grads[index]!).set(g.grad);
  const rows = g.embeddingGrad?.rows.length ?? 0;
  if (g.embeddingGrad !== undefined && rows > 0) {
    const slot = buffers.rows[index]!;
    ensureBytes(slot, 4 * rows * (1 + dim), 'the embedding rows of a share');
    new Int32Array(slot, 0, rows).set(g.embeddingGrad.rows);
    new Float32Array(slot, 4 * rows, rows * dim).set(g.embeddingGrad.values);
  }
  const r = new Float64Array(buffers.results, 8 * RESULT_FIELDS * index, RESULT_FIELDS);
  r[0] = g.lossSum;
  r[1] = g.correct;
  r[2] = g.examples;
  r[3] = rows;
}

/** The primary's step, applied to the replica's dense parameters (no embedding rows: the primary owns the table). */
function applySum(replica: SentimentModel, scalars: Float64Array, sum: Float32Array): void {
  const learningRate = scalars[SUM_LEARNING_RATE]!;
  if (replica.learningRate !== learningRate) replica.setLearningRate(learningRate);
  replica.applyGradients({ examples: scalars[SUM_EXAMPLES]!, lossSum: 0, correct: 0, grad: sum });
}

/** The primary's parameters and dense Adam state (a SYNC), copied: the cpu backend keeps arrays it is given. */
function sync(replica: SentimentModel, scalars: Float64Array, table: Float32Array): void {
  const P = replica.parameterCount;
  const iterations = scalars[SYNC_ITERATIONS]!;
  replica.setTrainingState({
    config: replica.config,
    step: scalars[SYNC_STEP]!,
    learningRate: scalars[SYNC_LEARNING_RATE]!,
    params: new Float32Array(buffers.theta).slice(),
    // The shared table itself: the primary's rows as they are (setting them is a copy onto themselves).
    embeddings: table,
    adam:
      iterations === 0
        ? undefined
        : {
            iterations,
            accBeta1: scalars[SYNC_BETA1]!,
            accBeta2: scalars[SYNC_BETA2]!,
            m: new Float32Array(buffers.moments, 0, P).slice(),
            v: new Float32Array(buffers.moments, 4 * P, P).slice(),
          },
    embeddingAdam: undefined,
  });
}

async function main(): Promise<void> {
  const ctrl = new Int32Array(buffers.ctrl);
  const scalars = new Float64Array(buffers.scalars);
  const sum = new Float32Array(buffers.sum);
  const table = new Float32Array(buffers.table);
  let replica;
  try {
    await selectBackend({ prefer: init.backend });
    replica = createModel({ ...init.config, embeddingOptimizer: 'lazy' }, { sharedEmbeddings: table });
  } catch (e) {
    post({ type: 'error', error: errorToPlain(e), stack: e instanceof Error ? e.stack : undefined });
    return;
  }
  post({ type: 'ready' });
  let seen = 0;
  let ran = 0;
  let applied = 0;
  let stream: DropoutStream | undefined;
  for (;;) {
    Atomics.wait(ctrl, GEN, seen);
    seen = Atomics.load(ctrl, GEN);
    // The primary writes a command's words, then OP, then SEQ: a new SEQ means the OP read after it is its.
    const seq = Atomics.load(ctrl, SEQ);
    const op = Atomics.load(ctrl, OP);
    if (op === STOP) break;
    let failed = false;
    try {
      const published = Atomics.load(ctrl, APPLIED);
      if (published !== applied) {
        applySum(replica, scalars, sum);
        applied = published;
      }
      if (seq === ran) continue; // woken to apply a sum only
      ran = seq;
      if (op === SYNC) {
        sync(replica, scalars, table);
      } else if (op === PART) {
        const step = ctrl[STEP]!;
        const first = ctrl[FIRST] === 1;
        if (fault !== null && fault.worker === index && fault.step === step && first) {
          if (fault.kind === 'exit') process.exit(70);
          throw new Error(`injected fault: worker ${index} at step ${step}`);
        }
        if (first) stream = replica.dropoutStream(step);
        const part = readInput(buffers.input, ctrl[ROWS]!, ctrl[COLS]!);
        writeSlot(replica.computeGradients(part, { share: { index, count }, stream: stream! }), init.config.dim);
      }
    } catch (e) {
      failed = true;
      post({ type: 'error', error: errorToPlain(e), stack: e instanceof Error ? e.stack : undefined });
      Atomics.store(ctrl, FAILED, index);
    }
    Atomics.add(ctrl, DONE, 1);
    Atomics.notify(ctrl, DONE);
    if (failed) break;
  }
  replica.dispose();
}

await main();
