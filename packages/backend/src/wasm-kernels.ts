/**
 * Kernel implementations for tfjs's wasm backend, computing in TypeScript on views of the wasm heap or
 * re-routing to the fast stock kernels. Rules kept throughout: take heap views only after the last allocation
 * (a malloc may grow, and so detach, the heap), free every temporary, and return fresh outputs.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { InvalidInputError } from '@ch8/errors';
import {
  alignRank,
  broadcastInto,
  col2im,
  type ConvGeometry,
  type Flat,
  gatherInto,
  im2col,
  maxPoolGradInto,
  reverseInto,
  segmentSumInto,
  sliceInto,
  sizeOf,
  tileInto,
} from './layout.ts';

type TensorInfo = tf.TensorInfo;
export type KernelArgs<B = unknown> = { inputs: tf.NamedTensorInfoMap; backend: B; attrs?: tf.NamedAttrMap };
export type AnyKernelFunc = (args: KernelArgs) => TensorInfo | TensorInfo[];
type WasmArgs = KernelArgs<BackendWasm>;

export function stockKernel(name: string, backend: string): AnyKernelFunc {
  const k = tf.getKernel(name, backend);
  if (k === undefined) throw new Error(`stock kernel ${name} is not registered for ${backend}`);
  return k.kernelFunc as unknown as AnyKernelFunc;
}

export function input(inputs: tf.NamedTensorInfoMap, name: string, kernel: string): TensorInfo {
  const t = inputs[name];
  if (t === undefined) throw new Error(`${kernel}: missing input ${name}`);
  return t;
}

/** tfjs does not export the type of customGrad's argument (the fused ops are custom-gradient ops). */
export type CustomFn = Parameters<typeof tf.customGrad>[0];

/** Runs kernel `name` of the active backend as an op (the fused ops' forward and gradient kernels). */
export const runOp = (name: string, inputs: tf.NamedTensorMap, attrs: tf.NamedAttrMap = {}): tf.Tensor[] =>
  tf.engine().runKernel(name, inputs, attrs) as tf.Tensor[];

/** The stock wasm kernels the implementations below build on, captured before any override. */
export interface WasmStock {
  batchMatMul: AnyKernelFunc;
  transpose: AnyKernelFunc;
}

const view = (backend: BackendWasm, t: TensorInfo): Flat => backend.typedArrayFromHeap(t) as Flat;
const f32 = (backend: BackendWasm, t: TensorInfo): Float32Array => backend.typedArrayFromHeap(t) as Float32Array;

/** A tensor over part of another's memory (no copy). Release with `dropAlias`, never `disposeData`. */
function alias(backend: BackendWasm, base: TensorInfo, elementOffset: number, shape: number[]): TensorInfo {
  const offset = backend.dataIdMap.get(base.dataId).memoryOffset + elementOffset * 4;
  return backend.makeOutput(shape, base.dtype, offset);
}

function dropAlias(backend: BackendWasm, t: TensorInfo): void {
  const data = backend.dataIdMap.get(t.dataId);
  backend.dataIdMap.delete(t.dataId);
  // Unregisters the id in C++ (which also drops XNNPACK operators cached on it) without freeing the memory.
  (backend.wasm as unknown as { tfjs: { disposeData(id: number): void } }).tfjs.disposeData(data.id);
}

export function transposeLastTwo(stock: WasmStock, t: TensorInfo, backend: BackendWasm): TensorInfo {
  const r = t.shape.length;
  const perm = [...Array(r).keys()];
  perm[r - 1] = r - 2;
  perm[r - 2] = r - 1;
  return stock.transpose({ inputs: { x: t }, backend, attrs: { perm } }) as TensorInfo;
}

// ---------------------------------------------------------------------------------------------------------

export function unsortedSegmentSum({ inputs, backend, attrs }: WasmArgs): TensorInfo {
  const x = input(inputs, 'x', 'UnsortedSegmentSum');
  const segmentIds = input(inputs, 'segmentIds', 'UnsortedSegmentSum');
  const numSegments = Number(attrs?.['numSegments']);
  const out = backend.makeOutput([numSegments, ...x.shape.slice(segmentIds.shape.length)], x.dtype);
  const inner = sizeOf(x.shape) / Math.max(1, sizeOf(segmentIds.shape));
  segmentSumInto(view(backend, x), view(backend, segmentIds), numSegments, inner, view(backend, out));
  return out;
}

