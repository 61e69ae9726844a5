/**
 * A 1-D convolution followed by bias, ReLU and max over time as one differentiable op (the Kim CNN's feature per
 * filter), with a gradient that works only where the maximum was taken.
 *
 * x [B, Tp, d] (the token rows, padded to Tp >= k), w [k * d, F], b [F], and per example the number of windows
 * that count (`valid[b]`, 1 to Tp - k + 1) -> [B, F]: for each filter the largest relu(b + x[t .. t + k) · w) over
 * the windows t < valid[b]. The convolution is tfjs's (XNNPACK on wasm); kernel `Ch8ConvMaxPool` then keeps, per
 * example and filter, the maximum and the first window that reached it (-1 where the feature is 0: ReLU passes no
 * gradient there).
 *
 * The gradient (`Ch8ConvMaxPoolGrad`) follows from each feature depending on one window only: with s = dy[b, f],
 *   dw[:, f] += s * x[b, t .. t + k)        dx[b, t .. t + k) += s * w[:, f]        db[f] += s
 * for the B * F (example, filter) pairs with a window, each a run of k * d contiguous floats. That is B * F * k * d
 * multiply-adds for each of dw and dx, against B * (Tp - k + 1) * F * k * d for the dense im2col products the
 * stock gradient computes (and the max-pool, ReLU and bias gradients on top): about Tp - k + 1 times less. On wasm
 * the loops run in the SIMD module of `simd.ts` on the heap itself (4 floats per instruction); on cpu, and on wasm
 * where k * d is not a multiple of 4, in plain loops (correct, not fast).
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { InvalidInputError } from '@ch8/errors';
import { simdOn, simdSupported } from './simd.ts';
import { type AnyKernelFunc, type CpuBackend, type CustomFn, input, runOp } from './wasm-kernels.ts';

type TensorInfo = tf.TensorInfo;

export const CONV_MAX_POOL = 'Ch8ConvMaxPool';
export const CONV_MAX_POOL_GRAD = 'Ch8ConvMaxPoolGrad';

/**
 * Max over the first valid[b] windows of z [B, Tk, F] plus the bias, ReLU: out [B, F], and at [B, F] the first
 * window reaching the maximum, or -1 where the result is 0.
 */
export function maxPoolWindowsInto(
  z: Float32Array,
  bias: Float32Array,
  valid: ArrayLike<number>,
  B: number,
  Tk: number,
  F: number,
  out: Float32Array,
  at: Int32Array,
): void {
  for (let b = 0; b < B; b++) {
    const base = b * Tk * F;
    const o = b * F;
    const n = valid[b]!;
    for (let f = 0; f < F; f++) {
      out[o + f] = z[base + f]!;
      at[o + f] = 0;
    }
    for (let t = 1; t < n; t++) {
      const row = base + t * F;
      for (let f = 0; f < F; f++) {
        const v = z[row + f]!;
        if (v > out[o + f]!) {
          out[o + f] = v;
          at[o + f] = t;
        }
      }
    }
    for (let f = 0; f < F; f++) {
      const s = Math.fround(out[o + f]! + bias[f]!);
      if (s > 0) {
        out[o + f] = s;
      } else {
        out[o + f] = 0;
        at[o + f] = -1;
      }
    }
  }
}

interface GradDims {
  B: number;
  F: number;
  /** Floats per example in x (Tp * d). */
  exStride: number;
  d: number;
  /** k * d: floats per window. */
  K: number;
  inputGrad: boolean;
}

/** The gradient in plain loops: dw [K, F], dx like x, db [F], all starting at zero. */
export function convPoolGradInto(
  dy: Float32Array,
  at: Int32Array,
  x: Float32Array,
  w: Float32Array,
  dims: GradDims,
  dw: Float32Array,
  dx: Float32Array,
  db: Float32Array,
): void {
  const { B, F, exStride, d, K, inputGrad } = dims;
  for (let b = 0; b < B; b++) {
    for (let f = 0; f < F; f++) {
      const t = at[b * F + f]!;
      const s = dy[b * F + f]!;
      if (t < 0 || s === 0) continue;
      const win = b * exStride + t * d;
      for (let r = 0; r < K; r++) dw[r * F + f] = dw[r * F + f]! + s * x[win + r]!;
      if (inputGrad) for (let r = 0; r < K; r++) dx[win + r] = dx[win + r]! + s * w[r * F + f]!;
      db[f] = db[f]! + s;
    }
  }
}

function poolDims(z: TensorInfo, attrs: tf.NamedAttrMap | undefined) {
  const valid = attrs?.['valid'] as number[];
  const [B, Tk, F] = z.shape.length === 4 ? [z.shape[0]!, z.shape[2]!, z.shape[3]!] : (z.shape as number[]);
  return { valid, B: B!, Tk: Tk!, F: F! };
}

