/**
 * One place that makes tfjs's webgpu backend work in Node, on a real GPU (Vulkan/Metal/D3D12 through Dawn) or on
 * a software one (Mesa llvmpipe/lavapipe), without libtensorflow:
 *
 * 1. find an adapter: the platform's native API first (Vulkan on Linux), then, on Linux, Dawn's OpenGL ES
 *    backend over EGL with `featureLevel: 'compatibility'` (the path that works on Debian bookworm's Mesa 22,
 *    whose lavapipe Dawn's Vulkan backend refuses);
 * 2. define `navigator.gpu` (and the WebGPU constants) BEFORE importing the backend module, which registers
 *    itself at import time only if `navigator.gpu` exists; requestAdapter is wrapped so that tfjs asks for the
 *    adapter that was found (tfjs never asks for the compatibility feature level itself);
 * 3. register kernel fixes (see kernels.ts), start the backend once, and turn GPU validation errors, which
 *    WebGPU only prints, into a thrown `GpuValidationError` from the next `await tensor.data()` and from
 *    `checkGpuErrors()`.
 *
 * Read tensors with `await t.data()`: `dataSync()` / `arraySync()` do not work on this backend in Node.
 */
import { execFile } from 'node:child_process';
import * as tf from '@tensorflow/tfjs';
import { FailedPreconditionError, InvalidInputError } from '@ch8/errors';
import { GpuValidationError } from './gpu-error.ts';
import { registerWebgpuKernelFixes, type WebgpuModule } from './kernels.ts';
import type * as DawnModule from 'webgpu';

/** The Dawn bindings, loaded lazily: a missing native binary must mean 'no adapter', not a failed import. */
type Dawn = typeof DawnModule;

export { GpuValidationError, isGpuValidationError } from './gpu-error.ts';

/** What was opened: the adapter's own description plus how it was reached. */
export interface WebgpuAdapterInfo {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** A CPU implementation (llvmpipe, lavapipe, SwiftShader, WARP): correct, but slower than wasm. */
  software: boolean;
  /** Dawn backend that reached it: 'vulkan', 'opengles', 'metal', 'd3d12', ... */
  api: string;
  /** 'core' WebGPU or the 'compatibility' subset (needed on OpenGL ES). */
  featureLevel: 'core' | 'compatibility';
}

/** A Dawn backend name as accepted by `create(['backend=...'])`. */
export type DawnApi = 'vulkan' | 'opengles' | 'opengl' | 'metal' | 'd3d12' | 'd3d11';

export interface InitWebgpuOptions {
  /** Accept a software adapter. When false and only a software adapter exists, the result is null. */
  allowSoftware: boolean;
  /** Dawn backends to try, in order. Default: linux ['vulkan', 'opengles'], darwin ['metal'], win32 ['d3d12', 'vulkan']. */
  apis?: readonly DawnApi[];
  /**
   * tfjs-webgpu runs ops whose inputs all have fewer elements than this on the CPU (upstream default 1000).
   * Tests pass 0 so that tiny tensors really run shaders. Takes effect only on the first successful
   * initialisation (the backend reads it once, at import).
   */
  cpuHandoffThreshold?: number;
  /** `powerPreference` for the adapter request. Default 'high-performance'. */
  powerPreference?: 'high-performance' | 'low-power';
  /**
   * With `allowSoftware: false`, look for a hardware adapter in a child process first and load Dawn into this
   * process only when one exists. Dawn, Mesa and the Vulkan loader print warnings straight to the process's
   * standard error while probing (`XDG_RUNTIME_DIR is invalid`, `shaderUniform*ArrayDynamicIndexing`), which a
   * machine without a GPU would otherwise show on every run. Default true; costs one short-lived process.
   */
  isolatedProbe?: boolean;
}

interface Found {
  gpu: GPU;
  request: GPURequestAdapterOptions;
  info: WebgpuAdapterInfo;
}

interface WebgpuBackendLike {
  device: GPUDevice;
  read(dataId: object): Promise<unknown>;
  readSync(dataId: object): unknown;
  tensorMap: { get(dataId: object): { values?: unknown; dtype?: string } | undefined };
  submitQueue(): void;
  commandEncoder: GPUCommandEncoder | null;
}

const SOFTWARE = /llvmpipe|lavapipe|softpipe|swiftshader|software|basic render|warp/i;

