/**
 * Kernel fixes for tfjs-backend-webgpu 4.22.0, registered by `initWebgpu` over the upstream kernels.
 *
 * Transpose: upstream's general program writes the raw input element (`A[...]`, an i32 for int32/bool tensors)
 * through `setOutputAtIndex`, which takes an f32, so the WGSL fails validation; the dispatch is dropped and the
 * output reads back as zeros (rank >= 3, or any rank-2 permutation routed there). Its rank-2 tiled program
 * goes through an f32 workgroup tile, which rounds int32 values beyond 2^24. Here every int32/bool transpose
 * runs an integer-typed program; float32 keeps the upstream kernels.
 *
 * Reductions (Sum, Prod, Max, Min, Any, All, Mean, ArgMax, ArgMin): upstream transposes the reduced axes to the
 * end with its internal (broken) transpose when they are not already innermost. For int32/bool inputs the
 * wrappers here move the axes with the fixed transpose first, so upstream only ever sees innermost axes.
 */
import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend, WebGPUProgram } from '@tensorflow/tfjs-backend-webgpu';

type KernelFunc = tf.KernelConfig['kernelFunc'];
type TensorInfo = tf.TensorInfo;

/** The part of the backend module the fixes need (passed in so that this file never imports it). */
export interface WebgpuModule {
  webgpu_util: {
    flatDispatchLayout(shape: number[]): { x: number[] };
    computeDispatch(
      layout: { x: number[]; y?: number[]; z?: number[] },
      outputShape: number[],
      workgroupSize?: [number, number, number],
      elementsPerThread?: [number, number, number],
    ): [number, number, number];
  };
}

const COORD = ['x', 'y', 'z', 'w', 'u', 'v'] as const;

function coordsType(rank: number): string {
  if (rank <= 1) return 'i32';
  if (rank <= 4) return `vec${rank}<i32>`;
  return `vec${rank}`; // tfjs's own 5-/6-component structs
}

/** Integer-typed transpose: reads the i32 element and writes it with setOutputAtIndexI32. */
class IntTransposeProgram implements WebGPUProgram {
  variableNames = ['A'];
  workgroupSize: [number, number, number] = [64, 1, 1];
  size = true;
  outputShape: number[];
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  shaderKey: string;
  private readonly perm: number[];

  constructor(util: WebgpuModule['webgpu_util'], inShape: number[], perm: number[]) {
    this.perm = perm;
    this.outputShape = perm.map((p) => inShape[p] ?? 1);
    this.dispatchLayout = util.flatDispatchLayout(this.outputShape);
    this.dispatch = util.computeDispatch(this.dispatchLayout, this.outputShape, this.workgroupSize);
    this.shaderKey = `ch8IntTranspose_${perm.join('_')}`;
  }

  getUserCode = (): string => {
    const rank = this.perm.length;
    // Input coordinate perm[i] is output coordinate i.
    const inCoords = new Array<string>(rank);
    this.perm.forEach((p, i) => {
      inCoords[p] = rank === 1 ? 'coords' : `coords.${COORD[i]}`;
    });
    const index =
      rank === 1
        ? `getIndexFromCoords1D(${inCoords.join()}, uniforms.aShape)`
        : `getIndexFromCoords${rank}D(${coordsType(rank)}(${inCoords.join()}), uniforms.aShape)`;
    return `
      fn main(index : i32) {
        if (index < uniforms.size) {
          let coords = getCoordsFromIndex(index);
          setOutputAtIndexI32(index, i32(A[${index}]));
        }
      }
    `;
  };
}

function isIntegral(dtype: tf.DataType): boolean {
  return dtype === 'int32' || dtype === 'bool';
}

/** Transpose an int32/bool tensor on the GPU with the integer program (rank 1..6). */
export function intTranspose(
  backend: WebGPUBackend,
  util: WebgpuModule['webgpu_util'],
  x: TensorInfo,
  perm: number[],
): TensorInfo {
  const program = new IntTransposeProgram(util, x.shape, perm);
  return backend.runWebGPUProgram(program, [x], x.dtype);
}

function transposeKernel(original: KernelFunc, util: WebgpuModule['webgpu_util']): KernelFunc {
  return (args) => {
    const x = args.inputs['x'] as TensorInfo;
    const perm = (args.attrs as { perm: number[] }).perm;
    const backend = args.backend as unknown as WebGPUBackend;
    if (!isIntegral(x.dtype) || x.shape.length === 0 || x.shape.length > 6 || backend.shouldExecuteOnCPU([x])) {
      return original(args);
    }
    return intTranspose(backend, util, x, perm);
  };
}