export function gatherV2(stock: AnyKernelFunc): AnyKernelFunc {
  return (args) => {
    const { inputs, backend, attrs } = args as WasmArgs;
    const x = input(inputs, 'x', 'GatherV2');
    const indices = input(inputs, 'indices', 'GatherV2');
    if (x.dtype === 'string' || indices.dtype !== 'int32') return stock(args);
    const axis = tf.util.parseAxisParam(attrs?.['axis'] as number, x.shape)[0] as number;
    const info = tf.backend_util.segment_util.collectGatherOpShapeInfo(
      x as tf.Tensor,
      indices as tf.Tensor,
      axis,
      Number(attrs?.['batchDims'] ?? 0),
    );
    const out = backend.makeOutput(info.outputShape, x.dtype);
    const ids = view(backend, indices);
    const bad = gatherInto(
      view(backend, x),
      ids,
      info.batchSize,
      info.outerSize,
      info.dimSize,
      info.sliceSize,
      view(backend, out),
    );
    if (bad >= 0) {
      const value = ids[bad];
      backend.disposeData(out.dataId);
      throw new InvalidInputError(`GatherV2: the index value ${value} is not in [0, ${info.dimSize - 1}]`, {
        field: 'indices',
      });
    }
    return out;
  };
}

export function tile(stock: AnyKernelFunc): AnyKernelFunc {
  return (args) => {
    const { inputs, backend, attrs } = args as WasmArgs;
    const x = input(inputs, 'x', 'Tile');
    if (x.dtype === 'string') return stock(args);
    const reps = attrs?.['reps'] as number[];
    const out = backend.makeOutput(
      x.shape.map((d, i) => d * (reps[i] as number)),
      x.dtype,
    );
    tileInto(view(backend, x), x.shape, reps, view(backend, out));
    return out;
  };
}

// ---------------------------------------------------------------------------------------------------------
// Slicing. The stock wasm Slice first copies the WHOLE input out of the heap (readSync) on every call, so
// SplitV and Unpack (which slice once per output) cost O(outputs x input): an RNN's unstack over time, the
// gradient of a concat. These read heap views instead.

function sliceView(backend: BackendWasm, x: TensorInfo, begin: number[], size: number[]): TensorInfo {
  const out = backend.makeOutput(size, x.dtype);
  sliceInto(view(backend, x), x.shape, begin, size, view(backend, out));
  return out;
}

export function slice(stock: AnyKernelFunc): AnyKernelFunc {
  return (args) => {
    const { inputs, backend, attrs } = args as WasmArgs;
    const x = input(inputs, 'x', 'Slice');
    if (x.dtype === 'string') return stock(args);
    const [begin, size] = tf.slice_util.parseSliceParams(
      x as tf.Tensor,
      attrs?.['begin'] as number[],
      attrs?.['size'] as number[],
    );
    return sliceView(backend, x, begin as number[], size as number[]);
  };
}

export function splitV(stock: AnyKernelFunc): AnyKernelFunc {
  return (args) => {
    const { inputs, backend, attrs } = args as WasmArgs;
    const x = input(inputs, 'x', 'SplitV');
    if (x.dtype === 'string') return stock(args);
    const axis = tf.util.parseAxisParam(attrs?.['axis'] as number, x.shape)[0] as number;
    const sizes = tf.backend_util.prepareSplitSize(
      x as tf.Tensor,
      attrs?.['numOrSizeSplits'] as number[] | number,
      axis,
    );
    const begin = new Array<number>(x.shape.length).fill(0);
    return sizes.map((s) => {
      const size = [...x.shape];
      size[axis] = s;
      const out = sliceView(backend, x, [...begin], size);
      begin[axis] = (begin[axis] as number) + s;
      return out;
    });
  };
}

export function unpack(stock: AnyKernelFunc): AnyKernelFunc {
  return (args) => {
    const { inputs, backend, attrs } = args as WasmArgs;
    const value = input(inputs, 'value', 'Unpack');
    if (value.dtype === 'string') return stock(args);
    const rank = value.shape.length;
    let axis = Number(attrs?.['axis'] ?? 0);
    if (axis < 0) axis += rank;
    const outShape = value.shape.filter((_, i) => i !== axis);
    const size = [...value.shape];
    size[axis] = 1;
    const begin = new Array<number>(rank).fill(0);
    const outs: TensorInfo[] = [];
    for (let i = 0; i < (value.shape[axis] as number); i++) {
      begin[axis] = i;
      const out = sliceView(backend, value, begin, size);
      outs.push({ ...out, shape: outShape });
    }
    return outs;
  };
}

