import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { EchoService } from '@ch8/contracts/testing';
import { InvalidInputError } from '@ch8/errors';
import { createClient } from './client.ts';
import { createLogger } from './logger.ts';
import { checkHealth, listServices } from './probes.ts';
import { createServer, isLoopbackAddress, type Ch8Server } from './server.ts';
import { Code, GrpcError } from './status.ts';
import { makeTestCertificates, type TestCertificates } from './testing.ts';
import { loadTls, useClientTls, type Tls } from './tls.ts';

const dir = mkdtempSync(join(tmpdir(), 'ch8-kit-tls-'));
const made = makeTestCertificates(dir);
const skip = 'skip' in made ? made.skip : false;
const certs = made as TestCertificates;
after(() => rmSync(dir, { recursive: true, force: true }));

const handlers = {
  echo: async (req: { text: string }) => ({ text: req.text }),
  async *count() {},
  collect: async () => ({ count: 0 }),
  async *chat() {},
};

async function start(
  tls: Tls | undefined,
  extra: { healthAddress?: string; address?: string } = {},
): Promise<{ server: Ch8Server; address: string; logs: string[] }> {
  const logs: string[] = [];
  const logger = createLogger({ level: 'debug', write: (l) => void logs.push(l) });
  const server = createServer({ name: 'echo', logger, tls, healthAddress: extra.healthAddress ?? '' });
  server.add(EchoService, handlers);
  const port = await server.listen(extra.address ?? '127.0.0.1:0');
  server.ready();
  return { server, address: `127.0.0.1:${port}`, logs };
}

/** UNAVAILABLE, as a refused handshake gives, within a short deadline. */
async function refused(call: Promise<unknown>): Promise<string> {
  let details = '';
  await assert.rejects(call, (e: GrpcError) => {
    assert.ok(e instanceof GrpcError, String(e));
    assert.equal(e.code, Code.UNAVAILABLE, e.message);
    details = e.details;
    return true;
  });
  return details;
}

const serverTls = () => loadTls({ cert: certs.serverCert, key: certs.serverKey }, { role: 'server' })!;

describe('loadTls: bad settings name the setting and the file', { skip }, () => {
  const invalid = (files: Parameters<typeof loadTls>[0], role: 'server' | 'client', match: RegExp, now?: number) =>
    assert.throws(
      () => loadTls(files, { role, ...(now !== undefined ? { now } : {}) }),
      (e: unknown) => {
        assert.ok(e instanceof InvalidInputError, String(e));
        assert.match(e.message, match);
        return true;
      },
    );

  test('missing, unreadable, not PEM, a key of another certificate, half a pair, expired', () => {
    const missing = join(dir, 'nope.pem');
    invalid({ cert: missing, key: certs.serverKey }, 'server', /CH8_TLS_CERT.*no such file|nope\.pem.*CH8_TLS_CERT/);
    invalid({ ca: missing }, 'client', /nope\.pem, field CH8_TLS_CA: cannot read the TLS file: no such file/);
    invalid({ ca: dir }, 'client', /field CH8_TLS_CA: cannot read the TLS file: is a directory/);
    const junk = join(dir, 'junk.pem');
    writeFileSync(junk, 'hello\n');
    invalid({ cert: junk, key: certs.serverKey }, 'server', /junk\.pem, field CH8_TLS_CERT: not a PEM certificate/);
    invalid(
      { cert: certs.serverCert, key: junk },
      'server',
      /junk\.pem, field CH8_TLS_KEY: not a usable PEM private key/,
    );
    invalid(
      { cert: certs.serverCert, key: certs.clientKey },
      'server',
      /client\.key, field CH8_TLS_KEY: the key does not match the certificate in .*server\.pem/,
    );
    invalid({ cert: certs.serverCert }, 'server', /field CH8_TLS_KEY: CH8_TLS_CERT is set but CH8_TLS_KEY is not/);
    invalid({ ca: certs.ca }, 'server', /serving TLS needs CH8_TLS_CERT and CH8_TLS_KEY/);
    invalid(
      { cert: certs.serverCert, key: certs.serverKey, requireClientCert: true },
      'server',
      /field CH8_TLS_CA: mutual TLS \(CH8_TLS_CLIENT_AUTH=require\) needs CH8_TLS_CA/,
    );
    invalid({ requireClientCert: true }, 'server', /CH8_TLS_CLIENT_AUTH=require\) needs CH8_TLS_CERT/);
    const inTenDays = Date.now() + 10 * 86_400_000;
    invalid({ ca: certs.ca }, 'client', /ca\.pem, field CH8_TLS_CA: the certificate .*expired on/, inTenDays);
    // The CLI names its flags instead.
    assert.throws(
      () =>
        loadTls(
          { cert: certs.clientCert },
          { role: 'client', names: { ca: '--tls-ca', cert: '--tls-cert', key: '--tls-key', clientAuth: '-' } },
        ),
      /field --tls-key: --tls-cert is set but --tls-key is not/,
    );
  });

  test('nothing given is plaintext; a CA alone is a client that verifies the server', () => {
    assert.equal(loadTls({}, { role: 'server' }), undefined);
    const ca = loadTls({ ca: certs.ca }, { role: 'client' })!;
    assert.deepEqual([ca.cert, ca.key, ca.files], [undefined, undefined, { ca: certs.ca }]);
  });
});