/** The gradient kernel's inputs and sizes. */
function gradInputs(inputs: tf.NamedTensorInfoMap, attrs: tf.NamedAttrMap | undefined) {
  const [dy, at, x, w] = ['dy', 'at', 'x', 'w'].map((n) => input(inputs, n, CONV_MAX_POOL_GRAD)) as [
    TensorInfo,
    TensorInfo,
    TensorInfo,
    TensorInfo,
  ];
  const [B] = dy.shape as [number];
  const [, Tp, d] = x.shape as [number, number, number];
  const [K, F] = w.shape as [number, number];
  const dims: GradDims = { B, F, exStride: Tp * d, d, K, inputGrad: attrs?.['inputGrad'] !== false };
  return { dy, at, x, w, dims };
}

const poolOnWasm: AnyKernelFunc = ({ inputs, backend, attrs }) => {
  const wasm = backend as BackendWasm;
  const z = input(inputs, 'z', CONV_MAX_POOL);
  const bias = input(inputs, 'b', CONV_MAX_POOL);
  const { valid, B, Tk, F } = poolDims(z, attrs);
  const out = wasm.makeOutput([B, F], 'float32');
  const at = wasm.makeOutput([B, F], 'int32');
  // Views after the last allocation (a malloc may grow the heap).
  maxPoolWindowsInto(
    wasm.typedArrayFromHeap(z) as Float32Array,
    wasm.typedArrayFromHeap(bias) as Float32Array,
    valid,
    B,
    Tk,
    F,
    wasm.typedArrayFromHeap(out) as Float32Array,
    wasm.typedArrayFromHeap(at) as Int32Array,
  );
  return [out, at];
};

const poolOnCpu: AnyKernelFunc = ({ inputs, backend, attrs }) => {
  const cpu = backend as CpuBackend;
  const z = input(inputs, 'z', CONV_MAX_POOL);
  const bias = input(inputs, 'b', CONV_MAX_POOL);
  const { valid, B, Tk, F } = poolDims(z, attrs);
  const out = new Float32Array(B * F);
  const at = new Int32Array(B * F);
  const values = (t: TensorInfo) => cpu.data.get(t.dataId).values as Float32Array;
  maxPoolWindowsInto(values(z), values(bias), valid, B, Tk, F, out, at);
  return [cpu.makeTensorInfo([B, F], 'float32', out), cpu.makeTensorInfo([B, F], 'int32', at)];
};

const gradOnWasm: AnyKernelFunc = ({ inputs, backend, attrs }) => {
  const wasm = backend as BackendWasm;
  const { dy, at, x, w, dims } = gradInputs(inputs, attrs);
  const { F, K } = dims;
  const dw = wasm.makeOutput([K, F], 'float32');
  const dx = wasm.makeOutput(x.shape, 'float32');
  const db = wasm.makeOutput([F], 'float32');
  const heap = (t: TensorInfo) => wasm.typedArrayFromHeap(t) as Float32Array;
  if (K % 4 !== 0 || !simdSupported()) {
    const [dwv, dxv, dbv] = [heap(dw), heap(dx), heap(db)];
    dwv.fill(0);
    dxv.fill(0);
    dbv.fill(0);
    const atv = wasm.typedArrayFromHeap(at) as Int32Array;
    convPoolGradInto(heap(dy), atv, heap(x), heap(w), dims, dwv, dxv, dbv);
    return [dx, dw, db];
  }
  const wt = dims.inputGrad ? wasm.makeOutput([F, K], 'float32') : undefined;
  const dwt = wasm.makeOutput([F, K], 'float32');
  try {
    heap(dwt).fill(0);
    heap(dx).fill(0);
    heap(db).fill(0);
    const calls = simdOn((wasm.wasm as unknown as { asm: { memory: WebAssembly.Memory } }).asm.memory);
    const off = (t: TensorInfo): number => wasm.dataIdMap.get(t.dataId).memoryOffset;
    if (wt !== undefined) calls.transpose(off(w), K, F, off(wt));
    const B = dims.B;
    calls.convPoolGrad(
      off(dy),
      off(at),
      off(x),
      wt === undefined ? 0 : off(wt),
      off(dwt),
      off(dx),
      off(db),
      B,
      F,
      dims.exStride,
      dims.d,
      K,
      dims.inputGrad ? 1 : 0,
    );
    calls.transpose(off(dwt), F, K, off(dw));
    return [dx, dw, db];
  } finally {
    if (wt !== undefined) wasm.disposeData(wt.dataId);
    wasm.disposeData(dwt.dataId);
  }
};

const gradOnCpu: AnyKernelFunc = ({ inputs, backend, attrs }) => {
  const cpu = backend as CpuBackend;
  const { dy, at, x, w, dims } = gradInputs(inputs, attrs);
  const values = (t: TensorInfo) => cpu.data.get(t.dataId).values as Float32Array;
  const dw = new Float32Array(dims.K * dims.F);
  const dx = new Float32Array(tf.util.sizeFromShape(x.shape));
  const db = new Float32Array(dims.F);
  const atv = cpu.data.get(at.dataId).values as Int32Array;
  convPoolGradInto(values(dy), atv, values(x), values(w), dims, dw, dx, db);
  return [
    cpu.makeTensorInfo(x.shape, 'float32', dx),
    cpu.makeTensorInfo([dims.K, dims.F], 'float32', dw),
    cpu.makeTensorInfo([dims.F], 'float32', db),
  ];
};

