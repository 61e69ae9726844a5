/**
 * Starts a run's worker thread. The worker loads TypeScript itself: a tiny bootstrap registers tsx's loader inside
 * the new thread, then imports worker.ts. (Node 20 does not apply `--import tsx` hooks to a worker's entry module,
 * so `execArgv: ['--import', 'tsx']` alone fails with ERR_UNKNOWN_FILE_EXTENSION.) This works the same under
 * `node --import tsx`, `tsx` and `node --import tsx --test`.
 */
import { Worker } from 'node:worker_threads';
import type { FromWorker, RunJob, ToWorker } from './protocol.ts';

const TSX_API = import.meta.resolve('tsx/esm/api');
const ENTRY = new URL('./worker.ts', import.meta.url).href;
const BOOTSTRAP = `import(${JSON.stringify(TSX_API)}).then(({ register }) => { register(); return import(${JSON.stringify(ENTRY)}); })`;

export interface RunWorker {
  send(message: ToWorker): void;
  /** Stops the thread at once. */
  terminate(): Promise<void>;
}

export interface WorkerCallbacks {
  onMessage(message: FromWorker): void;
  /** The thread ended (after terminate, a crash, or an error thrown outside the run). */
  onExit(exitCode: number, error: Error | undefined): void;
}

export function startWorker(job: RunJob, callbacks: WorkerCallbacks): RunWorker {
  const worker = new Worker(BOOTSTRAP, { eval: true, execArgv: [], workerData: job });
  let error: Error | undefined;
  worker.on('message', (m: FromWorker) => callbacks.onMessage(m));
  worker.on('error', (e) => (error = e));
  worker.on('exit', (code) => callbacks.onExit(code, error));
  return {
    send: (message) => worker.postMessage(message),
    terminate: async () => {
      await worker.terminate();
    },
  };
}
