/**
 * One run, start to end, as its worker thread executes it: select the backend, open the data the main thread serves
 * (over gRPC: the data set StartRun prepared, prepared again from its source when the dataset service forgot it),
 * train with checkpoints (resuming from the newest one), export the best epoch to the model repository. Progress and the outcome are
 * posted as FromWorker messages; exactly one of done / failed / aborted is posted last.
 */
import type { MessagePort } from 'node:worker_threads';
import { selectBackend, type BackendInfo } from '@ch8/backend/select';
import { CancelledError } from '@ch8/errors';
import type { ExportHooks } from '@ch8/model-repository/repository';
import { codeName, statusOf } from '@ch8/service-kit/status';
import { directoryCheckpointStore } from '@ch8/training/checkpoints';
import type { DataFeed } from '@ch8/training/feed';
import { exportRun } from '@ch8/training/export';
import { portFeed } from '@ch8/training/port-feed';
import { train, type CheckpointStore } from '@ch8/training/run';
import type { CrossError, FromWorker, RunJob } from './protocol.ts';

/** An error as it crosses the thread: typed errors keep their message, anything else is INTERNAL (its message stays in the log). */
export function crossError(e: unknown): CrossError {
  const s = statusOf(e);
  const name = e instanceof Error ? e.name : typeof e;
  return { name, message: s.internal ? 'internal error' : s.details, code: codeName(s.code) };
}

function exportHooks(job: RunJob, signal: AbortSignal): ExportHooks {
  const injected = (where: string): Error =>
    Object.assign(new Error(`EIO: i/o error, write (injected ${where} by the trainer's test fault)`), { code: 'EIO' });
  return {
    afterWrite: () => {
      if (job.exportFault === 'after-write') throw injected('after a write');
    },
    beforeRename: () => {
      if (job.exportFault === 'before-rename') throw injected('before the rename');
      // A cancel that arrives while the version is written still leaves nothing in the repository.
      if (signal.aborted) throw new CancelledError('cancelled before the export was complete');
    },
  };
}

/** `feedPort`: where the main thread serves the run's data (runner.ts); the worker trains from it. */
export async function executeRun(
  job: RunJob,
  feedPort: MessagePort,
  signal: AbortSignal,
  post: (m: FromWorker) => void,
): Promise<void> {
  const log = (level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>): void =>
    post({ type: 'log', level, msg, ...(fields === undefined ? {} : { fields }) });
  let phase = 'backend selection';
  let feed: DataFeed | undefined;
  try {
    const prefer = job.config.backend === 'auto' ? job.defaultBackend : job.config.backend;
    const backend: BackendInfo = await selectBackend({ prefer, log: (line) => log('debug', line) });
    post({ type: 'backend', backend: backend.backend, device: backend.device });
    if (signal.aborted) throw new CancelledError('cancelled');

    phase = 'data';
    feed = await portFeed(feedPort, { signal, log: (line) => post({ type: 'message', text: line }) });
    if (feed.info.datasetId !== null) post({ type: 'dataset', datasetId: feed.info.datasetId });

    phase = 'training';
    const store = directoryCheckpointStore(job.checkpointDir, { log: (line) => log('warn', line) });
    const checkpoints: CheckpointStore = {
      load: async () => {
        const c = await store.load();
        post({ type: 'restored', epoch: c?.epoch ?? 0, history: c?.history ?? [] });
        return c;
      },
      save: (c) => store.save(c),
    };
    const result = await train(job.config, feed, {
      signal,
      checkpoints,
      events: {
        onStep: (step) => post({ type: 'step', step }),
        onEpoch: (epoch) => post({ type: 'epoch', epoch }),
        onMessage: (text) => post({ type: 'message', text }),
      },
    });

    phase = 'export';
    if (signal.aborted) throw new CancelledError('cancelled');
    const exported = await exportRun(job.modelRepository, result, {
      feed: feed.info,
      backend,
      runId: job.runId,
      ...(job.prepare === null ? {} : { data: { source: job.prepare } }),
      hooks: exportHooks(job, signal),
    });
    post({
      type: 'done',
      summary: {
        epochs: result.epochs,
        bestEpoch: result.bestEpoch,
        devAccuracy: result.devAccuracy,
        splits: result.splits,
        dataWaitShare: result.dataWaitShare,
        resumedFromEpoch: result.resumedFromEpoch,
        stopReason: result.stopReason,
        seconds: result.seconds,
      },
      exported: { name: exported.name, version: exported.version, path: exported.path },
    });
  } catch (e) {
    if (signal.aborted) {
      post({ type: 'aborted' });
    } else {
      const error = crossError(e);
      if (error.code === 'INTERNAL') {
        const err = e instanceof Error ? { name: e.name, message: e.message, stack: e.stack } : String(e);
        log('error', `the run failed during ${phase} with an unexpected error`, { err });
      }
      post({ type: 'failed', error, phase });
    }
  } finally {
    await feed?.close().catch(() => undefined);
    // Also when the feed never opened: an open port would keep this thread alive.
    feedPort.close();
  }
}
