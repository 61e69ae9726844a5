import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { isInvalidInput } from '@ch8/errors';
import { convMaxPool, fusedConvAvailable } from './conv-kernels.ts';
import { registerTrainingKernels } from './kernels.ts';
import { simdOn, simdSupported } from './simd.ts';
import { activateWasm } from './wasm.ts';

/** Deterministic values in [-1, 1) (a 32-bit LCG), so every run sees the same numbers. */
function values(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2 ** 31 - 1) * scale;
  }
  return out;
}

interface Case {
  B: number;
  Tp: number;
  d: number;
  k: number;
  F: number;
  valid: number[];
  x: Float32Array; // [B, Tp, d]
  w: Float32Array; // [k*d, F]
  b: Float32Array; // [F]
  dy: Float32Array; // [B, F]: the loss is sum(dy * out)
}

function makeCase(B: number, Tp: number, d: number, k: number, F: number, valid: number[], seed: number): Case {
  const b = values(F, seed + 3, 0.3);
  // The last filter's bias keeps every window negative: its feature is 0 and passes no gradient.
  b[F - 1] = -100;
  return {
    B,
    Tp,
    d,
    k,
    F,
    valid,
    x: values(B * Tp * d, seed + 1),
    w: values(k * d * F, seed + 2, 0.5),
    b,
    dy: values(B * F, seed + 4),
  };
}

/**
 * The op from its definition in float64, windows and filters one by one (no im2col, no pooling kernel):
 * out[b, f] = max over t < valid[b] of relu(b[f] + sum_{j, c} x[b, t + j, c] w[j d + c, f]); gradients by the chain
 * rule through the first window reaching the maximum (none where the maximum is 0).
 */
function reference(c: Case) {
  const { B, Tp, d, k, F } = c;
  const out = new Float64Array(B * F);
  const dx = new Float64Array(B * Tp * d);
  const dw = new Float64Array(k * d * F);
  const db = new Float64Array(F);
  for (let b = 0; b < B; b++) {
    for (let f = 0; f < F; f++) {
      let best = 0;
      let at = -1;
      for (let t = 0; t < c.valid[b]!; t++) {
        let z = c.b[f]!;
        for (let j = 0; j < k; j++)
          for (let ch = 0; ch < d; ch++) z += c.x[(b * Tp + t + j) * d + ch]! * c.w[(j * d + ch) * F + f]!;
        if (z > best) {
          best = z;
          at = t;
        }
      }
      out[b * F + f] = best;
      if (at < 0) continue;
      const g = c.dy[b * F + f]!;
      db[f]! += g;
      for (let j = 0; j < k; j++) {
        for (let ch = 0; ch < d; ch++) {
          dw[(j * d + ch) * F + f]! += g * c.x[(b * Tp + at + j) * d + ch]!;
          dx[(b * Tp + at + j) * d + ch]! += g * c.w[(j * d + ch) * F + f]!;
        }
      }
    }
  }
  return { out, dx, dw, db };
}

function close(got: ArrayLike<number>, want: ArrayLike<number>, what: string, tol = 1e-4): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    const diff = Math.abs(got[i]! - want[i]!);
    assert.ok(diff <= tol * (1 + Math.abs(want[i]!)), `${what}[${i}]: ${got[i]} vs ${want[i]}`);
  }
}

function runOp(c: Case, inputGrad = true) {
  return tf.tidy(() => {
    const x = tf.tensor3d(c.x, [c.B, c.Tp, c.d]);
    const w = tf.tensor2d(c.w, [c.k * c.d, c.F]);
    const b = tf.tensor1d(c.b);
    const dy = tf.tensor2d(c.dy, [c.B, c.F]);
    const f = (xs: tf.Tensor, ws: tf.Tensor, bs: tf.Tensor) =>
      tf.sum(tf.mul(convMaxPool(xs, ws, bs, c.k, c.valid, { inputGrad }), dy));
    const out = convMaxPool(x, w, b, c.k, c.valid, { inputGrad }).dataSync();
    const [dx, dw, db] = tf
      .grads(f)([x, w, b])
      .map((g) => g.dataSync());
    return { out: Float32Array.from(out), dx: dx!, dw: dw!, db: db! };
  });
}