/**
 * Wrap a reduction so that int32/bool inputs reach upstream with the reduced axes already innermost (upstream
 * would otherwise move them there with its broken integer transpose). The output is the same either way: the
 * reduced axes go away and the others keep their order; only `keepDims` needs the original shape back.
 */
function reduceKernel(
  original: KernelFunc,
  util: WebgpuModule['webgpu_util'],
  axisAttr: string,
  singleAxis: boolean,
): KernelFunc {
  return (args) => {
    const x = args.inputs['x'] as TensorInfo;
    const backend = args.backend as unknown as WebGPUBackend;
    const rank = x.shape.length;
    if (!isIntegral(x.dtype) || rank < 2 || rank > 6 || backend.shouldExecuteOnCPU([x])) return original(args);
    const attrs = args.attrs as Record<string, unknown>;
    const rawAxis = attrs[axisAttr] as number | number[] | null | undefined;
    const axes = tf.util.parseAxisParam(rawAxis ?? [...Array(rank).keys()], x.shape);
    const perm = tf.backend_util.getAxesPermutation(axes, rank);
    if (perm == null) return original(args);
    const moved = intTranspose(backend, util, x, perm);
    try {
      const inner = tf.backend_util.getInnerMostAxes(axes.length, rank);
      const newAttrs: Record<string, unknown> = { ...attrs, [axisAttr]: singleAxis ? inner[0] : inner };
      const keepDims = attrs['keepDims'] === true;
      if (keepDims) newAttrs['keepDims'] = false;
      const out = original({ ...args, inputs: { x: moved }, attrs: newAttrs as tf.NamedAttrMap }) as TensorInfo;
      if (!keepDims) return out;
      const shape = tf.backend_util.expandShapeToKeepDim(out.shape, axes);
      const reshape = tf.getKernel('Reshape', 'webgpu');
      if (reshape === undefined) throw new Error('webgpu Reshape kernel is not registered');
      const reshaped = reshape.kernelFunc({
        inputs: { x: out },
        backend: args.backend,
        attrs: { shape },
      }) as TensorInfo;
      backend.disposeData(out.dataId);
      return reshaped;
    } finally {
      backend.disposeData(moved.dataId);
    }
  };
}

/** Reductions: kernel name, the attribute naming the reduced axes, and whether it is a single axis. */
const REDUCTIONS: ReadonlyArray<[string, string, boolean]> = [
  ['Sum', 'axis', false],
  ['Prod', 'axis', false],
  ['Max', 'reductionIndices', false],
  ['Min', 'axis', false],
  ['Any', 'axis', false],
  ['All', 'axis', false],
  ['Mean', 'axis', false],
  ['ArgMax', 'axis', true],
  ['ArgMin', 'axis', true],
];

const FIXED = Symbol.for('@ch8/webgpu.kernelFixes');
const upstreamKernels = new Map<string, KernelFunc>();

/** The upstream kernel a fix replaced (for tests that show the upstream bug), or undefined. */
export function upstreamKernel(name: string): KernelFunc | undefined {
  return upstreamKernels.get(name);
}

/** Names of the kernels replaced by `registerWebgpuKernelFixes`. */
export function fixedKernelNames(): string[] {
  return [...upstreamKernels.keys()];
}

function override(name: string, make: (original: KernelFunc) => KernelFunc): void {
  const upstream = tf.getKernel(name, 'webgpu');
  if (upstream === undefined) return;
  upstreamKernels.set(name, upstream.kernelFunc);
  tf.unregisterKernel(name, 'webgpu');
  tf.registerKernel({ ...upstream, kernelFunc: make(upstream.kernelFunc) });
}

/** Register the fixes over the upstream webgpu kernels (idempotent). */
export function registerWebgpuKernelFixes(mod: WebgpuModule): void {
  const g = globalThis as { [FIXED]?: boolean };
  if (g[FIXED] === true) return;
  g[FIXED] = true;
  const util = mod.webgpu_util;
  override('Transpose', (k) => transposeKernel(k, util));
  for (const [name, attr, single] of REDUCTIONS) override(name, (k) => reduceKernel(k, util, attr, single));
}
