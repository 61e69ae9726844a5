/**
 * Starts a run's worker thread. The worker loads TypeScript itself: a tiny bootstrap registers tsx's loader inside
 * the new thread, then imports worker.ts. (Node 20 does not apply `--import tsx` hooks to a worker's entry module,
 * so `execArgv: ['--import', 'tsx']` alone fails with ERR_UNKNOWN_FILE_EXTENSION.) This works the same under
 * `node --import tsx`, `tsx` and `node --import tsx --test`.
 */
import { MessageChannel, Worker } from 'node:worker_threads';
import { fromJson } from '@bufbuild/protobuf';
import { DatasetService, PrepareDatasetRequestSchema } from '@ch8/contracts/dataset';
import { EmbeddingService } from '@ch8/contracts/embedding';
import { createClient } from '@ch8/service-kit/client';
import { openGrpcFeed } from '@ch8/training/grpc-feed';
import { portLog, serveFeed } from '@ch8/training/port-feed';
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

/**
 * The run's data is served from this (the main) thread: its event loop receives the gRPC streams and decodes the
 * Arrow batches, the worker only trains, each batch handed over as one transferred buffer (@ch8/training/port-feed).
 * The main thread is otherwise idle while runs train, so the data work takes the second core, not the training one.
 */
export function startWorker(job: RunJob, callbacks: WorkerCallbacks): RunWorker {
  const { port1, port2 } = new MessageChannel();
  const embedding = createClient(EmbeddingService, job.embeddingAddress);
  const dataset = createClient(DatasetService, job.datasetAddress);
  const feedAbort = new AbortController();
  const prepare = job.prepare === null ? undefined : fromJson(PrepareDatasetRequestSchema, job.prepare);
  const stopServing = serveFeed(port1, () =>
    openGrpcFeed({
      embedding,
      dataset,
      datasetId: job.datasetId,
      ...(prepare === undefined ? {} : { prepare }),
      signal: feedAbort.signal,
      log: portLog(port1),
    }),
  );
  const worker = new Worker(BOOTSTRAP, {
    eval: true,
    execArgv: [],
    workerData: { ...job, feedPort: port2 },
    transferList: [port2],
  });
  let error: Error | undefined;
  worker.on('message', (m: FromWorker) => callbacks.onMessage(m));
  worker.on('error', (e) => (error = e));
  worker.on('exit', (code) => {
    feedAbort.abort();
    stopServing();
    embedding.close();
    dataset.close();
    callbacks.onExit(code, error);
  });
  return {
    send: (message) => worker.postMessage(message),
    terminate: async () => {
      await worker.terminate();
    },
  };
}
