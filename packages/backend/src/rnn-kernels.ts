/**
 * Fused LSTM and GRU layers for tfjs's wasm and cpu backends: one kernel runs a whole padded batch (the input
 * projection, then every step of the recurrence, both directions), another its backward, so that a step costs one
 * matMul per direction and a few passes over the gate values, instead of ~25 tfjs ops per step forward (each taped)
 * and more backward.
 *
 * What the ops take and give (D directions, B examples, T steps, E token width, H units, G gates per direction:
 * 4H or 3H):
 * - `tokens` [B*T, E]: the token embeddings, rows by example then position (PAD rows are ignored);
 * - `w` [D, E, G], `b` [D, 1, G]: the input kernels and biases (LSTM: both of PyTorch's biases folded into one);
 *   `wh` [D, H, G]: the recurrent kernels; GRU also `bh` [D, 1, G], the recurrent bias;
 * - `mask` [B, T]: 1 at real tokens, 0 at PAD. Where it is 0 the state is carried unchanged (exactly);
 * - out: the final state h [D, B, H]. Direction 0 reads time s at step s, direction 1 time T - 1 - s.
 * Gate order as stored by the zoo (PyTorch's): LSTM i, f, o, g (c' = f c + i g, h' = o tanh c'); GRU r, z, n
 * (n = tanh(x W_n + b_n + r (h W_hn + b_hn)), h' = (1 - z) n + z h). The gradient runs the recurrence backward
 * once, then per direction gets the recurrent kernel's, the bias's and the input kernel's gradients from one
 * product [h_{s-1}; ones; tokens^T] · dgates over all steps, and the tokens' from dgates · W^T. Work goes with the
 * real tokens: each step computes and stores only the rows up to its last real example (collate orders a batch
 * longest first), so the PAD of a padded batch costs next to nothing.
 *
 * The layers are written once against `Machine`: float32 working memory addressed by offsets, a matMul with an
 * optional bias, an in-place add and an in-place sigmoid. On wasm the memory is the wasm heap and the primitives are
 * tfjs's own C functions (XNNPACK; each right operand is packed once per call and results are written straight into
 * the layer's buffers); tanh comes from sigmoids (2 sigmoid(2x) - 1, or from s = sigmoid(x) as
 * (2s - 1) / (2s^2 - 2s + 1)). Heap rule: any Machine call may grow (and so replace) the heap, so views are re-read
 * after each. On cpu the memory is a growable Float32Array and the primitives plain loops (correct, not fast).
 * Measured on SST-2 (batch 64, one wasm thread, pnpm bench:models): bilstm 1,068 -> 1,652 examples/s with
 * bucketing; 1.9x in an interleaved A/B against the op-by-op path, 6x without bucketing (74% PAD).
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { InvalidInputError } from '@ch8/errors';
import { type AnyKernelFunc, type CpuBackend, type CustomFn, input, runOp } from './wasm-kernels.ts';

type TensorInfo = tf.TensorInfo;

export const LSTM_SEQUENCE = 'Ch8LstmSequence';
export const LSTM_SEQUENCE_GRAD = 'Ch8LstmSequenceGrad';
export const GRU_SEQUENCE = 'Ch8GruSequence';
export const GRU_SEQUENCE_GRAD = 'Ch8GruSequenceGrad';

/** Float32 working memory and the primitives the recurrences need. Offsets and sizes count floats. */
interface Machine {
  /** All memory as one view. Any later call below may replace it (wasm's heap grows): re-read after each. */
  heap(): Float32Array;
  /** A buffer, zero-filled unless `zero` is false. */
  alloc(size: number, zero?: boolean): number;
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
  /** Width of the token rows (the embedding dimension). */
  E: number;
  /** Backward only: whether the tokens' gradient is wanted (zeros otherwise). */
  tokensGrad: boolean;
  /** Forward only: whether to keep what the gradient needs (the stacked operand); off for inference. */
  save: boolean;
  /** Per time t: 1 + the last real example (0: none); R: their sum, the rows each direction computes. */
  active: Int32Array;
  R: number;
}

/** A layer or its gradient: reads the inputs at `ins`, writes the outputs at `outs` (zero-filled where marked). */
type Body = (m: Machine, dims: Dims, ins: number[], outs: number[]) => void;

/** The time step direction d reads at step s. */
const timeOf = (d: number, s: number, T: number): number => (d === 0 ? s : T - 1 - s);

// ---------------------------------------------------------------------------------------------------------
// Rows: only the rows up to the last real one of each step are computed and stored

