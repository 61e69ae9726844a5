import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { selectBackend } from '@ch8/backend/select';
import { GatewayService } from '@ch8/contracts/gateway';
import type { SentimentModel } from '@ch8/models/model';
import { createClient, type Client } from '@ch8/service-kit/client';
import { Code } from '@ch8/service-kit/status';
import { exportVersion, scratchRoot, startGateway, tinyModel, type TestGateway } from './fixtures.ts';
import { startMetricsServer, type MetricsServer } from '@ch8/service-kit/metrics';

await selectBackend({ prefer: 'cpu' });

let repo: Awaited<ReturnType<typeof scratchRoot>>;
let gw: TestGateway;
let model: SentimentModel;
let client: Client<typeof GatewayService>;
let http: MetricsServer;

before(async () => {
  repo = await scratchRoot();
  model = tinyModel('bow-finetune');
  await exportVersion(repo.root, 'sst2', model);
  // A small queue and a long batching delay: what waits is easy to arrange.
  gw = await startGateway(repo.root, {
    CH8_GATEWAY_MAX_QUEUE: '4',
    CH8_GATEWAY_MAX_TEXTS: '4',
    CH8_GATEWAY_MAX_DELAY_MS: '400',
    CH8_GATEWAY_MAX_BATCH: '64',
  });
  http = await startMetricsServer('127.0.0.1:0', gw.gateway.metrics.registry);
  client = createClient(GatewayService, gw.address);
});
after(async () => {
  client.close();
  await http.close();
  await gw.stop();
  model.dispose();
  await repo.remove();
});

/** Prometheus text format to `name{label="v",...}` (labels sorted) -> value. Comments and blank lines skipped. */
function parseExposition(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    assert.ok(m, `not an exposition line: ${line}`);
    const labels = [...(m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)]
      .map(([, k, v]) => `${k}="${v}"`)
      .sort();
    out.set(labels.length > 0 ? `${m[1]}{${labels.join(',')}}` : m[1]!, Number(m[3]));
  }
  return out;
}

async function scrape(): Promise<Map<string, number>> {
  const res = await fetch(http.url);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /text\/plain/);
  return parseExposition(await res.text());
}

test('a full queue answers RESOURCE_EXHAUSTED; a request whose deadline passes while queued is not computed', async () => {
  const first = client.predict({ texts: ['I loved it!', 'great movie', 'dull plot'] }); // waits 400 ms for company
  await sleep(50);
  await assert.rejects(client.predict({ texts: ['good', 'bad'] }), (e: { code: number; details: string }) => {
    assert.equal(e.code, Code.RESOURCE_EXHAUSTED);
    assert.match(e.details, /queue of model sst2 version 1 is full \(3 texts waiting.*limit of 4/);
    return true;
  });
  await assert.rejects(client.predict({ texts: ['fun'] }, { timeoutMs: 100 }), (e: { code: number }) => {
    assert.equal(e.code, Code.DEADLINE_EXCEEDED);
    return true;
  });
  const res = await first;
  assert.equal(res.predictions.length, 3);
  await client.predict({ texts: [''] }).catch(() => undefined); // INVALID_ARGUMENT
  await sleep(50);

  const m = await scrape();
  const p = 'ch8_gateway_';
  const get = (key: string) => m.get(`${p}${key}`);
  assert.equal(get('requests_total{code="OK",method="Predict",model="sst2"}'), 1);
  assert.equal(get('requests_total{code="RESOURCE_EXHAUSTED",method="Predict",model="sst2"}'), 1);
  assert.equal(get('requests_total{code="DEADLINE_EXCEEDED",method="Predict",model="sst2"}'), 1);
  assert.equal(get('requests_total{code="INVALID_ARGUMENT",method="Predict",model="sst2"}'), 1);
  assert.equal(get('request_errors_total{code="RESOURCE_EXHAUSTED",method="Predict",model="sst2"}'), 1);
  assert.equal(get('request_errors_total{code="OK",method="Predict",model="sst2"}'), undefined);
  assert.equal(get('request_duration_seconds_count{method="Predict",model="sst2"}'), 4);
  assert.equal(get('requests_in_flight{method="Predict"}'), 0);
  // One model call of the first request's 3 texts: the late request's text never went in.
  assert.equal(get('batch_size_count{model="sst2"}'), 1);
  assert.equal(get('batch_size_sum{model="sst2"}'), 3);
  assert.equal(get('queue_seconds_count{model="sst2"}'), 1);
  assert.ok(get('queue_seconds_sum{model="sst2"}')! >= 0.3, 'the first request waited for its batch');
  assert.equal(get('texts_total{model="sst2",version="1"}'), 3);
  assert.equal(get('models_loaded'), 1);
  assert.equal(get('model_versions_loaded{model="sst2"}'), 1);
  assert.equal(get('model_version_ready{model="sst2",version="1"}'), 1);
  for (const key of m.keys()) assert.ok(key.startsWith(p), `${key} is not prefixed ${p}`);
});

test('only GET /metrics is served', async () => {
  const res = await fetch(http.url.replace('/metrics', '/'));
  assert.equal(res.status, 404);
  await res.text();
});

test('a version that fails to load is counted', async () => {
  const { writeFile } = await import('node:fs/promises');
  const { join } = await import('node:path');
  await exportVersion(repo.root, 'sst2', model, (dir) => writeFile(join(dir, 'weights.bin'), 'nope'));
  await client.reloadModels({});
  const m = await scrape();
  assert.equal(m.get('ch8_gateway_model_load_failures_total{model="sst2"}'), 1);
  assert.equal(m.get('ch8_gateway_model_version_ready{model="sst2",version="1"}'), 1);
});
