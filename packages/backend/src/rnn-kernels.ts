/**
 * Fused LSTM and GRU recurrences for tfjs's wasm and cpu backends: one kernel runs a whole padded batch's
 * recurrence (every step, both directions), another its backward, so that a step costs one matMul per direction
 * and a few loops over the gate values, instead of ~25 tfjs ops per step forward (and their tape) and more backward.
 *
 * What the op takes and gives (D directions, B examples, T steps, H units, G gates per direction: 4H or 3H):
 * - `x` [B, T, D*G]: the input projections of every position, batch-major as the embedding rows come (x W + b, one
 *   big matMul under autograd), direction d in columns d*G .. (d+1)*G;
 * - `wh` [D, H, G]: the recurrent kernels; GRU also `bh` [D, 1, G], the recurrent bias;
 * - `mask` [B, T]: 1 at real tokens, 0 at PAD. Where it is 0 the state is carried unchanged (exactly);
 * - out: the final state h [D, B, H]. Direction 0 reads time s at step s, direction 1 time T - 1 - s.
 * Gate order as stored by the zoo (PyTorch's): LSTM i, f, o, g (c' = f c + i g, h' = o tanh c'); GRU r, z, n
 * (n = tanh(x_n + r (h W_hn + b_hn)), h' = (1 - z) n + z h). The gradient gives dx for every position (so the
 * input projection's weights get one matMul), dWh as one matMul per direction over the stacked states
 * h_{s-1} and gate gradients, and (GRU) dbh.
 *
 * The recurrences are written once against `Machine`: float32 working memory addressed by offsets, a matMul and
 * an in-place sigmoid. On wasm the memory is the wasm heap, the products are the stock XNNPACK BatchMatMul (the
 * recurrent kernel packed once per call) and the stock sigmoid; tanh(x) is 2 sigmoid(2x) - 1 as in the zoo's
 * op-by-op path. Heap rule: any Machine call may grow (and so replace) the heap, so views are re-read after each.
 * On cpu the memory is a growable Float32Array and the products are plain loops (tests; correct, not fast).
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { InvalidInputError } from '@ch8/errors';
import { type AnyKernelFunc, type CpuBackend, input, type KernelArgs } from './wasm-kernels.ts';

type TensorInfo = tf.TensorInfo;

export const LSTM_SEQUENCE = 'Ch8LstmSequence';
export const LSTM_SEQUENCE_GRAD = 'Ch8LstmSequenceGrad';
export const GRU_SEQUENCE = 'Ch8GruSequence';
export const GRU_SEQUENCE_GRAD = 'Ch8GruSequenceGrad';

/** Float32 working memory and the two primitives the recurrences need. Offsets and sizes count floats. */
interface Machine {
  /** All memory as one view. Any later call below may replace it (wasm's heap grows): re-read after each. */
  heap(): Float32Array;
  /** A zero-filled buffer. */
  alloc(size: number): number;
  /** The right operand [k, n] stored at `off`, fixed from now on (wasm packs it once): a handle for `matMul`. */
  weights(off: number, k: number, n: number): number;
  /** out [m, n] = a [m, k] · weights [k, n]. */
  matMul(a: number, m: number, w: number, out: number): void;
  /** heap[off, off + len) = sigmoid(heap[off, off + len)). */
  sigmoid(off: number, len: number): void;
}

interface Dims {
  B: number;
  T: number;
  D: number;
  H: number;
}

/** A recurrence or its gradient: reads the inputs at `ins`, writes the (zero-filled) outputs at `outs`. */
type Body = (m: Machine, dims: Dims, ins: number[], outs: number[]) => void;

// ---------------------------------------------------------------------------------------------------------
// LSTM

/** Outputs: h [D, B, H], acts [T, D, B, 4H] (i, f, o, g after activation), cells [T, D, B, H] (c after step s,
 * PAD-kept), tanhCells [T, D, B, H] (tanh of the candidate cell), hPrevT [D, H, T*B] (h before step s, column s*B+b). */
