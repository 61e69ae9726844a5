import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';
import { makeTestCertificates, startServiceProcess } from '@ch8/service-kit/testing';
import { parseEmbeddingConfig } from './config.ts';

const PACKAGE = fileURLToPath(new URL('..', import.meta.url));
const dirs: string[] = [];
after(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

test('transport settings: plaintext, limits for loading large sources, no health port by default', () => {
  const { transport } = parseEmbeddingConfig({});
  assert.equal(transport.tls, undefined);
  assert.equal(transport.healthAddress, '');
  assert.deepEqual(transport.limits, {
    maxMessageBytes: 64 * 1024 * 1024,
    maxConcurrentCalls: 256,
    defaultDeadlineMs: 900_000,
    maxDeadlineMs: 3_600_000,
    settings: 'CH8_EMBEDDING',
  });
  const set = parseEmbeddingConfig({
    CH8_EMBEDDING_MAX_CONCURRENT_CALLS: '3',
    CH8_EMBEDDING_HEALTH_ADDR: '0.0.0.0:9471',
  });
  assert.equal(set.transport.limits.maxConcurrentCalls, 3);
  assert.equal(set.transport.healthAddress, '0.0.0.0:9471');
});

test('bad TLS settings fail the start: exit code 2 and one log line naming the setting and the file', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ch8-emb-tls-'));
  dirs.push(dir);
  const certs = makeTestCertificates(dir);
  if ('skip' in certs) return t.skip(certs.skip);
  const start = (env: Record<string, string>) =>
    startServiceProcess({
      main: 'src/main.ts',
      cwd: PACKAGE,
      env: { CH8_EMBEDDING_ADDR: '127.0.0.1:0', CH8_EMBEDDING_METRICS_ADDR: '127.0.0.1:0', ...env },
    });
  // One process (each costs seconds here); the kit's tests try every other bad file.
  const [mismatch] = await Promise.allSettled([
    start({ CH8_TLS_CERT: certs.serverCert, CH8_TLS_KEY: certs.clientKey }),
  ]);
  const why = (r: PromiseSettledResult<unknown>) => {
    assert.equal(r.status, 'rejected');
    return String((r as PromiseRejectedResult).reason);
  };
  assert.match(why(mismatch!), /exited \(2\)/);
  assert.match(why(mismatch!), /"msg":"invalid settings, not starting"/);
  assert.match(why(mismatch!), /the key does not match the certificate/);
  assert.match(why(mismatch!), /"setting":"CH8_TLS_KEY","file":"[^"]*client\.key"/);
});