describe('TLS', { skip }, () => {
  let s: Awaited<ReturnType<typeof start>>;
  before(async () => {
    s = await start(serverTls());
  });
  after(() => s.server.shutdown(500));

  test('a client that trusts the CA is served; the listening log says TLS is on', async () => {
    const client = createClient(EchoService, s.address, { tls: loadTls({ ca: certs.ca }) });
    try {
      assert.equal((await client.echo({ text: 'over tls' }, { timeoutMs: 5000 })).text, 'over tls');
    } finally {
      client.close();
    }
    const listening = s.logs.map((l) => JSON.parse(l)).find((r) => r.msg === 'listening');
    assert.equal(listening.tls, 'on');
    assert.equal(await checkHealth(s.address, '', 3000, { tls: loadTls({ ca: certs.ca }) }), 'SERVING');
    assert.ok((await listServices(s.address, 3000, { tls: loadTls({ ca: certs.ca }) })).includes(EchoService.typeName));
  });

  test('a client without the CA is refused: UNAVAILABLE, the handshake fails; plaintext too', async () => {
    const other = createClient(EchoService, s.address, { tls: loadTls({ ca: certs.otherCa }) });
    const plain = createClient(EchoService, s.address, { tls: undefined });
    try {
      const details = await refused(other.echo({ text: 'x' }, { timeoutMs: 3000 }));
      assert.match(details, /certificate|handshake|SSL|TLS/i);
      await refused(plain.echo({ text: 'x' }, { timeoutMs: 3000 }));
    } finally {
      other.close();
      plain.close();
    }
    assert.equal(await checkHealth(s.address, '', 2000, { tls: undefined }), 'UNREACHABLE');
  });
});