const lstmForward: Body = (m, { B, T, D, H }, [x, wh, mask], [hOut, acts, cells, tanhCells, hPrevT]) => {
  const G = 4 * H;
  const DG = D * G;
  const SB = T * B;
  const ws: number[] = [];
  for (let d = 0; d < D; d++) ws.push(m.weights(wh! + d * H * G, H, G));
  const cc = m.alloc(D * B * H);
  const c2 = m.alloc(D * B * H);
  for (let s = 0; s < T; s++) {
    const a = acts! + s * D * B * G;
    if (s > 0) for (let d = 0; d < D; d++) m.matMul(hOut! + d * B * H, B, ws[d]!, a + d * B * G);
    let M = m.heap();
    // Pre-activations z = x + h Wh; the g quarter doubled, for tanh(z) = 2 sigmoid(2z) - 1.
    for (let d = 0; d < D; d++) {
      const t = d === 0 ? s : T - 1 - s;
      for (let b = 0; b < B; b++) {
        const xr = x! + (b * T + t) * DG + d * G;
        const ar = a + (d * B + b) * G;
        if (s === 0) {
          for (let j = 0; j < 3 * H; j++) M[ar + j] = M[xr + j]!;
          for (let j = 3 * H; j < G; j++) M[ar + j] = 2 * M[xr + j]!;
        } else {
          for (let j = 0; j < 3 * H; j++) M[ar + j] = M[ar + j]! + M[xr + j]!;
          for (let j = 3 * H; j < G; j++) M[ar + j] = 2 * (M[ar + j]! + M[xr + j]!);
        }
      }
    }
    m.sigmoid(a, D * B * G);
    const tc = tanhCells! + s * D * B * H;
    M = m.heap();
    for (let r = 0; r < D * B; r++) {
      const ar = a + r * G;
      for (let k = 0; k < H; k++) {
        const g = 2 * M[ar + 3 * H + k]! - 1;
        M[ar + 3 * H + k] = g;
        const cv = M[ar + H + k]! * M[cc + r * H + k]! + M[ar + k]! * g;
        M[c2 + r * H + k] = cv;
        M[tc + r * H + k] = 2 * cv;
      }
    }
    m.sigmoid(tc, D * B * H);
    M = m.heap();
    const cs = cells! + s * D * B * H;
    for (let d = 0; d < D; d++) {
      const t = d === 0 ? s : T - 1 - s;
      const hp = hPrevT! + d * H * SB + s * B;
      for (let b = 0; b < B; b++) {
        const real = M[mask! + b * T + t] !== 0;
        const r = d * B + b;
        const ar = a + r * G;
        for (let k = 0; k < H; k++) {
          const i = r * H + k;
          const th = 2 * M[tc + i]! - 1;
          M[tc + i] = th;
          M[hp + k * SB + b] = M[hOut! + i]!;
          if (real) {
            M[hOut! + i] = M[ar + 2 * H + k]! * th;
            M[cc + i] = M[c2 + i]!;
          }
          M[cs + i] = M[cc + i]!;
        }
      }
    }
  }
};

