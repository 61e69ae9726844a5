/**
 * For service tests: start a server built by a service's createXServer(deps) on a free loopback port, marked
 * SERVING, and stop it again; or run a service's main.ts as a process and find where it listens.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
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
