/**
 * Kernels that let tfjs's wasm (and cpu) backends train every model of the zoo, and train it fast.
 *
 * Stock tfjs 4.22.0 wasm has no UnsortedSegmentSum (the gradient of gather, so of every embedding lookup) and
 * no Conv2DBackpropFilter (conv1d's weight gradient); its BatchMatMul with transposeA/transposeB takes a slow
 * path. The stock cpu UnsortedSegmentSum loops over every segment (minutes per step on a 20k-row table).
 * `registerTrainingKernels()` fixes all of that; `selectBackend` calls it for wasm and cpu.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
// Importing the package registers the stock wasm kernels, which the overrides below wrap.
import '@tensorflow/tfjs-backend-wasm';

type TensorInfo = tf.TensorInfo;
type TypedArray = Float32Array | Int32Array | Uint8Array;

/** What `registerTrainingKernels` put in place, one entry per kernel and backend. */
export interface TrainingKernel {
  kernel: string;
  backend: 'wasm' | 'cpu';
  /** added: stock backend had none; override: replaces a stock kernel; cpu-bridge: runs cpu's on copies. */
  kind: 'added' | 'override' | 'cpu-bridge';
  why: string;
}

/** The part of tfjs-backend-cpu's MathBackendCPU these kernels use (it is not a dependency of ours). */
interface CpuBackend extends tf.KernelBackend {
  data: { get(dataId: tf.DataId): { values?: tf.backend_util.BackendValues } };
  makeTensorInfo(shape: number[], dtype: tf.DataType, values?: tf.backend_util.BackendValues): TensorInfo;
  write(values: tf.backend_util.BackendValues, shape: number[], dtype: tf.DataType): tf.DataId;
  readSync(dataId: tf.DataId): tf.backend_util.BackendValues;
  disposeData(dataId: tf.DataId, force?: boolean): boolean;
}

type KernelArgs<B> = { inputs: tf.NamedTensorInfoMap; backend: B; attrs?: tf.NamedAttrMap };
type AnyKernelFunc = (args: KernelArgs<unknown>) => TensorInfo | TensorInfo[];

function stockKernel(name: string, backend: string): AnyKernelFunc {
  const k = tf.getKernel(name, backend);
  if (k === undefined) throw new Error(`stock kernel ${name} is not registered for ${backend}`);
  return k.kernelFunc as unknown as AnyKernelFunc;
}

function input(inputs: tf.NamedTensorInfoMap, name: string, kernel: string): TensorInfo {
  const t = inputs[name];
  if (t === undefined) throw new Error(`${kernel}: missing input ${name}`);
  return t;
}

function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

// ---------------------------------------------------------------------------------------------------------
// UnsortedSegmentSum: out[s, ...] = sum over i with segmentIds[i] == s of x[i, ...]. One pass over x.

/** Plain loop shared by the wasm and cpu kernels; ids outside [0, numSegments) are dropped, as in TF. */
export function segmentSumInto(
  x: ArrayLike<number>,
  ids: ArrayLike<number>,
  numSegments: number,
  inner: number,
  out: TypedArray | Float64Array,
): void {
  out.fill(0);
  const n = ids.length;
  for (let i = 0; i < n; i++) {
    const s = ids[i] as number;
    if (!(s >= 0 && s < numSegments)) continue;
    const src = i * inner;
    const dst = s * inner;
    for (let j = 0; j < inner; j++) out[dst + j] = (out[dst + j] as number) + (x[src + j] as number);
  }
}

function segmentSumShape(x: TensorInfo, segmentIds: TensorInfo, numSegments: number): number[] {
  return [numSegments, ...x.shape.slice(segmentIds.shape.length)];
}

