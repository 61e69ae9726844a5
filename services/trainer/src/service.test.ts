/**
 * The trainer's API without training: every bad input of StartRun (against the real dataset service), unknown
 * runs, health, and the run lifecycle (queue, FIFO, concurrency, cancel, restart) with scripted workers standing in
 * for the worker threads (real workers: run.test.ts).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { RunState, type Run } from '@ch8/contracts/trainer';
import { checkHealth, listServices } from '@ch8/service-kit/probes';
import { Code, GrpcError } from '@ch8/service-kit/status';
import { parseTrainerConfig } from './config.ts';
import type { FromWorker, RunJob, ToWorker } from './protocol.ts';
import type { WorkerCallbacks } from './runner.ts';
import {
  SOURCE,
  quickConfig,
  startDeps,
  startTrainer,
  states,
  tempDir,
  watchAll,
  type Deps,
  type Trainer,
} from './test-stack.ts';

const PACKAGE_DIR = dirname(dirname(fileURLToPath(import.meta.url)));
let deps: Deps;
let datasetId: string;

before(async () => {
  deps = await startDeps({ trainRows: 60, devRows: 20 });
  datasetId = (await deps.dataset.prepareDataset(SOURCE)).dataset!.datasetId;
});
after(() => deps.stop());

async function rejects(p: Promise<unknown>, code: Code, field: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof GrpcError, String(e));
    assert.equal(Code[e.code], Code[code], e.details);
    assert.match(e.details, new RegExp(`field ${field.replace('.', '\\.')}\\b`), e.details);
    return true;
  });
}

/** Workers the test drives by hand. */

/** The one epoch a scripted worker reports. */
const EPOCH_ONE = {
  epoch: 1,
  trainLoss: 0.5,
  trainAccuracy: 0.8,
  devLoss: 0.4,
  devAccuracy: 0.9,
  trainExamplesPerSecond: 100,
  seconds: 1,
  trainSeconds: 1,
  dataWaitShare: 0.1,
  learningRate: 0.01,
};

class ScriptedWorkers {
  readonly started: Array<{ job: RunJob; callbacks: WorkerCallbacks; received: ToWorker[] }> = [];
  /** Answer cancel/interrupt as a real worker does (after its current step). */
  autoAbort = true;

  readonly start = (job: RunJob, callbacks: WorkerCallbacks) => {
    const w = { job, callbacks, received: [] as ToWorker[] };
    this.started.push(w);
    let exited = false;
    return {
      send: (m: ToWorker) => {
        w.received.push(m);
        if (this.autoAbort) setImmediate(() => callbacks.onMessage({ type: 'aborted' }));
      },
      terminate: async () => {
        if (!exited) {
          exited = true;
          callbacks.onExit(1, undefined);
        }
      },
    };
  };

  of(runId: string) {
    const w = this.started.findLast((x) => x.job.runId === runId);
    assert.ok(w, `no worker started for ${runId}`);
    return w;
  }

  post(runId: string, m: FromWorker): void {
    this.of(runId).callbacks.onMessage(m);
  }

  succeed(runId: string): void {
    this.post(runId, {
      type: 'epoch',
      epoch: EPOCH_ONE,
    });
    this.post(runId, {
      type: 'done',
      summary: {
        epochs: [EPOCH_ONE],
        bestEpoch: 1,
        devAccuracy: 0.9,
        splits: {
          dev: {
            examples: 10,
            dropped: 0,
            loss: 0.4,
            accuracy: 0.9,
            precision: 1,
            recall: 0.8,
            f1: 0.888,
            confusion: [
              [5, 0],
              [1, 4],
            ],
          },
        },
        dataWaitShare: 0.1,
        resumedFromEpoch: 0,
        stopReason: 'epochs',
        seconds: 1,
      },
      exported: { name: 'bow-frozen', version: 1, path: '/nowhere/bow-frozen/1' },
    });
  }
}

async function state(t: Trainer, runId: string): Promise<RunState> {
  return (await t.client.getRun({ runId })).run!.state;
}