describe('mutual TLS', { skip }, () => {
  let s: Awaited<ReturnType<typeof start>>;
  before(async () => {
    const tls = loadTls(
      { ca: certs.ca, cert: certs.serverCert, key: certs.serverKey, requireClientCert: true },
      { role: 'server' },
    );
    s = await start(tls, { healthAddress: '127.0.0.1:0' });
  });
  after(() => s.server.shutdown(500));

  test('a client with a certificate signed by the CA is served', async () => {
    const client = createClient(EchoService, s.address, {
      tls: loadTls({ ca: certs.ca, cert: certs.clientCert, key: certs.clientKey }),
    });
    try {
      assert.equal((await client.echo({ text: 'mutual' }, { timeoutMs: 5000 })).text, 'mutual');
    } finally {
      client.close();
    }
  });

  test('a client without a certificate, or with one of another CA, is refused (UNAVAILABLE)', async () => {
    const none = createClient(EchoService, s.address, { tls: loadTls({ ca: certs.ca }) });
    const stranger = createClient(EchoService, s.address, {
      tls: loadTls({ ca: certs.ca, cert: certs.otherCert, key: certs.otherKey }),
    });
    try {
      await refused(none.echo({ text: 'x' }, { timeoutMs: 3000 }));
      await refused(stranger.echo({ text: 'x' }, { timeoutMs: 3000 }));
    } finally {
      none.close();
      stranger.close();
    }
  });

  test('the plaintext health port answers probes with the same statuses, and nothing else', async () => {
    const record = s.logs.map((l) => JSON.parse(l)).find((r) => r.msg === 'health listening');
    assert.ok(record, 'health listening logged');
    const health = String(record.address);
    assert.equal(await checkHealth(health, '', 2000, { tls: undefined }), 'SERVING');
    assert.equal(await checkHealth(health, EchoService.typeName, 2000, { tls: undefined }), 'SERVING');
    s.server.setStatus(EchoService.typeName, 'NOT_SERVING');
    assert.equal(await checkHealth(health, EchoService.typeName, 2000, { tls: undefined }), 'NOT_SERVING');
    s.server.setStatus(EchoService.typeName, 'SERVING');
    const echo = createClient(EchoService, health, { tls: undefined });
    try {
      await assert.rejects(
        echo.echo({ text: 'x' }, { timeoutMs: 2000 }),
        (e: GrpcError) => e.code === Code.UNIMPLEMENTED,
      );
    } finally {
      echo.close();
    }
  });
});

describe('plaintext', () => {
  test('loopback addresses, and one warning when plaintext listens beyond loopback', { skip }, async () => {
    for (const a of ['127.0.0.1:1', 'localhost:1', '[::1]:1', '127.3.4.5:1', 'unix:/tmp/x.sock'])
      assert.ok(isLoopbackAddress(a), a);
    for (const a of ['0.0.0.0:1', '[::]:1', '10.1.2.3:1', 'gateway:50054', '192.168.0.7:1'])
      assert.ok(!isLoopbackAddress(a), a);
    const open = await start(undefined, { address: '0.0.0.0:0' });
    const secure = await start(serverTls(), { address: '0.0.0.0:0' });
    const local = await start(undefined);
    try {
      const warnings = (logs: string[]) =>
        logs.map((l) => JSON.parse(l)).filter((r) => r.level === 'warn' && /plaintext/.test(r.msg));
      assert.equal(warnings(open.logs).length, 1);
      assert.match(warnings(open.logs)[0].msg, /non-loopback.*CH8_TLS_CERT and CH8_TLS_KEY/);
      assert.equal(warnings(secure.logs).length, 0);
      assert.equal(warnings(local.logs).length, 0);
    } finally {
      await Promise.all([open, secure, local].map((x) => x.server.shutdown(500)));
    }
  });
});

test(
  'useClientTls: clients made without options dial with it, in worker threads started afterwards too',
  { skip },
  async () => {
    const s = await start(serverTls());
    try {
      useClientTls(loadTls({ ca: certs.ca }));
      const client = createClient(EchoService, s.address);
      try {
        assert.equal((await client.echo({ text: 'default' }, { timeoutMs: 5000 })).text, 'default');
      } finally {
        client.close();
      }
      // As the trainer starts its run threads: a bootstrap registers tsx's loader in the thread, then imports.
      const kit = new URL('./tls.ts', import.meta.url).href;
      const code = `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then(({ register }) => { register(); return import(${JSON.stringify(kit)}); }).then((kit) => { const tls = kit.defaultClientTls(); require('node:worker_threads').parentPort.postMessage({ ca: tls && tls.files.ca, isBuffer: !!tls && Buffer.isBuffer(tls.ca) }); })`;
      const worker = new Worker(code, { eval: true, execArgv: [] });
      const got = await new Promise((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      });
      await worker.terminate();
      assert.deepEqual(got, { ca: certs.ca, isBuffer: true });
    } finally {
      useClientTls(undefined);
      await s.server.shutdown(500);
    }
  },
);