export function maxPoolGrad(): AnyKernelFunc {
  return (args) => {
    const { inputs, backend, attrs } = args as WasmArgs;
    const dy = input(inputs, 'dy', 'MaxPoolGrad');
    const x = input(inputs, 'input', 'MaxPoolGrad');
    const info = tf.backend_util.computePool2DInfo(
      x.shape as [number, number, number, number],
      attrs?.['filterSize'] as [number, number] | number,
      attrs?.['strides'] as [number, number] | number,
      1,
      attrs?.['pad'] as 'valid' | 'same' | number,
      attrs?.['dimRoundingMode'] as 'floor' | 'round' | 'ceil' | undefined,
    );
    const dx = backend.makeOutput(x.shape, 'float32');
    maxPoolGradInto(
      f32(backend, x),
      f32(backend, dy),
      {
        batchSize: info.batchSize,
        inHeight: info.inHeight,
        inWidth: info.inWidth,
        channels: info.inChannels,
        outHeight: info.outHeight,
        outWidth: info.outWidth,
        filterHeight: info.effectiveFilterHeight,
        filterWidth: info.effectiveFilterWidth,
        strideHeight: info.strideHeight,
        strideWidth: info.strideWidth,
        padTop: info.padInfo.top,
        padLeft: info.padInfo.left,
      },
      f32(backend, dx),
    );
    return dx;
  };
}

/**
 * tanh(x) = 2 sigmoid(2x) - 1 as four XNNPACK passes (scale, sigmoid, scale, shift): the stock element-wise
 * tanh is ~10x slower. Absolute error <= ~2.4e-7 (two float32 ulps of 0.5); very small |x| lose relative
 * precision (tanh(1e-8) gives 0), which no training step notices.
 */
export function tanh(
  stock: AnyKernelFunc,
  k: { multiply: AnyKernelFunc; sigmoid: AnyKernelFunc; sub: AnyKernelFunc },
): AnyKernelFunc {
  return (args) => {
    const { inputs, backend } = args as WasmArgs;
    const x = input(inputs, 'x', 'Tanh');
    if (x.dtype !== 'float32' || sizeOf(x.shape) === 0) return stock(args);
    const two = backend.makeOutput([], 'float32', undefined, new Float32Array([2]));
    const one = backend.makeOutput([], 'float32', undefined, new Float32Array([1]));
    const temps: TensorInfo[] = [two, one];
    try {
      const x2 = k.multiply({ inputs: { a: x, b: two }, backend }) as TensorInfo;
      temps.push(x2);
      const s = k.sigmoid({ inputs: { x: x2 }, backend }) as TensorInfo;
      temps.push(s);
      const s2 = k.multiply({ inputs: { a: s, b: two }, backend }) as TensorInfo;
      temps.push(s2);
      return k.sub({ inputs: { a: s2, b: one }, backend }) as TensorInfo;
    } finally {
      for (const t of temps) backend.disposeData(t.dataId);
    }
  };
}

/**
 * Identity shares the input's memory (reference counted), as the cpu and webgl backends do; the stock wasm
 * kernel mallocs and copies, ~2,000 times per RNN training step (saved activations, clones).
 */
export function identity(stock: AnyKernelFunc): AnyKernelFunc {
  return (args) => {
    const { inputs, backend } = args as WasmArgs;
    const x = input(inputs, 'x', 'Identity');
    if (x.dtype === 'string') return stock(args);
    backend.incRef(x.dataId);
    return { dataId: x.dataId, shape: [...x.shape], dtype: x.dtype };
  };
}

/** Reverse with block copies: the stock kernel runs per element (~70x a copy; tfjs-layers goBackwards RNNs). */
export function reverse(stock: AnyKernelFunc): AnyKernelFunc {
  return (args) => {
    const { inputs, backend, attrs } = args as WasmArgs;
    const x = input(inputs, 'x', 'Reverse');
    if (x.dtype === 'string' || x.shape.length === 0) return stock(args);
    const axes = tf.util.parseAxisParam(attrs?.['dims'] as number | number[], x.shape);
    const reversed = x.shape.map((_, d) => axes.includes(d));
    const out = backend.makeOutput([...x.shape], x.dtype);
    reverseInto(view(backend, x), x.shape, reversed, view(backend, out));
    return out;
  };
}

