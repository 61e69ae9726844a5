import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { selectBackend } from '@ch8/backend/select';
import { GatewayService } from '@ch8/contracts/gateway';
import { createClient } from '@ch8/service-kit/client';
import { parseExposition } from '@ch8/service-kit/exposition';
import { startServiceProcess } from '@ch8/service-kit/testing';
import { parseGatewayConfig } from './config.ts';
import { exportVersion, scratchRoot, tinyModel } from './fixtures.ts';

await selectBackend({ prefer: 'cpu' });

const PACKAGE = fileURLToPath(new URL('..', import.meta.url));

async function until(what: string, check: () => boolean, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Pids of the processes whose parent is `ppid` and whose command line mentions `needle` (Linux /proc). */
function childrenOf(ppid: number, needle: string): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (parent === ppid && readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(needle)) out.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

test('CH8_GATEWAY_WORKERS: 1 by default, 1 to 64', () => {
  assert.equal(parseGatewayConfig({}).workers, 1);
  assert.equal(parseGatewayConfig({ CH8_GATEWAY_WORKERS: '3' }).workers, 3);
  for (const bad of ['0', '65', 'two']) assert.throws(() => parseGatewayConfig({ CH8_GATEWAY_WORKERS: bad }), bad);
});

test('two workers on one port: every connection answers alike after a reload or a pin, a dead worker is replaced with the pin, metrics are summed', async () => {
  const repo = await scratchRoot();
  const [v1, v2] = [tinyModel('bow-finetune', 1), tinyModel('bow-finetune', 2)];
  const gw = await (async () => {
    await exportVersion(repo.root, 'sst2', v1);
    return startServiceProcess({
      main: 'src/main.ts',
      cwd: PACKAGE,
      env: {
        CH8_MODEL_REPOSITORY: repo.root,
        CH8_GATEWAY_ADDR: '127.0.0.1:0',
        CH8_GATEWAY_METRICS_ADDR: '127.0.0.1:0',
        CH8_GATEWAY_WORKERS: '2',
        CH8_GATEWAY_POLL_MS: '0',
        CH8_BACKEND: 'cpu',
        CH8_LOG_LEVEL: 'info',
      },
      timeoutMs: 120_000,
    });
  })();
  const listening = () => new Set(gw.records.filter((r) => r['msg'] === 'listening').map((r) => r['worker']));
  let calls = 0;
  /** The version answering on each of `n` new connections (one call each; the primary deals them out in turn). */
  const versionsOnNewConnections = async (n: number): Promise<string[]> => {
    const out: string[] = [];
    for (let i = 0; i < n; i++) {
      // A channel of its own (grpc-js shares connections between clients of one target otherwise).
      const client = createClient(GatewayService, gw.address, {
        channelOptions: { 'grpc.use_local_subchannel_pool': 1 },
      });
      try {
        out.push((await client.predict({ modelName: 'sst2', texts: ['I loved it!'] })).modelVersion);
        calls++;
      } finally {
        client.close();
      }
    }
    return out;
  };
  try {
    await until('both workers listening', () => listening().size === 2);
    assert.deepEqual(await versionsOnNewConnections(4), ['1', '1', '1', '1']);

    // A new version, then ReloadModels on one connection (no polling): every worker serves it before the call returns.
    await exportVersion(repo.root, 'sst2', v2);
    const control = createClient(GatewayService, gw.address);
    try {
      await control.reloadModels({});
      assert.deepEqual(await versionsOnNewConnections(4), ['2', '2', '2', '2']);
      // A pin on one connection holds on every connection.
      await control.setVersionPolicy({ modelName: 'sst2', policy: { choice: { case: 'pinnedVersion', value: 1 } } });
      assert.deepEqual(await versionsOnNewConnections(4), ['1', '1', '1', '1']);
    } finally {
      control.close();
    }

    // Metrics: the workers' calls summed, the loaded model counted once.
    const m = parseExposition(await (await fetch(gw.metricsUrl)).text());
    assert.equal(m.value('ch8_gateway_requests_total', { method: 'Predict', model: 'sst2', code: 'OK' }), calls);
    assert.equal(m.sum('ch8_gateway_texts_total'), calls);
    assert.equal(m.value('ch8_gateway_models_loaded'), 1);

    // A worker killed is replaced; the new one applies the pin before it listens.
    const primary = childrenOf(process.pid, 'main.ts');
    assert.equal(primary.length, 1);
    const workers = childrenOf(primary[0]!, 'main.ts');
    assert.equal(workers.length, 2);
    process.kill(workers[0]!, 'SIGKILL');
    await until('a third worker listening', () => listening().size === 3);
    assert.deepEqual(await versionsOnNewConnections(4), ['1', '1', '1', '1']);
    assert.ok(gw.records.some((r) => r['msg'] === 'worker exited; starting another'));
  } finally {
    assert.equal(await gw.stop(), 0);
    v1.dispose();
    v2.dispose();
    await repo.remove();
  }
});
