import assert from 'node:assert/strict';
import { createServer as createHttpServer } from 'node:http';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { EchoService } from '@ch8/contracts/testing';
import { InvalidInputError, NotFoundError } from '@ch8/errors';
import { createClient } from './client.ts';
import { parseExposition, type Exposition } from './exposition.ts';
import { createLogger } from './logger.ts';
import { parseMetricsAddress, serveMetrics, startMetricsServer, type MetricsServer } from './metrics.ts';
import { checkHealth } from './probes.ts';
import { createServer, type ServiceHandlers } from './server.ts';
import { Code, type GrpcError } from './status.ts';

const logLines: string[] = [];
const logger = createLogger({ level: 'debug', write: (l) => void logLines.push(l) });

const handlers: ServiceHandlers<typeof EchoService> = {
  async echo(req, ctx) {
    if (req.delayMs > 0) await sleep(req.delayMs, undefined, { signal: ctx.signal }).catch(() => undefined);
    if (req.fail === 'invalid') throw new InvalidInputError('text must not be empty', { field: 'text' });
    if (req.fail === 'not-found') throw new NotFoundError('no such thing');
    if (req.fail === 'internal') throw new Error('boom');
    return { text: req.text };
  },
  async *count(req) {
    for (let n = 0; n < req.count; n++) yield { n };
  },
  async collect(reqs) {
    let count = 0;
    for await (const _ of reqs) count++;
    return { count };
  },
  async *chat(reqs) {
    for await (const r of reqs) yield { text: r.text };
  },
};

async function scrape(url: string): Promise<{ text: string; exposition: Exposition }> {
  const res = await fetch(url);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  return { text, exposition: parseExposition(text) };
}

describe('the exposition parser (checked on hand-written text, not on prom-client output)', () => {
  test('samples, labels with every escape, HELP/TYPE, histogram families, special values', () => {
    const e = parseExposition(
      [
        '# HELP x_total Things counted, with a \\\\ and a\\nnewline',
        '# TYPE x_total counter',
        'x_total{a="plain",b="q\\"uote",c="back\\\\slash",d="new\\nline"} 3',
        'x_total{a="",} 1.5e3',
        '# a comment',
        '# TYPE h histogram',
        'h_bucket{le="0.5"} 1',
        'h_bucket{le="+Inf"} 2',
        'h_sum 0.75',
        'h_count 2',
        'g NaN',
        'g1 Nan',
        'g2 -Inf 1700000000000',
        '',
      ].join('\n'),
    );
    const x = e.families.get('x_total')!;
    assert.equal(x.type, 'counter');
    assert.equal(x.help, 'Things counted, with a \\ and a\nnewline');
    assert.deepEqual(x.samples[0]!.labels, { a: 'plain', b: 'q"uote', c: 'back\\slash', d: 'new\nline' });
    assert.equal(e.value('x_total', { a: '' }), 1500);
    assert.equal(e.sum('x_total'), 1503);
    assert.equal(e.families.get('h')!.samples.length, 4);
    assert.equal(e.value('h_bucket', { le: '+Inf' }), 2);
    assert.ok(Number.isNaN(e.value('g')));
    assert.ok(Number.isNaN(e.value('g1')));
    assert.equal(e.value('g2'), -Infinity);
  });

  test('malformed lines are refused, naming the line', () => {
    for (const bad of ['x{a="1"', 'x{a=1} 2', 'x{a="1",a="2"} 1', 'x 1 2 3', 'x{a="\\t"} 1', 'x one', '9x 1']) {
      assert.throws(() => parseExposition(`ok 1\n${bad}\n`), /line 2/, bad);
    }
    assert.throws(() => parseExposition('x 1\n# TYPE x counter\n'), /TYPE for x after its samples/);
  });
});

