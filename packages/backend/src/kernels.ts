/**
 * Kernels that let tfjs's wasm (and cpu) backends train every model of the zoo, and train it fast.
 *
 * Stock tfjs 4.22.0 wasm has no UnsortedSegmentSum (the gradient of gather, so of every embedding lookup) and
 * no Conv2DBackpropFilter (conv1d's weight gradient); its BatchMatMul with transposeA/transposeB takes a slow
 * path. The stock cpu UnsortedSegmentSum loops over every segment (minutes per step on a 20k-row table).
 * `registerTrainingKernels()` fixes all of that; `selectBackend` calls it for wasm and cpu.
 */
import * as tf from '@tensorflow/tfjs';
// Importing the package registers the stock wasm kernels, which the overrides below wrap.
import '@tensorflow/tfjs-backend-wasm';
import { type Flat, im2col, segmentSumInto, sizeOf } from './layout.ts';
import {
  type AnyKernelFunc,
  batchMatMul,
  conv2DBackpropFilter,
  conv2DBackpropInput,
  convGeometry,
  type CpuBackend,
  cpuBridge,
  fusedMatMul,
  gatherV2,
  identity,
  input,
  INT_SLOW_BROADCAST_KERNELS,
  type KernelArgs,
  materializedBroadcast,
  maxPoolGrad,
  reverse,
  slice,
  splitV,
  unpack,
  SLOW_BROADCAST_KERNELS,
  stockKernel,
  tanh,
  tile,
  unsortedSegmentSum,
  type WasmStock,
} from './wasm-kernels.ts';
import { rnnKernels } from './rnn-kernels.ts';
import { convKernels } from './conv-kernels.ts';

export { segmentSumInto } from './layout.ts';

type TensorInfo = tf.TensorInfo;

/** What `registerTrainingKernels` put in place, one entry per kernel and backend. */
export interface TrainingKernel {
  kernel: string;
  backend: 'wasm' | 'cpu';
  /** added: stock backend had none; override: replaces a stock kernel; cpu-bridge: runs cpu's on copies. */
  kind: 'added' | 'override' | 'cpu-bridge';
  why: string;
}

function unsortedSegmentSumCpu({ inputs, backend, attrs }: KernelArgs<CpuBackend>): TensorInfo {
  const x = input(inputs, 'x', 'UnsortedSegmentSum');
  const segmentIds = input(inputs, 'segmentIds', 'UnsortedSegmentSum');
  const numSegments = Number(attrs?.['numSegments']);
  const shape = [numSegments, ...x.shape.slice(segmentIds.shape.length)];
  const xv = backend.data.get(x.dataId).values as Flat;
  const ids = backend.data.get(segmentIds.dataId).values as Flat;
  const out = x.dtype === 'int32' ? new Int32Array(sizeOf(shape)) : new Float32Array(sizeOf(shape));
  segmentSumInto(xv, ids, numSegments, sizeOf(x.shape) / Math.max(1, ids.length), out);
  return backend.makeTensorInfo(shape, x.dtype, out);
}

/**
 * cpu Conv2DBackpropFilter (NHWC): im2col, then the cpu matMul kernel. The stock one reads every element
 * through TensorBuffer.get (~30 s per conv1d weight gradient of a 64-sentence batch).
 */
function conv2DBackpropFilterCpu(stockMatMul: AnyKernelFunc, stock: AnyKernelFunc): AnyKernelFunc {
  return (args) => {
    const { inputs, backend, attrs } = args as KernelArgs<CpuBackend>;
    const x = input(inputs, 'x', 'Conv2DBackpropFilter');
    const dy = input(inputs, 'dy', 'Conv2DBackpropFilter');
    if (attrs?.['dataFormat'] === 'NCHW' || x.dtype !== 'float32') return stock(args);
    const filterShape = [...(attrs?.['filterShape'] as number[])];
    const g = convGeometry(x.shape, filterShape, attrs);
    const rows = g.batchSize * g.outHeight * g.outWidth;
    const k = g.filterHeight * g.filterWidth * g.inChannels;
    const cols = new Float32Array(rows * k);
    im2col(backend.data.get(x.dataId).values as Float32Array, g, cols);
    const colsInfo = backend.makeTensorInfo([1, rows, k], 'float32', cols);
    try {
      const dy3: TensorInfo = { dataId: dy.dataId, shape: [1, rows, g.outChannels], dtype: dy.dtype };
      const dw = stockMatMul({
        inputs: { a: colsInfo, b: dy3 },
        backend,
        attrs: { transposeA: true, transposeB: false },
      }) as TensorInfo;
      return { dataId: dw.dataId, shape: filterShape, dtype: 'float32' };
    } finally {
      backend.disposeData(colsInfo.dataId);
    }
  };
}

// Kernels with no stock complex/string/canvas support in wasm at all: not bridged.
const NOT_BRIDGED = new Set(['Complex', 'ComplexAbs', 'FFT', 'IFFT', 'Imag', 'Real', 'Draw', 'StaticRegexReplace']);

let registered: TrainingKernel[] | undefined;
/** For each override: the stock config it replaced and ours, so `useStockKernels` can swap them. */
const swaps: { stock: tf.KernelConfig; ours: tf.KernelConfig }[] = [];
let usingStock = false;

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
  if (stock !== undefined) swaps.push({ stock, ours: config });
  out.push({ kernel: kernelName, backend: backendName, kind, why });
}

/**
 * Register (once; later calls return the same list) the kernels the zoo needs for training on wasm and cpu.
 * Call it before or after the backend is active; it never changes the active backend.
 */