/** True when an adapter's description names a CPU implementation. */
export function isSoftwareAdapter(info: {
  vendor?: string;
  architecture?: string;
  device?: string;
  description?: string;
  isFallbackAdapter?: boolean;
}): boolean {
  if (info.isFallbackAdapter === true) return true;
  return [info.vendor, info.architecture, info.device, info.description].some(
    (s) => s !== undefined && SOFTWARE.test(s),
  );
}

function defaultApis(): DawnApi[] {
  switch (process.platform) {
    case 'linux':
      return ['vulkan', 'opengles'];
    case 'darwin':
      return ['metal'];
    case 'win32':
      return ['d3d12', 'vulkan'];
    default:
      return ['vulkan'];
  }
}

let probed: Promise<Found | null> | undefined;
let hardwareProbe: Promise<IsolatedProbeResult> | undefined;
let installed: Promise<WebgpuAdapterInfo | null> | undefined;
let installedThreshold: number | undefined;
let keepAlive: GPU | undefined; // the Dawn instance lives as long as it is referenced
let backend: WebgpuBackendLike | undefined;
const gpuErrors: string[] = [];

async function loadDawn(): Promise<Dawn | null> {
  try {
    return await import('webgpu');
  } catch {
    return null; // no prebuilt binary for this platform, or its shared libraries are missing
  }
}

async function probe(apis: readonly DawnApi[], powerPreference: GPUPowerPreference): Promise<Found | null> {
  const dawn = await loadDawn();
  if (dawn === null) return null;
  let software: Found | null = null;
  for (const api of apis) {
    if (api === 'opengles' || api === 'opengl') {
      // Headless EGL: Mesa then needs no X or Wayland display. An explicit choice in the environment wins.
      process.env['EGL_PLATFORM'] ??= 'surfaceless';
    }
    let gpu: GPU;
    try {
      gpu = dawn.create([`backend=${api}`]);
    } catch {
      continue;
    }
    const levels: Array<'core' | 'compatibility'> =
      api === 'opengles' || api === 'opengl' ? ['compatibility'] : ['core', 'compatibility'];
    for (const featureLevel of levels) {
      for (const forceFallbackAdapter of [false, true]) {
        const request = { powerPreference, featureLevel, forceFallbackAdapter } as GPURequestAdapterOptions;
        let adapter: GPUAdapter | null = null;
        try {
          adapter = await gpu.requestAdapter(request);
        } catch {
          adapter = null;
        }
        if (adapter === null) continue;
        const raw = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
        const info: WebgpuAdapterInfo = {
          vendor: raw.vendor ?? '',
          architecture: raw.architecture ?? '',
          device: raw.device ?? '',
          description: raw.description ?? '',
          software: forceFallbackAdapter || isSoftwareAdapter(raw),
          api,
          featureLevel,
        };
        const found = { gpu, request, info };
        if (!info.software) return found;
        software ??= found;
        break;
      }
      if (software?.gpu === gpu) break;
    }
  }
  return software;
}

/** What the isolated probe saw: every adapter it reached, and whether one of them is hardware. */
export interface IsolatedProbeResult {
  adapters: Array<{ api: string; vendor: string; architecture: string; device: string; description: string }>;
  hardware: boolean;
  /** Why the probe could not run (no Dawn binary, the child failed); then `adapters` is empty. */
  error?: string;
}

/**
 * Lists the WebGPU adapters from a child process whose output is captured, so that the native libraries' probing
 * noise never reaches this process's standard error. The child loads the same Dawn module (by absolute URL) and
 * answers one JSON line per adapter, then a last line with the verdict.
 */
