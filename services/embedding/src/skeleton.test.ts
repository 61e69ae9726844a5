import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { silentLogger } from '@ch8/service-kit/logger';
import { checkHealth, listServices } from '@ch8/service-kit/probes';
import { startTestServer, type RunningTestServer } from '@ch8/service-kit/testing';
import { parseEmbeddingConfig } from './config.ts';
import { createEmbeddingServer } from './server.ts';

let running: RunningTestServer;
let addr: string;

before(async () => {
  running = await startTestServer(createEmbeddingServer({ config: parseEmbeddingConfig({}), logger: silentLogger }));
  addr = running.address;
});
after(() => running.stop());

test('reports SERVING on health once ready', async () => {
  assert.equal(await checkHealth(addr, ''), 'SERVING');
  assert.equal(await checkHealth(addr, 'ch8.embedding.v1.EmbeddingService'), 'SERVING');
});

test('lists its service through reflection', async () => {
  const names = await listServices(addr);
  assert.ok(names.includes('ch8.embedding.v1.EmbeddingService'), names.join(', '));
  assert.ok(names.includes('grpc.health.v1.Health'));
});