/**
 * Where direction d's step s lives in the compact per-direction buffers: rows `start` .. `start + n` (n = 1 + the
 * last real example at that step's time; the examples past it are PAD and carried without any work). Collated
 * batches are ordered longest first, so PAD rows past the last real one are most of a padded batch's PAD.
 */
interface StepRows {
  start: number;
  n: number;
}

function stepRows(d: number, T: number, active: Int32Array): StepRows[] {
  const out: StepRows[] = [];
  let start = 0;
  for (let s = 0; s < T; s++) {
    const n = active[timeOf(d, s, T)]!;
    out.push({ start, n });
    start += n;
  }
  return out;
}

/** 1 + the last real example at each time (0: none), and their sum R (every direction stores R rows). */
function activeRows(mask: ArrayLike<number>, B: number, T: number): { active: Int32Array; R: number } {
  const active = new Int32Array(T);
  let R = 0;
  for (let t = 0; t < T; t++) {
    let n = 0;
    for (let b = B - 1; b >= 0; b--) {
      if (mask[b * T + t] !== 0) {
        n = b + 1;
        break;
      }
    }
    active[t] = n;
    R += n;
  }
  return { active, R };
}

/**
 * Direction d's tokens in step order: `tokS` [R, E] (row start + b: the token example b reads at step s) and, when
 * the gradient is wanted, the stacked operand's ones row and tokens^T (`st` [H + 1 + E, R]).
 */
function stepTokens(
  M: Float32Array,
  tokens: number,
  E: number,
  T: number,
  d: number,
  steps: StepRows[],
  R: number,
  tokS: number,
  st: number,
  H: number,
): void {
  if (st >= 0) M.fill(1, st + H * R, st + (H + 1) * R);
  const tt = st >= 0 ? st + (H + 1) * R : -1;
  for (let s = 0; s < T; s++) {
    const t = timeOf(d, s, T);
    const { start, n } = steps[s]!;
    for (let b = 0; b < n; b++) {
      const src = tokens + (b * T + t) * E;
      const row = start + b;
      M.copyWithin(tokS + row * E, src, src + E);
      if (tt >= 0) for (let i = 0; i < E; i++) M[tt + i * R + row] = M[src + i]!;
    }
  }
}

/** A batch with no real token: the weights' gradients are zero. */
function zeroGradients(m: Machine, outs: number[], sizes: number[]): void {
  const M = m.heap();
  outs.forEach((o, i) => M.fill(0, o, o + sizes[i]!));
}

/** out [G, K] = in [K, G] transposed. */
function transposeInto(M: Float32Array, src: number, K: number, G: number, out: number): void {
  for (let k = 0; k < K; k++) {
    const r = src + k * G;
    for (let j = 0; j < G; j++) M[out + j * K + k] = M[r + j]!;
  }
}

/**
 * dTokens (zero-filled, rows by example then time) += dgates [R, G] · W_d^T for direction d: the input projection's
 * gradient. `wT` [G, E] holds W_d^T; `p` [R, E] is scratch.
 */
function tokenGradients(
  m: Machine,
  dgates: number,
  wT: number,
  p: number,
  dTokens: number,
  T: number,
  E: number,
  G: number,
  d: number,
  steps: StepRows[],
  R: number,
): void {
  m.matMul(dgates, R, m.weights(wT, G, E), p);
  const M = m.heap();
  for (let s = 0; s < T; s++) {
    const t = timeOf(d, s, T);
    const { start, n } = steps[s]!;
    for (let b = 0; b < n; b++) {
      const dst = dTokens + (b * T + t) * E;
      const src = p + (start + b) * E;
      for (let i = 0; i < E; i++) M[dst + i] = M[dst + i]! + M[src + i]!;
    }
  }
}

/**
 * After step s's product `tmp` [n, H] = dgates · Wh^T: the gradient of the state before step s. Real rows take the
 * product (plus what `dh` already holds when `add`), PAD rows keep `dh` (the state was carried).
 */
function carryRealRows(
  M: Float32Array,
  mask: number,
  t: number,
  n: number,
  T: number,
  H: number,
  tmp: number,
  dh: number,
  add: boolean,
): void {
  for (let b = 0; b < n; b++) {
    if (M[mask + b * T + t] === 0) continue;
    const o = b * H;
    if (add) for (let k = 0; k < H; k++) M[dh + o + k] = M[dh + o + k]! + M[tmp + o + k]!;
    else M.copyWithin(dh + o, tmp + o, tmp + o + H);
  }
}

// ---------------------------------------------------------------------------------------------------------
// LSTM

