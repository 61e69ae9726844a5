/**
 * Problem 77 runs only on a real GPU: `probeHardwareGpu` asks @ch8/backend for a hardware WebGPU adapter (a
 * software one such as Mesa's lavapipe does not count: it emulates the GPU on the CPU, slower than wasm) in a child
 * process, so that drivers' console output stays out of the CLI's.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ROOT } from './launch.ts';

export interface GpuProbe {
  gpu: boolean;
  /** The adapter, when there is one. */
  device?: string;
  /** Why there is none. */
  reason?: string;
}

const PROBE = fileURLToPath(new URL('./chapter-gpu-probe.ts', import.meta.url));

/** Whether a hardware WebGPU adapter is there (never throws: a failed probe is "no GPU" with the reason). */
export function probeHardwareGpu(timeoutMs = 60_000): Promise<GpuProbe> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', PROBE], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    let out = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.once('error', (e) => {
      clearTimeout(timer);
      resolve({ gpu: false, reason: `probe failed to start: ${e.message}` });
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(out.trim().split('\n').pop() ?? '') as GpuProbe);
      } catch {
        resolve({
          gpu: false,
          reason: signal === 'SIGKILL' ? `probe timed out after ${timeoutMs} ms` : `probe exited with ${code}`,
        });
      }
    });
  });
}