export function probeAdaptersIsolated(
  apis: readonly DawnApi[] = defaultApis(),
  powerPreference: GPUPowerPreference = 'high-performance',
): Promise<IsolatedProbeResult> {
  let dawnUrl: string;
  try {
    dawnUrl = import.meta.resolve('webgpu');
  } catch (e) {
    return Promise.resolve({ adapters: [], hardware: false, error: `webgpu module not found: ${String(e)}` });
  }
  const script = [
    'const [url, apis, pp] = process.argv.slice(1);',
    'const dawn = await import(url);',
    'for (const api of JSON.parse(apis)) {',
    "  if (api === 'opengles' || api === 'opengl') process.env.EGL_PLATFORM ??= 'surfaceless';",
    '  let gpu;',
    '  try { gpu = dawn.create([`backend=${api}`]); } catch { continue; }',
    "  for (const featureLevel of ['core', 'compatibility']) {",
    '    let a = null;',
    '    try { a = await gpu.requestAdapter({ powerPreference: pp, featureLevel }); } catch {}',
    '    if (a === null) continue;',
    '    const { vendor, architecture, device, description, isFallbackAdapter } = a.info;',
    '    process.stdout.write(JSON.stringify({ api, vendor, architecture, device, description, isFallbackAdapter }) + "\\n");',
    '    break;',
    '  }',
    '}',
    'process.exit(0);',
  ].join('\n');
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--input-type=module', '-e', script, dawnUrl, JSON.stringify(apis), powerPreference],
      { timeout: 60_000, maxBuffer: 1 << 20 },
      (error, stdout) => {
        if (error !== null) return resolve({ adapters: [], hardware: false, error: error.message.split('\n')[0] });
        const adapters: IsolatedProbeResult['adapters'] = [];
        let hardware = false;
        for (const line of stdout.split('\n')) {
          if (!line.startsWith('{')) continue;
          try {
            const a = JSON.parse(line) as IsolatedProbeResult['adapters'][number] & { isFallbackAdapter?: boolean };
            adapters.push({
              api: String(a.api),
              vendor: String(a.vendor ?? ''),
              architecture: String(a.architecture ?? ''),
              device: String(a.device ?? ''),
              description: String(a.description ?? ''),
            });
            if (!isSoftwareAdapter(a)) hardware = true;
          } catch {
            // a native library wrote to stdout: not ours
          }
        }
        resolve({ adapters, hardware });
      },
    );
  });
}

function defineGlobals(dawn: Dawn, found: Found): void {
  const g = globalThis as Record<string, unknown>;
  for (const [name, value] of Object.entries(dawn.globals as Record<string, unknown>)) {
    if (!(name in g)) g[name] = value;
  }
  const { gpu, request } = found;
  const wrapped = {
    requestAdapter: (options?: GPURequestAdapterOptions) => gpu.requestAdapter({ ...options, ...request }),
    getPreferredCanvasFormat: () => gpu.getPreferredCanvasFormat(),
    get wgslLanguageFeatures() {
      return gpu.wgslLanguageFeatures;
    },
  };
  const nav = g['navigator'] as Record<string, unknown> | undefined;
  if (nav === undefined) {
    Object.defineProperty(globalThis, 'navigator', { value: { gpu: wrapped }, configurable: true, writable: true });
  } else {
    Object.defineProperty(nav, 'gpu', { value: wrapped, configurable: true, writable: true });
  }
}

function setHandoffThreshold(threshold: number): void {
  // The backend reads the flag once, when its module is evaluated, and registers it there too. Registering it
  // first and setting a value keeps that value: a later registration replaces only the default.
  const env = tf.env();
  env.registerFlag('WEBGPU_CPU_HANDOFF_SIZE_THRESHOLD', () => threshold);
  env.set('WEBGPU_CPU_HANDOFF_SIZE_THRESHOLD', threshold);
}

function takeErrors(): string[] {
  return gpuErrors.splice(0, gpuErrors.length);
}

function throwIfGpuErrors(): void {
  if (gpuErrors.length > 0) throw new GpuValidationError(takeErrors());
}

function watchDevice(be: WebgpuBackendLike): void {
  const device = be.device;
  device.addEventListener('uncapturederror', (event) => {
    const error = (event as GPUUncapturedErrorEvent).error;
    gpuErrors.push(`${error.constructor.name}: ${error.message}`);
  });
  void device.lost.then((lost) => {
    if (lost.reason !== 'destroyed') gpuErrors.push(`device lost: ${lost.message}`);
  });
  const read = be.read.bind(be);
  be.read = async (dataId: object) => {
    const values = await read(dataId);
    throwIfGpuErrors();
    return values;
  };
  // Upstream reads GPU buffers synchronously through OffscreenCanvas, which Node lacks: it would fail with a
  // bare "OffscreenCanvas is not defined". Data still on the CPU reads as before; GPU data gets an error that
  // says what to do instead.
  const readSync = be.readSync.bind(be);
  be.readSync = (dataId: object) => {
    const entry = be.tensorMap.get(dataId);
    if (entry !== undefined && entry.values == null && entry.dtype !== 'string' && !('OffscreenCanvas' in globalThis)) {
      throw new FailedPreconditionError(
        'dataSync()/arraySync() cannot read a tensor that lives on the GPU in Node (the webgpu backend needs OffscreenCanvas for that); use `await tensor.data()` / `await tensor.array()`',
      );
    }
    return readSync(dataId);
  };
}