export interface ConvKernel {
  kernel: string;
  backend: 'wasm' | 'cpu';
  kernelFunc: AnyKernelFunc;
  why: string;
}

/** The kernels of `convMaxPool`, for wasm and cpu (`registerTrainingKernels` registers them). */
export function convKernels(): ConvKernel[] {
  const pool = "the CNN's bias, ReLU and max over the valid windows in one pass, keeping the window of each maximum";
  const grad =
    "the CNN's convolution gradient through the windows of the maxima only (SIMD on wasm): no im2col products, " +
    'no max-pool, ReLU or bias gradients';
  return [
    { kernel: CONV_MAX_POOL, backend: 'wasm', kernelFunc: poolOnWasm, why: pool },
    { kernel: CONV_MAX_POOL, backend: 'cpu', kernelFunc: poolOnCpu, why: pool },
    { kernel: CONV_MAX_POOL_GRAD, backend: 'wasm', kernelFunc: gradOnWasm, why: grad },
    { kernel: CONV_MAX_POOL_GRAD, backend: 'cpu', kernelFunc: gradOnCpu, why: grad },
  ];
}

/** Whether `convMaxPool` runs on the active backend (registered by `registerTrainingKernels`). */
export function fusedConvAvailable(): boolean {
  return tf.getKernel(CONV_MAX_POOL, tf.getBackend()) !== undefined;
}

export interface ConvMaxPoolOptions {
  /** Whether x needs a gradient (fine-tuned embeddings). Default true; false returns zeros for it. */
  inputGrad?: boolean;
}

/**
 * max over the windows t < valid[b] of relu(b + conv1d(x, w)[t]) per example and filter: x [B, Tp, d], w [k*d, F]
 * (window rows j * d + c), b [F], valid[b] in 1..Tp - k + 1 -> [B, F]. Differentiable in x, w and b. Runs where
 * `fusedConvAvailable()`.
 */
export function convMaxPool(
  x: tf.Tensor,
  w: tf.Tensor,
  b: tf.Tensor,
  width: number,
  valid: ArrayLike<number>,
  options: ConvMaxPoolOptions = {},
): tf.Tensor {
  const bad = (field: string, why: string): never => {
    throw new InvalidInputError(why, { field });
  };
  if (x.rank !== 3) bad('x', `must be [B, Tp, d], got [${x.shape.join(', ')}]`);
  const [B, Tp, d] = x.shape as [number, number, number];
  if (!Number.isInteger(width) || width < 1 || width > Tp) bad('width', `must be 1..${Tp} (Tp), got ${width}`);
  if (w.rank !== 2 || w.shape[0] !== width * d) bad('w', `must be [${width * d}, F], got [${w.shape.join(', ')}]`);
  const F = w.shape[1]!;
  if (b.rank !== 1 || b.shape[0] !== F) bad('b', `must be [${F}], got [${b.shape.join(', ')}]`);
  for (const [field, t] of [
    ['x', x],
    ['w', w],
    ['b', b],
  ] as const) {
    if (t.dtype !== 'float32') bad(field, `must be float32, got ${t.dtype}`);
  }
  const Tk = Tp - width + 1;
  if (valid.length !== B) bad('valid', `must have ${B} entries (one per example), got ${valid.length}`);
  const counts = Array.from(valid);
  counts.forEach((n, i) => {
    if (!Number.isInteger(n) || n < 1 || n > Tk) bad('valid', `entry ${i} must be 1..${Tk}, got ${n}`);
  });
  const inputGrad = options.inputGrad !== false;
  const f = tf.customGrad(((xs: tf.Tensor, ws: tf.Tensor, bs: tf.Tensor, save: tf.GradSaveFunc) => {
    const z = tf.conv2d(
      tf.reshape(xs, [B, 1, Tp, d]) as tf.Tensor4D,
      tf.reshape(ws, [1, width, d, F]) as tf.Tensor4D,
      1,
      'valid',
    );
    const [pooled, at] = runOp(CONV_MAX_POOL, { z, b: bs }, { valid: counts });
    save([at!, xs, ws]);
    return {
      value: pooled!,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [ats, xsv, wsv] = saved as tf.Tensor[];
        const [dx, dw, db] = runOp(CONV_MAX_POOL_GRAD, { dy, at: ats!, x: xsv!, w: wsv! }, { inputGrad });
        return [dx!, dw!, db!];
      },
    };
  }) as unknown as CustomFn) as (...xs: tf.Tensor[]) => tf.Tensor;
  return f(x, w, b);
}