/**
 * Inputs: tokens [B*T, E], w [D, E, 4H], b [D, 1, 4H], wh [D, H, 4H], mask [B, T].
 * Outputs: h [D, B, H]; saved for the gradient, per direction in step order (R rows, see `StepRows`): acts
 * [D, R, 4H] (i, f, o, g after activation), cPrev [D, R, H] (the cell before the step), sig2c [D, R, H]
 * (sigmoid(2 c'), c' the step's candidate cell: tanh c' = 2 sig2c - 1), stack [D, H + 1 + E, R] (h before the
 * step, ones, tokens^T; empty when nothing is saved).
 */
const lstmForward: Body = (
  m,
  { B, T, D, H, E, R, active, save },
  [tokens, w, bias, wh, mask],
  [hOut, acts, cPrev, sig2c, stack],
) => {
  const G = 4 * H;
  const rows = H + 1 + E;
  if (R === 0) return; // every example is PAD everywhere: h stays zero
  const tokS = m.alloc(R * E, false);
  const tmp = m.alloc(B * G, false);
  const cc = m.alloc(B * H);
  const c2 = m.alloc(B * H, false);
  for (let d = 0; d < D; d++) {
    const steps = stepRows(d, T, active);
    const st = save ? stack! + d * rows * R : -1;
    stepTokens(m.heap(), tokens!, E, T, d, steps, R, tokS, st, H);
    const ad = acts! + d * R * G;
    const hd = hOut! + d * B * H;
    if (d > 0) m.heap().fill(0, cc, cc + B * H);
    // Pre-activations of every step at once: x W + b.
    m.matMul(tokS, R, m.weights(w! + d * E * G, E, G, bias! + d * G), ad);
    const wr = m.weights(wh! + d * H * G, H, G);
    for (let s = 0; s < T; s++) {
      const t = timeOf(d, s, T);
      const { start, n } = steps[s]!;
      if (n === 0) continue; // every example is PAD here: every state is carried
      const a = ad + start * G;
      if (s > 0) {
        m.matMul(hd, n, wr, tmp);
        m.add(a, tmp, n * G);
      }
      m.sigmoid(a, n * G);
      const cp = cPrev! + (d * R + start) * H;
      const tc = sig2c! + (d * R + start) * H;
      let M = m.heap();
      for (let b = 0; b < n; b++) {
        const ar = a + b * G;
        const o = b * H;
        M.copyWithin(cp + o, cc + o, cc + o + H);
        for (let k = 0; k < H; k++) {
          const sg = M[ar + 3 * H + k]!;
          const g = (2 * sg - 1) / (2 * sg * sg - 2 * sg + 1); // tanh(z) from s = sigmoid(z)
          M[ar + 3 * H + k] = g;
          const cv = M[ar + k]! * g + M[ar + H + k]! * M[cc + o + k]!;
          M[c2 + o + k] = cv;
          M[tc + o + k] = 2 * cv;
        }
      }
      m.sigmoid(tc, n * H);
      M = m.heap();
      const hp = st >= 0 ? st + start : -1;
      for (let b = 0; b < n; b++) {
        const o = b * H;
        if (hp >= 0) for (let k = 0; k < H; k++) M[hp + k * R + b] = M[hd + o + k]!;
        if (M[mask! + b * T + t] === 0) continue; // PAD: the state is carried
        const ar = a + b * G + 2 * H;
        for (let k = 0; k < H; k++) M[hd + o + k] = M[ar + k]! * (2 * M[tc + o + k]! - 1);
        M.copyWithin(cc + o, c2 + o, c2 + o + H);
      }
    }
  }
};