async function install(found: Found, threshold: number | undefined): Promise<WebgpuAdapterInfo | null> {
  const dawn = await loadDawn();
  if (dawn === null) return null;
  defineGlobals(dawn, found);
  keepAlive = found.gpu;
  if (threshold !== undefined) setHandoffThreshold(threshold);
  const mod = (await import('@tensorflow/tfjs-backend-webgpu')) as unknown as WebgpuModule;
  registerWebgpuKernelFixes(mod);
  const engine = tf.engine() as unknown as { backendName?: string | null };
  const previous = engine.backendName ?? null;
  let ok = false;
  try {
    ok = await tf.setBackend('webgpu');
  } catch {
    ok = false;
  }
  if (!ok) {
    // Leave tfjs as it was: no half-initialised 'webgpu' that tf.ready() would pick by priority.
    tf.removeBackend('webgpu');
    if (previous !== null && previous !== 'webgpu') await tf.setBackend(previous);
    return null;
  }
  backend = tf.findBackend('webgpu') as unknown as WebgpuBackendLike;
  watchDevice(backend);
  if (previous !== null && previous !== 'webgpu') await tf.setBackend(previous);
  return found.info;
}

/**
 * Find a WebGPU adapter, make `tf.setBackend('webgpu')` work, and report what was opened. Resolves null when no
 * usable adapter exists, or only a software one and `allowSoftware` is false (then nothing is registered).
 * Safe to call more than once: the first successful call sets everything up, later calls return the same
 * adapter. It does not switch the current backend (unless none was chosen yet, as `tf.ready()` would have).
 */
export async function initWebgpu(options: InitWebgpuOptions): Promise<WebgpuAdapterInfo | null> {
  const { allowSoftware, cpuHandoffThreshold } = options;
  if (cpuHandoffThreshold !== undefined && !(Number.isInteger(cpuHandoffThreshold) && cpuHandoffThreshold >= 0)) {
    throw new InvalidInputError(`must be a non-negative integer, got ${cpuHandoffThreshold}`, {
      field: 'cpuHandoffThreshold',
    });
  }
  const apis = options.apis ?? defaultApis();
  const powerPreference = options.powerPreference ?? 'high-performance';
  if (!allowSoftware && probed === undefined && options.isolatedProbe !== false) {
    hardwareProbe ??= probeAdaptersIsolated(apis, powerPreference);
    if (!(await hardwareProbe).hardware) return null;
  }
  probed ??= probe(apis, powerPreference);
  const found = await probed;
  if (found === null || (found.info.software && !allowSoftware)) return null;
  if (installed === undefined) {
    installedThreshold = cpuHandoffThreshold;
    installed = install(found, cpuHandoffThreshold);
  } else if (cpuHandoffThreshold !== undefined && cpuHandoffThreshold !== installedThreshold) {
    throw new FailedPreconditionError(
      `the webgpu backend is already set up with CPU handoff threshold ${installedThreshold ?? 'default'}; it cannot change to ${cpuHandoffThreshold}`,
      { field: 'cpuHandoffThreshold' },
    );
  }
  const info = await installed;
  return info === null ? null : { ...info };
}

/**
 * Submit pending GPU work, wait for it, and throw `GpuValidationError` if the device reported any error since
 * the last check. A no-op before `initWebgpu` succeeded.
 */
export async function checkGpuErrors(): Promise<void> {
  if (backend === undefined) return;
  if (backend.commandEncoder !== null) backend.submitQueue();
  await backend.device.queue.onSubmittedWorkDone();
  await new Promise((resolve) => setImmediate(resolve));
  throwIfGpuErrors();
}

/** The device tfjs runs on (after `initWebgpu` succeeded), for tests and diagnostics. */
export function webgpuDevice(): GPUDevice | undefined {
  return backend?.device;
}

/** Whether the Dawn instance is held (it must stay referenced while the backend is in use). */
export function isWebgpuReady(): boolean {
  return keepAlive !== undefined && backend !== undefined;
}
