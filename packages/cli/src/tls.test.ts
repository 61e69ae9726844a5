import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { EchoService } from '@ch8/contracts/testing';
import { InvalidInputError } from '@ch8/errors';
import { silentLogger } from '@ch8/service-kit/logger';
import { createServer, type Ch8Server } from '@ch8/service-kit/server';
import { makeTestCertificates, type TestCertificates } from '@ch8/service-kit/testing';
import { defaultClientTls, loadTls } from '@ch8/service-kit/tls';
import { COMMANDS } from './commands/index.ts';
import { runCommand } from './testing.ts';

const dir = mkdtempSync(join(tmpdir(), 'ch8-cli-tls-'));
const made = makeTestCertificates(dir);
const skip = 'skip' in made ? made.skip : false;
const certs = made as TestCertificates;
const health = COMMANDS.find((c) => c.name === 'health')!;

let server: Ch8Server;
let env: Record<string, string>;

before(async () => {
  if (skip) return;
  server = createServer({
    name: 'echo',
    logger: silentLogger,
    tls: loadTls(
      { ca: certs.ca, cert: certs.serverCert, key: certs.serverKey, requireClientCert: true },
      { role: 'server' },
    ),
  }).add(EchoService, {
    echo: async (r) => ({ text: r.text }),
    async *count() {},
    collect: async () => ({ count: 0 }),
    async *chat() {},
  });
  const port = await server.listen('127.0.0.1:0');
  server.ready();
  env = { CH8_GATEWAY_ADDR: `127.0.0.1:${port}` };
});

after(async () => {
  await server?.shutdown(500);
  rmSync(dir, { recursive: true, force: true });
});

const status = (value: unknown) => (value as { services: { status: string }[] }).services[0]!.status;

test('commands that dial a service take --tls-ca, --tls-cert, --tls-key; chapter, serve and eval do not', () => {
  for (const name of ['health', 'predict', 'train', 'runs watch', 'models list', 'data stats', 'vectors lookup'])
    assert.ok('tls-ca' in COMMANDS.find((c) => c.name === name)!.flags, name);
  for (const name of ['chapter', 'eval']) assert.ok(!('tls-ca' in COMMANDS.find((c) => c.name === name)!.flags), name);
  // serve listens: its TLS flags are the gateway's own (certificate to serve, client authentication).
  assert.ok('tls-client-auth' in COMMANDS.find((c) => c.name === 'serve')!.flags);
});

test(
  'ch8 health over mutual TLS: flags or CH8_TLS_* work; without them the service is UNREACHABLE',
  { skip },
  async () => {
    const args = ['--service', 'gateway', '--json'];
    const flags = ['--tls-ca', certs.ca, '--tls-cert', certs.clientCert, '--tls-key', certs.clientKey];
    const ok = await runCommand(health, [...args, ...flags], { cwd: dir, env });
    assert.equal(ok.code, 0, ok.logs.join('\n'));
    assert.equal(status(ok.value), 'SERVING');
    // Relative paths resolve against the directory the command was typed in.
    const relative = ['--tls-ca', basename(certs.ca), '--tls-cert', 'client.pem', '--tls-key', 'client.key'];
    assert.equal((await runCommand(health, [...args, ...relative], { cwd: dirname(certs.ca), env })).code, 0);
    const fromEnv = await runCommand(health, args, {
      cwd: dir,
      env: { ...env, CH8_TLS_CA: certs.ca, CH8_TLS_CERT: certs.clientCert, CH8_TLS_KEY: certs.clientKey },
    });
    assert.equal(status(fromEnv.value), 'SERVING');
    const plain = await runCommand(health, args, { cwd: dir, env });
    assert.equal(plain.code, 1);
    assert.equal(status(plain.value), 'UNREACHABLE');
    const noCert = await runCommand(health, [...args, '--tls-ca', certs.ca], { cwd: dir, env });
    assert.equal(status(noCert.value), 'UNREACHABLE', 'mutual TLS refuses a client without a certificate');
    assert.equal(defaultClientTls(), undefined, 'the process default is restored after each command');
  },
);

test('bad TLS flags fail before any call, naming the flag (or the variable) and the file', { skip }, async () => {
  const bad = async (argv: string[], extra: Record<string, string>, match: RegExp) =>
    assert.rejects(runCommand(health, ['--json', ...argv], { cwd: dir, env: { ...env, ...extra } }), (e: unknown) => {
      assert.ok(e instanceof InvalidInputError, String(e));
      assert.match(e.message, match);
      return true;
    });
  await bad(['--tls-cert', certs.clientCert], {}, /field --tls-key: --tls-cert is set but --tls-key is not/);
  await bad(['--tls-ca', 'nope.pem'], {}, /nope\.pem, field --tls-ca: cannot read the TLS file: no such file/);
  await bad([], { CH8_TLS_CA: join(dir, 'gone.pem') }, /gone\.pem, field CH8_TLS_CA: cannot read/);
  await bad(
    ['--tls-cert', certs.clientCert, '--tls-key', certs.serverKey],
    {},
    /server\.key, field --tls-key: the key does not match the certificate/,
  );
});
