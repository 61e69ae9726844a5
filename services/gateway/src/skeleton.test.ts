import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { silentLogger } from '@ch8/service-kit/logger';
import { checkHealth, listServices } from '@ch8/service-kit/probes';
import { startTestServer, type RunningTestServer } from '@ch8/service-kit/testing';
import { parseGatewayConfig } from './config.ts';
import { createGatewayServer } from './server.ts';

let running: RunningTestServer;
let addr: string;

before(async () => {
  running = await startTestServer(createGatewayServer({ config: parseGatewayConfig({}), logger: silentLogger }));
  addr = running.address;
});
after(() => running.stop());

test('reports SERVING on health once ready', async () => {
  assert.equal(await checkHealth(addr, ''), 'SERVING');
  assert.equal(await checkHealth(addr, 'ch8.gateway.v1.GatewayService'), 'SERVING');
});

test('lists its service through reflection', async () => {
  const names = await listServices(addr);
  assert.ok(names.includes('ch8.gateway.v1.GatewayService'), names.join(', '));
  assert.ok(names.includes('grpc.health.v1.Health'));
});

test('the Open Inference Protocol answers liveness and metadata; unknown models are NOT_FOUND', async () => {
  const { createClient } = await import('@ch8/service-kit/client');
  const { GRPCInferenceService } = await import('@ch8/contracts/inference');
  const { Code } = await import('@ch8/service-kit/status');
  const client = createClient(GRPCInferenceService, addr);
  try {
    assert.equal((await client.serverLive({})).live, true);
    assert.equal((await client.serverMetadata({})).name, 'ch8-gateway');
    await assert.rejects(client.modelMetadata({ name: 'nope' }), (e: { code: number }) => e.code === Code.NOT_FOUND);
  } finally {
    client.close();
  }
});
