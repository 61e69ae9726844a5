import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { TrainerService } from '@ch8/contracts/trainer';
import { InvalidInputError } from '@ch8/errors';
import { createClient } from '@ch8/service-kit/client';
import { parseExposition } from '@ch8/service-kit/exposition';
import { Code, type GrpcError } from '@ch8/service-kit/status';
import { startServiceProcess } from '@ch8/service-kit/testing';
import { parseTrainerConfig } from './config.ts';

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
