import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { EchoService } from '@ch8/contracts/testing';
import { InvalidInputError } from '@ch8/errors';
import { createClient } from './client.ts';
import { parseConfig } from './config.ts';
import { parseExposition } from './exposition.ts';
import { createLogger } from './logger.ts';
import { checkHealth } from './probes.ts';
import { createServer, type Ch8Server, type ServiceHandlers } from './server.ts';
import { Code, GrpcError } from './status.ts';
import { holdCall } from './testing.ts';
import { callLimitsFromConfig, limitsConfigSpec, transportFromConfig, type CallLimits } from './transport.ts';
import { tlsConfigSpec } from './tls.ts';

const logger = createLogger({ level: 'silent' });

/** Handler-side view of each call: the deadline it was given, and whether its signal was aborted. */
const seen: { deadline: number; aborted: boolean }[] = [];
const handlers: ServiceHandlers<typeof EchoService> = {
  async echo(req, ctx) {
    const entry = { deadline: ctx.deadline, aborted: false };
    seen.push(entry);
    if (req.delayMs > 0) await sleep(req.delayMs, undefined, { signal: ctx.signal }).catch(() => undefined);
    entry.aborted = ctx.signal.aborted;
    if (req.fail === 'invalid') throw new InvalidInputError('refused on purpose', { field: 'fail' });
    return { text: req.text, payload: req.payload };
  },
  async *count(req) {
    for (let n = 0; n < req.count; n++) yield { n, payload: new Uint8Array(req.payloadBytes) };
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

async function start(limits: Partial<CallLimits>): Promise<{ server: Ch8Server; address: string }> {
  const server = createServer({ name: 'echo', logger, limits: { settings: 'CH8_ECHO', ...limits }, tls: undefined });
  server.add(EchoService, handlers);
  const port = await server.listen('127.0.0.1:0');
  server.ready();
  return { server, address: `127.0.0.1:${port}` };
}

function rejectsWith(call: Promise<unknown>, code: Code, details: RegExp): Promise<void> {
  return assert.rejects(call, (e: GrpcError) => {
    assert.ok(e instanceof GrpcError, String(e));
    assert.equal(Code[e.code], Code[code], e.message);
    assert.match(e.details, details);
    return true;
  });
}

describe('max concurrent calls', () => {
  let s: Awaited<ReturnType<typeof start>>;
  let client: ReturnType<typeof createClient<typeof EchoService>>;
  before(async () => {
    s = await start({ maxConcurrentCalls: 2, maxMessageBytes: 64 * 1024 });
    client = createClient(EchoService, s.address, { tls: undefined, maxMessageBytes: 1024 * 1024 });
  });
  after(async () => {
    client.close();
    await s.server.shutdown(500);
  });

  test('one call beyond the limit is RESOURCE_EXHAUSTED naming it, before its request is read; health stays SERVING', async () => {
    // A unary call and a stream hold the two places.
    const slow = client.echo({ text: 'slow', delayMs: 600 }, { timeoutMs: 10_000 });
    const stream = client.count({ count: 1000, payloadBytes: 32 * 1024 })[Symbol.asyncIterator]();
    await stream.next();
    await sleep(50);
    await rejectsWith(
      client.echo({ text: 'third' }, { timeoutMs: 5000 }),
      Code.RESOURCE_EXHAUSTED,
      /too many concurrent calls: the limit is 2 \(CH8_ECHO_MAX_CONCURRENT_CALLS\)/,
    );
    // Refused on its headers: a request over the message limit gets the concurrency answer, not the size one.
    await rejectsWith(
      client.echo({ payload: new Uint8Array(200 * 1024) }, { timeoutMs: 5000 }),
      Code.RESOURCE_EXHAUSTED,
      /too many concurrent calls/,
    );
    assert.equal(await checkHealth(s.address, '', 2000, { tls: undefined }), 'SERVING');
    assert.equal(await checkHealth(s.address, EchoService.typeName, 2000, { tls: undefined }), 'SERVING');
    // Freed places are taken again.
    await stream.return?.();
    assert.equal((await slow).text, 'slow');
    await sleep(50);
    assert.equal((await client.echo({ text: 'again' }, { timeoutMs: 5000 })).text, 'again');
    // Every ending frees its place: answers, errors, cancelled streams. Both places are free again.
    for (let i = 0; i < 5; i++) await assert.rejects(client.echo({ fail: 'invalid' }, { timeoutMs: 5000 }));
    const both = await Promise.all(
      [0, 1].map((i) => client.echo({ text: `both ${i}`, delayMs: 200 }, { timeoutMs: 5000 })),
    );
    assert.deepEqual(
      both.map((r) => r.text),
      ['both 0', 'both 1'],
    );
    const text = await s.server.metrics.registry.metrics();
    const refused = parseExposition(text).samples.filter(
      (x) => x.name === 'ch8_echo_requests_total' && x.labels['code'] === 'RESOURCE_EXHAUSTED',
    );
    assert.equal(
      refused.reduce((n, x) => n + x.value, 0),
      2,
      'refused calls are counted',
    );
  });
});

describe('message size', () => {
  let s: Awaited<ReturnType<typeof start>>;
  let client: ReturnType<typeof createClient<typeof EchoService>>;
  before(async () => {
    s = await start({ maxMessageBytes: 64 * 1024 });
    client = createClient(EchoService, s.address, { tls: undefined, maxMessageBytes: 1024 * 1024 });
  });
  after(async () => {
    client.close();
    await s.server.shutdown(500);
  });

  test('a request or an answer over the limit is RESOURCE_EXHAUSTED naming it; the server serves on', async () => {
    await rejectsWith(
      client.echo({ payload: new Uint8Array(100 * 1024) }, { timeoutMs: 5000 }),
      Code.RESOURCE_EXHAUSTED,
      /larger than max \(\d+ vs\.? 65536\)/,
    );
    const items: number[] = [];
    await rejectsWith(
      (async () => {
        for await (const m of client.count({ count: 3, payloadBytes: 100 * 1024 }, { timeoutMs: 5000 }))
          items.push(m.n);
      })(),
      Code.RESOURCE_EXHAUSTED,
      /Sent message larger than max \(\d+ vs\. 65536\)/,
    );
    assert.equal(await checkHealth(s.address, '', 2000, { tls: undefined }), 'SERVING');
    assert.equal((await client.echo({ text: 'small' }, { timeoutMs: 5000 })).text, 'small');
  });
});

describe('deadlines', () => {
  let s: Awaited<ReturnType<typeof start>>;
  let client: ReturnType<typeof createClient<typeof EchoService>>;
  before(async () => {
    s = await start({
      defaultDeadlineMs: 300,
      maxDeadlineMs: 500,
      methods: { Collect: { defaultDeadlineMs: 0, maxDeadlineMs: 0 } },
    });
    client = createClient(EchoService, s.address, { tls: undefined });
  });
  after(async () => {
    client.close();
    await s.server.shutdown(500);
  });

  test('a call without a deadline gets the default: DEADLINE_EXCEEDED naming it, the handler aborted', async () => {
    seen.length = 0;
    const t0 = Date.now();
    await rejectsWith(
      client.echo({ text: 'forever', delayMs: 5000 }),
      Code.DEADLINE_EXCEEDED,
      /the server's default deadline of 300 ms \(CH8_ECHO_DEFAULT_DEADLINE_MS\) passed/,
    );
    const took = Date.now() - t0;
    assert.ok(took >= 250 && took < 3000, `answered after ${took} ms`);
    await sleep(50);
    assert.equal(seen.length, 1);
    assert.ok(Math.abs(seen[0]!.deadline - (t0 + 300)) < 200, 'ctx.deadline is the default');
    assert.equal(seen[0]!.aborted, true, 'the handler was told to stop');
  });

  test('a longer deadline is cut to the longest; a shorter one is the client’s own', async () => {
    await rejectsWith(
      client.echo({ text: 'long', delayMs: 5000 }, { timeoutMs: 60_000 }),
      Code.DEADLINE_EXCEEDED,
      /the server's longest deadline of 500 ms \(CH8_ECHO_MAX_DEADLINE_MS\) passed/,
    );
    seen.length = 0;
    const t0 = Date.now();
    assert.equal((await client.echo({ text: 'quick', delayMs: 100 }, { timeoutMs: 400 })).text, 'quick');
    assert.ok(Math.abs(seen[0]!.deadline - (t0 + 400)) < 150);
  });

  test('streams too (a bidi stream left open); a method with its own setting (none) outlives the default', async () => {
    async function* idle() {
      yield { text: 'one' };
      await sleep(5000);
    }
    const got: string[] = [];
    await rejectsWith(
      (async () => {
        for await (const m of client.chat(idle())) got.push(m.text);
      })(),
      Code.DEADLINE_EXCEEDED,
      /default deadline of 300 ms/,
    );
    assert.deepEqual(got, ['one']);
    async function* slowly() {
      for (const text of ['a', 'b', 'c']) {
        await sleep(300);
        yield { text };
      }
    }
    assert.equal((await client.collect(slowly())).count, 3);
    assert.equal(await checkHealth(s.address, '', 2000, { tls: undefined }), 'SERVING');
  });
});

test('a call whose request never comes holds its place only until the server-set deadline', async () => {
  const s = await start({ maxConcurrentCalls: 1, defaultDeadlineMs: 400, maxDeadlineMs: 800 });
  const client = createClient(EchoService, s.address, { tls: undefined });
  const echo = `/${EchoService.typeName}/Echo`;
  const held: { close(): void }[] = [];
  try {
    const t0 = Date.now();
    const stalled = await holdCall(s.address, echo);
    held.push(stalled);
    await sleep(100);
    await rejectsWith(client.echo({ text: 'x' }, { timeoutMs: 2000 }), Code.RESOURCE_EXHAUSTED, /limit is 1/);
    const ended = await stalled.status;
    assert.equal(ended.code, Code.DEADLINE_EXCEEDED);
    assert.match(ended.details, /default deadline of 400 ms \(CH8_ECHO_DEFAULT_DEADLINE_MS\)/);
    assert.ok(Date.now() - t0 >= 350, 'not before the deadline');
    assert.equal((await client.echo({ text: 'in' }, { timeoutMs: 2000 })).text, 'in');
    // A client deadline longer than the server's longest is cut to it.
    const long = await holdCall(s.address, echo, { timeoutMs: 60_000 });
    held.push(long);
    const cut = await long.status;
    assert.equal(cut.code, Code.DEADLINE_EXCEEDED);
    assert.match(cut.details, /longest deadline of 800 ms \(CH8_ECHO_MAX_DEADLINE_MS\)/);
  } finally {
    for (const h of held) h.close();
    client.close();
    await s.server.shutdown(500);
  }
});

test('limit settings: named by the prefix, defaults, the default deadline within the longest', () => {
  const spec = {
    ...limitsConfigSpec('CH8_ECHO', {
      maxMessageBytes: 4 << 20,
      maxConcurrentCalls: 64,
      defaultDeadlineMs: 1000,
      maxDeadlineMs: 5000,
    }),
  };
  const c = parseConfig(spec, { CH8_ECHO_MAX_CONCURRENT_CALLS: '8' });
  assert.deepEqual(callLimitsFromConfig(c, 'CH8_ECHO'), {
    maxMessageBytes: 4 << 20,
    maxConcurrentCalls: 8,
    defaultDeadlineMs: 1000,
    maxDeadlineMs: 5000,
    settings: 'CH8_ECHO',
  });
  assert.throws(
    () => callLimitsFromConfig(parseConfig(spec, { CH8_ECHO_DEFAULT_DEADLINE_MS: '9000' }), 'CH8_ECHO'),
    (e: unknown) =>
      e instanceof InvalidInputError && /CH8_ECHO_DEFAULT_DEADLINE_MS \(9000\) must not exceed/.test(e.message),
  );
  assert.throws(() => parseConfig(spec, { CH8_ECHO_MAX_MESSAGE_BYTES: '12' }), /CH8_ECHO_MAX_MESSAGE_BYTES/);
  const full = {
    ...spec,
    ...tlsConfigSpec,
    healthAddress: { env: 'CH8_ECHO_HEALTH_ADDR', kind: 'string', default: 'off', doc: '' },
  } as const;
  const t = transportFromConfig(parseConfig(full, { CH8_ECHO_HEALTH_ADDR: '0.0.0.0:9470' }), 'CH8_ECHO');
  assert.equal(t.tls, undefined);
  assert.equal(t.healthAddress, '0.0.0.0:9470');
  assert.equal(transportFromConfig(parseConfig(full, {}), 'CH8_ECHO').healthAddress, '');
  assert.throws(
    () => transportFromConfig(parseConfig(full, { CH8_ECHO_HEALTH_ADDR: 'nine' }), 'CH8_ECHO'),
    /CH8_ECHO_HEALTH_ADDR/,
  );
});
