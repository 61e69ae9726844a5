/** Child processes of the benchmarks that run a command to its end and read its output (one JSON document, say). */
import { spawn } from 'node:child_process';
import { ROOT } from '@ch8/cli/launch';

export interface ChildResult {
  code: number | null;
  stdout: string;
  /** The last lines the child wrote to stderr (and stdout when it is progress), for error reports. */
  tail: string[];
  seconds: number;
}

export interface ChildOptions {
  /** The child's stdout is progress (shown and kept in `tail`), not a result to keep in `stdout`. */
  stdoutIsProgress?: boolean;
  /** The child's environment (default: this process's). */
  env?: NodeJS.ProcessEnv;
}

/**
 * Runs `cmd args` from the workspace root to its end; its stderr (and stdout when `stdoutIsProgress`) goes to our
 * stderr line by line under `label`. Never rejects: a child that cannot start has code null and the reason in its
 * tail.
 */
export function runChild(label: string, cmd: string, args: string[], options: ChildOptions = {}): Promise<ChildResult> {
  return new Promise((done) => {
    const t0 = performance.now();
    const tail: string[] = [];
    let stdout = '';
    const child = spawn(cmd, args, {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(options.env === undefined ? {} : { env: options.env }),
    });
    const progress = (): ((chunk: Buffer) => void) => {
      let partial = '';
      return (chunk) => {
        const lines = (partial + chunk.toString('utf8')).split('\n');
        partial = lines.pop()!;
        for (const line of lines) {
          process.stderr.write(`  [${label}] ${line}\n`);
          tail.push(line);
          if (tail.length > 20) tail.shift();
        }
      };
    };
    child.stderr.on('data', progress());
    if (options.stdoutIsProgress === true) child.stdout.on('data', progress());
    else child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    let settled = false;
    const finish = (code: number | null, reason?: string): void => {
      if (settled) return;
      settled = true;
      if (reason !== undefined) tail.push(reason);
      done({ code, stdout, tail, seconds: Math.round((performance.now() - t0) / 100) / 10 });
    };
    child.on('error', (e) => finish(null, `cannot start ${cmd}: ${e.message}`));
    child.on('close', (code, signal) => finish(code, signal !== null ? `killed by ${signal}` : undefined));
  });
}

/** Why a child failed, from its exit code and its last lines. */
export const failure = (r: ChildResult): string =>
  `exit ${r.code ?? 'none'}: ${r.tail
    .filter((l) => l.trim() !== '')
    .slice(-6)
    .join(' | ')}`;
