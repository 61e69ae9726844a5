/**
 * Entry of a data-parallel worker thread (started by parallel.ts): a replica of the model on the shared embedding
 * table. For every part the primary publishes, it loads the shared parameters (first part of a step), computes the
 * gradients of its share of the part's rows and writes them into its slot; nothing else. It blocks in Atomics.wait
 * between parts (it has no other work), and reports an error once, then stops.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { selectBackend } from '@ch8/backend/select';
import { errorToPlain } from '@ch8/errors';
import { createModel, type DropoutStream, type GradientSum } from '@ch8/models/model';
import {
  COLS,
  DONE,
  FAILED,
  FIRST,
  GEN,
  OP,
  PART,
  RESULT_FIELDS,
  ROWS,
  STEP,
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

async function main(): Promise<void> {
  const ctrl = new Int32Array(buffers.ctrl);
  let replica;
  try {
    await selectBackend({ prefer: init.backend });
    replica = createModel(init.config, { sharedEmbeddings: new Float32Array(buffers.table) });
  } catch (e) {
    post({ type: 'error', error: errorToPlain(e), stack: e instanceof Error ? e.stack : undefined });
    return;
  }
  const theta = new Float32Array(buffers.theta);
  post({ type: 'ready' });
  let seen = 0;
  let stream: DropoutStream | undefined;
  for (;;) {
    Atomics.wait(ctrl, GEN, seen);
    seen = Atomics.load(ctrl, GEN);
    if (Atomics.load(ctrl, OP) !== PART) break; // STOP
    let failed = false;
    try {
      const step = ctrl[STEP]!;
      const first = ctrl[FIRST] === 1;
      if (fault !== null && fault.worker === index && fault.step === step && first) {
        if (fault.kind === 'exit') process.exit(70);
        throw new Error(`injected fault: worker ${index} at step ${step}`);
      }
      if (first) {
        replica.setParams(theta);
        stream = replica.dropoutStream(step);
      }
      const part = readInput(buffers.input, ctrl[ROWS]!, ctrl[COLS]!);
      writeSlot(replica.computeGradients(part, { share: { index, count }, stream: stream! }), init.config.dim);
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
