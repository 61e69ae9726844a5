/**
 * Pick the tfjs compute backend at run time, best first:
 * tfjs-node-gpu (CUDA) -> tfjs-node (native CPU) -> webgpu (hardware adapter) -> wasm (SIMD) -> cpu,
 * or exactly the one `prefer` names. Reports what ran, on what, and why each better one was skipped.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { FailedPreconditionError, InvalidInputError } from '@ch8/errors';
import { registerTrainingKernels } from './kernels.ts';
import { activateWasm } from './wasm.ts';
import type { WebgpuAdapterInfo } from '@ch8/webgpu/setup';

import { BACKENDS, type BackendName, type BackendPreference } from './names.ts';

export { BACKENDS, type BackendName, type BackendPreference };

/** What `initWebgpu` from @ch8/webgpu reports about the adapter it opened. */
export type { WebgpuAdapterInfo };

export interface BackendFallback {
  backend: BackendName;
  reason: string;
}

export interface BackendInfo {
  /** The backend chosen. */
  backend: BackendName;
  /** `tf.getBackend()` after selection: tensorflow, webgpu, wasm or cpu. */
  tfBackend: string;
  /** Human description of the device, e.g. "CPU Intel Xeon (x86_64), wasm SIMD, 1 thread". */
  device: string;
  adapter?: WebgpuAdapterInfo;
  /** Better backends that were tried and skipped, best first, each with the reason. */
  fallbacks: BackendFallback[];
}

export interface SelectBackendOptions {
  /** 'auto' (default) tries every backend best first; a name selects exactly that one or fails. */
  prefer?: BackendPreference;
  /**
   * Accept a software (CPU-emulated) WebGPU adapter. Default: true when prefer is 'webgpu', false otherwise,
   * so 'auto' never lands on an emulated GPU slower than wasm.
   */
  allowSoftwareGpu?: boolean;
  /** One line per attempt, for the caller's logger. */
  log?: (line: string) => void;
}

type Attempt =
  | { ok: true; tfBackend: string; device: string; adapter?: WebgpuAdapterInfo }
  | { ok: false; reason: string };

function reasonOf(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  const first = msg.split('\n').find((l) => l.trim() !== '') ?? msg;
  return first.length > 300 ? `${first.slice(0, 300)}...` : first;
}

function cpuModel(): string {
  const model = os.cpus()[0]?.model?.trim();
  return `CPU ${model !== undefined && model !== '' ? `${model} ` : ''}(${os.arch()})`;
}

/** Names of NVIDIA GPUs the driver exposes, without starting any process. */
function nvidiaGpuNames(): string[] {
  const root = '/proc/driver/nvidia/gpus';
  try {
    return readdirSync(root).flatMap((bus) => {
      const text = readFileSync(`${root}/${bus}/information`, 'utf8');
      const m = /^Model:\s*(.+)$/m.exec(text);
      return m?.[1] !== undefined ? [m[1].trim()] : [];
    });
  } catch {
    return [];
  }
}

const require = createRequire(import.meta.url);

/**
 * Why a native package cannot load, found without importing it (importing registers ~170 kernels before it
 * discovers a missing addon, and a second package then floods "kernel already registered"); null if it may.
 */
function nativeMissing(which: 'tfjs-node-gpu' | 'tfjs-node'): string | null {
  let dir: string;
  try {
    dir = path.dirname(require.resolve(`@tensorflow/${which}/package.json`));
  } catch {
    return `@tensorflow/${which} is not installed (optional dependency skipped)`;
  }
  const lib = path.join(dir, 'lib');
  const built =
    existsSync(lib) &&
    readdirSync(lib).some((d) => d.startsWith('napi-v') && existsSync(path.join(lib, d, 'tfjs_binding.node')));
  return built
    ? null
    : `@tensorflow/${which} has no native addon: libtensorflow was not downloaded at install ` +
        `(with internet: pnpm rebuild @tensorflow/${which})`;
}

