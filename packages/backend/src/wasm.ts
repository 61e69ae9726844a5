/**
 * Start tfjs's WebAssembly backend in Node: binaries from the package's own dist folder (file paths work in
 * Node), SIMD when the runtime has it, one thread (wasm threads need Web Workers, which Node lacks).
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { getThreadsCount, setThreadsCount, setWasmPaths } from '@tensorflow/tfjs-backend-wasm';

const require = createRequire(import.meta.url);

let pathsSet = false;

/** The folder holding tfjs-backend-wasm's `.wasm` binaries, with a trailing separator. */
export function wasmBinaryFolder(): string {
  const simd = require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm');
  return path.dirname(simd) + path.sep;
}

export interface WasmStatus {
  simd: boolean;
  threads: number;
}

/**
 * Make 'wasm' the active tfjs backend. Throws (a plain Error from tfjs) when the binary cannot be loaded.
 * Safe to call again: a second call only switches back to wasm.
 */
export async function activateWasm(): Promise<WasmStatus> {
  if (!pathsSet) {
    // Threads need Workers + SharedArrayBuffer in a browser; in Node the threaded build fails to start.
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
    setWasmPaths(wasmBinaryFolder());
    setThreadsCount(1);
    pathsSet = true;
  }
  const ok = await tf.setBackend('wasm');
  if (!ok) throw new Error('tfjs could not initialise the wasm backend');
  await tf.ready();
  const simd = Boolean(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'));
  return { simd, threads: getThreadsCount() };
}