describe('per-call metrics of a kit server', () => {
  let server: ReturnType<typeof createServer>;
  let client: ReturnType<typeof createClient<typeof EchoService>>;
  let http: MetricsServer;
  let address: string;

  before(async () => {
    server = createServer({ name: 'echo', logger }).add(EchoService, handlers);
    const port = await server.listen('127.0.0.1:0');
    server.ready();
    address = `127.0.0.1:${port}`;
    client = createClient(EchoService, address);
    http = await startMetricsServer('127.0.0.1:0', server.metrics.registry);
  });
  after(async () => {
    client.close();
    await http.close();
    await server.shutdown(1000);
  });

  test('requests, errors and latency by method and code after real calls, a failing and a cancelled one among them', async () => {
    const code = (p: Promise<unknown>) =>
      p.then(
        () => 'OK',
        (e: GrpcError) => Code[e.code],
      );
    assert.equal(await code(client.echo({ text: 'a' })), 'OK');
    assert.equal(await code(client.echo({ text: 'b' })), 'OK');
    assert.equal(await code(client.echo({ fail: 'invalid' })), 'INVALID_ARGUMENT');
    assert.equal(await code(client.echo({ fail: 'not-found' })), 'NOT_FOUND');
    assert.equal(await code(client.echo({ fail: 'internal' })), 'INTERNAL');
    assert.equal(await code(client.echo({ delayMs: 5000 }, { timeoutMs: 150 })), 'DEADLINE_EXCEEDED');
    const abort = new AbortController();
    const cancelled = code(client.echo({ delayMs: 5000 }, { signal: abort.signal }));
    await sleep(50);
    abort.abort();
    assert.equal(await cancelled, 'CANCELLED');
    let streamed = 0;
    for await (const _ of client.count({ count: 5 })) streamed++;
    assert.equal(streamed, 5);
    async function* three() {
      for (const text of ['x', 'y', 'z']) yield { text };
    }
    assert.equal((await client.collect(three())).count, 3);
    let chatted = 0;
    for await (const _ of client.chat(three())) chatted++;
    assert.equal(chatted, 3);
    assert.equal(await checkHealth(address, '', 1000), 'SERVING'); // not a handler of ours: not counted

    // The server records a cancelled call when grpc-js tells it, a moment after the client gave up: wait for it.
    let m = (await scrape(http.url)).exposition;
    for (let i = 0; i < 100 && m.sum('ch8_echo_requests_in_flight') > 0; i++) {
      await sleep(20);
      m = (await scrape(http.url)).exposition;
    }
    const p = 'ch8_echo_';
    const expected: [string, string, number][] = [
      ['Echo', 'OK', 2],
      ['Echo', 'INVALID_ARGUMENT', 1],
      ['Echo', 'NOT_FOUND', 1],
      ['Echo', 'INTERNAL', 1],
      ['Echo', 'DEADLINE_EXCEEDED', 1],
      ['Echo', 'CANCELLED', 1],
      ['Count', 'OK', 1],
      ['Collect', 'OK', 1],
      ['Chat', 'OK', 1],
    ];
    const requests = m.samples.filter((s) => s.name === `${p}requests_total`);
    assert.deepEqual(
      requests.map((s) => [s.labels['method'], s.labels['code'], s.value]).sort(),
      expected.map((x) => [...x]).sort(),
    );
    const errors = m.samples.filter((s) => s.name === `${p}request_errors_total`);
    assert.deepEqual(
      errors.map((s) => [s.labels['method'], s.labels['code'], s.value]).sort(),
      expected.filter(([, c]) => c !== 'OK').sort(),
    );
    // Latency: one observation per call; buckets cumulative, +Inf equal to the count; the slow calls in the sum.
    const hist = m.families.get(`${p}request_duration_seconds`)!;
    assert.equal(hist.type, 'histogram');
    assert.equal(m.value(`${p}request_duration_seconds_count`, { method: 'Echo' }), 7);
    assert.equal(m.value(`${p}request_duration_seconds_count`, { method: 'Count' }), 1);
    const buckets = hist.samples.filter((s) => s.name.endsWith('_bucket') && s.labels['method'] === 'Echo');
    const les = buckets.map((s) => Number(s.labels['le']));
    assert.deepEqual(
      les,
      [...les].sort((a, b) => a - b),
    );
    for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i]!.value >= buckets[i - 1]!.value);
    assert.equal(buckets.at(-1)!.labels['le'], '+Inf');
    assert.equal(buckets.at(-1)!.value, 7);
    // The server times a call from when it arrives, a moment after the client started its clock, so the deadline
    // call (150 ms on the client) and the cancelled one (about 50 ms) each last a little less there; together they
    // still make well over 0.15 s, which no run of only the fast calls comes near.
    assert.ok(m.value(`${p}request_duration_seconds_sum`, { method: 'Echo' })! >= 0.15);
    // The deadline call lasted 150 ms: not in the buckets up to 0.1 s.
    assert.ok(m.value(`${p}request_duration_seconds_bucket`, { method: 'Echo', le: '0.1' })! <= 6);
    // Stream messages.
    assert.equal(m.value(`${p}stream_messages_sent_total`, { method: 'Count' }), 5);
    assert.equal(m.value(`${p}stream_messages_sent_total`, { method: 'Chat' }), 3);
    assert.equal(m.value(`${p}stream_messages_received_total`, { method: 'Collect' }), 3);
    assert.equal(m.value(`${p}stream_messages_received_total`, { method: 'Chat' }), 3);
    assert.equal(m.sum(`${p}requests_in_flight`), 0);
    // Every sample belongs to a family with HELP and TYPE, under the server's prefix.
    for (const f of m.families.values()) {
      assert.ok(f.name.startsWith(p), f.name);
      assert.ok(f.help !== undefined && f.type !== undefined, `${f.name} has HELP and TYPE`);
    }
    assert.equal(
      m.samples.find((s) => s.labels['method'] === 'Check'),
      undefined,
    );
  });

  test('a service metric with awkward label values and help text comes back intact; gauges collect at scrape time', async () => {
    const odd = 'say "hi"\\ then\nnewline';
    server.metrics
      .counter<'what'>({ name: 'odd_total', help: 'Help with a \\ backslash\nand a newline', labelNames: ['what'] })
      .inc({ what: odd }, 2);
    let reads = 0;
    server.metrics.gauge({ name: 'reads', help: 'Scrapes seen', collect: (g) => g.set(++reads) });
    const first = (await scrape(http.url)).exposition;
    const second = (await scrape(http.url)).exposition;
    assert.equal(first.value('ch8_echo_odd_total', { what: odd }), 2);
    assert.equal(first.families.get('ch8_echo_odd_total')!.help, 'Help with a \\ backslash\nand a newline');
    assert.equal(first.value('ch8_echo_reads'), 1);
    assert.equal(second.value('ch8_echo_reads'), 2);
  });

  test('only GET /metrics is served', async () => {
    const res = await fetch(http.url.replace('/metrics', '/other'));
    assert.equal(res.status, 404);
    await res.text();
    const post = await fetch(http.url, { method: 'POST' });
    assert.equal(post.status, 404);
    await post.text();
  });
});