/** Run `f` with tfjs's "kernel ... already registered" warnings counted instead of printed. */
async function quietReRegistration<T>(f: () => Promise<T>): Promise<{ value: T; suppressed: number }> {
  const warn = console.warn;
  let suppressed = 0;
  console.warn = (...args: unknown[]) => {
    if (typeof args[0] === 'string' && /^The kernel '.*' for backend '.*' is already registered/.test(args[0])) {
      suppressed++;
      return;
    }
    warn(...args);
  };
  try {
    return { value: await f(), suppressed };
  } finally {
    console.warn = warn;
  }
}

// Native packages are imported at most once per process: importing both floods "kernel already registered",
// and a failed import is remembered rather than retried.
let nativeLoaded: 'tfjs-node-gpu' | 'tfjs-node' | undefined;
const nativeFailure = new Map<string, string>();

async function tryNative(which: 'tfjs-node-gpu' | 'tfjs-node'): Promise<Attempt> {
  const failed = nativeFailure.get(which);
  if (failed !== undefined) return { ok: false, reason: failed };
  if (nativeLoaded !== undefined && nativeLoaded !== which) {
    return { ok: false, reason: `@tensorflow/${nativeLoaded} is already loaded in this process` };
  }
  const missing = nativeMissing(which);
  if (missing !== null) {
    nativeFailure.set(which, missing);
    return { ok: false, reason: missing };
  }
  try {
    // A variable specifier keeps bundlers and tsc from resolving an optional dependency. If the other native
    // package failed after registering its kernels, this one re-registers them: expected, so kept quiet.
    const spec = `@tensorflow/${which}`;
    await quietReRegistration(() => import(spec));
    nativeLoaded = which;
    if (!(await tf.setBackend('tensorflow'))) throw new Error('tfjs could not initialise the tensorflow backend');
    await tf.ready();
  } catch (e) {
    const reason = `@tensorflow/${which} unavailable: ${reasonOf(e)}`;
    nativeFailure.set(which, reason);
    return { ok: false, reason };
  }
  if (which === 'tfjs-node-gpu') {
    const gpus = nvidiaGpuNames();
    const device =
      gpus.length > 0
        ? `GPU ${gpus.join(', ')} (CUDA, libtensorflow)`
        : 'libtensorflow GPU build, no NVIDIA GPU visible in /proc/driver/nvidia (TensorFlow may run on the CPU)';
    return { ok: true, tfBackend: tf.getBackend(), device };
  }
  return { ok: true, tfBackend: tf.getBackend(), device: `${cpuModel()}, libtensorflow, ${os.cpus().length} threads` };
}

async function tryWebgpu(allowSoftware: boolean): Promise<Attempt> {
  let adapter: WebgpuAdapterInfo | null;
  try {
    // Imported only when webgpu is tried: loading Dawn is not free.
    const { initWebgpu } = await import('@ch8/webgpu/setup');
    adapter = await initWebgpu({ allowSoftware });
  } catch (e) {
    return { ok: false, reason: `webgpu setup failed: ${reasonOf(e)}` };
  }
  if (adapter === null) {
    return {
      ok: false,
      reason: allowSoftware
        ? 'no usable WebGPU adapter'
        : 'no hardware WebGPU adapter (software adapters need prefer: "webgpu" or allowSoftwareGpu)',
    };
  }
  if (adapter.software && !allowSoftware) {
    return { ok: false, reason: `only a software WebGPU adapter (${adapter.description || adapter.device})` };
  }
  try {
    if (tf.getBackend() !== 'webgpu' && !(await tf.setBackend('webgpu'))) {
      return { ok: false, reason: 'tfjs could not initialise the webgpu backend' };
    }
    await tf.ready();
  } catch (e) {
    return { ok: false, reason: `webgpu backend failed: ${reasonOf(e)}` };
  }
  const name = adapter.device || adapter.description || adapter.architecture || adapter.vendor || 'unknown';
  const details = [
    ...(adapter.description && adapter.description !== name ? [adapter.description] : []),
    `WebGPU over ${adapter.api}`,
    ...(adapter.software ? ['software'] : []),
  ];
  const device = `GPU ${name} (${details.join(', ')})`;
  return { ok: true, tfBackend: tf.getBackend(), device, adapter };
}

