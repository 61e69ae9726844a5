import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { silentLogger } from '@ch8/service-kit/logger';
import { checkHealth, listServices } from '@ch8/service-kit/probes';
import { parseDatasetConfig } from './config.ts';
import { createDatasetServer } from './server.ts';

let stop: () => Promise<void>;
let addr: string;

before(async () => {
  const { server, close } = createDatasetServer({ config: parseDatasetConfig({ CH8_LOG_LEVEL: 'error' }), logger: silentLogger });
  addr = `127.0.0.1:${await server.listen('127.0.0.1:0')}`;
  server.ready();
  stop = async () => {
    await server.shutdown(1000);
    await close();
  };
});
after(() => stop());

test('reports SERVING on health once ready', async () => {
  assert.equal(await checkHealth(addr, ''), 'SERVING');
  assert.equal(await checkHealth(addr, 'ch8.dataset.v1.DatasetService'), 'SERVING');
});

test('lists its service through reflection', async () => {
  const names = await listServices(addr);
  assert.ok(names.includes('ch8.dataset.v1.DatasetService'), names.join(', '));
  assert.ok(names.includes('grpc.health.v1.Health'));
});
