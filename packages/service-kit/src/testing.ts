/**
 * For service tests: start a server built by a service's createXServer(deps) on a free loopback port, marked
 * SERVING, and stop it again; or run a service's main.ts as a process and find where it listens; make a CA and
 * certificates for TLS tests.
 */
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Ch8Server } from './server.ts';

export interface RunningTestServer {
  address: string;
  port: number;
  stop(): Promise<void>;
}

export async function startTestServer(
  built: { server: Ch8Server; close?: () => Promise<void> },
  except: readonly string[] = [],
): Promise<RunningTestServer> {
  const port = await built.server.listen('127.0.0.1:0');
  built.server.ready(except);
  return {
    address: `127.0.0.1:${port}`,
    port,
    async stop() {
      await built.server.shutdown(1000);
      await built.close?.();
    },
  };
}

export interface ServiceProcess {
  /** gRPC HOST:PORT as the kit's server logged it ('listening'). */
  address: string;
  /** http://HOST:PORT/metrics as serveMetrics logged it ('metrics listening'). */
  metricsUrl: string;
  /** The JSON log records so far. */
  records: Record<string, unknown>[];
  /** SIGTERM, then the exit code (the kit's runService exits 0 after draining). */
  stop(): Promise<number | null>;
}

/**
 * For service tests: runs a service's main.ts (`node --import tsx`) in `cwd` with `env` added to this process's
 * environment; resolves once it logged both its gRPC address and its metrics endpoint (give both as port 0).
 */
export async function startServiceProcess(options: {
  main: string;
  cwd: string;
  env: Record<string, string>;
  timeoutMs?: number;
}): Promise<ServiceProcess> {
  const env: Record<string, string> = { ...(process.env as Record<string, string>), ...options.env };
  delete env['NODE_TEST_CONTEXT'];
  const child = spawn(process.execPath, ['--import', 'tsx', options.main], {
    cwd: options.cwd,
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  const records: Record<string, unknown>[] = [];
  const lines: string[] = [];
  let address: string | undefined;
  let metricsUrl: string | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${options.main} not listening after ${options.timeoutMs ?? 30_000} ms`)),
        options.timeoutMs ?? 30_000,
      );
      createInterface({ input: child.stderr! }).on('line', (line) => {
        lines.push(line);
        let record: Record<string, unknown>;
        try {
          record = JSON.parse(line) as Record<string, unknown>;
        } catch {
          return; // a plain-text line from a library
        }
        records.push(record);
        if (record['msg'] === 'listening') address = String(record['address']);
        if (record['msg'] === 'metrics listening') metricsUrl = String(record['url']);
        if (address !== undefined && metricsUrl !== undefined) {
          clearTimeout(timer);
          resolve();
        }
      });
      void exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`${options.main} exited (${code}) before it was listening:\n${lines.join('\n')}`));
      });
    });
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
  return {
    address: address!,
    metricsUrl: metricsUrl!,
    records,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

/** PEM files for TLS tests, all in one folder. */
export interface TestCertificates {
  dir: string;
  /** The CA that signed the server and client certificates. */
  ca: string;
  /** For 127.0.0.1, ::1 and localhost; usable by a server and as a client certificate (a service calling another). */
  serverCert: string;
  serverKey: string;
  /** A client certificate (CN ch8-test-client). */
  clientCert: string;
  clientKey: string;
  /** Another CA, and a client certificate it signed: neither is trusted by the first. */
  otherCa: string;
  otherCert: string;
  otherKey: string;
}

/**
 * Makes a CA, a server certificate and client certificates under `dir` with the `openssl` command (P-256 keys, valid
 * for a day). Returns `{ skip }` with the reason when openssl is not there (a test then skips, saying why).
 */
export function makeTestCertificates(dir: string): TestCertificates | { skip: string } {
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    openssl('version');
  } catch (e) {
    return { skip: `TLS tests need the openssl command: ${(e as Error).message}` };
  }
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  const ca = (name: string) =>
    openssl(
      'req',
      '-x509',
      ...ec,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.pem`,
      '-days',
      '1',
      '-subj',
      `/CN=${name}`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    );
  const leaf = (name: string, signer: string, cn: string, extensions: string) => {
    writeFileSync(join(dir, `${name}.ext`), extensions);
    openssl('req', '-new', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
    openssl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      `${signer}.pem`,
      '-CAkey',
      `${signer}.key`,
      '-set_serial',
      String(Date.now()),
      '-days',
      '1',
      '-out',
      `${name}.pem`,
      '-extfile',
      `${name}.ext`,
    );
  };
  try {
    ca('ca');
    ca('other-ca');
    leaf(
      'server',
      'ca',
      'localhost',
      'basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nextendedKeyUsage=serverAuth,clientAuth\n',
    );
    leaf('client', 'ca', 'ch8-test-client', 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n');
    leaf('other', 'other-ca', 'ch8-untrusted-client', 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n');
  } catch (e) {
    const stderr = (e as { stderr?: Buffer }).stderr?.toString() ?? '';
    return { skip: `openssl could not make test certificates: ${(e as Error).message} ${stderr}` };
  }
  const at = (f: string) => join(dir, f);
  return {
    dir,
    ca: at('ca.pem'),
    serverCert: at('server.pem'),
    serverKey: at('server.key'),
    clientCert: at('client.pem'),
    clientKey: at('client.key'),
    otherCa: at('other-ca.pem'),
    otherCert: at('other.pem'),
    otherKey: at('other.key'),
  };
}

export interface HeldCall {
  /** The call's status once the server ends it: grpc-status and grpc-message. */
  readonly status: Promise<{ code: number; details: string }>;
  close(): void;
}

/**
 * Opens a gRPC call to `path` (e.g. `/ch8.gateway.v1.GatewayService/ListModels`) and sends its headers, never its
 * request: what a slow or stalled client does. For tests of admission limits and server-set deadlines.
 * `timeoutMs` sends a grpc-timeout header.
 */
export async function holdCall(
  address: string,
  path: string,
  options: { timeoutMs?: number; tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer } } = {},
): Promise<HeldCall> {
  const { connect } = await import('node:http2');
  const session = options.tls
    ? connect(`https://${address}`, {
        ...(options.tls.ca ? { ca: options.tls.ca } : {}),
        ...(options.tls.cert ? { cert: options.tls.cert } : {}),
        ...(options.tls.key ? { key: options.tls.key } : {}),
        ALPNProtocols: ['h2'],
      })
    : connect(`http://${address}`);
  session.on('error', () => {});
  const stream = session.request(
    {
      ':method': 'POST',
      ':path': path,
      'content-type': 'application/grpc',
      te: 'trailers',
      ...(options.timeoutMs !== undefined ? { 'grpc-timeout': `${options.timeoutMs}m` } : {}),
    },
    { endStream: false },
  );
  stream.on('data', () => {});
  // Resolved on the status itself: the call stays half open (this side never ends its request), so no 'close'.
  const status = new Promise<{ code: number; details: string }>((resolve, reject) => {
    const take = (h: Record<string, unknown>) => {
      if (h['grpc-status'] !== undefined)
        resolve({ code: Number(h['grpc-status']), details: decodeURIComponent(String(h['grpc-message'] ?? '')) });
    };
    stream.on('response', take);
    stream.on('trailers', take);
    stream.on('error', reject);
    stream.on('close', () => reject(new Error('the call closed without a status')));
  });
  status.catch(() => undefined);
  return {
    status,
    close() {
      stream.close();
      session.close();
    },
  };
}