function unsortedSegmentSumWasm({ inputs, backend, attrs }: KernelArgs<BackendWasm>): TensorInfo {
  const x = input(inputs, 'x', 'UnsortedSegmentSum');
  const segmentIds = input(inputs, 'segmentIds', 'UnsortedSegmentSum');
  const numSegments = Number(attrs?.['numSegments']);
  const out = backend.makeOutput(segmentSumShape(x, segmentIds, numSegments), x.dtype);
  // Views only after every allocation: a malloc may grow (and so detach) the wasm heap.
  const inner = sizeOf(x.shape) / Math.max(1, sizeOf(segmentIds.shape));
  segmentSumInto(
    backend.typedArrayFromHeap(x),
    backend.typedArrayFromHeap(segmentIds),
    numSegments,
    inner,
    backend.typedArrayFromHeap(out) as TypedArray,
  );
  return out;
}

function unsortedSegmentSumCpu({ inputs, backend, attrs }: KernelArgs<CpuBackend>): TensorInfo {
  const x = input(inputs, 'x', 'UnsortedSegmentSum');
  const segmentIds = input(inputs, 'segmentIds', 'UnsortedSegmentSum');
  const numSegments = Number(attrs?.['numSegments']);
  const shape = segmentSumShape(x, segmentIds, numSegments);
  const xv = backend.data.get(x.dataId).values as TypedArray;
  const ids = backend.data.get(segmentIds.dataId).values as TypedArray;
  const out = x.dtype === 'int32' ? new Int32Array(sizeOf(shape)) : new Float32Array(sizeOf(shape));
  segmentSumInto(xv, ids, numSegments, sizeOf(x.shape) / Math.max(1, ids.length), out);
  return backend.makeTensorInfo(shape, x.dtype, out);
}

// ---------------------------------------------------------------------------------------------------------
// BatchMatMul / _FusedMatMul with transposes: transpose explicitly (fast wasm Transpose), then the plain
// (fast) matMul. Dense-layer gradients are exactly matMul(dy, W, false, true) and matMul(x, dy, true, false).

let stockBatchMatMul: AnyKernelFunc | undefined;
let stockFusedMatMul: AnyKernelFunc | undefined;
let stockTranspose: AnyKernelFunc | undefined;

function transposeLastTwo(t: TensorInfo, backend: BackendWasm): TensorInfo {
  const r = t.shape.length;
  const perm = [...Array(r).keys()];
  perm[r - 1] = r - 2;
  perm[r - 2] = r - 1;
  return (stockTranspose as AnyKernelFunc)({ inputs: { x: t }, backend, attrs: { perm } }) as TensorInfo;
}

