/**
 * Fused LSTM and GRU recurrences for tfjs's wasm and cpu backends: one kernel runs a whole padded batch's
 * recurrence (every step, both directions), another its backward, so that a step costs one matMul per direction
 * and a few passes over the gate values, instead of ~25 tfjs ops per step forward (and their tape) and more backward.
 *
 * What the ops take and give (D directions, B examples, T steps, H units, G gates per direction: 4H or 3H):
 * - `x` [B, T, D*G]: the input projections x W of every position (no bias), batch-major as the embedding rows come
 *   (one big matMul under autograd), direction d in columns d*G .. (d+1)*G;
 * - `b` [D, 1, G]: the input bias (LSTM: both of PyTorch's biases folded into one); GRU also `bh` [D, 1, G], the
 *   recurrent bias; `wh` [D, H, G]: the recurrent kernels;
 * - `mask` [B, T]: 1 at real tokens, 0 at PAD. Where it is 0 the state is carried unchanged (exactly);
 * - out: the final state h [D, B, H]. Direction 0 reads time s at step s, direction 1 time T - 1 - s.
 * Gate order as stored by the zoo (PyTorch's): LSTM i, f, o, g (c' = f c + i g, h' = o tanh c'); GRU r, z, n
 * (n = tanh(x_n + b_n + r (h W_hn + b_hn)), h' = (1 - z) n + z h). The gradients: dx for every position (so the
 * input projection's weights get one matMul under autograd), and dWh with the bias gradients as one matMul per
 * direction over the stacked states h_{s-1} (plus a row of ones) and the gate gradients.
 *
 * The recurrences are written once against `Machine`: float32 working memory addressed by offsets, a matMul with
 * an optional bias, an in-place add and an in-place sigmoid. On wasm the memory is the wasm heap and the three
 * primitives are tfjs's own C functions (XNNPACK: the recurrent kernel is packed once per call; results are
 * written straight into the recurrence's buffers); tanh(x) comes from sigmoids (2 sigmoid(2x) - 1, or from
 * s = sigmoid(x) as (2s - 1) / (2s^2 - 2s + 1)). Heap rule: any Machine call may grow (and so replace) the heap,
 * so views are re-read after each. On cpu the memory is a growable Float32Array and the primitives plain loops
 * (tests; correct, not fast).
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { InvalidInputError } from '@ch8/errors';
import { type AnyKernelFunc, type CpuBackend, input } from './wasm-kernels.ts';

type TensorInfo = tf.TensorInfo;

export const LSTM_SEQUENCE = 'Ch8LstmSequence';
export const LSTM_SEQUENCE_GRAD = 'Ch8LstmSequenceGrad';
export const GRU_SEQUENCE = 'Ch8GruSequence';
export const GRU_SEQUENCE_GRAD = 'Ch8GruSequenceGrad';

/** Float32 working memory and the primitives the recurrences need. Offsets and sizes count floats. */
interface Machine {
  /** All memory as one view. Any later call below may replace it (wasm's heap grows): re-read after each. */
  heap(): Float32Array;
  /** A zero-filled buffer. */
  alloc(size: number): number;
  /**
   * The right operand [k, n] stored at `off`, with an optional bias [n] at `bias` added to every row of a product;
   * both fixed from now on (wasm packs them once). A handle for `matMul`.
   */
  weights(off: number, k: number, n: number, bias?: number): number;
  /** out [m, n] = a [m, k] · weights [k, n] (+ bias). */
  matMul(a: number, m: number, w: number, out: number): void;
  /** heap[a, a + len) += heap[b, b + len). */
  add(a: number, b: number, len: number): void;
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

/** The time step direction d reads at step s. */
const timeOf = (d: number, s: number, T: number): number => (d === 0 ? s : T - 1 - s);

// ---------------------------------------------------------------------------------------------------------
// LSTM

/**
 * Outputs: h [D, B, H]; saved for the gradient: acts [T, D, B, 4H] (i, f, o, g after activation, in step order),
 * cells [T, D, B, H] (c after step s, PAD-kept), tanhCells [T, D, B, H] (tanh of the step's candidate cell),
 * hPrev [D, H + 1, T*B] (column s*B + b: h before step s; the last row ones, for the bias gradient).
 */
const lstmForward: Body = (m, { B, T, D, H }, [x, wh, bias, mask], [hOut, acts, cells, tanhCells, hPrev]) => {
  const G = 4 * H;
  const SB = T * B;
  const DBG = D * B * G;
  const DBH = D * B * H;
  const cc = m.alloc(DBH);
  const c2 = m.alloc(DBH);
  const tmp = m.alloc(B * G);
  let M = m.heap();
  stepRows(M, x!, acts!, B, T, D, G);
  for (let d = 0; d < D; d++) {
    // Step 0 starts from h = 0: its pre-activations are x + b.
    for (let b = 0; b < B; b++) {
      const ar = acts! + (d * B + b) * G;
      for (let j = 0; j < G; j++) M[ar + j] = M[ar + j]! + M[bias! + d * G + j]!;
    }
    M.fill(1, hPrev! + (d * (H + 1) + H) * SB, hPrev! + (d + 1) * (H + 1) * SB);
  }
  const ws: number[] = [];
  for (let d = 0; d < D; d++) ws.push(m.weights(wh! + d * H * G, H, G, bias! + d * G));
  for (let s = 0; s < T; s++) {
    const a = acts! + s * DBG;
    for (let d = 0; d < D && s > 0; d++) {
      m.matMul(hOut! + d * B * H, B, ws[d]!, tmp);
      m.add(a + d * B * G, tmp, B * G);
    }
    m.sigmoid(a, DBG);
    const tc = tanhCells! + s * DBH;
    M = m.heap();
    for (let r = 0; r < D * B; r++) {
      const ar = a + r * G;
      for (let k = 0; k < H; k++) {
        const sg = M[ar + 3 * H + k]!;
        const g = (2 * sg - 1) / (2 * sg * sg - 2 * sg + 1); // tanh(z) from s = sigmoid(z)
        M[ar + 3 * H + k] = g;
        const cv = M[ar + H + k]! * M[cc + r * H + k]! + M[ar + k]! * g;
        M[c2 + r * H + k] = cv;
        M[tc + r * H + k] = 2 * cv;
      }
    }
    m.sigmoid(tc, DBH);
    M = m.heap();
    const cs = cells! + s * DBH;
    for (let d = 0; d < D; d++) {
      const t = timeOf(d, s, T);
      const hp = hPrev! + d * (H + 1) * SB + s * B;
      for (let b = 0; b < B; b++) {
        const real = M[mask! + b * T + t] !== 0;
        const r = d * B + b;
        const ar = a + r * G + 2 * H;
        for (let k = 0; k < H; k++) {
          const i = r * H + k;
          const th = 2 * M[tc + i]! - 1;
          M[tc + i] = th;
          M[hp + k * SB + b] = M[hOut! + i]!;
          if (real) {
            M[hOut! + i] = M[ar + k]! * th;
            M[cc + i] = M[c2 + i]!;
          }
          M[cs + i] = M[cc + i]!;
        }
      }
    }
  }
};

/** Outputs: dx [B, T, D*4H], dwh [D, H, 4H], db [D, 1, 4H]. */
const lstmBackward: Body = (m, { B, T, D, H }, [dy, acts, cells, tanhCells, hPrev, wh, mask], [dx, dwh, db]) => {
  const G = 4 * H;
  const SB = T * B;
  const DBH = D * B * H;
  const whT = m.alloc(D * G * H);
  const dz = m.alloc(D * SB * G); // per direction [T*B, G], rows in step order
  const dh = m.alloc(DBH);
  const dc = m.alloc(DBH);
  const tmp = m.alloc(DBH);
  const wb = m.alloc((H + 1) * G);
  let M = m.heap();
  transposeInto(M, wh!, D, H, G, whT);
  M.copyWithin(dh, dy!, dy! + DBH);
  const wts: number[] = [];
  for (let d = 0; d < D; d++) wts.push(m.weights(whT + d * G * H, G, H));
  for (let s = T - 1; s >= 0; s--) {
    M = m.heap();
    for (let d = 0; d < D; d++) {
      const t = timeOf(d, s, T);
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
  weightGradients(m, D, H, G, SB, hPrev!, dz, wb, dwh!, db!);
  stepsToRows(m.heap(), dz, dx!, B, T, D, G);
};

// ---------------------------------------------------------------------------------------------------------
// GRU

/**
 * Outputs: h [D, B, H]; saved: rz [T, D, B, 2H] (r, z after sigmoid), n [T, D, B, H], ghn [T, D, B, H]
 * (h W_hn + b_hn), hPrev [D, H + 1, T*B] (as for the LSTM).
 */
const gruForward: Body = (m, { B, T, D, H }, [x, wh, bi, bh, mask], [hOut, rz, nOut, ghn, hPrev]) => {
  const G = 3 * H;
  const DG = D * G;
  const SB = T * B;
  const ws: number[] = [];
  for (let d = 0; d < D; d++) ws.push(m.weights(wh! + d * H * G, H, G, bh! + d * G));
  const gh = m.alloc(D * B * G);
  let M = m.heap();
  for (let d = 0; d < D; d++) {
    // Step 0 starts from h = 0: h W_h + b_h = b_h.
    for (let b = 0; b < B; b++) M.copyWithin(gh + (d * B + b) * G, bh! + d * G, bh! + (d + 1) * G);
    M.fill(1, hPrev! + (d * (H + 1) + H) * SB, hPrev! + (d + 1) * (H + 1) * SB);
  }
  for (let s = 0; s < T; s++) {
    for (let d = 0; d < D && s > 0; d++) m.matMul(hOut! + d * B * H, B, ws[d]!, gh + d * B * G);
    const rzs = rz! + s * D * B * 2 * H;
    const ns = nOut! + s * D * B * H;
    const gs = ghn! + s * D * B * H;
    M = m.heap();
    for (let d = 0; d < D; d++) {
      const t = timeOf(d, s, T);
      const br = bi! + d * G;
      for (let b = 0; b < B; b++) {
        const r = d * B + b;
        const xr = x! + (b * T + t) * DG + d * G;
        const gr = gh + r * G;
        const zr = rzs + r * 2 * H;
        for (let j = 0; j < 2 * H; j++) M[zr + j] = M[xr + j]! + M[br + j]! + M[gr + j]!;
        M.copyWithin(gs + r * H, gr + 2 * H, gr + G);
      }
    }
    m.sigmoid(rzs, D * B * 2 * H);
    M = m.heap();
    for (let d = 0; d < D; d++) {
      const t = timeOf(d, s, T);
      const br = bi! + d * G + 2 * H;
      for (let b = 0; b < B; b++) {
        const r = d * B + b;
        const xr = x! + (b * T + t) * DG + d * G + 2 * H;
        const zr = rzs + r * 2 * H;
        for (let k = 0; k < H; k++) {
          M[ns + r * H + k] = 2 * (M[xr + k]! + M[br + k]! + M[zr + k]! * M[gs + r * H + k]!);
        }
      }
    }
    m.sigmoid(ns, D * B * H);
    M = m.heap();
    for (let d = 0; d < D; d++) {
      const t = timeOf(d, s, T);
      const hp = hPrev! + d * (H + 1) * SB + s * B;
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
  }
};

/** Outputs: dx [B, T, D*3H], dwh [D, H, 3H], dbi [D, 1, 3H], dbh [D, 1, 3H]. */
const gruBackward: Body = (m, { B, T, D, H }, [dy, rz, nIn, ghn, hPrev, wh, mask], [dx, dwh, dbi, dbh]) => {
  const G = 3 * H;
  const DG = D * G;
  const SB = T * B;
  const DBH = D * B * H;
  const whT = m.alloc(D * G * H);
  const dgh = m.alloc(D * SB * G); // per direction [T*B, G] in step order: gradients of h W_h + b_h
  const dh = m.alloc(DBH);
  const tmp = m.alloc(DBH);
  const wb = m.alloc((H + 1) * G);
  const dbn = new Float64Array(D * H); // the n part of dbi (r and z parts equal dbh's)
  let M = m.heap();
  transposeInto(M, wh!, D, H, G, whT);
  M.copyWithin(dh, dy!, dy! + DBH);
  const wts: number[] = [];
  for (let d = 0; d < D; d++) wts.push(m.weights(whT + d * G * H, G, H));
  for (let s = T - 1; s >= 0; s--) {
    M = m.heap();
    for (let d = 0; d < D; d++) {
      const t = timeOf(d, s, T);
      const hp = hPrev! + d * (H + 1) * SB + s * B;
      for (let b = 0; b < B; b++) {
        if (M[mask! + b * T + t] === 0) continue;
        const r = d * B + b;
        const zr = rz! + (s * D * B + r) * 2 * H;
        const nr = nIn! + (s * D * B + r) * H;
        const gr = ghn! + (s * D * B + r) * H;
        const xo = dx! + (b * T + t) * DG + d * G;
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
          dbn[d * H + k] = dbn[d * H + k]! + dnp;
        }
      }
    }
    if (s === 0) break;
    for (let d = 0; d < D; d++) m.matMul(dgh + d * SB * G + s * B * G, B, wts[d]!, tmp + d * B * H);
    M = m.heap();
    carryRealRows(M, mask!, s, B, T, D, H, tmp, dh, true);
  }
  weightGradients(m, D, H, G, SB, hPrev!, dgh, wb, dwh!, dbh!);
  M = m.heap();
  for (let d = 0; d < D; d++) {
    M.copyWithin(dbi! + d * G, dbh! + d * G, dbh! + d * G + 2 * H);
    for (let k = 0; k < H; k++) M[dbi! + d * G + 2 * H + k] = dbn[d * H + k]!;
  }
};

// ---------------------------------------------------------------------------------------------------------
// Shared pieces

/** out [T, D, B, G] in step order (direction d's step s reads time timeOf(d, s)) from x [B, T, D*G]. */
function stepRows(M: Float32Array, x: number, out: number, B: number, T: number, D: number, G: number): void {
  for (let s = 0; s < T; s++) {
    for (let d = 0; d < D; d++) {
      const t = timeOf(d, s, T);
      for (let b = 0; b < B; b++) {
        const src = x + (b * T + t) * D * G + d * G;
        M.copyWithin(out + ((s * D + d) * B + b) * G, src, src + G);
      }
    }
  }
}

/** dx [B, T, D*G] (time order) from per-direction gradients [D, T*B, G] in step order. */
function stepsToRows(M: Float32Array, steps: number, dx: number, B: number, T: number, D: number, G: number): void {
  for (let d = 0; d < D; d++) {
    for (let s = 0; s < T; s++) {
      const t = timeOf(d, s, T);
      for (let b = 0; b < B; b++) {
        const src = steps + (d * T * B + s * B + b) * G;
        M.copyWithin(dx + (b * T + t) * D * G + d * G, src, src + G);
      }
    }
  }
}

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
    const t = timeOf(d, s, T);
    for (let b = 0; b < B; b++) {
      if (M[mask + b * T + t] === 0) continue;
      const o = (d * B + b) * H;
      if (add) for (let k = 0; k < H; k++) M[dh + o + k] = M[dh + o + k]! + M[tmp + o + k]!;
      else M.copyWithin(dh + o, tmp + o, tmp + o + H);
    }
  }
}

/**
 * Per direction, [dWh; db] [H + 1, G] = [hPrev; ones] [H + 1, T*B] · dgates [T*B, G]: one product gives the
 * recurrent kernel's gradient and the bias's (the column sums of the gate gradients).
 */
function weightGradients(
  m: Machine,
  D: number,
  H: number,
  G: number,
  SB: number,
  hPrev: number,
  dgates: number,
  wb: number,
  dwh: number,
  db: number,
): void {
  for (let d = 0; d < D; d++) {
    const w = m.weights(dgates + d * SB * G, SB, G);
    m.matMul(hPrev + d * (H + 1) * SB, H + 1, w, wb);
    const M = m.heap();
    M.copyWithin(dwh + d * H * G, wb, wb + H * G);
    M.copyWithin(db + d * G, wb + H * G, wb + (H + 1) * G);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Machines

type CFunc = (...args: (number | Uint8Array)[]) => void;

/** tfjs-backend-wasm's C entry points used here (the ones its stock kernels call), bound once per module. */
interface WasmCalls {
  /** _FusedMatMul(a, aShape, aRank, b, bShape, bRank, transposeA, transposeB, activation, bias, prelu, alpha, out) */
  matMul: CFunc;
  /** Add(a, aShape, aRank, b, bShape, bRank, dtype, out) */
  add: CFunc;
  /** Sigmoid(x, out) */
  sigmoid: CFunc;
}

const callsByModule = new WeakMap<object, WasmCalls>();

function wasmCalls(backend: BackendWasm): WasmCalls {
  const module = backend.wasm as unknown as { cwrap(name: string, ret: null, args: string[]): CFunc };
  let calls = callsByModule.get(module);
  if (calls === undefined) {
    const n = 'number';
    const a = 'array';
    calls = {
      matMul: module.cwrap(tf._FusedMatMul, null, [n, a, n, n, a, n, n, n, n, n, n, n, n]),
      add: module.cwrap(tf.Add, null, [n, a, n, n, a, n, n, n]),
      sigmoid: module.cwrap(tf.Sigmoid, null, [n, n]),
    };
    callsByModule.set(module, calls);
  }
  return calls;
}

const shapeBytes = (shape: number[]): Uint8Array => new Uint8Array(new Int32Array(shape).buffer);

function runOnWasm(
  body: Body,
  backend: BackendWasm,
  dims: Dims,
  ins: TensorInfo[],
  outShapes: number[][],
): TensorInfo[] {
  const calls = wasmCalls(backend);
  const temps: TensorInfo[] = [];
  const ids: TensorInfo[] = [];
  const idAt = new Map<string, number>();
  const weights: { b: number; bias: number; k: number; n: number; shape: Uint8Array }[] = [];
  const module = backend.wasm as unknown as { HEAPU8: Uint8Array };
  let view = new Float32Array(module.HEAPU8.buffer);
  const heap = (): Float32Array => {
    if (view.buffer !== module.HEAPU8.buffer) view = new Float32Array(module.HEAPU8.buffer);
    return view;
  };
  const offsetOf = (t: TensorInfo): number => backend.dataIdMap.get(t.dataId).memoryOffset / 4;
  /** A tensor id over [off, off + size) of the heap (no copy), registered once per call. */
  const idOf = (off: number, size: number, shared = true): number => {
    const key = `${off}:${size}`;
    const known = shared ? idAt.get(key) : undefined;
    if (known !== undefined) return known;
    const t = backend.makeOutput([size], 'float32', off * 4);
    ids.push(t);
    const id = backend.dataIdMap.get(t.dataId).id;
    if (shared) idAt.set(key, id);
    return id;
  };
  const fresh = (shape: number[]): TensorInfo => {
    const t = backend.makeOutput(shape, 'float32');
    const off = offsetOf(t);
    heap().fill(0, off, off + tf.util.sizeFromShape(shape));
    return t;
  };
  const flat = new Map<number, Uint8Array>();
  const flatShape = (len: number): Uint8Array => {
    let s = flat.get(len);
    if (s === undefined) flat.set(len, (s = shapeBytes([len])));
    return s;
  };
  const machine: Machine = {
    heap,
    alloc(size) {
      const t = fresh([size]);
      temps.push(t);
      return offsetOf(t);
    },
    weights(off, k, n, bias) {
      // Own ids, never shared: XNNPACK caches the packed operand on the id of b (and of the bias).
      const b = idOf(off, k * n, false);
      weights.push({ b, bias: bias === undefined ? 0 : idOf(bias, n, false), k, n, shape: shapeBytes([1, k, n]) });
      return weights.length - 1;
    },
    matMul(a, rows, w, out) {
      const { b, bias, k, n, shape } = weights[w]!;
      const aShape = shapeBytes([1, rows, k]);
      calls.matMul(idOf(a, rows * k), aShape, 3, b, shape, 3, 0, 0, 0, bias, 0, 0, idOf(out, rows * n));
    },
    add(a, b, len) {
      const s = flatShape(len);
      const aId = idOf(a, len);
      calls.add(aId, s, 1, idOf(b, len), s, 1, 0, aId);
    },
    sigmoid(off, len) {
      const id = idOf(off, len);
      calls.sigmoid(id, id);
    },
  };
  const outs: TensorInfo[] = [];
  try {
    for (const shape of outShapes) outs.push(fresh(shape));
    body(
      machine,
      dims,
      ins.map((t) => offsetOf(t)),
      outs.map((t) => offsetOf(t)),
    );
    return outs;
  } catch (e) {
    for (const t of outs) backend.disposeData(t.dataId);
    throw e;
  } finally {
    for (const t of ids) {
      const data = backend.dataIdMap.get(t.dataId);
      backend.dataIdMap.delete(t.dataId);
      // Unregisters the id in C++ (dropping XNNPACK operators cached on it) without freeing the memory.
      (backend.wasm as unknown as { tfjs: { disposeData(id: number): void } }).tfjs.disposeData(data.id);
    }
    for (const t of temps) backend.disposeData(t.dataId);
  }
}

function runOnCpu(backend: CpuBackend, body: Body, dims: Dims, ins: TensorInfo[], outShapes: number[][]): TensorInfo[] {
  let mem = new Float32Array(1 << 16);
  let used = 0;
  const weights: { off: number; k: number; n: number; bias: number | undefined }[] = [];
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
    weights(off, k, n, bias) {
      weights.push({ off, k, n, bias });
      return weights.length - 1;
    },
    matMul(a, rows, w, out) {
      const { off, k, n, bias } = weights[w]!;
      const acc = new Float64Array(n);
      for (let i = 0; i < rows; i++) {
        if (bias === undefined) acc.fill(0);
        else for (let j = 0; j < n; j++) acc[j] = mem[bias + j]!;
        for (let p = 0; p < k; p++) {
          const v = mem[a + i * k + p]!;
          if (v === 0) continue;
          const wr = off + p * n;
          for (let j = 0; j < n; j++) acc[j] = acc[j]! + v * mem[wr + j]!;
        }
        for (let j = 0; j < n; j++) mem[out + i * n + j] = acc[j]!;
      }
    },
    add(a, b, len) {
      for (let i = 0; i < len; i++) mem[a + i] = mem[a + i]! + mem[b + i]!;
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

interface Spec {
  name: string;
  inputs: string[];
  outputs: (d: Dims) => number[][];
  body: Body;
  why: string;
}

const SPECS: Spec[] = [
  {
    name: LSTM_SEQUENCE,
    inputs: ['x', 'wh', 'b', 'mask'],
    outputs: ({ B, T, D, H }) => [
      [D, B, H],
      [T, D, B, 4 * H],
      [T, D, B, H],
      [T, D, B, H],
      [D, H + 1, T * B],
    ],
    body: lstmForward,
    why: 'fused LSTM recurrence over a whole batch, both directions (instead of ~25 ops per step)',
  },
  {
    name: LSTM_SEQUENCE_GRAD,
    inputs: ['dy', 'acts', 'cells', 'tanhCells', 'hPrev', 'wh', 'mask'],
    outputs: ({ B, T, D, H }) => [
      [B, T, D * 4 * H],
      [D, H, 4 * H],
      [D, 1, 4 * H],
    ],
    body: lstmBackward,
    why: "the fused LSTM's gradient: dx for every step, dWh and db as one product per direction",
  },
  {
    name: GRU_SEQUENCE,
    inputs: ['x', 'wh', 'b', 'bh', 'mask'],
    outputs: ({ B, T, D, H }) => [
      [D, B, H],
      [T, D, B, 2 * H],
      [T, D, B, H],
      [T, D, B, H],
      [D, H + 1, T * B],
    ],
    body: gruForward,
    why: 'fused GRU recurrence over a whole batch, both directions',
  },
  {
    name: GRU_SEQUENCE_GRAD,
    inputs: ['dy', 'rz', 'n', 'ghn', 'hPrev', 'wh', 'mask'],
    outputs: ({ B, T, D, H }) => [
      [B, T, D * 3 * H],
      [D, H, 3 * H],
      [D, 1, 3 * H],
      [D, 1, 3 * H],
    ],
    body: gruBackward,
    why: "the fused GRU's gradient: dx for every step, dWh and the biases' gradients",
  },
];

export interface RnnKernel {
  kernel: string;
  backend: 'wasm' | 'cpu';
  kernelFunc: AnyKernelFunc;
  why: string;
}

/** The fused recurrence kernels, for wasm and cpu (`registerTrainingKernels` registers them). */
export function rnnKernels(): RnnKernel[] {
  const out: RnnKernel[] = [];
  for (const { name, inputs: names, outputs, body, why } of SPECS) {
    const prepare = (inputs: tf.NamedTensorInfoMap) => {
      const ins = names.map((n) => input(inputs, n, name));
      const wh = input(inputs, 'wh', name);
      const mask = input(inputs, 'mask', name);
      const dims: Dims = { D: wh.shape[0]!, H: wh.shape[1]!, B: mask.shape[0]!, T: mask.shape[1]! };
      return { ins, dims, shapes: outputs(dims) };
    };
    const onWasm: AnyKernelFunc = ({ inputs, backend }) => {
      const { ins, dims, shapes } = prepare(inputs);
      return runOnWasm(body, backend as BackendWasm, dims, ins, shapes);
    };
    const onCpu: AnyKernelFunc = ({ inputs, backend }) => {
      const { ins, dims, shapes } = prepare(inputs);
      return runOnCpu(backend as CpuBackend, body, dims, ins, shapes);
    };
    out.push({ kernel: name, backend: 'wasm', kernelFunc: onWasm, why });
    out.push({ kernel: name, backend: 'cpu', kernelFunc: onCpu, why });
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

function checkShapes(gates: number, x: tf.Tensor, wh: tf.Tensor, mask: tf.Tensor, biases: [string, tf.Tensor][]): void {
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
  for (const [field, b] of biases) {
    if (b.rank !== 3 || b.shape[0] !== D || b.shape[1] !== 1 || b.shape[2] !== gates * H) {
      bad(field, `must be [${D}, 1, ${gates * H}], got [${b.shape.join(', ')}]`);
    }
  }
  for (const [field, t] of [['x', x], ['wh', wh], ['mask', mask], ...biases] as const) {
    if (t.dtype !== 'float32') bad(field, `must be float32, got ${t.dtype}`);
  }
}

const run = (name: string, inputs: tf.NamedTensorMap): tf.Tensor[] =>
  tf.engine().runKernel(name, inputs, {}) as tf.Tensor[];

/**
 * LSTM over a padded batch, both directions at once: x [B, T, D*4H] (input projections without bias),
 * wh [D, H, 4H], b [D, 1, 4H], mask [B, T] (1 real, 0 PAD) -> final h [D, B, H]. Differentiable in x, wh and b.
 * Runs where `fusedRnnAvailable()`.
 */
export function lstmSequence(x: tf.Tensor, wh: tf.Tensor, b: tf.Tensor, mask: tf.Tensor): tf.Tensor {
  checkShapes(4, x, wh, mask, [['b', b]]);
  const f = tf.customGrad(((xs: tf.Tensor, w: tf.Tensor, bs: tf.Tensor, save: tf.GradSaveFunc) => {
    const [h, ...kept] = run(LSTM_SEQUENCE, { x: xs, wh: w, b: bs, mask });
    // The mask too: the forward's other tensors are disposed before the backward runs.
    save([...kept, w, mask]);
    return {
      value: h!,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [acts, cells, tanhCells, hPrev, ws, ms] = saved as [
          tf.Tensor,
          tf.Tensor,
          tf.Tensor,
          tf.Tensor,
          tf.Tensor,
          tf.Tensor,
        ];
        return run(LSTM_SEQUENCE_GRAD, { dy, acts, cells, tanhCells, hPrev, wh: ws, mask: ms });
      },
    };
  }) as unknown as CustomFn) as (x: tf.Tensor, wh: tf.Tensor, b: tf.Tensor) => tf.Tensor;
  return f(x, wh, b);
}

/**
 * GRU over a padded batch, both directions at once: x [B, T, D*3H] (input projections without bias),
 * wh [D, H, 3H], b [D, 1, 3H] (input bias), bh [D, 1, 3H] (recurrent bias), mask [B, T] -> final h [D, B, H].
 * Differentiable in x, wh, b and bh.
 */
export function gruSequence(x: tf.Tensor, wh: tf.Tensor, b: tf.Tensor, bh: tf.Tensor, mask: tf.Tensor): tf.Tensor {
  checkShapes(3, x, wh, mask, [
    ['b', b],
    ['bh', bh],
  ]);
  const f = tf.customGrad(((xs: tf.Tensor, w: tf.Tensor, bs: tf.Tensor, bhs: tf.Tensor, save: tf.GradSaveFunc) => {
    const [h, ...kept] = run(GRU_SEQUENCE, { x: xs, wh: w, b: bs, bh: bhs, mask });
    save([...kept, w, mask]);
    return {
      value: h!,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [rz, n, ghn, hPrev, ws, ms] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
        return run(GRU_SEQUENCE_GRAD, { dy, rz, n, ghn, hPrev, wh: ws, mask: ms });
      },
    };
  }) as unknown as CustomFn) as (x: tf.Tensor, wh: tf.Tensor, b: tf.Tensor, bh: tf.Tensor) => tf.Tensor;
  return f(x, wh, b, bh);
}
