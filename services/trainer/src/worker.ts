/**
 * Entry of a run's worker thread (started by runner.ts): executes the RunJob given as workerData and posts its
 * progress; a `cancel` or `interrupt` message from the main thread aborts the run within one batch.
 */
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { executeRun } from './execute.ts';
import type { FromWorker, RunJob, ToWorker } from './protocol.ts';

const port = parentPort;
if (port === null) throw new Error('worker.ts runs as a worker thread (see runner.ts)');
const controller = new AbortController();
port.on('message', (m: ToWorker) => controller.abort(m.type));
const { feedPort, ...job } = workerData as RunJob & { feedPort: MessagePort };
await executeRun(job, feedPort, controller.signal, (m: FromWorker) => port.postMessage(m));