async function tryWasm(): Promise<Attempt> {
  try {
    registerTrainingKernels();
    const { simd, threads } = await activateWasm();
    const device = `${cpuModel()}, wasm ${simd ? 'SIMD' : 'no SIMD'}, ${threads} thread${threads === 1 ? '' : 's'}`;
    return { ok: true, tfBackend: tf.getBackend(), device };
  } catch (e) {
    return { ok: false, reason: `wasm backend failed: ${reasonOf(e)}` };
  }
}

async function tryCpu(): Promise<Attempt> {
  try {
    registerTrainingKernels();
    if (!(await tf.setBackend('cpu'))) return { ok: false, reason: 'tfjs could not initialise the cpu backend' };
    await tf.ready();
    return { ok: true, tfBackend: tf.getBackend(), device: `${cpuModel()}, plain JavaScript, 1 thread` };
  } catch (e) {
    return { ok: false, reason: `cpu backend failed: ${reasonOf(e)}` };
  }
}

function attempt(name: BackendName, allowSoftwareGpu: boolean): Promise<Attempt> {
  switch (name) {
    case 'tfjs-node-gpu':
    case 'tfjs-node':
      return tryNative(name);
    case 'webgpu':
      return tryWebgpu(allowSoftwareGpu);
    case 'wasm':
      return tryWasm();
    case 'cpu':
      return tryCpu();
  }
}

/**
 * Select and activate a tfjs backend. With `prefer` naming a backend, that one or a FailedPreconditionError
 * saying why; an unknown name is an InvalidInputError.
 */
export async function selectBackend(opts: SelectBackendOptions = {}): Promise<BackendInfo> {
  const prefer = opts.prefer ?? 'auto';
  if (prefer !== 'auto' && !(BACKENDS as readonly string[]).includes(prefer)) {
    throw new InvalidInputError(`unknown backend "${String(prefer)}"; expected auto or one of ${BACKENDS.join(', ')}`, {
      field: 'prefer',
    });
  }
  // Production mode: tfjs's console notes (the cpu backend's "looks like you are running TensorFlow.js in Node.js"
  // banner) would break the services' JSON log lines and the CLI's clean standard error.
  tf.env().set('PROD', true);
  const allowSoftwareGpu = opts.allowSoftwareGpu ?? prefer === 'webgpu';
  const log = opts.log ?? (() => {});
  const order: readonly BackendName[] = prefer === 'auto' ? BACKENDS : [prefer];
  const fallbacks: BackendFallback[] = [];
  for (const name of order) {
    const started = Date.now();
    const result = await attempt(name, allowSoftwareGpu);
    const ms = Date.now() - started;
    if (result.ok) {
      log(`backend ${name}: selected (${result.device}) in ${ms} ms`);
      const info: BackendInfo = { backend: name, tfBackend: result.tfBackend, device: result.device, fallbacks };
      if (result.adapter !== undefined) info.adapter = result.adapter;
      return info;
    }
    log(`backend ${name}: skipped in ${ms} ms: ${result.reason}`);
    fallbacks.push({ backend: name, reason: result.reason });
  }
  if (prefer !== 'auto') {
    throw new FailedPreconditionError(
      `backend ${prefer} is not available: ${fallbacks[0]?.reason ?? 'unknown reason'}`,
      { field: 'prefer' },
    );
  }
  throw new FailedPreconditionError(
    `no tfjs backend could be started: ${fallbacks.map((f) => `${f.backend}: ${f.reason}`).join('; ')}`,
  );
}