function withPlainOperands(
  stock: AnyKernelFunc,
  { inputs, backend, attrs }: KernelArgs<BackendWasm>,
): TensorInfo | TensorInfo[] {
  const transposeA = Boolean(attrs?.['transposeA']);
  const transposeB = Boolean(attrs?.['transposeB']);
  const a = input(inputs, 'a', 'BatchMatMul');
  const b = input(inputs, 'b', 'BatchMatMul');
  // int32 operands: leave the stock kernel to raise its own error.
  if ((!transposeA && !transposeB) || a.dtype !== 'float32' || b.dtype !== 'float32') {
    return stock({ inputs, backend, attrs });
  }
  const temps: TensorInfo[] = [];
  const at = transposeA ? transposeLastTwo(a, backend) : a;
  if (transposeA) temps.push(at);
  const bt = transposeB ? transposeLastTwo(b, backend) : b;
  if (transposeB) temps.push(bt);
  try {
    return stock({
      inputs: { ...inputs, a: at, b: bt },
      backend,
      attrs: { ...attrs, transposeA: false, transposeB: false },
    });
  } finally {
    for (const t of temps) backend.disposeData(t.dataId);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Conv2DBackpropFilter (NHWC; conv1d is conv2d with height 1): im2col into the wasm heap, then
// dW = cols^T · dy with the fast wasm kernels. NCHW goes through the cpu bridge.

function conv2DBackpropFilterWasm(args: KernelArgs<BackendWasm>): TensorInfo {
  const { inputs, backend, attrs } = args;
  const x = input(inputs, 'x', 'Conv2DBackpropFilter');
  const dy = input(inputs, 'dy', 'Conv2DBackpropFilter');
  const dataFormat = (attrs?.['dataFormat'] as 'NHWC' | 'NCHW' | undefined) ?? 'NHWC';
  if (dataFormat !== 'NHWC') return cpuBridge('Conv2DBackpropFilter')(args) as TensorInfo;
  const filterShape = attrs?.['filterShape'] as [number, number, number, number];
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    filterShape,
    attrs?.['strides'] as [number, number] | number,
    1,
    attrs?.['pad'] as 'valid' | 'same' | number,
    attrs?.['dimRoundingMode'] as 'floor' | 'round' | 'ceil' | undefined,
    false,
    'channelsLast',
  );
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, outChannels } = info;
  const { filterHeight: fh, filterWidth: fw, strideHeight: sh, strideWidth: sw } = info;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  const rows = batchSize * outHeight * outWidth;
  const k = fh * fw * inChannels;

  // cols[n, (wr*fw + wc)*ci + c] = x[b, yr*sh + wr - top, yc*sw + wc - left, c], zero outside.
  const cols = backend.makeOutput([1, rows, k], 'float32');
  const cv = backend.typedArrayFromHeap(cols) as Float32Array;
  const xv = backend.typedArrayFromHeap(x) as Float32Array;
  cv.fill(0);
  let n = 0;
  for (let b = 0; b < batchSize; b++) {
    for (let yr = 0; yr < outHeight; yr++) {
      for (let yc = 0; yc < outWidth; yc++, n++) {
        const xc0 = yc * sw - left;
        const wc0 = Math.max(0, -xc0);
        const wc1 = Math.min(fw, inWidth - xc0);
        if (wc1 <= wc0) continue;
        for (let wr = 0; wr < fh; wr++) {
          const xr = yr * sh + wr - top;
          if (xr < 0 || xr >= inHeight) continue;
          const src = ((b * inHeight + xr) * inWidth + xc0 + wc0) * inChannels;
          const dst = n * k + (wr * fw + wc0) * inChannels;
          cv.set(xv.subarray(src, src + (wc1 - wc0) * inChannels), dst);
        }
      }
    }
  }
  const dy3: TensorInfo = { dataId: dy.dataId, shape: [1, rows, outChannels], dtype: dy.dtype };
  const colsT = transposeLastTwo(cols, backend);
  backend.disposeData(cols.dataId);
  const dw = (stockBatchMatMul as AnyKernelFunc)({
    inputs: { a: colsT, b: dy3 },
    backend,
    attrs: { transposeA: false, transposeB: false },
  }) as TensorInfo;
  backend.disposeData(colsT.dataId);
  return { dataId: dw.dataId, shape: [...filterShape], dtype: 'float32' };
}

// ---------------------------------------------------------------------------------------------------------
// cpu bridge: run tfjs's cpu kernel on copies of the inputs, write the outputs into the wasm heap. For the
// rarely used kernels wasm lacks (depthwise conv gradients, einsum, ragged ops); correct, not fast.

const NOT_BRIDGED = new Set(['Complex', 'ComplexAbs', 'FFT', 'IFFT', 'Imag', 'Real', 'Draw', 'StaticRegexReplace']);

function cpuBridge(name: string): AnyKernelFunc {
  return ({ inputs, backend, attrs }) => {
    const wasm = backend as BackendWasm;
    const cpu = tf.engine().findBackend('cpu') as CpuBackend | null;
    if (cpu === null) throw new Error(`${name}: the cpu backend is not available to bridge to`);
    const kernel = stockKernel(name, 'cpu');
    const cpuInputs: tf.NamedTensorInfoMap = {};
    const written: tf.DataId[] = [];
    try {
      for (const [key, t] of Object.entries(inputs)) {
        if (t === undefined) continue;
        const dataId = cpu.write(wasm.readSync(t.dataId), t.shape, t.dtype);
        written.push(dataId);
        cpuInputs[key] = { dataId, shape: t.shape, dtype: t.dtype };
      }
      const result = kernel({ inputs: cpuInputs, backend: cpu, attrs });
      const outs = Array.isArray(result) ? result : [result];
      const moved = outs.map((o) => wasm.makeOutput(o.shape, o.dtype, undefined, cpu.readSync(o.dataId)));
      for (const o of outs) cpu.disposeData(o.dataId);
      return Array.isArray(result) ? moved : (moved[0] as TensorInfo);
    } finally {
      for (const id of written) cpu.disposeData(id);
    }
  };
}