/** Kernels whose stock wasm broadcast (other than same shape / scalar) runs a slow per-element index path. */
export const SLOW_BROADCAST_KERNELS = [
  'Equal',
  'NotEqual',
  'Greater',
  'GreaterEqual',
  'Less',
  'LessEqual',
  'LogicalAnd',
  'LogicalOr',
  'LogicalXor',
  'Maximum',
  'Minimum',
  'Pow',
  'FloorDiv',
  'Atan2',
  'Mod',
] as const;
/** XNNPACK-backed: fast broadcasting for float32, the slow path for int32. */
export const INT_SLOW_BROADCAST_KERNELS = ['Add', 'Sub', 'Multiply', 'RealDiv', 'SquaredDifference'] as const;

/** Broadcast the operands to the output shape with block copies, then run the stock same-shape kernel. */
export function materializedBroadcast(stock: AnyKernelFunc, floatIsFast: boolean): AnyKernelFunc {
  return (args) => {
    const { inputs, backend, attrs } = args as WasmArgs;
    const a = input(inputs, 'a', 'binary');
    const b = input(inputs, 'b', 'binary');
    const sa = sizeOf(a.shape);
    const sb = sizeOf(b.shape);
    const same = a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i]);
    if (same || sa === 1 || sb === 1 || a.dtype === 'string' || (floatIsFast && a.dtype === 'float32')) {
      return stock(args);
    }
    const outShape = tf.backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
    const temps: TensorInfo[] = [];
    const expand = (t: TensorInfo): TensorInfo => {
      if (t.shape.length === outShape.length && t.shape.every((d, i) => d === outShape[i])) return t;
      const out = backend.makeOutput(outShape, t.dtype);
      temps.push(out);
      broadcastInto(view(backend, t), alignRank(t.shape, outShape.length), outShape, view(backend, out));
      return out;
    };
    try {
      return stock({ inputs: { ...inputs, a: expand(a), b: expand(b) }, backend, attrs });
    } finally {
      for (const t of temps) backend.disposeData(t.dataId);
    }
  };
}

// ---------------------------------------------------------------------------------------------------------
// Matrix products. The stock C++ uses XNNPACK only for batch 1 without transposes; anything else runs a naive
// triple loop (~30x slower). Transpose explicitly, fold a shared right operand into one product, and run
// true batches as one XNNPACK product per batch on zero-copy views.

/** Batches below this many multiply-adds each stay on the stock loop (XNNPACK setup costs more). */
const MIN_BATCH_WORK = 4096;

export function batchMatMul(stock: WasmStock): AnyKernelFunc {
  return (args) => {
    const { inputs, backend, attrs } = args as WasmArgs;
    const a = input(inputs, 'a', 'BatchMatMul');
    const b = input(inputs, 'b', 'BatchMatMul');
    if (a.dtype !== 'float32' || b.dtype !== 'float32') return stock.batchMatMul(args);
    const transposeA = Boolean(attrs?.['transposeA']);
    const transposeB = Boolean(attrs?.['transposeB']);
    const temps: TensorInfo[] = [];
    const at = transposeA ? transposeLastTwo(stock, a, backend) : a;
    if (transposeA) temps.push(at);
    const bt = transposeB ? transposeLastTwo(stock, b, backend) : b;
    if (transposeB) temps.push(bt);
    const plain = { transposeA: false, transposeB: false };
    try {
      const ra = at.shape.length;
      const rb = bt.shape.length;
      const M = at.shape[ra - 2] as number;
      const K = at.shape[ra - 1] as number;
      const N = bt.shape[rb - 1] as number;
      const batchA = sizeOf(at.shape.slice(0, -2));
      const batchB = sizeOf(bt.shape.slice(0, -2));
      const outOuter = tf.backend_util.assertAndGetBroadcastShape(at.shape.slice(0, -2), bt.shape.slice(0, -2));
      const batch = sizeOf(outOuter);
      const outShape = [...outOuter, M, N];
      const simple = (batchA === batch || batchA === 1) && (batchB === batch || batchB === 1);
      if (batch <= 1 || !simple || M * K * N < MIN_BATCH_WORK || K !== (bt.shape[rb - 2] as number)) {
        return stock.batchMatMul({ inputs: { a: at, b: bt }, backend, attrs: plain });
      }
      if (batchB === 1) {
        // Same right operand for every batch: one [batch*M, K] x [K, N] product.
        const folded: TensorInfo = { dataId: at.dataId, shape: [1, batchA * M, K], dtype: 'float32' };
        const r = stock.batchMatMul({ inputs: { a: folded, b: bt }, backend, attrs: plain }) as TensorInfo;
        return { ...r, shape: outShape };
      }
      const out = backend.makeOutput(outShape, 'float32');
      for (let i = 0; i < batch; i++) {
        const ai = alias(backend, at, batchA === 1 ? 0 : i * M * K, [1, M, K]);
        const bi = alias(backend, bt, i * K * N, [1, K, N]);
        try {
          const r = stock.batchMatMul({ inputs: { a: ai, b: bi }, backend, attrs: plain }) as TensorInfo;
          f32(backend, out).set(f32(backend, r), i * M * N);
          backend.disposeData(r.dataId);
        } finally {
          dropAlias(backend, ai);
          dropAlias(backend, bi);
        }
      }
      return out;
    } finally {
      for (const t of temps) backend.disposeData(t.dataId);
    }
  };
}