/** Outputs: dTokens [B*T, E] (zeros unless `tokensGrad`), dw [D, E, 4H], db [D, 1, 4H], dwh [D, H, 4H]. */
const lstmBackward: Body = (
  m,
  { B, T, D, H, E, R, active, tokensGrad },
  [dy, acts, cPrev, sig2c, stack, w, wh, mask],
  [dTokens, dw, db, dwh],
) => {
  const G = 4 * H;
  const rows = H + 1 + E;
  if (R === 0) return zeroGradients(m, [dw!, db!, dwh!], [D * E * G, D * G, D * H * G]);
  const whT = m.alloc(G * H, false);
  const wT = m.alloc(G * E, false);
  const dz = m.alloc(R * G); // [R, G] in step order; PAD rows stay zero
  const dh = m.alloc(B * H, false);
  const dc = m.alloc(B * H, false);
  const tmp = m.alloc(B * H, false);
  const grads = m.alloc(rows * G, false);
  const p = tokensGrad ? m.alloc(R * E, false) : -1;
  for (let d = 0; d < D; d++) {
    const steps = stepRows(d, T, active);
    const ad = acts! + d * R * G;
    let M = m.heap();
    if (d > 0) M.fill(0, dz, dz + R * G);
    transposeInto(M, wh! + d * H * G, H, G, whT);
    M.copyWithin(dh, dy! + d * B * H, dy! + (d + 1) * B * H);
    M.fill(0, dc, dc + B * H);
    const wr = m.weights(whT, G, H);
    for (let s = T - 1; s >= 0; s--) {
      const t = timeOf(d, s, T);
      const { start, n } = steps[s]!;
      M = m.heap();
      for (let b = 0; b < n; b++) {
        if (M[mask! + b * T + t] === 0) continue; // PAD: no gate gradient, dh and dc carried
        const r = start + b;
        const ar = ad + r * G;
        const tr = sig2c! + (d * R + r) * H;
        const cp = cPrev! + (d * R + r) * H;
        const zr = dz + r * G;
        const o = b * H;
        for (let k = 0; k < H; k++) {
          const i = M[ar + k]!;
          const f = M[ar + H + k]!;
          const og = M[ar + 2 * H + k]!;
          const g = M[ar + 3 * H + k]!;
          const th = 2 * M[tr + k]! - 1;
          const dhk = M[dh + o + k]!;
          const dct = M[dc + o + k]! + dhk * og * (1 - th * th);
          M[zr + k] = dct * g * i * (1 - i);
          M[zr + H + k] = dct * M[cp + k]! * f * (1 - f);
          M[zr + 2 * H + k] = dhk * th * og * (1 - og);
          M[zr + 3 * H + k] = dct * i * (1 - g * g);
          M[dc + o + k] = dct * f;
        }
      }
      if (s === 0 || n === 0) continue; // the initial state is a constant
      m.matMul(dz + start * G, n, wr, tmp);
      carryRealRows(m.heap(), mask!, t, n, T, H, tmp, dh, false);
    }
    // [dWh; db; dW] = [hPrev; ones; tokens^T] · dgates: the recurrent kernel's, the bias's and the input kernel's.
    m.matMul(stack! + d * rows * R, rows, m.weights(dz, R, G), grads);
    M = m.heap();
    M.copyWithin(dwh! + d * H * G, grads, grads + H * G);
    M.copyWithin(db! + d * G, grads + H * G, grads + (H + 1) * G);
    M.copyWithin(dw! + d * E * G, grads + (H + 1) * G, grads + rows * G);
    if (tokensGrad) {
      transposeInto(M, w! + d * E * G, E, G, wT);
      tokenGradients(m, dz, wT, p, dTokens!, T, E, G, d, steps, R);
    }
  }
};

// ---------------------------------------------------------------------------------------------------------
// GRU

/**
 * Inputs: tokens [B*T, E], w [D, E, 3H], b [D, 1, 3H], wh [D, H, 3H], bh [D, 1, 3H], mask [B, T].
 * Outputs: h [D, B, H]; saved, per direction in step order (R rows): rz [D, R, 2H] (r, z after sigmoid),
 * n [D, R, H], ghn [D, R, H] (h W_hn + b_hn), stack [D, H + 1 + E, R] (as for the LSTM).
 */