// ---------------------------------------------------------------------------------------------------------

let registered: TrainingKernel[] | undefined;

function put(
  kernelName: string,
  backendName: 'wasm' | 'cpu',
  kernelFunc: AnyKernelFunc,
  kind: TrainingKernel['kind'],
  why: string,
  out: TrainingKernel[],
): void {
  const stock = tf.getKernel(kernelName, backendName);
  if (stock !== undefined) tf.unregisterKernel(kernelName, backendName);
  // Keep the stock setupFunc: tfjs runs it on every setBackend, and the wrapped stock kernel needs it.
  const config: tf.KernelConfig = { kernelName, backendName, kernelFunc: kernelFunc as unknown as tf.KernelFunc };
  if (stock?.setupFunc !== undefined) config.setupFunc = stock.setupFunc;
  tf.registerKernel(config);
  out.push({ kernel: kernelName, backend: backendName, kind, why });
}

/**
 * Register (once; later calls return the same list) the kernels the zoo needs for training on wasm and cpu.
 * Call it before or after the backend is active; it never changes the active backend.
 */
export function registerTrainingKernels(): TrainingKernel[] {
  if (registered !== undefined) return registered;
  const out: TrainingKernel[] = [];
  stockBatchMatMul = stockKernel(tf.BatchMatMul, 'wasm');
  stockFusedMatMul = stockKernel(tf._FusedMatMul, 'wasm');
  stockTranspose = stockKernel(tf.Transpose, 'wasm');
  const bmm = stockBatchMatMul;
  const fmm = stockFusedMatMul;

  put(
    tf.UnsortedSegmentSum,
    'wasm',
    unsortedSegmentSumWasm as AnyKernelFunc,
    'added',
    'gradient of gather (every embedding lookup); missing in stock wasm',
    out,
  );
  put(
    tf.Conv2DBackpropFilter,
    'wasm',
    conv2DBackpropFilterWasm as AnyKernelFunc,
    'added',
    "conv1d/conv2d weight gradient; missing in stock wasm (im2col + wasm matMul)",
    out,
  );
  put(
    tf.BatchMatMul,
    'wasm',
    (args) => withPlainOperands(bmm, args as KernelArgs<BackendWasm>),
    'override',
    'stock transposeA/transposeB path is ~10x slower than transpose + plain matMul (dense-layer gradients)',
    out,
  );
  put(
    tf._FusedMatMul,
    'wasm',
    (args) => withPlainOperands(fmm, args as KernelArgs<BackendWasm>),
    'override',
    'same slow transposed path as BatchMatMul (tfjs-layers Dense uses the fused kernel)',
    out,
  );
  const onWasm = new Set(tf.getKernelsForBackend('wasm').map((k) => k.kernelName));
  for (const k of tf.getKernelsForBackend('cpu')) {
    if (onWasm.has(k.kernelName) || NOT_BRIDGED.has(k.kernelName)) continue;
    put(k.kernelName, 'wasm', cpuBridge(k.kernelName), 'cpu-bridge', 'missing in stock wasm; rarely used', out);
  }
  put(
    tf.UnsortedSegmentSum,
    'cpu',
    unsortedSegmentSumCpu as AnyKernelFunc,
    'override',
    'stock cpu kernel loops over every segment (minutes per step on a 20k-row table)',
    out,
  );
  registered = out;
  return out;
}
