import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { EchoService } from '@ch8/contracts/testing';
import { InvalidInputError, NotFoundError } from '@ch8/errors';
import { createClient } from './client.ts';
import { createLogger } from './logger.ts';
import { checkHealth, listServices } from './probes.ts';
import { createServer, type Ch8Server, type ServiceHandlers } from './server.ts';
import { Code, GrpcError } from './status.ts';

const logLines: string[] = [];
const logger = createLogger({ level: 'debug', write: (l) => void logLines.push(l) });

let produced = 0;
const handlers: ServiceHandlers<typeof EchoService> = {
  async echo(req, ctx) {
    if (req.delayMs > 0) await sleep(req.delayMs, undefined, { signal: ctx.signal }).catch(() => undefined);
    if (req.fail === 'invalid') throw new InvalidInputError('text must not be empty', { field: 'text' });
    if (req.fail === 'not-found') throw new NotFoundError('no such thing');
    if (req.fail === 'internal') throw new Error('secret database password in this message');
    return { text: req.text, payload: req.payload };
  },
  async *count(req) {
    for (let n = 0; n < req.count; n++) {
      produced++;
      yield { n, payload: new Uint8Array(req.payloadBytes) };
    }
  },
  async collect(reqs) {
    const parts: string[] = [];
    for await (const r of reqs) parts.push(r.text);
    return { text: parts.join(' '), count: parts.length };
  },
  async *chat(reqs) {
    for await (const r of reqs) yield { text: `re: ${r.text}` };
  },
};

describe('service kit server + client', () => {
  let server: Ch8Server;
  let addr: string;
  let client: ReturnType<typeof createClient<typeof EchoService>>;

  before(async () => {
    server = createServer({ name: 'echo', logger, maxMessageBytes: 64 * 1024, maxBufferedResponses: 4 });
    server.add(EchoService, handlers);
    const port = await server.listen('127.0.0.1:0');
    addr = `127.0.0.1:${port}`;
    client = createClient(EchoService, addr, { maxMessageBytes: 1024 * 1024 });
  });
  after(async () => {
    client.close();
    await server.shutdown(1000);
  });

  test('unary', async () => {
    const res = await client.echo({ text: 'hello' });
    assert.equal(res.text, 'hello');
  });

  test('server streaming delivers every message in order', async () => {
    const got: number[] = [];
    for await (const m of client.count({ count: 50 })) got.push(m.n);
    assert.deepEqual(
      got,
      Array.from({ length: 50 }, (_, i) => i),
    );
  });

  test('client streaming', async () => {
    async function* words() {
      yield { text: 'a' };
      yield { text: 'b' };
      yield { text: 'c' };
    }
    const res = await client.collect(words());
    assert.deepEqual([res.text, res.count], ['a b c', 3]);
  });

  test('bidi streaming', async () => {
    const got: string[] = [];
    for await (const m of client.chat([{ text: 'x' }, { text: 'y' }])) got.push(m.text);
    assert.deepEqual(got, ['re: x', 're: y']);
  });

  test('typed errors map to status codes; unknown errors are INTERNAL and not leaked', async () => {
    await assert.rejects(client.echo({ fail: 'invalid' }), (e: GrpcError) => {
      assert.equal(e.code, Code.INVALID_ARGUMENT);
      assert.match(e.details, /field text: text must not be empty/);
      return true;
    });
    await assert.rejects(client.echo({ fail: 'not-found' }), (e: GrpcError) => e.code === Code.NOT_FOUND);
    await assert.rejects(client.echo({ fail: 'internal' }), (e: GrpcError) => {
      assert.equal(e.code, Code.INTERNAL);
      assert.doesNotMatch(e.details, /password/);
      return true;
    });
    assert.ok(
      logLines.some((l) => l.includes('password') && l.includes('"level":"error"')),
      'cause is logged',
    );
  });

  test('deadline exceeded', async () => {
    await assert.rejects(
      client.echo({ delayMs: 2000 }, { timeoutMs: 100 }),
      (e: GrpcError) => e.code === Code.DEADLINE_EXCEEDED,
    );
  });

  test('message too large is refused with RESOURCE_EXHAUSTED', async () => {
    await assert.rejects(
      client.echo({ payload: new Uint8Array(200 * 1024) }),
      (e: GrpcError) => e.code === Code.RESOURCE_EXHAUSTED,
    );
    // The server still serves afterwards.
    assert.equal((await client.echo({ text: 'still here' })).text, 'still here');
  });

  test('a slow consumer keeps the server from running ahead (bounded buffering)', async () => {
    produced = 0;
    const it = client.count({ count: 2000, payloadBytes: 16 * 1024 })[Symbol.asyncIterator]();
    await it.next();
    await sleep(300);
    // Handler is paused: it produced at most its buffer + the transport's windows, far from all 2000 (32 MB).
    assert.ok(produced < 400, `produced ${produced} while the client read 1`);
    await it.return?.();
  });

  test('health: NOT_SERVING until ready, then SERVING; unknown service reported', async () => {
    assert.equal(await checkHealth(addr, 'ch8.testing.v1.EchoService'), 'NOT_SERVING');
    assert.equal(await checkHealth(addr, ''), 'NOT_SERVING');
    server.ready();
    assert.equal(await checkHealth(addr, ''), 'SERVING');
    assert.equal(await checkHealth(addr, 'ch8.testing.v1.EchoService'), 'SERVING');
    server.setStatus('ch8.testing.v1.EchoService', 'NOT_SERVING');
    assert.equal(await checkHealth(addr, 'ch8.testing.v1.EchoService'), 'NOT_SERVING');
    assert.equal(await checkHealth(addr, 'no.such.Service'), 'SERVICE_UNKNOWN');
  });

  test('reflection lists the services', async () => {
    const names = await listServices(addr);
    assert.ok(names.includes('ch8.testing.v1.EchoService'), names.join(','));
    assert.ok(names.includes('grpc.health.v1.Health'), names.join(','));
  });
});