/** Outputs: dx [B, T, D*4H], dwh [D, H, 4H]. */
const lstmBackward: Body = (m, { B, T, D, H }, [dy, acts, cells, tanhCells, hPrevT, wh, mask], [dx, dwh]) => {
  const G = 4 * H;
  const DG = D * G;
  const SB = T * B;
  const whT = m.alloc(D * G * H);
  const dz = m.alloc(D * SB * G); // per direction [T*B, G], rows in step order
  const dh = m.alloc(D * B * H);
  const dc = m.alloc(D * B * H);
  const tmp = m.alloc(D * B * H);
  let M = m.heap();
  transposeInto(M, wh!, D, H, G, whT);
  M.copyWithin(dh, dy!, dy! + D * B * H);
  const wts: number[] = [];
  for (let d = 0; d < D; d++) wts.push(m.weights(whT + d * G * H, G, H));
  for (let s = T - 1; s >= 0; s--) {
    M = m.heap();
    for (let d = 0; d < D; d++) {
      const t = d === 0 ? s : T - 1 - s;
      for (let b = 0; b < B; b++) {
        if (M[mask! + b * T + t] === 0) continue; // PAD: no gate gradient, dh and dc carried
        const r = d * B + b;
        const ar = acts! + (s * D * B + r) * G;
        const tr = tanhCells! + (s * D * B + r) * H;
        const cp = s > 0 ? cells! + ((s - 1) * D * B + r) * H : -1;
        const zr = dz + d * SB * G + (s * B + b) * G;
        for (let k = 0; k < H; k++) {
          const i = M[ar + k]!;
          const f = M[ar + H + k]!;
          const o = M[ar + 2 * H + k]!;
          const g = M[ar + 3 * H + k]!;
          const th = M[tr + k]!;
          const c = cp < 0 ? 0 : M[cp + k]!;
          const dhk = M[dh + r * H + k]!;
          const dct = M[dc + r * H + k]! + dhk * o * (1 - th * th);
          M[zr + k] = dct * g * i * (1 - i);
          M[zr + H + k] = dct * c * f * (1 - f);
          M[zr + 2 * H + k] = dhk * th * o * (1 - o);
          M[zr + 3 * H + k] = dct * i * (1 - g * g);
          M[dc + r * H + k] = dct * f;
        }
      }
    }
    if (s === 0) break; // the initial state is a constant
    for (let d = 0; d < D; d++) m.matMul(dz + d * SB * G + s * B * G, B, wts[d]!, tmp + d * B * H);
    M = m.heap();
    carryRealRows(M, mask!, s, B, T, D, H, tmp, dh, false);
  }
  for (let d = 0; d < D; d++) {
    const w = m.weights(dz + d * SB * G, SB, G);
    m.matMul(hPrevT! + d * H * SB, H, w, dwh! + d * H * G);
  }
  scatterSteps(m.heap(), dz, dx!, B, T, D, G, DG);
};

// ---------------------------------------------------------------------------------------------------------
// GRU

/** Outputs: h [D, B, H], rz [T, D, B, 2H] (r, z after sigmoid), n [T, D, B, H], ghn [T, D, B, H] (h W_hn + b_hn),
 * hPrevT [D, H, T*B]. */
const gruForward: Body = (m, { B, T, D, H }, [x, wh, bh, mask], [hOut, rz, nOut, ghn, hPrevT]) => {
  const G = 3 * H;
  const DG = D * G;
  const SB = T * B;
  const ws: number[] = [];
  for (let d = 0; d < D; d++) ws.push(m.weights(wh! + d * H * G, H, G));
  const gh = m.alloc(D * B * G);
  for (let s = 0; s < T; s++) {
    if (s > 0) for (let d = 0; d < D; d++) m.matMul(hOut! + d * B * H, B, ws[d]!, gh + d * B * G);
    const rzs = rz! + s * D * B * 2 * H;
    const ns = nOut! + s * D * B * H;
    const gs = ghn! + s * D * B * H;
    let M = m.heap();
    for (let d = 0; d < D; d++) {
      const t = d === 0 ? s : T - 1 - s;
      const br = bh! + d * G;
      for (let b = 0; b < B; b++) {
        const r = d * B + b;
        const xr = x! + (b * T + t) * DG + d * G;
        const gr = gh + r * G;
        const zr = rzs + r * 2 * H;
        for (let j = 0; j < 2 * H; j++) M[zr + j] = M[xr + j]! + (M[gr + j]! + M[br + j]!);
        for (let k = 0; k < H; k++) M[gs + r * H + k] = M[gr + 2 * H + k]! + M[br + 2 * H + k]!;
      }
    }
    m.sigmoid(rzs, D * B * 2 * H);
    M = m.heap();
    for (let d = 0; d < D; d++) {
      const t = d === 0 ? s : T - 1 - s;
      for (let b = 0; b < B; b++) {
        const r = d * B + b;
        const xr = x! + (b * T + t) * DG + d * G + 2 * H;
        const zr = rzs + r * 2 * H;
        for (let k = 0; k < H; k++) M[ns + r * H + k] = 2 * (M[xr + k]! + M[zr + k]! * M[gs + r * H + k]!);
      }
    }
    m.sigmoid(ns, D * B * H);
    M = m.heap();
    for (let d = 0; d < D; d++) {
      const t = d === 0 ? s : T - 1 - s;
      const hp = hPrevT! + d * H * SB + s * B;
      for (let b = 0; b < B; b++) {
        const real = M[mask! + b * T + t] !== 0;
        const r = d * B + b;
        const zr = rzs + r * 2 * H + H;
        for (let k = 0; k < H; k++) {
          const i = r * H + k;
          const n = 2 * M[ns + i]! - 1;
          M[ns + i] = n;
          const h = M[hOut! + i]!;
          M[hp + k * SB + b] = h;
          if (real) M[hOut! + i] = n + M[zr + k]! * (h - n);
        }
      }
    }
    // The next step's matMul writes gh; at s = 0 it stays zero (h W_h of the zero state).
  }
};

