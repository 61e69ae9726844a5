import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { silentLogger } from '@ch8/service-kit/logger';
import { checkHealth, listServices } from '@ch8/service-kit/probes';
import { parseTrainerConfig } from './config.ts';
import { createTrainerServer } from './server.ts';

let stop: () => Promise<void>;
let addr: string;

before(async () => {
  const { server, close } = createTrainerServer({ config: parseTrainerConfig({ CH8_LOG_LEVEL: 'error' }), logger: silentLogger });
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
  assert.equal(await checkHealth(addr, 'ch8.trainer.v1.TrainerService'), 'SERVING');
});

test('lists its service through reflection', async () => {
  const names = await listServices(addr);
  assert.ok(names.includes('ch8.trainer.v1.TrainerService'), names.join(', '));
  assert.ok(names.includes('grpc.health.v1.Health'));
});