/** _FusedMatMul (tfjs-layers Dense): transposes made explicit, then the stock fused kernel. */
export function fusedMatMul(stockFused: AnyKernelFunc, stock: WasmStock): AnyKernelFunc {
  return (args) => {
    const { inputs, backend, attrs } = args as WasmArgs;
    const a = input(inputs, 'a', '_FusedMatMul');
    const b = input(inputs, 'b', '_FusedMatMul');
    const transposeA = Boolean(attrs?.['transposeA']);
    const transposeB = Boolean(attrs?.['transposeB']);
    if ((!transposeA && !transposeB) || a.dtype !== 'float32' || b.dtype !== 'float32') return stockFused(args);
    const temps: TensorInfo[] = [];
    const at = transposeA ? transposeLastTwo(stock, a, backend) : a;
    if (transposeA) temps.push(at);
    const bt = transposeB ? transposeLastTwo(stock, b, backend) : b;
    if (transposeB) temps.push(bt);
    try {
      return stockFused({
        inputs: { ...inputs, a: at, b: bt },
        backend,
        attrs: { ...attrs, transposeA: false, transposeB: false },
      });
    } finally {
      for (const t of temps) backend.disposeData(t.dataId);
    }
  };
}

// ---------------------------------------------------------------------------------------------------------
// Convolution gradients (NHWC; conv1d is conv2d with height 1), as matrix products on im2col layouts:
//   dW = cols^T · dy          (cols = im2col(x), [B*OH*OW, FH*FW*C])
//   dx = col2im(dy · W^T)     (W as [FH*FW*C, CO])

export function convGeometry(
  xShape: number[],
  filterShape: number[],
  attrs: tf.NamedAttrMap | undefined,
): ConvGeometry & { outChannels: number } {
  const info = tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    attrs?.['strides'] as [number, number] | number,
    1,
    attrs?.['pad'] as 'valid' | 'same' | number,
    attrs?.['dimRoundingMode'] as 'floor' | 'round' | 'ceil' | undefined,
    false,
    'channelsLast',
  );
  return {
    batchSize: info.batchSize,
    inHeight: info.inHeight,
    inWidth: info.inWidth,
    inChannels: info.inChannels,
    outHeight: info.outHeight,
    outWidth: info.outWidth,
    outChannels: info.outChannels,
    filterHeight: info.filterHeight,
    filterWidth: info.filterWidth,
    strideHeight: info.strideHeight,
    strideWidth: info.strideWidth,
    padTop: info.padInfo.top,
    padLeft: info.padInfo.left,
  };
}

const isNchw = (attrs: tf.NamedAttrMap | undefined): boolean => attrs?.['dataFormat'] === 'NCHW';

export function conv2DBackpropFilter(stock: WasmStock, fallback: AnyKernelFunc): AnyKernelFunc {
  return (args) => {
    const { inputs, backend, attrs } = args as WasmArgs;
    if (isNchw(attrs)) return fallback(args);
    const x = input(inputs, 'x', 'Conv2DBackpropFilter');
    const dy = input(inputs, 'dy', 'Conv2DBackpropFilter');
    const filterShape = [...(attrs?.['filterShape'] as number[])];
    const g = convGeometry(x.shape, filterShape, attrs);
    const rows = g.batchSize * g.outHeight * g.outWidth;
    const k = g.filterHeight * g.filterWidth * g.inChannels;
    const cols = backend.makeOutput([1, rows, k], 'float32');
    im2col(f32(backend, x), g, f32(backend, cols));
    const colsT = transposeLastTwo(stock, cols, backend);
    backend.disposeData(cols.dataId);
    try {
      const dy3: TensorInfo = { dataId: dy.dataId, shape: [1, rows, g.outChannels], dtype: dy.dtype };
      const dw = stock.batchMatMul({
        inputs: { a: colsT, b: dy3 },
        backend,
        attrs: { transposeA: false, transposeB: false },
      }) as TensorInfo;
      return { dataId: dw.dataId, shape: filterShape, dtype: 'float32' };
    } finally {
      backend.disposeData(colsT.dataId);
    }
  };
}

