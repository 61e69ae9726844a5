/**
 * Starts the services of the stack as real processes on free (or given) loopback ports: `ch8 chapter` and the
 * black-box tests use it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

export const ROOT = path.resolve(fileURLToPath(new URL('.', import.meta.url)), '../../..');
// One process per service (`node --import tsx`, not the tsx CLI, which runs node as a child): a signal sent to
// the pid reaches the server itself.
const NODE_TSX = [process.execPath, '--import', 'tsx'] as const;

export const SERVICE_NAMES = ['embedding', 'dataset', 'trainer', 'gateway'] as const;
export type ServiceName = (typeof SERVICE_NAMES)[number];

export async function freePort(): Promise<number> {
  const srv = createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as { port: number }).port;
  srv.close();
  await once(srv, 'close');
  return port;
}

export interface RunningService {
  name: ServiceName;
  address: string;
  child: ChildProcess;
  logs: string[];
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface Stack {
  services: Record<ServiceName, RunningService>;
  /** CH8_*_ADDR for every service, to hand to the CLI or to other services. */
  env: Record<string, string>;
  stop(): Promise<void>;
}

export async function startStack(
  extraEnv: Record<string, string> = {},
  names: readonly ServiceName[] = SERVICE_NAMES,
): Promise<Stack> {
  const env: Record<string, string> = {};
  for (const n of SERVICE_NAMES) env[`CH8_${n.toUpperCase()}_ADDR`] = `127.0.0.1:${await freePort()}`;
  // Metrics endpoints on ports of the system's choosing (each service logs where), so that stacks started side by
  // side, or beside `pnpm dev` on the fixed ports 9461-9464, never compete for a port. The environment may name one.
  for (const n of SERVICE_NAMES) {
    const key = `CH8_${n.toUpperCase()}_METRICS_ADDR`;
    if (process.env[key] === undefined) env[key] = '127.0.0.1:0';
  }
  // The stack is plaintext on loopback unless the caller asks otherwise: TLS settings or health ports from the user's
  // shell would make the services serve TLS (or bind fixed ports) while the caller's own clients dial plaintext.
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !/^CH8_TLS_|^CH8_[A-Z]+_HEALTH_ADDR$/.test(k)),
  );
  const services = {} as Record<ServiceName, RunningService>;
  for (const name of names) {
    const child = spawn(NODE_TSX[0], [...NODE_TSX.slice(1), path.join(ROOT, 'services', name, 'src/main.ts')], {
      cwd: ROOT,
      env: { ...inherited, ...env, ...extraEnv },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const logs: string[] = [];
    child.stdout!.on('data', (d: Buffer) => logs.push(d.toString()));
    child.stderr!.on('data', (d: Buffer) => logs.push(d.toString()));
    const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once('exit', (code, signal) => resolve({ code, signal })),
    );
    services[name] = { name, address: env[`CH8_${name.toUpperCase()}_ADDR`]!, child, logs, exit };
  }
  return {
    services,
    env,
    async stop() {
      for (const s of Object.values(services))
        if (s.child.exitCode === null && s.child.signalCode === null) s.child.kill('SIGTERM');
      await Promise.all(Object.values(services).map((s) => s.exit));
    },
  };
}