const gruForward: Body = (
  m,
  { B, T, D, H, E, R, active, save },
  [tokens, w, bi, wh, bh, mask],
  [hOut, rz, nOut, ghn, stack],
) => {
  const G = 3 * H;
  const rows = H + 1 + E;
  if (R === 0) return;
  const tokS = m.alloc(R * E, false);
  const xs = m.alloc(R * G, false);
  const gh = m.alloc(B * G, false);
  for (let d = 0; d < D; d++) {
    const steps = stepRows(d, T, active);
    const st = save ? stack! + d * rows * R : -1;
    stepTokens(m.heap(), tokens!, E, T, d, steps, R, tokS, st, H);
    const hd = hOut! + d * B * H;
    m.matMul(tokS, R, m.weights(w! + d * E * G, E, G, bi! + d * G), xs);
    const wr = m.weights(wh! + d * H * G, H, G, bh! + d * G);
    for (let s = 0; s < T; s++) {
      const t = timeOf(d, s, T);
      const { start, n } = steps[s]!;
      if (n === 0) continue;
      let M: Float32Array;
      if (s > 0) {
        m.matMul(hd, n, wr, gh);
        M = m.heap();
      } else {
        M = m.heap();
        for (let b = 0; b < n; b++) M.copyWithin(gh + b * G, bh! + d * G, bh! + (d + 1) * G); // h = 0: h W_h + b_h = b_h
      }
      const zs = rz! + (d * R + start) * 2 * H;
      const ns = nOut! + (d * R + start) * H;
      const gs = ghn! + (d * R + start) * H;
      for (let b = 0; b < n; b++) {
        const xr = xs + (start + b) * G;
        const gr = gh + b * G;
        const zr = zs + b * 2 * H;
        for (let j = 0; j < 2 * H; j++) M[zr + j] = M[xr + j]! + M[gr + j]!;
        M.copyWithin(gs + b * H, gr + 2 * H, gr + G);
      }
      m.sigmoid(zs, n * 2 * H);
      M = m.heap();
      for (let b = 0; b < n; b++) {
        const xr = xs + (start + b) * G + 2 * H;
        const zr = zs + b * 2 * H;
        for (let k = 0; k < H; k++) M[ns + b * H + k] = 2 * (M[xr + k]! + M[zr + k]! * M[gs + b * H + k]!);
      }
      m.sigmoid(ns, n * H);
      M = m.heap();
      const hp = st >= 0 ? st + start : -1;
      for (let b = 0; b < n; b++) {
        const real = M[mask! + b * T + t] !== 0;
        const zr = zs + b * 2 * H + H;
        for (let k = 0; k < H; k++) {
          const i = b * H + k;
          const nv = 2 * M[ns + i]! - 1;
          M[ns + i] = nv;
          const h = M[hd + i]!;
          if (hp >= 0) M[hp + k * R + b] = h;
          if (real) M[hd + i] = nv + M[zr + k]! * (h - nv);
        }
      }
    }
  }
};

/** Outputs: dTokens [B*T, E], dw [D, E, 3H], db [D, 1, 3H], dwh [D, H, 3H], dbh [D, 1, 3H]. */
const gruBackward: Body = (
  m,
  { B, T, D, H, E, R, active, tokensGrad },
  [dy, rz, nIn, ghn, stack, w, wh, mask],
  [dTokens, dw, db, dwh, dbh],
) => {
  const G = 3 * H;
  const rows = H + 1 + E;
  if (R === 0) return zeroGradients(m, [dw!, db!, dwh!, dbh!], [D * E * G, D * G, D * H * G, D * G]);
  const whT = m.alloc(G * H, false);
  const wT = m.alloc(G * E, false);
  const dxs = m.alloc(R * G); // [R, G] in step order: gradients of x W + b (PAD rows zero)
  const dgh = m.alloc(R * G); // the same for h W_h + b_h
  const dh = m.alloc(B * H, false);
  const tmp = m.alloc(B * H, false);
  const grads = m.alloc(rows * G, false);
  const p = tokensGrad ? m.alloc(R * E, false) : -1;
  for (let d = 0; d < D; d++) {
    const steps = stepRows(d, T, active);
    const st = stack! + d * rows * R;
    let M = m.heap();
    if (d > 0) {
      M.fill(0, dxs, dxs + R * G);
      M.fill(0, dgh, dgh + R * G);
    }
    transposeInto(M, wh! + d * H * G, H, G, whT);
    M.copyWithin(dh, dy! + d * B * H, dy! + (d + 1) * B * H);
    const wr = m.weights(whT, G, H);
    for (let s = T - 1; s >= 0; s--) {
      const t = timeOf(d, s, T);
      const { start, n } = steps[s]!;
      M = m.heap();
      for (let b = 0; b < n; b++) {
        if (M[mask! + b * T + t] === 0) continue;
        const r = start + b;
        const zr = rz! + (d * R + r) * 2 * H;
        const nr = nIn! + (d * R + r) * H;
        const gr = ghn! + (d * R + r) * H;
        const xo = dxs + r * G;
        const go = dgh + r * G;
        const o = b * H;
        for (let k = 0; k < H; k++) {
          const rv = M[zr + k]!;
          const z = M[zr + H + k]!;
          const nv = M[nr + k]!;
          const h = M[st + k * R + r]!;
          const dhk = M[dh + o + k]!;
          const dnp = dhk * (1 - z) * (1 - nv * nv);
          const drp = dnp * M[gr + k]! * rv * (1 - rv);
          const dzp = dhk * (h - nv) * z * (1 - z);
          M[xo + k] = drp;
          M[xo + H + k] = dzp;
          M[xo + 2 * H + k] = dnp;
          M[go + k] = drp;
          M[go + H + k] = dzp;
          M[go + 2 * H + k] = dnp * rv;
          M[dh + o + k] = dhk * z;
        }
      }
      if (s === 0 || n === 0) continue;
      m.matMul(dgh + start * G, n, wr, tmp);
      carryRealRows(m.heap(), mask!, t, n, T, H, tmp, dh, true);
    }
    // [dWh; dbh] = [hPrev; ones] · dgh and [db; dW] = [ones; tokens^T] · dxs (rows H .. H + E of the stack).
    m.matMul(st, H + 1, m.weights(dgh, R, G), grads);
    M = m.heap();
    M.copyWithin(dwh! + d * H * G, grads, grads + H * G);
    M.copyWithin(dbh! + d * G, grads + H * G, grads + (H + 1) * G);
    m.matMul(st + H * R, 1 + E, m.weights(dxs, R, G), grads);
    M = m.heap();
    M.copyWithin(db! + d * G, grads, grads + G);
    M.copyWithin(dw! + d * E * G, grads + G, grads + (1 + E) * G);
    if (tokensGrad) {
      transposeInto(M, w! + d * E * G, E, G, wT);
      tokenGradients(m, dxs, wT, p, dTokens!, T, E, G, d, steps, R);
    }
  }
};

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

