import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { RunState, TrainerService } from '@ch8/contracts/trainer';
import { InvalidInputError } from '@ch8/errors';
import { createClient } from '@ch8/service-kit/client';
import { parseExposition } from '@ch8/service-kit/exposition';
import { silentLogger } from '@ch8/service-kit/logger';
import { startMetricsServer } from '@ch8/service-kit/metrics';
import { Code, type GrpcError } from '@ch8/service-kit/status';
import { startServiceProcess, startTestServer } from '@ch8/service-kit/testing';
import { parseTrainerConfig } from './config.ts';
import type { FromWorker, RunJob } from './protocol.ts';
import type { WorkerCallbacks } from './runner.ts';
import { createTrainerServer } from './server.ts';
import { quickConfig, startDeps, trainerEnv } from './test-stack.ts';

const PACKAGE = fileURLToPath(new URL('..', import.meta.url));

test('CH8_TRAINER_METRICS_ADDR: 127.0.0.1:9463 by default, off, or HOST:PORT; anything else fails the start', () => {
  assert.equal(parseTrainerConfig({}).metricsAddress, '127.0.0.1:9463');
  assert.equal(parseTrainerConfig({ CH8_TRAINER_METRICS_ADDR: 'off' }).metricsAddress, 'off');
  assert.equal(parseTrainerConfig({ CH8_TRAINER_METRICS_ADDR: '0.0.0.0:9999' }).metricsAddress, '0.0.0.0:9999');
  assert.throws(
    () => parseTrainerConfig({ CH8_TRAINER_METRICS_ADDR: 'host:port' }),
    (e: InvalidInputError) => e instanceof InvalidInputError && e.field === 'CH8_TRAINER_METRICS_ADDR',
  );
});

test('main.ts serves /metrics on the logged address: calls by method and code', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ch8-trainer-metrics-'));
  const service = await startServiceProcess({
    main: 'src/main.ts',
    cwd: PACKAGE,
    env: {
      CH8_TRAINER_ADDR: '127.0.0.1:0',
      CH8_TRAINER_METRICS_ADDR: '127.0.0.1:0',
      // Nothing listens there: no call below reaches the other services.
      CH8_EMBEDDING_ADDR: '127.0.0.1:1',
      CH8_DATASET_ADDR: '127.0.0.1:1',
      CH8_TRAINER_STATE_DIR: join(dir, 'state'),
      CH8_MODEL_REPOSITORY: join(dir, 'models'),
      CH8_BACKEND: 'cpu',
      CH8_LOG_LEVEL: 'info',
    },
  });
  const client = createClient(TrainerService, service.address);
  try {
    assert.deepEqual((await client.listRuns({})).runs, []);
    await assert.rejects(client.getRun({ runId: 'no-such-run' }), (e: GrpcError) => e.code === Code.NOT_FOUND);
    await assert.rejects(client.startRun({}), (e: GrpcError) => e.code === Code.INVALID_ARGUMENT);
    await assert.rejects(
      (async () => {
        for await (const _ of client.watchRun({ runId: 'no-such-run' }));
      })(),
      (e: GrpcError) => e.code === Code.NOT_FOUND,
    );

    const res = await fetch(service.metricsUrl);
    assert.equal(res.status, 200);
    const m = parseExposition(await res.text());
    const p = 'ch8_trainer_';
    assert.equal(m.value(`${p}requests_total`, { method: 'ListRuns', code: 'OK' }), 1);
    assert.equal(m.value(`${p}requests_total`, { method: 'GetRun', code: 'NOT_FOUND' }), 1);
    assert.equal(m.value(`${p}requests_total`, { method: 'StartRun', code: 'INVALID_ARGUMENT' }), 1);
    assert.equal(m.value(`${p}requests_total`, { method: 'WatchRun', code: 'NOT_FOUND' }), 1);
    assert.equal(m.sum(`${p}request_errors_total`), 3);
    assert.equal(m.sum(`${p}request_duration_seconds_count`), 4);
    assert.equal(m.sum(`${p}requests_in_flight`), 0);
    for (const f of m.families.keys()) assert.ok(f.startsWith(p), `${f} is prefixed ${p}`);
  } finally {
    client.close();
    assert.equal(await service.stop(), 0);
    await rm(dir, { recursive: true, force: true });
  }
});

