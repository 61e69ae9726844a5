import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { GRPCInferenceService } from '@ch8/contracts/inference';
import { createClient } from '@ch8/service-kit/client';
import { checkHealth, listServices } from '@ch8/service-kit/probes';
import { Code } from '@ch8/service-kit/status';
import { scratchRoot, startGateway, type TestGateway } from './fixtures.ts';

// An empty repository: the gateway starts, is live, and says it cannot serve yet.
let repo: Awaited<ReturnType<typeof scratchRoot>>;
let gw: TestGateway;

before(async () => {
  repo = await scratchRoot();
  gw = await startGateway(repo.root);
});
after(async () => {
  await gw.stop();
  await repo.remove();
});

test('health: "" SERVING, the APIs NOT_SERVING while no model is ready', async () => {
  assert.equal(await checkHealth(gw.address, ''), 'SERVING');
  assert.equal(await checkHealth(gw.address, 'ch8.gateway.v1.GatewayService'), 'NOT_SERVING');
  assert.equal(await checkHealth(gw.address, 'inference.GRPCInferenceService'), 'NOT_SERVING');
});

test('lists its services through reflection', async () => {
  const names = await listServices(gw.address);
  for (const s of ['ch8.gateway.v1.GatewayService', 'inference.GRPCInferenceService', 'grpc.health.v1.Health']) {
    assert.ok(names.includes(s), names.join(', '));
  }
});

test('the Open Inference Protocol answers liveness, readiness and metadata; unknown models are NOT_FOUND', async () => {
  const client = createClient(GRPCInferenceService, gw.address);
  try {
    assert.equal((await client.serverLive({})).live, true);
    assert.equal((await client.serverReady({})).ready, false);
    assert.equal((await client.serverMetadata({})).name, 'ch8-gateway');
    await assert.rejects(client.modelMetadata({ name: 'nope' }), (e: { code: number }) => e.code === Code.NOT_FOUND);
  } finally {
    client.close();
  }
});