test('an unreachable server reports UNREACHABLE', async () => {
  assert.equal(await checkHealth('127.0.0.1:1', '', 500), 'UNREACHABLE');
});

test('graceful shutdown lets an in-flight call finish and refuses new ones', async () => {
  const server = createServer({ name: 'echo', logger });
  server.add(EchoService, handlers);
  const port = await server.listen('127.0.0.1:0');
  const client = createClient(EchoService, `127.0.0.1:${port}`);
  try {
    const slow = client.echo({ text: 'slow', delayMs: 400 });
    await sleep(100);
    assert.equal(server.inFlight, 1);
    const stopped = server.shutdown(5000);
    const res = await slow;
    assert.equal(res.text, 'slow');
    await stopped;
    await assert.rejects(
      client.echo({ text: 'late' }, { timeoutMs: 500 }),
      (e: GrpcError) => e.code === Code.UNAVAILABLE || e.code === Code.DEADLINE_EXCEEDED,
    );
  } finally {
    client.close();
  }
});

test(
  'shutdown cancels calls still running after the grace period: unary, client, server and bidi streams',
  { timeout: 20_000 },
  async () => {
    // Handlers that go on after the abort: the echo answers once its sleep is aborted (the kit must not let that answer
    // out after cancelling), the others ignore the signal altogether.
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    // channelz off: grpc-js's forced shutdown then leaves connections open, so only the kit's own ending of the
    // calls can cancel them.
    const server = createServer({ name: 'echo', logger, channelOptions: { 'grpc.enable_channelz': 0 } });
    server.add(EchoService, {
      ...handlers,
      async *count() {
        yield { n: 0, payload: new Uint8Array(0) };
        await held;
      },
    });
    const port = await server.listen('127.0.0.1:0');
    const client = createClient(EchoService, `127.0.0.1:${port}`);
    async function* open() {
      yield { text: 'one' };
      await held;
    }
    const cancelled = (e: unknown) => e instanceof GrpcError && e.code === Code.CANCELLED;
    try {
      const unary = client.echo({ text: 'stuck', delayMs: 60_000 });
      const collected = client.collect(open());
      const counted = (async () => {
        for await (const _ of client.count({ count: 2, payloadBytes: 0 }));
      })();
      const chatted = (async () => {
        for await (const _ of client.chat(open()));
      })();
      const outcomes = Promise.allSettled([unary, collected, counted, chatted]);
      await sleep(150);
      const t0 = Date.now();
      await server.shutdown(200);
      assert.ok(Date.now() - t0 < 5000);
      const kinds = ['unary', 'client stream', 'server stream', 'bidi stream'];
      (await outcomes).forEach((o, i) => {
        assert.ok(o.status === 'rejected' && cancelled(o.reason), `${kinds[i]}: ${JSON.stringify(o)}`);
      });
    } finally {
      release();
      client.close();
    }
  },
);

test('onAbort: runs once when the client cancels (with aborted and the signal), not after an answer; its remover works', async () => {
  const events: string[] = [];
  let release: (() => void) | undefined;
  const server = createServer({ name: 'echo', logger }).add(EchoService, {
    ...handlers,
    async echo(req, ctx) {
      assert.equal(ctx.aborted, false);
      if (req.text === 'answered') {
        ctx.onAbort(() => events.push('answered aborted'));
        return { text: req.text };
      }
      const removed = ctx.onAbort(() => events.push('removed listener ran'));
      removed();
      ctx.onAbort(() => events.push(`aborted=${ctx.aborted} signal=${ctx.signal.aborted}`));
      await new Promise<void>((resolve) => (release = resolve));
      ctx.onAbort(() => events.push('listener added after the abort ran'));
      return { text: req.text };
    },
  });
  const port = await server.listen('127.0.0.1:0');
  const client = createClient(EchoService, `127.0.0.1:${port}`);
  try {
    assert.equal((await client.echo({ text: 'answered' })).text, 'answered');
    const controller = new AbortController();
    const held = client.echo({ text: 'held' }, { signal: controller.signal });
    for (let i = 0; i < 100 && release === undefined; i++) await sleep(10);
    controller.abort();
    await assert.rejects(held, (e: GrpcError) => e.code === Code.CANCELLED);
    for (let i = 0; i < 100 && events.length === 0; i++) await sleep(10);
    release!();
    await sleep(50);
    assert.deepEqual(events, ['aborted=true signal=true']);
  } finally {
    client.close();
    await server.shutdown(100);
  }
});
