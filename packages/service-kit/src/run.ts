/**
 * Process wiring for a service's main.ts: start, log where it listens, shut down gracefully on SIGTERM/SIGINT
 * (stop accepting, drain in-flight calls, exit 0), exit non-zero on a failed start.
 */
import type { Ch8Server } from './server.ts';
import type { Logger } from './logger.ts';

export interface RunOptions {
  logger: Logger;
  /** Builds and starts the server; resolves once it listens. */
  start: () => Promise<{ server: Ch8Server; close?: () => Promise<void> }>;
  graceMs?: number;
}

/**
 * A service's settings, parsed by `parse` (its config.ts on process.env): a bad one (a malformed value, a TLS file
 * that is missing or does not match) is one JSON log line naming the setting and the file, then exit code 2, instead
 * of a stack trace.
 */
export function settingsOrExit<T>(service: string, parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    const err = e as Error & { field?: string; file?: string };
    process.stderr.write(
      JSON.stringify({
        time: new Date().toISOString(),
        level: 'error',
        service,
        msg: 'invalid settings, not starting',
        error: err.message,
        ...(err.field !== undefined ? { setting: err.field } : {}),
        ...(err.file !== undefined ? { file: err.file } : {}),
      }) + '\n',
    );
    process.exit(2);
  }
}

export async function runService(options: RunOptions): Promise<void> {
  const { logger } = options;
  let started: Awaited<ReturnType<RunOptions['start']>>;
  try {
    started = await options.start();
  } catch (e) {
    logger.error('failed to start', { err: e });
    process.exitCode = 1;
    return;
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info('signal received, draining', { signal });
    void (async () => {
      await started.server.shutdown(options.graceMs ?? 10_000);
      await started.close?.();
      process.exit(0);
    })();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