test('runs by state, examples/s and data wait of running runs, epochs completed (scripted workers)', async () => {
  const deps = await startDeps({ trainRows: 60, devRows: 20 });
  const dir = await mkdtemp(join(tmpdir(), 'ch8-trainer-run-metrics-'));
  // Workers the test drives: each started run gets its callbacks recorded; cancel answers as a worker does.
  const workers = new Map<string, WorkerCallbacks>();
  const startWorker = (job: RunJob, callbacks: WorkerCallbacks) => {
    workers.set(job.runId, callbacks);
    return {
      send: () => setImmediate(() => callbacks.onMessage({ type: 'aborted' })),
      terminate: async () => undefined,
    };
  };
  const built = createTrainerServer({
    config: parseTrainerConfig(trainerEnv(deps, dir)),
    logger: silentLogger,
    startWorker,
  });
  const running = await startTestServer(built);
  const http = await startMetricsServer('127.0.0.1:0', built.server.metrics.registry);
  const client = createClient(TrainerService, running.address);
  const scrape = async () => parseExposition(await (await fetch(http.url)).text());
  const p = 'ch8_trainer_';
  try {
    const a = (await client.startRun({ config: quickConfig() })).run!.runId;
    const b = (await client.startRun({ config: quickConfig() })).run!.runId;
    const post = (m: FromWorker) => workers.get(a)!.onMessage(m);
    post({
      type: 'step',
      step: { epoch: 1, step: 2, stepsInEpoch: 4, loss: 0.6, accuracy: 0.5, examplesPerSecond: 1234.5, seconds: 0.1 },
    });
    const epoch = {
      epoch: 1,
      trainLoss: 0.5,
      trainAccuracy: 0.8,
      devLoss: 0.4,
      devAccuracy: 0.9,
      trainExamplesPerSecond: 100,
      seconds: 2.5,
      trainSeconds: 2,
      dataWaitShare: 0.25,
      learningRate: 0.05,
    };
    post({ type: 'epoch', epoch });
    post({ type: 'epoch', epoch: { ...epoch, epoch: 2, trainSeconds: 4, dataWaitShare: 0.125 } });

    let m = await scrape();
    const states = (mm: typeof m) =>
      Object.fromEntries(
        mm.samples.filter((x) => x.name === `${p}runs`).map((x) => [x.labels['state'], x.value] as const),
      );
    assert.deepEqual(states(m), { pending: 1, running: 1, succeeded: 0, failed: 0, cancelled: 0 });
    assert.equal(m.value(`${p}run_examples_per_second`, { run_id: a }), 1234.5);
    assert.equal(m.value(`${p}run_examples_per_second`, { run_id: b }), undefined, 'b has not started');
    assert.equal(m.value(`${p}run_data_wait_share`, { run_id: a }), 0.125, 'the last completed epoch');
    assert.equal(m.value(`${p}epochs_completed_total`), 2);
    assert.equal(m.value(`${p}train_seconds_total`), 2 + 4);
    assert.equal(m.value(`${p}data_wait_seconds_total`), 2 * 0.25 + 4 * 0.125);

    assert.equal((await client.cancelRun({ runId: b })).run!.state, RunState.CANCELLED);
    assert.equal((await client.cancelRun({ runId: a })).run!.state, RunState.CANCELLED);
    m = await scrape();
    assert.deepEqual(states(m), { pending: 0, running: 0, succeeded: 0, failed: 0, cancelled: 2 });
    assert.equal(
      m.samples.find((x) => x.name === `${p}run_examples_per_second`),
      undefined,
      'no running run left',
    );
    assert.equal(m.value(`${p}requests_total`, { method: 'StartRun', code: 'OK' }), 2);
  } finally {
    client.close();
    await http.close();
    await running.stop();
    await deps.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