async function eventually(check: () => Promise<boolean>, what: string): Promise<void> {
  const until = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > until) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('config: state and model repository default under CH8_HOME (or the workspace .cache), relative paths resolve against cwd', () => {
  const home = parseTrainerConfig({ CH8_HOME: '/srv/ch8' }, '/anywhere');
  assert.equal(home.modelRepository, '/srv/ch8/models');
  assert.equal(home.stateDir, '/srv/ch8/trainer');
  assert.equal(home.maxConcurrentRuns, 1);
  const workspace = parseTrainerConfig({}, PACKAGE_DIR);
  assert.equal(workspace.modelRepository, join(PACKAGE_DIR, '..', '..', '.cache', 'models'));
  assert.equal(workspace.stateDir, join(PACKAGE_DIR, '..', '..', '.cache', 'trainer'));
  const given = parseTrainerConfig(
    { CH8_MODEL_REPOSITORY: 'repo', CH8_TRAINER_STATE_DIR: '/var/state', CH8_MAX_CONCURRENT_RUNS: '3' },
    '/work/x',
  );
  assert.deepEqual([given.modelRepository, given.stateDir, given.maxConcurrentRuns], ['/work/x/repo', '/var/state', 3]);
  assert.throws(() => parseTrainerConfig({ CH8_MAX_CONCURRENT_RUNS: '0' }), /CH8_MAX_CONCURRENT_RUNS/);
});

describe('StartRun validation', () => {
  let t: Trainer;
  before(async () => {
    const workers = new ScriptedWorkers();
    t = await startTrainer(deps, await tempDir('ch8-trainer-validate-'), { deps: { startWorker: workers.start } });
  });
  after(() => t.stop());

  test('reports SERVING and lists its service through reflection', async () => {
    assert.equal(await checkHealth(t.address, ''), 'SERVING');
    assert.equal(await checkHealth(t.address, 'ch8.trainer.v1.TrainerService'), 'SERVING');
    const names = await listServices(t.address);
    assert.ok(names.includes('ch8.trainer.v1.TrainerService'), names.join(', '));
  });

  test('bad training fields are INVALID_ARGUMENT naming the field', async () => {
    const start = (over: Parameters<typeof quickConfig>[0]) => t.client.startRun({ config: quickConfig(over) });
    await rejects(t.client.startRun({}), Code.INVALID_ARGUMENT, 'config');
    await rejects(start({ model: 'transformer-xl' }), Code.INVALID_ARGUMENT, 'model');
    await rejects(start({ learningRate: -0.1 }), Code.INVALID_ARGUMENT, 'learning_rate');
    await rejects(start({ epochs: 0 }), Code.INVALID_ARGUMENT, 'epochs');
    await rejects(start({ exportName: '../x' }), Code.INVALID_ARGUMENT, 'export_name');
    await rejects(start({ exportName: 'Upper' }), Code.INVALID_ARGUMENT, 'export_name');
    await rejects(start({ backend: 'quantum' }), Code.INVALID_ARGUMENT, 'backend');
    await rejects(start({ dropout: 1.5 }), Code.INVALID_ARGUMENT, 'dropout');
  });

  test('the data: exactly one of dataset_id and data; unknown id NOT_FOUND; splits must exist', async () => {
    await rejects(t.client.startRun({ config: quickConfig({ data: undefined }) }), Code.INVALID_ARGUMENT, 'dataset_id');
    await rejects(t.client.startRun({ config: quickConfig({ datasetId }) }), Code.INVALID_ARGUMENT, 'data');
    await rejects(
      t.client.startRun({ config: quickConfig({ data: undefined, datasetId: 'ds-nope' }) }),
      Code.NOT_FOUND,
      'dataset_id',
    );
    await rejects(
      t.client.startRun({ config: quickConfig({ trainSplit: 'nope' }) }),
      Code.INVALID_ARGUMENT,
      'train_split',
    );
    await rejects(
      t.client.startRun({ config: quickConfig({ data: undefined, datasetId, devSplit: 'test' }) }),
      Code.INVALID_ARGUMENT,
      'dev_split',
    );
  });

  test("PrepareDataset's own errors pass through with their codes", async () => {
    const sst2 = (dir: string) => quickConfig({ data: { source: { kind: { case: 'sst2', value: { dir } } } } });
    await rejects(t.client.startRun({ config: sst2('/etc') }), Code.PERMISSION_DENIED, 'data');
    await rejects(t.client.startRun({ config: sst2('missing-dir') }), Code.NOT_FOUND, 'data');
    const tabular = quickConfig({ data: { source: { kind: { case: 'tabular', value: { files: [] } } } } });
    await rejects(t.client.startRun({ config: tabular }), Code.INVALID_ARGUMENT, 'data');
  });

  test('unknown runs are NOT_FOUND naming run_id; nothing was created by the bad requests', async () => {
    await rejects(t.client.getRun({ runId: 'run-19700101-000000-00000000' }), Code.NOT_FOUND, 'run_id');
    await rejects(t.client.cancelRun({ runId: 'run-19700101-000000-00000000' }), Code.NOT_FOUND, 'run_id');
    await rejects(watchAll(t.client, 'run-19700101-000000-00000000'), Code.NOT_FOUND, 'run_id');
    await rejects(t.client.getRun({ runId: '' }), Code.INVALID_ARGUMENT, 'run_id');
    assert.deepEqual((await t.client.listRuns({})).runs, []);
  });
});