/** Outputs: dx [B, T, D*3H], dwh [D, H, 3H], dbh [D, 1, 3H]. */
const gruBackward: Body = (m, { B, T, D, H }, [dy, rz, nIn, ghn, hPrevT, wh, mask], [dx, dwh, dbh]) => {
  const G = 3 * H;
  const DG = D * G;
  const SB = T * B;
  const whT = m.alloc(D * G * H);
  const dxs = m.alloc(D * SB * G); // per direction [T*B, G] in step order: gradients of x
  const dgh = m.alloc(D * SB * G); // the same for h W_h + b_h
  const dh = m.alloc(D * B * H);
  const tmp = m.alloc(D * B * H);
  let M = m.heap();
  transposeInto(M, wh!, D, H, G, whT);
  M.copyWithin(dh, dy!, dy! + D * B * H);
  const wts: number[] = [];
  for (let d = 0; d < D; d++) wts.push(m.weights(whT + d * G * H, G, H));
  for (let s = T - 1; s >= 0; s--) {
    M = m.heap();
    for (let d = 0; d < D; d++) {
      const t = d === 0 ? s : T - 1 - s;
      const hp = hPrevT! + d * H * SB + s * B;
      for (let b = 0; b < B; b++) {
        if (M[mask! + b * T + t] === 0) continue;
        const r = d * B + b;
        const zr = rz! + (s * D * B + r) * 2 * H;
        const nr = nIn! + (s * D * B + r) * H;
        const gr = ghn! + (s * D * B + r) * H;
        const xo = dxs + d * SB * G + (s * B + b) * G;
        const go = dgh + d * SB * G + (s * B + b) * G;
        for (let k = 0; k < H; k++) {
          const rv = M[zr + k]!;
          const z = M[zr + H + k]!;
          const n = M[nr + k]!;
          const h = M[hp + k * SB + b]!;
          const dhk = M[dh + r * H + k]!;
          const dnp = dhk * (1 - z) * (1 - n * n);
          const drp = dnp * M[gr + k]! * rv * (1 - rv);
          const dzp = dhk * (h - n) * z * (1 - z);
          M[xo + k] = drp;
          M[xo + H + k] = dzp;
          M[xo + 2 * H + k] = dnp;
          M[go + k] = drp;
          M[go + H + k] = dzp;
          M[go + 2 * H + k] = dnp * rv;
          M[dh + r * H + k] = dhk * z;
        }
      }
    }
    if (s === 0) break;
    for (let d = 0; d < D; d++) m.matMul(dgh + d * SB * G + s * B * G, B, wts[d]!, tmp + d * B * H);
    M = m.heap();
    carryRealRows(M, mask!, s, B, T, D, H, tmp, dh, true);
  }
  for (let d = 0; d < D; d++) {
    const w = m.weights(dgh + d * SB * G, SB, G);
    m.matMul(hPrevT! + d * H * SB, H, w, dwh! + d * H * G);
  }
  M = m.heap();
  for (let d = 0; d < D; d++) {
    const acc = new Float64Array(G);
    for (let row = 0; row < SB; row++) {
      const o = dgh + (d * SB + row) * G;
      for (let j = 0; j < G; j++) acc[j] = acc[j]! + M[o + j]!;
    }
    for (let j = 0; j < G; j++) M[dbh! + d * G + j] = acc[j]!;
  }
  scatterSteps(M, dxs, dx!, B, T, D, G, DG);
};

// ---------------------------------------------------------------------------------------------------------
// Shared pieces