export function registerTrainingKernels(): TrainingKernel[] {
  if (registered !== undefined) return registered;
  const out: TrainingKernel[] = [];
  const stock: WasmStock = {
    batchMatMul: stockKernel(tf.BatchMatMul, 'wasm'),
    transpose: stockKernel(tf.Transpose, 'wasm'),
  };
  const stockOf = (name: string) => stockKernel(name, 'wasm');

  put(
    tf.UnsortedSegmentSum,
    'wasm',
    unsortedSegmentSum as AnyKernelFunc,
    'added',
    'gradient of gather (every embedding lookup); missing in stock wasm',
    out,
  );
  put(
    tf.Conv2DBackpropFilter,
    'wasm',
    conv2DBackpropFilter(stock, cpuBridge(tf.Conv2DBackpropFilter)),
    'added',
    'conv1d/conv2d weight gradient; missing in stock wasm (im2col + XNNPACK matMul)',
    out,
  );
  put(
    tf.Conv2DBackpropInput,
    'wasm',
    conv2DBackpropInput(stock, stockOf(tf.Conv2DBackpropInput)),
    'override',
    'stock is a naive loop (~10x slower); conv1d input gradient when embeddings are fine-tuned (matMul + col2im)',
    out,
  );
  put(
    tf.BatchMatMul,
    'wasm',
    batchMatMul(stock),
    'override',
    'stock uses XNNPACK only for batch 1 without transposes: transposed operands (dense-layer gradients) and ' +
      'batched products (attention) ran a naive loop',
    out,
  );
  put(
    tf._FusedMatMul,
    'wasm',
    fusedMatMul(stockOf(tf._FusedMatMul), stock),
    'override',
    'same slow transposed path as BatchMatMul (tfjs-layers Dense uses the fused kernel)',
    out,
  );
  put(
    tf.GatherV2,
    'wasm',
    gatherV2(stockOf(tf.GatherV2)),
    'override',
    'stock gather is ~20x slower than row copies (every embedding lookup)',
    out,
  );
  put(
    tf.Slice,
    'wasm',
    slice(stockOf(tf.Slice)),
    'override',
    'stock Slice copies the whole input out of the heap on every call',
    out,
  );
  put(
    tf.SplitV,
    'wasm',
    splitV(stockOf(tf.SplitV)),
    'override',
    'one whole-input copy per output with the stock Slice (concat gradients, gate splits)',
    out,
  );
  put(
    tf.Unpack,
    'wasm',
    unpack(stockOf(tf.Unpack)),
    'override',
    'one whole-input copy per output with the stock Slice (unstack over time in RNNs)',
    out,
  );
  put(
    tf.MaxPoolGrad,
    'wasm',
    maxPoolGrad(),
    'override',
    'stock MaxPoolGrad is ~40x slower than a channel-inner scan (max over time in the CNN)',
    out,
  );
  put(
    tf.Tanh,
    'wasm',
    tanh(stockOf(tf.Tanh), { multiply: stockOf(tf.Multiply), sigmoid: stockOf(tf.Sigmoid), sub: stockOf(tf.Sub) }),
    'override',
    'stock tanh is ~10x slower than XNNPACK sigmoid: tanh(x) = 2 sigmoid(2x) - 1 (LSTM/GRU cells)',
    out,
  );
  put(
    tf.Identity,
    'wasm',
    identity(stockOf(tf.Identity)),
    'override',
    'stock mallocs and copies (~2,000 calls per RNN training step); shared reference-counted memory as on cpu/webgl',
    out,
  );
  put(
    tf.Reverse,
    'wasm',
    reverse(stockOf(tf.Reverse)),
    'override',
    'stock reverse runs per element (~70x a copy; tfjs-layers goBackwards / Bidirectional RNNs)',
    out,
  );
  put(tf.Tile, 'wasm', tile(stockOf(tf.Tile)), 'override', 'stock tile runs per element (tf.broadcastTo, masks)', out);
  for (const name of SLOW_BROADCAST_KERNELS) {
    put(
      name,
      'wasm',
      materializedBroadcast(stockOf(name), false),
      'override',
      'stock broadcasting (other than scalar) runs a per-element index path ~30x slower (max-pool gradient, masks)',
      out,
    );
  }
  for (const name of INT_SLOW_BROADCAST_KERNELS) {
    put(
      name,
      'wasm',
      materializedBroadcast(stockOf(name), true),
      'override',
      'int32 broadcasting runs the slow per-element path (float32 stays on XNNPACK)',
      out,
    );
  }
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
  put(
    tf.Conv2DBackpropFilter,
    'cpu',
    conv2DBackpropFilterCpu(stockKernel(tf.BatchMatMul, 'cpu'), stockKernel(tf.Conv2DBackpropFilter, 'cpu')),
    'override',
    'stock cpu kernel reads every element through TensorBuffer.get (~30x slower than im2col + matMul)',
    out,
  );
  for (const k of [...rnnKernels(), ...convKernels()]) {
    put(k.kernel, k.backend, k.kernelFunc, 'added', k.why, out);
  }
  registered = out;
  return out;
}

/**
 * Benchmarks and diagnostics: `true` puts the stock kernels back in place of our overrides (the kernels stock
 * tfjs lacks stay registered, there being nothing to go back to); `false` restores ours. Needs
 * `registerTrainingKernels()` first.
 */
export function useStockKernels(stock: boolean): void {
  if (registered === undefined) registerTrainingKernels();
  if (stock === usingStock) return;
  for (const { stock: s, ours } of swaps) {
    const next = stock ? s : ours;
    tf.unregisterKernel(next.kernelName, next.backendName);
    tf.registerKernel(next);
  }
  usingStock = stock;
}