test('StartRun is UNAVAILABLE while the dataset service is down', async () => {
  const dead = { ...deps, datasetAddr: '127.0.0.1:1' };
  const t = await startTrainer(dead, await tempDir('ch8-trainer-down-'), {
    deps: { startWorker: new ScriptedWorkers().start },
  });
  try {
    await assert.rejects(
      t.client.startRun({ config: quickConfig() }),
      (e: unknown) => e instanceof GrpcError && e.code === Code.UNAVAILABLE,
    );
    await assert.rejects(
      t.client.startRun({ config: quickConfig({ data: undefined, datasetId }) }),
      (e: unknown) => e instanceof GrpcError && e.code === Code.UNAVAILABLE,
    );
  } finally {
    await t.stop();
  }
});

describe('run lifecycle (scripted workers)', () => {
  test('FIFO with one run at a time; cancel pending, running and finished runs', async () => {
    const workers = new ScriptedWorkers();
    const t = await startTrainer(deps, await tempDir('ch8-trainer-fifo-'), { deps: { startWorker: workers.start } });
    try {
      const ids: string[] = [];
      for (const name of ['a', 'b', 'c']) {
        const { run } = await t.client.startRun({ config: quickConfig({ exportName: name }) });
        assert.equal(run!.state, RunState.PENDING);
        assert.match(run!.runId, /^run-\d{8}-\d{6}-[0-9a-f]{8}$/);
        assert.equal(run!.datasetId, datasetId, 'the data set StartRun prepared is recorded');
        assert.equal(run!.config!.data!.source!.kind.case, 'sst2', 'and so is its source');
        ids.push(run!.runId);
      }
      const [a, b, c] = ids as [string, string, string];
      assert.deepEqual(
        workers.started.map((w) => w.job.runId),
        [a],
      );
      assert.equal(workers.of(a).job.datasetId, datasetId);
      assert.notEqual(workers.of(a).job.prepare, null);
      assert.deepEqual(
        [await state(t, a), await state(t, b), await state(t, c)],
        [RunState.RUNNING, RunState.PENDING, RunState.PENDING],
      );

      const watcher = watchAll(t.client, a);
      workers.succeed(a);
      const events = await watcher;
      assert.deepEqual(states(events), [RunState.PENDING, RunState.RUNNING, RunState.SUCCEEDED]);
      assert.deepEqual(
        events.map((e) => e.event.case),
        ['state', 'state', 'epochEnd', 'exported', 'state'],
      );
      const done = (await t.client.getRun({ runId: a })).run!;
      assert.equal(done.bestEpoch, 1);
      assert.equal(done.exported!.version, 1);
      assert.deepEqual(
        done.finalMetrics.map((m) => [m.split, m.tn, m.fp, m.fn, m.tp]),
        [['dev', 5n, 0n, 1n, 4n]],
      );
      assert.ok(done.finishedAt !== undefined && done.startedAt !== undefined && done.createdAt !== undefined);
      // b starts next (first come, first served); c still waits.
      assert.deepEqual(
        workers.started.map((w) => w.job.runId),
        [a, b],
      );
      assert.equal(await state(t, c), RunState.PENDING);

      const cancelledPending = (await t.client.cancelRun({ runId: c })).run!;
      assert.equal(cancelledPending.state, RunState.CANCELLED);
      assert.equal(workers.started.length, 2, 'a cancelled pending run never starts');
      const cancelledRunning = (await t.client.cancelRun({ runId: b })).run!;
      assert.equal(cancelledRunning.state, RunState.CANCELLED);
      assert.deepEqual(workers.of(b).received, [{ type: 'cancel' }]);
      await rejects(t.client.cancelRun({ runId: a }), Code.FAILED_PRECONDITION, 'run_id');
      assert.deepEqual(
        (await t.client.listRuns({})).runs.map((r: Run) => [r.runId, r.state]),
        [
          [a, RunState.SUCCEEDED],
          [b, RunState.CANCELLED],
          [c, RunState.CANCELLED],
        ],
      );
    } finally {
      await t.stop();
    }
  });

  test('CH8_MAX_CONCURRENT_RUNS runs at once; a worker that dies fails its run with INTERNAL', async () => {
    const workers = new ScriptedWorkers();
    const t = await startTrainer(deps, await tempDir('ch8-trainer-conc-'), {
      env: { CH8_MAX_CONCURRENT_RUNS: '2' },
      deps: { startWorker: workers.start },
    });
    try {
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) ids.push((await t.client.startRun({ config: quickConfig() })).run!.runId);
      assert.equal(workers.started.length, 2);
      assert.deepEqual(await Promise.all(ids.map((id) => state(t, id))), [
        RunState.RUNNING,
        RunState.RUNNING,
        RunState.PENDING,
      ]);
      const failedWatch = watchAll(t.client, ids[1]!);
      workers.post(ids[1]!, {
        type: 'failed',
        phase: 'data',
        error: {
          name: 'DependencyUnavailableError',
          message: 'dataset service StreamBatches: gone',
          code: 'UNAVAILABLE',
        },
      });
      await failedWatch;
      const failed = (await t.client.getRun({ runId: ids[1]! })).run!;
      assert.equal(failed.state, RunState.FAILED);
      assert.equal(failed.errorCode, 'UNAVAILABLE');
      assert.match(failed.error, /gone/);
      assert.equal(workers.started.length, 3);
      const crashWatch = watchAll(t.client, ids[0]!);
      workers.of(ids[0]!).callbacks.onExit(1, new Error('out of memory'));
      await crashWatch;
      const crashed = (await t.client.getRun({ runId: ids[0]! })).run!;
      assert.equal(crashed.state, RunState.FAILED);
      assert.equal(crashed.errorCode, 'INTERNAL');
      assert.equal(await state(t, ids[2]!), RunState.RUNNING);
    } finally {
      await t.stop();
    }
  });

  test('records survive a restart: a RUNNING run is queued again (interrupted, not cancelled), history replayed', async () => {
    const dir = await tempDir('ch8-trainer-restart-');
    const workers = new ScriptedWorkers();
    const t1 = await startTrainer(deps, dir, { deps: { startWorker: workers.start } });
    const running = (await t1.client.startRun({ config: quickConfig() })).run!.runId;
    const pending = (await t1.client.startRun({ config: quickConfig() })).run!.runId;
    workers.post(running, { type: 'backend', backend: 'cpu', device: 'test cpu' });
    workers.post(running, {
      type: 'step',
      step: { epoch: 1, step: 1, stepsInEpoch: 4, loss: 0.6, accuracy: 0.5, examplesPerSecond: 10, seconds: 0.1 },
    });
    const watcher = watchAll(t1.client, running).then(
      () => assert.fail('the stream must not end as if the run had finished'),
      (e: unknown) => e,
    );
    await eventually(
      async () => workers.of(running).received.length === 0 && (await state(t1, running)) === RunState.RUNNING,
      'running',
    );
    await t1.stop();
    assert.deepEqual(workers.of(running).received, [{ type: 'interrupt' }]);
    const err = await watcher;
    assert.ok(err instanceof GrpcError && err.code === Code.UNAVAILABLE, String(err));
    const stateDir = join(dir, 'state', 'runs', running);
    const record = JSON.parse(readFileSync(join(stateDir, 'run.json'), 'utf8')) as { state: string };
    assert.equal(record.state, 'RUN_STATE_RUNNING', 'an interrupted run stays RUNNING on disk');
    assert.match(readFileSync(join(stateDir, 'events.jsonl'), 'utf8'), /interrupted/);

    const t2 = await startTrainer(deps, dir, { deps: { startWorker: workers.start } });
    try {
      assert.equal(workers.started.length, 2, 'the RUNNING run started again at once');
      assert.equal(workers.started[1]!.job.runId, running);
      assert.equal(workers.started[1]!.job.checkpointDir, join(stateDir, 'checkpoints'));
      assert.equal(await state(t2, pending), RunState.PENDING);
      workers.post(running, { type: 'restored', epoch: 0, history: [] });
      workers.succeed(running);
      const events = await watchAll(t2.client, running);
      assert.deepEqual(states(events), [
        RunState.PENDING,
        RunState.RUNNING,
        RunState.PENDING,
        RunState.RUNNING,
        RunState.SUCCEEDED,
      ]);
      const kinds = events.map((e) =>
        e.event.case === 'message' ? `message:${String(e.event.value).split(' ')[0]}` : e.event.case,
      );
      assert.deepEqual(kinds, [
        'state',
        'state',
        'message:backend',
        'step',
        'message:interrupted:',
        'message:the',
        'state',
        'state',
        'epochEnd',
        'exported',
        'state',
      ]);
      assert.equal(await state(t2, pending), RunState.RUNNING);
      assert.ok(!existsSync(join(stateDir, 'checkpoints')));
    } finally {
      await t2.stop();
    }
  });
});