const CASES: [string, Case][] = [
  // d = 8: windows of k * d floats, a multiple of 4 (the SIMD path on wasm); some examples shorter than the batch.
  ['SIMD widths, mixed valid counts', makeCase(5, 9, 8, 3, 12, [7, 7, 2, 1, 5], 11)],
  // d = 6, k = 3: 18 floats per window (the plain-loop path on wasm).
  ['odd window width', makeCase(4, 6, 6, 3, 5, [4, 1, 3, 2], 21)],
  // One window per example (Tp = k).
  ['one window', makeCase(3, 4, 4, 4, 8, [1, 1, 1], 31)],
];

for (const backend of ['wasm', 'cpu'] as const) {
  describe(`convMaxPool on ${backend}`, () => {
    before(async () => {
      registerTrainingKernels();
      if (backend === 'wasm') await activateWasm();
      else await tf.setBackend('cpu');
      assert.equal(tf.getBackend(), backend);
      assert.ok(fusedConvAvailable());
    });

    for (const [what, c] of CASES) {
      test(`${what}: values and gradients equal a float64 reference`, () => {
        const ref = reference(c);
        const before = tf.memory().numTensors;
        const got = runOp(c);
        assert.equal(tf.memory().numTensors, before, 'no tensors left behind');
        close(got.out, ref.out, 'out');
        close(got.dx, ref.dx, 'dx');
        close(got.dw, ref.dw, 'dw');
        close(got.db, ref.db, 'db');
        // The filter whose windows are all negative: feature 0, no gradient.
        for (let b = 0; b < c.B; b++) assert.equal(got.out[b * c.F + c.F - 1], 0);
        for (let r = 0; r < c.k * c.d; r++) assert.equal(got.dw[r * c.F + c.F - 1], 0);
      });
    }

    test('inputGrad false: zeros for x, the same weight gradients', () => {
      const c = CASES[0]![1];
      const ref = reference(c);
      const got = runOp(c, false);
      assert.ok(got.dx.every((v) => v === 0));
      close(got.dw, ref.dw, 'dw');
      close(got.db, ref.db, 'db');
    });

    test('bad shapes and counts are InvalidInputError naming the field', () => {
      const x = tf.zeros([2, 5, 4]);
      const w = tf.zeros([12, 3]);
      const b = tf.zeros([3]);
      try {
        const cases: [() => unknown, string][] = [
          [() => convMaxPool(tf.zeros([2, 5]), w, b, 3, [1, 1]), 'x'],
          [() => convMaxPool(x, tf.zeros([10, 3]), b, 3, [1, 1]), 'w'],
          [() => convMaxPool(x, w, tf.zeros([4]), 3, [1, 1]), 'b'],
          [() => convMaxPool(x, w, b, 6, [1, 1]), 'width'],
          [() => convMaxPool(x, w, b, 3, [1]), 'valid'],
          [() => convMaxPool(x, w, b, 3, [1, 4]), 'valid'], // Tp - k + 1 = 3 windows
          [() => convMaxPool(x, w, b, 3, [0, 1]), 'valid'],
          [() => convMaxPool(x, tf.zeros([12, 3], 'int32'), b, 3, [1, 1]), 'w'],
        ];
        for (const [call, field] of cases) {
          assert.throws(call, (e: unknown) => isInvalidInput(e) && e.field === field && e.message.includes(field));
        }
      } finally {
        tf.dispose([x, w, b]);
      }
    });
  });
}

describe('the SIMD module', () => {
  test('axpy and transpose equal plain loops, also after the memory grew', () => {
    assert.ok(simdSupported());
    const memory = new WebAssembly.Memory({ initial: 1 });
    const calls = simdOn(memory);
    assert.equal(simdOn(memory), calls, 'one instance per memory');
    memory.grow(4); // the instance must see the grown memory (tfjs's heap grows while kernels run)
    const heap = () => new Float32Array(memory.buffer);
    const n = 20;
    const y = values(n, 5);
    const x = values(n, 6);
    heap().set(y, 70_000); // past the first 64 KiB page
    heap().set(x, 100);
    calls.axpy(70_000 * 4, 100 * 4, -1.5, n);
    close(
      heap().subarray(70_000, 70_000 + n),
      Array.from(y, (v, i) => Math.fround(v + Math.fround(-1.5 * x[i]!))),
      'axpy',
      0,
    );
    calls.axpy(0, 0, 2, 0); // n = 0 touches nothing
    const src = values(6 * 7, 7);
    heap().set(src, 2000);
    calls.transpose(2000 * 4, 6, 7, 3000 * 4);
    const t = heap().subarray(3000, 3000 + 42);
    for (let r = 0; r < 6; r++) for (let col = 0; col < 7; col++) assert.equal(t[col * 6 + r], src[r * 7 + col]);
  });
});
