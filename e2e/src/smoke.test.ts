import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { checkHealth, listServices } from '@ch8/service-kit/probes';
import { runCli, SERVICE_NAMES, startStack, type Stack } from './stack.ts';

const SERVICE_TYPE = {
  embedding: 'ch8.embedding.v1.EmbeddingService',
  dataset: 'ch8.dataset.v1.DatasetService',
  trainer: 'ch8.trainer.v1.TrainerService',
  gateway: 'ch8.gateway.v1.GatewayService',
} as const;

let stack: Stack;

async function waitServing(address: string, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if ((await checkHealth(address, '', 1000)) === 'SERVING') return;
    await sleep(200);
  }
  throw new Error(`${address} not SERVING after ${timeoutMs} ms`);
}

let home: string;

before(async () => {
  // A scratch home (model repository, trainer state, caches) and a free metrics port: the stack under test never
  // touches the workspace's .cache or a port another stack holds.
  home = await mkdtemp(join(tmpdir(), 'ch8-e2e-smoke-'));
  stack = await startStack({ CH8_LOG_LEVEL: 'info', CH8_HOME: home, CH8_GATEWAY_METRICS_ADDR: '127.0.0.1:0' });
  await Promise.all(SERVICE_NAMES.map((n) => waitServing(stack.services[n].address)));
});

after(async () => {
  await stack?.stop();
  await rm(home, { recursive: true, force: true });
});

test('all four services are SERVING and list their service through reflection', async () => {
  for (const name of SERVICE_NAMES) {
    const { address } = stack.services[name];
    // The gateway's APIs serve only once a model is ready; the repository is empty here.
    assert.equal(await checkHealth(address, SERVICE_TYPE[name]), name === 'gateway' ? 'NOT_SERVING' : 'SERVING', name);
    const listed = await listServices(address);
    assert.ok(listed.includes(SERVICE_TYPE[name]), `${name}: ${listed.join(', ')}`);
    assert.ok(listed.includes('grpc.health.v1.Health'), name);
  }
  const gw = stack.services.gateway.address;
  assert.ok((await listServices(gw)).includes('inference.GRPCInferenceService'));
  assert.equal(await checkHealth(gw, 'inference.GRPCInferenceService'), 'NOT_SERVING', 'no model loaded yet');
});

test('ch8 health --json: one JSON document on stdout, logs on stderr, all SERVING, exit 0', async () => {
  const r = await runCli(['health', '--json'], stack.env);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /probing 4 service/);
  const doc = JSON.parse(r.stdout) as { ok: boolean; services: { service: string; status: string }[] };
  assert.equal(doc.ok, true);
  assert.deepEqual(
    doc.services.map((s) => [s.service, s.status]),
    SERVICE_NAMES.map((n) => [n, 'SERVING']),
  );
});

test('a killed service shows as down and ch8 health exits non-zero; the rest stop cleanly on SIGTERM', async () => {
  const victim = stack.services.trainer;
  victim.child.kill('SIGKILL');
  await victim.exit;
  const r = await runCli(['health', '--json'], stack.env);
  assert.notEqual(r.code, 0);
  const doc = JSON.parse(r.stdout) as { ok: boolean; services: { service: string; status: string }[] };
  assert.equal(doc.ok, false);
  assert.equal(doc.services.find((s) => s.service === 'trainer')?.status, 'UNREACHABLE');
  assert.equal(doc.services.find((s) => s.service === 'gateway')?.status, 'SERVING');

  const others = SERVICE_NAMES.filter((n) => n !== 'trainer').map((n) => stack.services[n]);
  for (const s of others) s.child.kill('SIGTERM');
  const exits = await Promise.all(others.map((s) => s.exit));
  for (const [i, e] of exits.entries()) {
    assert.deepEqual(e, { code: 0, signal: null }, `${others[i]!.name} exit`);
    assert.match(others[i]!.logs.join(''), /"msg":"stopped"/);
  }
});
