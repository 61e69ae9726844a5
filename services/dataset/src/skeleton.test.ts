import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { silentLogger } from '@ch8/service-kit/logger';
import { checkHealth, listServices } from '@ch8/service-kit/probes';
import { startTestServer, type RunningTestServer } from '@ch8/service-kit/testing';
import { parseDatasetConfig } from './config.ts';
import { createDatasetServer } from './server.ts';

let running: RunningTestServer;
let addr: string;

before(async () => {
  running = await startTestServer(createDatasetServer({ config: parseDatasetConfig({}), logger: silentLogger }));
  addr = running.address;
});
after(() => running.stop());

test('reports SERVING on health once ready', async () => {
  assert.equal(await checkHealth(addr, ''), 'SERVING');
  assert.equal(await checkHealth(addr, 'ch8.dataset.v1.DatasetService'), 'SERVING');
});

test('lists its service through reflection', async () => {
  const names = await listServices(addr);
  assert.ok(names.includes('ch8.dataset.v1.DatasetService'), names.join(', '));
  assert.ok(names.includes('grpc.health.v1.Health'));
});