export function conv2DBackpropInput(stock: WasmStock, fallback: AnyKernelFunc): AnyKernelFunc {
  return (args) => {
    const { inputs, backend, attrs } = args as WasmArgs;
    if (isNchw(attrs)) return fallback(args);
    const dy = input(inputs, 'dy', 'Conv2DBackpropInput');
    const filter = input(inputs, 'filter', 'Conv2DBackpropInput');
    const inputShape = [...(attrs?.['inputShape'] as number[])];
    const g = convGeometry(inputShape, filter.shape, attrs);
    const rows = g.batchSize * g.outHeight * g.outWidth;
    const k = g.filterHeight * g.filterWidth * g.inChannels;
    const w2: TensorInfo = { dataId: filter.dataId, shape: [1, k, g.outChannels], dtype: 'float32' };
    const wT = transposeLastTwo(stock, w2, backend);
    let dcols: TensorInfo;
    try {
      const dy3: TensorInfo = { dataId: dy.dataId, shape: [1, rows, g.outChannels], dtype: dy.dtype };
      dcols = stock.batchMatMul({
        inputs: { a: dy3, b: wT },
        backend,
        attrs: { transposeA: false, transposeB: false },
      }) as TensorInfo;
    } finally {
      backend.disposeData(wT.dataId);
    }
    try {
      const dx = backend.makeOutput(inputShape, 'float32');
      col2im(f32(backend, dcols), g, f32(backend, dx));
      return dx;
    } finally {
      backend.disposeData(dcols.dataId);
    }
  };
}

// ---------------------------------------------------------------------------------------------------------

/** The part of tfjs-backend-cpu's MathBackendCPU used here (that package is not a dependency of ours). */
export interface CpuBackend extends tf.KernelBackend {
  data: { get(dataId: tf.DataId): { values?: tf.backend_util.BackendValues } };
  makeTensorInfo(shape: number[], dtype: tf.DataType, values?: tf.backend_util.BackendValues): TensorInfo;
  write(values: tf.backend_util.BackendValues, shape: number[], dtype: tf.DataType): tf.DataId;
  readSync(dataId: tf.DataId): tf.backend_util.BackendValues;
  disposeData(dataId: tf.DataId, force?: boolean): boolean;
}

/**
 * Run tfjs's cpu kernel `name` on copies of the inputs and write its outputs into the wasm heap: for the
 * rarely used kernels wasm lacks (depthwise conv gradients, einsum, ragged ops). Correct, not fast.
 */
export function cpuBridge(name: string): AnyKernelFunc {
  return ({ inputs, backend, attrs }) => {
    const wasm = backend as BackendWasm;
    const cpu = tf.engine().findBackend('cpu') as CpuBackend | null;
    if (cpu === null) throw new Error(`${name}: the cpu backend is not available to bridge to`);
    const kernel = stockKernel(name, 'cpu');
    // Some kernels (Einsum, Concat, AddN) take an array of tensors rather than named inputs: keep the form.
    const cpuInputs: Record<string, TensorInfo> | TensorInfo[] = Array.isArray(inputs) ? [] : {};
    const written: tf.DataId[] = [];
    try {
      for (const [key, t] of Object.entries(inputs)) {
        if (t === undefined) continue;
        const dataId = cpu.write(wasm.readSync(t.dataId), t.shape, t.dtype);
        written.push(dataId);
        (cpuInputs as Record<string, TensorInfo>)[key] = { dataId, shape: t.shape, dtype: t.dtype };
      }
      const result = kernel({ inputs: cpuInputs as tf.NamedTensorInfoMap, backend: cpu, attrs });
      const outs = Array.isArray(result) ? result : [result];
      const moved = outs.map((o) => wasm.makeOutput(o.shape, o.dtype, undefined, cpu.readSync(o.dataId)));
      for (const o of outs) cpu.disposeData(o.dataId);
      return Array.isArray(result) ? moved : (moved[0] as TensorInfo);
    } finally {
      for (const id of written) cpu.disposeData(id);
    }
  };
}
