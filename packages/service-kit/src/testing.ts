/**
 * For service tests: start a server built by a service's createXServer(deps) on a free loopback port, marked
 * SERVING, and stop it again.
 */
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