/** An output's shape and whether the body relies on it starting at zero (otherwise it writes every element). */
interface Output {
  shape: number[];
  zero: boolean;
}

function runOnWasm(body: Body, backend: BackendWasm, dims: Dims, ins: TensorInfo[], outputs: Output[]): TensorInfo[] {
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
  const fresh = (shape: number[], zero = true): TensorInfo => {
    const t = backend.makeOutput(shape, 'float32');
    const off = offsetOf(t);
    if (zero) heap().fill(0, off, off + tf.util.sizeFromShape(shape));
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
    alloc(size, zero = true) {
      const t = fresh([size], zero);
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
    for (const { shape, zero } of outputs) outs.push(fresh(shape, zero));
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

function runOnCpu(backend: CpuBackend, body: Body, dims: Dims, ins: TensorInfo[], outputs: Output[]): TensorInfo[] {
  let mem = new Float32Array(1 << 16);
  let used = 0;
  const weights: { off: number; k: number; n: number; bias: number | undefined }[] = [];
  const machine: Machine = {
    heap: () => mem,
    alloc(size, zero = true) {
      if (used + size > mem.length) {
        const grown = new Float32Array(Math.max(2 * mem.length, used + size));
        grown.set(mem.subarray(0, used));
        mem = grown;
      }
      const off = used;
      used += size;
      if (!zero) mem.fill(Number.NaN, off, off + size); // what is not written must not be read
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
  const outOffs = outputs.map(({ shape, zero }) => machine.alloc(tf.util.sizeFromShape(shape), zero));
  body(machine, dims, inOffs, outOffs);
  return outputs.map(({ shape }, i) =>
    backend.makeTensorInfo(shape, 'float32', mem.slice(outOffs[i]!, outOffs[i]! + tf.util.sizeFromShape(shape))),
  );
}

// ---------------------------------------------------------------------------------------------------------
// Kernels

interface Spec {
  name: string;
  inputs: string[];
  outputs: (d: Dims) => Output[];
  body: Body;
  why: string;
}

const out = (shape: number[], zero = false): Output => ({ shape, zero });

const SPECS: Spec[] = [
  {
    name: LSTM_SEQUENCE,
    inputs: ['tokens', 'w', 'b', 'wh', 'mask'],
    outputs: ({ B, D, H, E, R, save }) => [
      out([D, B, H], true), // the state starts at zero
      out([D, R, 4 * H]),
      out([D, R, H]),
      out([D, R, H]),
      out(save ? [D, H + 1 + E, R] : [0]),
    ],
    body: lstmForward,
    why: 'fused LSTM over a whole batch, input projection included (instead of ~25 ops per step)',
  },
  {
    name: LSTM_SEQUENCE_GRAD,
    inputs: ['dy', 'acts', 'cPrev', 'sig2c', 'stack', 'w', 'wh', 'mask'],
    outputs: ({ B, T, D, H, E }) => [
      out([B * T, E], true), // rows of PAD tokens stay zero

      out([D, E, 4 * H]),
      out([D, 1, 4 * H]),
      out([D, H, 4 * H]),
    ],
    body: lstmBackward,
    why: "the fused LSTM's gradient: tokens, input kernel, bias and recurrent kernel (one product per direction)",
  },
  {
    name: GRU_SEQUENCE,
    inputs: ['tokens', 'w', 'b', 'wh', 'bh', 'mask'],
    outputs: ({ B, D, H, E, R, save }) => [
      out([D, B, H], true),
      out([D, R, 2 * H]),
      out([D, R, H]),
      out([D, R, H]),
      out(save ? [D, H + 1 + E, R] : [0]),
    ],
    body: gruForward,
    why: 'fused GRU over a whole batch, input projection included',
  },
  {
    name: GRU_SEQUENCE_GRAD,
    inputs: ['dy', 'rz', 'n', 'ghn', 'stack', 'w', 'wh', 'mask'],
    outputs: ({ B, T, D, H, E }) => [
      out([B * T, E], true),
      out([D, E, 3 * H]),
      out([D, 1, 3 * H]),
      out([D, H, 3 * H]),
      out([D, 1, 3 * H]),
    ],
    body: gruBackward,
    why: "the fused GRU's gradient: tokens, input kernel, both biases and recurrent kernel",
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
  const kernels: RnnKernel[] = [];
  for (const { name, inputs: names, outputs, body, why } of SPECS) {
    const prepare = (
      inputs: tf.NamedTensorInfoMap,
      attrs: tf.NamedAttrMap | undefined,
      maskValues: (t: TensorInfo) => ArrayLike<number>,
    ) => {
      const ins = names.map((n) => input(inputs, n, name));
      const w = input(inputs, 'w', name);
      const wh = input(inputs, 'wh', name);
      const mask = input(inputs, 'mask', name);
      const B = mask.shape[0]!;
      const T = mask.shape[1]!;
      const dims: Dims = {
        D: wh.shape[0]!,
        H: wh.shape[1]!,
        B,
        T,
        E: w.shape[1]!,
        tokensGrad: attrs?.['tokensGrad'] !== false,
        save: attrs?.['save'] !== false,
        ...activeRows(maskValues(mask), B, T),
      };
      return { ins, dims, shapes: outputs(dims) };
    };
    const onWasm: AnyKernelFunc = ({ inputs, backend, attrs }) => {
      const wasm = backend as BackendWasm;
      const { ins, dims, shapes } = prepare(inputs, attrs, (t) => wasm.typedArrayFromHeap(t));
      return runOnWasm(body, wasm, dims, ins, shapes);
    };
    const onCpu: AnyKernelFunc = ({ inputs, backend, attrs }) => {
      const cpu = backend as CpuBackend;
      const { ins, dims, shapes } = prepare(inputs, attrs, (t) => cpu.data.get(t.dataId).values as Float32Array);
      return runOnCpu(cpu, body, dims, ins, shapes);
    };
    kernels.push({ kernel: name, backend: 'wasm', kernelFunc: onWasm, why });
    kernels.push({ kernel: name, backend: 'cpu', kernelFunc: onCpu, why });
  }
  return kernels;
}

// ---------------------------------------------------------------------------------------------------------
// Ops

/** Whether the fused recurrences run on the active backend (registered by `registerTrainingKernels`). */
export function fusedRnnAvailable(): boolean {
  return tf.getKernel(LSTM_SEQUENCE, tf.getBackend()) !== undefined;
}

export interface SequenceOptions {
  /** Whether the tokens need a gradient (fine-tuned embeddings). Default true; false returns zeros for them. */
  tokensGrad?: boolean;
}

function checkShapes(
  gates: number,
  tokens: tf.Tensor,
  w: tf.Tensor,
  wh: tf.Tensor,
  mask: tf.Tensor,
  biases: [string, tf.Tensor][],
): void {
  const bad = (field: string, why: string): never => {
    throw new InvalidInputError(`${field}: ${why}`, { field });
  };
  if (wh.rank !== 3 || wh.shape[2] !== gates * wh.shape[1]! || wh.shape[0]! < 1 || wh.shape[0]! > 2) {
    bad('wh', `must be [D (1 or 2), H, ${gates}H], got [${wh.shape.join(', ')}]`);
  }
  const [D, H] = wh.shape as [number, number, number];
  if (mask.rank !== 2) bad('mask', `must be [B, T], got [${mask.shape.join(', ')}]`);
  const [B, T] = mask.shape as [number, number];
  if (tokens.rank !== 2 || tokens.shape[0] !== B * T) {
    bad('tokens', `must be [${B * T}, E] (B*T rows), got [${tokens.shape.join(', ')}]`);
  }
  const E = tokens.shape[1]!;
  if (w.rank !== 3 || w.shape[0] !== D || w.shape[1] !== E || w.shape[2] !== gates * H) {
    bad('w', `must be [${D}, ${E}, ${gates * H}], got [${w.shape.join(', ')}]`);
  }
  for (const [field, b] of biases) {
    if (b.rank !== 3 || b.shape[0] !== D || b.shape[1] !== 1 || b.shape[2] !== gates * H) {
      bad(field, `must be [${D}, 1, ${gates * H}], got [${b.shape.join(', ')}]`);
    }
  }
  for (const [field, t] of [['tokens', tokens], ['w', w], ['wh', wh], ['mask', mask], ...biases] as const) {
    if (t.dtype !== 'float32') bad(field, `must be float32, got ${t.dtype}`);
  }
}

/** Whether a gradient is being recorded (inside tf.grads, tf.variableGrads, ...): inference keeps nothing. */
const gradientsRecorded = (): boolean => tf.engine().state.gradientDepth > 0;

/**
 * LSTM over a padded batch, input projection included, both directions at once: tokens [B*T, E] (rows by example
 * then position), w [D, E, 4H], b [D, 1, 4H], wh [D, H, 4H], mask [B, T] (1 real, 0 PAD) -> final h [D, B, H].
 * Differentiable in tokens, w, b and wh. Runs where `fusedRnnAvailable()`.
 */
export function lstmSequence(
  tokens: tf.Tensor,
  w: tf.Tensor,
  b: tf.Tensor,
  wh: tf.Tensor,
  mask: tf.Tensor,
  options: SequenceOptions = {},
): tf.Tensor {
  checkShapes(4, tokens, w, wh, mask, [['b', b]]);
  const tokensGrad = options.tokensGrad !== false;
  const taping = gradientsRecorded();
  const f = tf.customGrad(((x: tf.Tensor, wx: tf.Tensor, bx: tf.Tensor, whx: tf.Tensor, save: tf.GradSaveFunc) => {
    const [h, ...kept] = runOp(LSTM_SEQUENCE, { tokens: x, w: wx, b: bx, wh: whx, mask }, { save: taping });
    // The mask and weights too: the forward's other tensors are disposed before the backward runs.
    save([...kept, wx, whx, mask]);
    return {
      value: h!,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [acts, cPrev, sig2c, stack, ws, whs, ms] = saved as tf.Tensor[];
        const [dTokens, dw, db, dwh] = runOp(
          LSTM_SEQUENCE_GRAD,
          { dy, acts: acts!, cPrev: cPrev!, sig2c: sig2c!, stack: stack!, w: ws!, wh: whs!, mask: ms! },
          { tokensGrad },
        );
        return [dTokens!, dw!, db!, dwh!];
      },
    };
  }) as unknown as CustomFn) as (...xs: tf.Tensor[]) => tf.Tensor;
  return f(tokens, w, b, wh);
}

/**
 * GRU over a padded batch, input projection included, both directions at once: tokens [B*T, E], w [D, E, 3H],
 * b [D, 1, 3H] (input bias), wh [D, H, 3H], bh [D, 1, 3H] (recurrent bias), mask [B, T] -> final h [D, B, H].
 * Differentiable in tokens, w, b, wh and bh.
 */
export function gruSequence(
  tokens: tf.Tensor,
  w: tf.Tensor,
  b: tf.Tensor,
  wh: tf.Tensor,
  bh: tf.Tensor,
  mask: tf.Tensor,
  options: SequenceOptions = {},
): tf.Tensor {
  checkShapes(3, tokens, w, wh, mask, [
    ['b', b],
    ['bh', bh],
  ]);
  const tokensGrad = options.tokensGrad !== false;
  const taping = gradientsRecorded();
  const f = tf.customGrad(((
    x: tf.Tensor,
    wx: tf.Tensor,
    bx: tf.Tensor,
    whx: tf.Tensor,
    bhx: tf.Tensor,
    save: tf.GradSaveFunc,
  ) => {
    const [h, ...kept] = runOp(GRU_SEQUENCE, { tokens: x, w: wx, b: bx, wh: whx, bh: bhx, mask }, { save: taping });
    save([...kept, wx, whx, mask]);
    return {
      value: h!,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [rz, n, ghn, stack, ws, whs, ms] = saved as tf.Tensor[];
        const [dTokens, dw, db, dwh, dbh] = runOp(
          GRU_SEQUENCE_GRAD,
          { dy, rz: rz!, n: n!, ghn: ghn!, stack: stack!, w: ws!, wh: whs!, mask: ms! },
          { tokensGrad },
        );
        return [dTokens!, dw!, db!, dwh!, dbh!];
      },
    };
  }) as unknown as CustomFn) as (...xs: tf.Tensor[]) => tf.Tensor;
  return f(tokens, w, b, wh, bh);
}