/** out [D, G, H] = the last two axes of w [D, H, G] swapped. */
function transposeInto(M: Float32Array, w: number, D: number, H: number, G: number, out: number): void {
  for (let d = 0; d < D; d++) {
    for (let k = 0; k < H; k++) {
      const src = w + (d * H + k) * G;
      const dst = out + d * G * H + k;
      for (let j = 0; j < G; j++) M[dst + j * H] = M[src + j]!;
    }
  }
}

/**
 * After step s's product `tmp` = dgates · Wh^T: the gradient of the state before step s. Real rows take the
 * product (plus what `dh` already holds when `add`), PAD rows keep `dh` (the state was carried).
 */
function carryRealRows(
  M: Float32Array,
  mask: number,
  s: number,
  B: number,
  T: number,
  D: number,
  H: number,
  tmp: number,
  dh: number,
  add: boolean,
): void {
  for (let d = 0; d < D; d++) {
    const t = d === 0 ? s : T - 1 - s;
    for (let b = 0; b < B; b++) {
      if (M[mask + b * T + t] === 0) continue;
      const o = (d * B + b) * H;
      if (add) for (let k = 0; k < H; k++) M[dh + o + k] = M[dh + o + k]! + M[tmp + o + k]!;
      else M.copyWithin(dh + o, tmp + o, tmp + o + H);
    }
  }
}