test('extra labels set by the handler (metricLabels); an undeclared one is a bug the call reports as INTERNAL', async () => {
  const server = createServer({ name: 'labelled', logger, metricLabels: ['model'] }).add(EchoService, {
    ...handlers,
    echo(req, ctx) {
      ctx.setMetricLabel(req.text === 'typo' ? 'modle' : 'model', req.text);
      if (req.fail === 'not-found') throw new NotFoundError('no model');
      return { text: req.text };
    },
  });
  const port = await server.listen('127.0.0.1:0');
  const client = createClient(EchoService, `127.0.0.1:${port}`);
  try {
    await client.echo({ text: 'sst2' });
    await client.echo({ text: 'sst2' });
    await assert.rejects(client.echo({ text: 'other', fail: 'not-found' }));
    await assert.rejects(client.echo({ text: 'typo' }), (e: GrpcError) => e.code === Code.INTERNAL);
    const m = parseExposition(await server.metrics.registry.metrics());
    const p = 'ch8_labelled_';
    assert.equal(m.value(`${p}requests_total`, { method: 'Echo', model: 'sst2', code: 'OK' }), 2);
    assert.equal(m.value(`${p}request_errors_total`, { method: 'Echo', model: 'other', code: 'NOT_FOUND' }), 1);
    assert.equal(m.value(`${p}requests_total`, { method: 'Echo', model: '', code: 'INTERNAL' }), 1);
    assert.equal(m.value(`${p}request_duration_seconds_count`, { method: 'Echo', model: 'sst2' }), 2);
  } finally {
    client.close();
    await server.shutdown(1000);
  }
});

test('settings: HOST:PORT or off; serveMetrics logs where it listens, and a taken port is logged, not fatal', async () => {
  assert.equal(parseMetricsAddress('off', 'CH8_X_METRICS_ADDR'), 'off');
  assert.equal(parseMetricsAddress('0.0.0.0:9461', 'CH8_X_METRICS_ADDR'), '0.0.0.0:9461');
  assert.equal(parseMetricsAddress('[::1]:0', 'CH8_X_METRICS_ADDR'), '[::1]:0');
  for (const bad of ['9461', 'localhost', 'host:99999', ':', 'on']) {
    assert.throws(
      () => parseMetricsAddress(bad, 'CH8_X_METRICS_ADDR'),
      (e: InvalidInputError) => e instanceof InvalidInputError && e.field === 'CH8_X_METRICS_ADDR',
    );
  }
  const server = createServer({ name: 'served', logger });
  const lines: string[] = [];
  const log = createLogger({ write: (l) => void lines.push(l) });
  const field = 'CH8_SERVED_METRICS_ADDR';
  assert.equal(await serveMetrics({ address: 'off', metrics: server.metrics, logger: log, field }), undefined);
  const up = await serveMetrics({ address: '127.0.0.1:0', metrics: server.metrics, logger: log, field });
  assert.ok(up !== undefined);
  try {
    const listening = lines.map((l) => JSON.parse(l)).find((l) => l.msg === 'metrics listening');
    assert.equal(listening.address, up.address);
    assert.match(up.address, /^127\.0\.0\.1:[1-9]\d*$/);
    const m = (await scrape(up.url)).exposition;
    assert.ok(m.families.has('ch8_served_process_cpu_seconds_total'), 'process metrics, prefixed');
    // The same port again: logged as an error, no endpoint, no throw.
    const blocker = createHttpServer();
    blocker.listen(0, '127.0.0.1');
    await once(blocker, 'listening');
    const taken = `127.0.0.1:${(blocker.address() as { port: number }).port}`;
    assert.equal(await serveMetrics({ address: taken, metrics: server.metrics, logger: log, field }), undefined);
    blocker.close();
    const error = lines.map((l) => JSON.parse(l)).find((l) => l.level === 'error');
    assert.equal(error.setting, field);
  } finally {
    await up.close();
  }
});