/** dx [B, T, D*G] (time order) from per-direction gradients [D, T*B, G] in step order. */
function scatterSteps(
  M: Float32Array,
  steps: number,
  dx: number,
  B: number,
  T: number,
  D: number,
  G: number,
  DG: number,
): void {
  for (let d = 0; d < D; d++) {
    for (let s = 0; s < T; s++) {
      const t = d === 0 ? s : T - 1 - s;
      for (let b = 0; b < B; b++) {
        const src = steps + (d * T * B + s * B + b) * G;
        M.copyWithin(dx + (b * T + t) * DG + d * G, src, src + G);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Machines

/** The stock wasm kernels the wasm machine runs on (captured before any override). */
export interface RnnStock {
  batchMatMul: AnyKernelFunc;
  sigmoid: AnyKernelFunc;
}

/** A tensor over `shape` floats of the heap at float offset `off` (no copy); release with `dropView`. */
function heapView(backend: BackendWasm, off: number, shape: number[]): TensorInfo {
  return backend.makeOutput(shape, 'float32', off * 4);
}

function dropView(backend: BackendWasm, t: TensorInfo): void {
  const data = backend.dataIdMap.get(t.dataId);
  backend.dataIdMap.delete(t.dataId);
  // Unregisters the id in C++ (dropping any XNNPACK operator cached on it) without freeing the memory.
  (backend.wasm as unknown as { tfjs: { disposeData(id: number): void } }).tfjs.disposeData(data.id);
}

const offsetOf = (backend: BackendWasm, t: TensorInfo): number => backend.dataIdMap.get(t.dataId).memoryOffset / 4;

function runOnWasm(
  stock: RnnStock,
  body: Body,
  backend: BackendWasm,
  dims: Dims,
  ins: TensorInfo[],
  outShapes: number[][],
): TensorInfo[] {
  const temps: TensorInfo[] = [];
  const views: TensorInfo[] = [];
  const weights: { info: TensorInfo; n: number }[] = [];
  // The module's HEAPU8 is replaced whenever the heap grows; rebuild the float view only then.
  const module = backend.wasm as unknown as { HEAPU8: Uint8Array };
  let view = new Float32Array(module.HEAPU8.buffer);
  const heap = (): Float32Array => {
    if (view.buffer !== module.HEAPU8.buffer) view = new Float32Array(module.HEAPU8.buffer);
    return view;
  };
  const fresh = (shape: number[]): TensorInfo => {
    const t = backend.makeOutput(shape, 'float32');
    const off = offsetOf(backend, t);
    heap().fill(0, off, off + tf.util.sizeFromShape(shape));
    return t;
  };
  const plain = { transposeA: false, transposeB: false };
  const machine: Machine = {
    heap,
    alloc(size) {
      const t = fresh([size]);
      temps.push(t);
      return offsetOf(backend, t);
    },
    weights(off, k, n) {
      const info = heapView(backend, off, [1, k, n]);
      views.push(info);
      weights.push({ info, n });
      return weights.length - 1;
    },
    matMul(a, rows, w, out) {
      const { info, n } = weights[w]!;
      const av = heapView(backend, a, [1, rows, info.shape[1]!]);
      try {
        const r = stock.batchMatMul({ inputs: { a: av, b: info }, backend, attrs: plain }) as TensorInfo;
        const ro = offsetOf(backend, r);
        heap().copyWithin(out, ro, ro + rows * n);
        backend.disposeData(r.dataId);
      } finally {
        dropView(backend, av);
      }
    },
    sigmoid(off, len) {
      const xv = heapView(backend, off, [len]);
      try {
        const r = stock.sigmoid({ inputs: { x: xv }, backend }) as TensorInfo;
        const ro = offsetOf(backend, r);
        heap().copyWithin(off, ro, ro + len);
        backend.disposeData(r.dataId);
      } finally {
        dropView(backend, xv);
      }
    },
  };
  const outs: TensorInfo[] = [];
  try {
    for (const shape of outShapes) outs.push(fresh(shape));
    body(
      machine,
      dims,
      ins.map((t) => offsetOf(backend, t)),
      outs.map((t) => offsetOf(backend, t)),
    );
    return outs;
  } catch (e) {
    for (const t of outs) backend.disposeData(t.dataId);
    throw e;
  } finally {
    for (const t of views) dropView(backend, t);
    for (const t of temps) backend.disposeData(t.dataId);
  }
}

function runOnCpu(backend: CpuBackend, body: Body, dims: Dims, ins: TensorInfo[], outShapes: number[][]): TensorInfo[] {
  let mem = new Float32Array(1 << 16);
  let used = 0;
  const weights: { off: number; k: number; n: number }[] = [];
  const machine: Machine = {
    heap: () => mem,
    alloc(size) {
      if (used + size > mem.length) {
        const grown = new Float32Array(Math.max(2 * mem.length, used + size));
        grown.set(mem.subarray(0, used));
        mem = grown;
      }
      const off = used;
      used += size;
      return off;
    },
    weights(off, k, n) {
      weights.push({ off, k, n });
      return weights.length - 1;
    },
    matMul(a, rows, w, out) {
      const { off, k, n } = weights[w]!;
      const acc = new Float64Array(n);
      for (let i = 0; i < rows; i++) {
        acc.fill(0);
        for (let p = 0; p < k; p++) {
          const v = mem[a + i * k + p]!;
          if (v === 0) continue;
          const wr = off + p * n;
          for (let j = 0; j < n; j++) acc[j] = acc[j]! + v * mem[wr + j]!;
        }
        for (let j = 0; j < n; j++) mem[out + i * n + j] = acc[j]!;
      }
    },
    sigmoid(off, len) {
      for (let i = off; i < off + len; i++) mem[i] = 1 / (1 + Math.exp(-mem[i]!));
    },
  };
  const inOffs = ins.map((t) => {
    const off = machine.alloc(tf.util.sizeFromShape(t.shape));
    mem.set(backend.data.get(t.dataId).values as Float32Array, off);
    return off;
  });
  const outOffs = outShapes.map((shape) => machine.alloc(tf.util.sizeFromShape(shape)));
  body(machine, dims, inOffs, outOffs);
  return outShapes.map((shape, i) =>
    backend.makeTensorInfo(shape, 'float32', mem.slice(outOffs[i]!, outOffs[i]! + tf.util.sizeFromShape(shape))),
  );
}

// ---------------------------------------------------------------------------------------------------------
// Kernels

type Run = (backend: unknown, dims: Dims, ins: TensorInfo[], outShapes: number[][]) => TensorInfo[];

function dimsOf(wh: TensorInfo, mask: TensorInfo): Dims {
  return { D: wh.shape[0]!, H: wh.shape[1]!, B: mask.shape[0]!, T: mask.shape[1]! };
}

function kernel(name: string, inputNames: string[], outShapes: (d: Dims) => number[][], run: Run): AnyKernelFunc {
  return ({ inputs, backend }) => {
    const ins = inputNames.map((n) => input(inputs, n, name));
    const dims = dimsOf(input(inputs, 'wh', name), input(inputs, 'mask', name));
    return run(backend, dims, ins, outShapes(dims));
  };
}

const LSTM_IN = ['x', 'wh', 'mask'];
const LSTM_GRAD_IN = ['dy', 'acts', 'cells', 'tanhCells', 'hPrevT', 'wh', 'mask'];
const GRU_IN = ['x', 'wh', 'bh', 'mask'];
const GRU_GRAD_IN = ['dy', 'rz', 'n', 'ghn', 'hPrevT', 'wh', 'mask'];

const lstmOut = ({ B, T, D, H }: Dims): number[][] => [
  [D, B, H],
  [T, D, B, 4 * H],
  [T, D, B, H],
  [T, D, B, H],
  [D, H, T * B],
];
const lstmGradOut = ({ B, T, D, H }: Dims): number[][] => [
  [B, T, D * 4 * H],
  [D, H, 4 * H],
];
const gruOut = ({ B, T, D, H }: Dims): number[][] => [
  [D, B, H],
  [T, D, B, 2 * H],
  [T, D, B, H],
  [T, D, B, H],
  [D, H, T * B],
];
const gruGradOut = ({ B, T, D, H }: Dims): number[][] => [
  [B, T, D * 3 * H],
  [D, H, 3 * H],
  [D, 1, 3 * H],
];

export interface RnnKernel {
  kernel: string;
  backend: 'wasm' | 'cpu';
  kernelFunc: AnyKernelFunc;
  why: string;
}

/** The fused recurrence kernels for wasm (on the given stock kernels) and cpu. */
export function rnnKernels(stock: RnnStock): RnnKernel[] {
  const specs: [string, string[], (d: Dims) => number[][], Body, string][] = [
    [LSTM_SEQUENCE, LSTM_IN, lstmOut, lstmForward, 'fused LSTM recurrence over a whole batch (both directions)'],
    [LSTM_SEQUENCE_GRAD, LSTM_GRAD_IN, lstmGradOut, lstmBackward, 'its gradient: dx for every step, dWh'],
    [GRU_SEQUENCE, GRU_IN, gruOut, gruForward, 'fused GRU recurrence over a whole batch (both directions)'],
    [GRU_SEQUENCE_GRAD, GRU_GRAD_IN, gruGradOut, gruBackward, 'its gradient: dx for every step, dWh, dbh'],
  ];
  const out: RnnKernel[] = [];
  for (const [name, ins, outs, body, why] of specs) {
    const onWasm: Run = (backend, dims, tensors, shapes) =>
      runOnWasm(stock, body, backend as BackendWasm, dims, tensors, shapes);
    const onCpu: Run = (backend, dims, tensors, shapes) => runOnCpu(backend as CpuBackend, body, dims, tensors, shapes);
    out.push({ kernel: name, backend: 'wasm', kernelFunc: kernel(name, ins, outs, onWasm), why });
    out.push({ kernel: name, backend: 'cpu', kernelFunc: kernel(name, ins, outs, onCpu), why });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Ops

/** tfjs does not export the type of customGrad's argument. */
type CustomFn = Parameters<typeof tf.customGrad>[0];

/** Whether the fused recurrences run on the active backend (registered by `registerTrainingKernels`). */
export function fusedRnnAvailable(): boolean {
  return tf.getKernel(LSTM_SEQUENCE, tf.getBackend()) !== undefined;
}

function checkShapes(x: tf.Tensor, wh: tf.Tensor, mask: tf.Tensor, gates: number, bh?: tf.Tensor): void {
  const bad = (field: string, why: string): never => {
    throw new InvalidInputError(`${field}: ${why}`, { field });
  };
  if (wh.rank !== 3 || wh.shape[2] !== gates * wh.shape[1]! || wh.shape[0]! < 1 || wh.shape[0]! > 2) {
    bad('wh', `must be [D (1 or 2), H, ${gates}H], got [${wh.shape.join(', ')}]`);
  }
  const [D, H] = wh.shape as [number, number, number];
  if (mask.rank !== 2) bad('mask', `must be [B, T], got [${mask.shape.join(', ')}]`);
  const [B, T] = mask.shape as [number, number];
  if (x.rank !== 3 || x.shape[0] !== B || x.shape[1] !== T || x.shape[2] !== D * gates * H) {
    bad('x', `must be [${B}, ${T}, ${D * gates * H}] (B, T, D*${gates}H), got [${x.shape.join(', ')}]`);
  }
  if (bh !== undefined && (bh.size !== D * gates * H || bh.shape[0] !== D)) {
    bad('bh', `must be [${D}, 1, ${gates * H}], got [${bh.shape.join(', ')}]`);
  }
  for (const [field, t] of [
    ['x', x],
    ['wh', wh],
    ['mask', mask],
    ['bh', bh],
  ] as const) {
    if (t !== undefined && t.dtype !== 'float32') bad(field, `must be float32, got ${t.dtype}`);
  }
}

const run = (name: string, inputs: tf.NamedTensorMap): tf.Tensor[] =>
  tf.engine().runKernel(name, inputs, {}) as tf.Tensor[];

/**
 * LSTM over a padded batch, both directions at once: x [B, T, D*4H] (input projections, bias included),
 * wh [D, H, 4H], mask [B, T] (1 real, 0 PAD) -> final h [D, B, H]. Differentiable in x and wh. Needs
 * `fusedRnnAvailable()`.
 */
export function lstmSequence(x: tf.Tensor, wh: tf.Tensor, mask: tf.Tensor): tf.Tensor {
  checkShapes(x, wh, mask, 4);
  const f = tf.customGrad(((xs: tf.Tensor, w: tf.Tensor, save: tf.GradSaveFunc) => {
    const [h, acts, cells, tanhCells, hPrevT] = run(LSTM_SEQUENCE, { x: xs, wh: w, mask }) as [
      tf.Tensor,
      tf.Tensor,
      tf.Tensor,
      tf.Tensor,
      tf.Tensor,
    ];
    // The mask too: the forward's intermediates are disposed before the backward runs.
    save([acts, cells, tanhCells, hPrevT, w, mask]);
    return {
      value: h,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [a, c, tc, hp, ws, ms] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
        return run(LSTM_SEQUENCE_GRAD, { dy, acts: a, cells: c, tanhCells: tc, hPrevT: hp, wh: ws, mask: ms });
      },
    };
  }) as unknown as CustomFn) as (x: tf.Tensor, wh: tf.Tensor) => tf.Tensor;
  return f(x, wh);
}

/**
 * GRU over a padded batch, both directions at once: x [B, T, D*3H] (input projections with the input bias),
 * wh [D, H, 3H], bh [D, 1, 3H] (recurrent bias), mask [B, T] -> final h [D, B, H]. Differentiable in x, wh, bh.
 */
export function gruSequence(x: tf.Tensor, wh: tf.Tensor, bh: tf.Tensor, mask: tf.Tensor): tf.Tensor {
  checkShapes(x, wh, mask, 3, bh);
  const f = tf.customGrad(((xs: tf.Tensor, w: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
    const [h, rz, n, ghn, hPrevT] = run(GRU_SEQUENCE, { x: xs, wh: w, bh: b, mask }) as [
      tf.Tensor,
      tf.Tensor,
      tf.Tensor,
      tf.Tensor,
      tf.Tensor,
    ];
    save([rz, n, ghn, hPrevT, w, mask]);
    return {
      value: h,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [r, nn, g, hp, ws, ms] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
        const [dx, dwh, dbh] = run(GRU_SEQUENCE_GRAD, { dy, rz: r, n: nn, ghn: g, hPrevT: hp, wh: ws, mask: ms }) as [
          tf.Tensor,
          tf.Tensor,
          tf.Tensor,
        ];
        return [dx, dwh, tf.reshape(dbh, b.shape)];
      },
    };
  }) as unknown as CustomFn) as (x: tf.Tensor, wh: tf.Tensor, bh: tf.Tensor) => tf.Tensor;
  return f(x, wh, bh);
}
