import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { isInvalidInput } from '@ch8/errors';
import { registerTrainingKernels } from './kernels.ts';
import { fusedRnnAvailable, gruSequence, lstmSequence } from './rnn-kernels.ts';
import { activateWasm } from './wasm.ts';

// ---------------------------------------------------------------------------------------------------------
// float64 references, written plainly: per direction, per time step, with the textbook formulas.

type Kind = 'lstm' | 'gru';

interface Case {
  B: number;
  T: number;
  D: number;
  H: number;
  E: number;
  tokens: Float64Array; // [B*T, E]
  w: Float64Array; // [D, E, G]
  wh: Float64Array; // [D, H, G]
  bi: Float64Array; // [D, G]: the input bias
  bh: Float64Array; // [D, G]: GRU's recurrent bias
  mask: Float64Array; // [B, T]
  dy: Float64Array; // [D, B, H]: the loss is sum(dy * h)
}

const sig = (v: number): number => 1 / (1 + Math.exp(-v));
const gatesOf = (kind: Kind, H: number): number => (kind === 'lstm' ? 4 : 3) * H;

/** The time order direction d visits. */
const times = (T: number, d: number): number[] => [...Array(T).keys()].map((s) => (d === 0 ? s : T - 1 - s));

/** Final states [D, B, H] and, for the backward, every step's values. */
function forwardRef(kind: Kind, c: Case) {
  const { B, T, D, H } = c;
  const G = gatesOf(kind, H);
  const h = new Float64Array(D * B * H);
  const trace: { d: number; b: number; t: number; hp: number[]; cp: number[]; v: Record<string, number[]> }[] = [];
  for (let d = 0; d < D; d++) {
    for (let b = 0; b < B; b++) {
      let hs = new Array<number>(H).fill(0);
      let cs = new Array<number>(H).fill(0);
      for (const t of times(T, d)) {
        if (c.mask[b * T + t] === 0) continue;
        const xg = (j: number) => {
          let acc = c.bi[d * G + j]!;
          for (let e = 0; e < c.E; e++) acc += c.tokens[(b * T + t) * c.E + e]! * c.w[(d * c.E + e) * G + j]!;
          return acc;
        };
        const rec = (j: number) => {
          let acc = 0;
          for (let k = 0; k < H; k++) acc += hs[k]! * c.wh[(d * H + k) * G + j]!;
          return acc;
        };
        const v: Record<string, number[]> = {};
        if (kind === 'lstm') {
          const z = [...Array(G).keys()].map((j) => xg(j) + rec(j));
          v.i = z.slice(0, H).map(sig);
          v.f = z.slice(H, 2 * H).map(sig);
          v.o = z.slice(2 * H, 3 * H).map(sig);
          v.g = z.slice(3 * H).map(Math.tanh);
          v.c = cs.map((cp, k) => v.f![k]! * cp + v.i![k]! * v.g![k]!);
          v.tc = v.c.map(Math.tanh);
          trace.push({ d, b, t, hp: hs, cp: cs, v });
          hs = v.tc.map((tc, k) => v.o![k]! * tc);
          cs = v.c;
        } else {
          const gh = [...Array(G).keys()].map((j) => rec(j) + c.bh[d * G + j]!);
          v.r = [...Array(H).keys()].map((k) => sig(xg(k) + gh[k]!));
          v.z = [...Array(H).keys()].map((k) => sig(xg(H + k) + gh[H + k]!));
          v.ghn = gh.slice(2 * H);
          v.n = [...Array(H).keys()].map((k) => Math.tanh(xg(2 * H + k) + v.r![k]! * v.ghn![k]!));
          trace.push({ d, b, t, hp: hs, cp: cs, v });
          hs = hs.map((hp, k) => (1 - v.z![k]!) * v.n![k]! + v.z![k]! * hp);
        }
      }
      for (let k = 0; k < H; k++) h[(d * B + b) * H + k] = hs[k]!;
    }
  }
  return { h, trace };
}

/** Gradients of sum(dy * h) by backpropagation through time, in float64. */
function backwardRef(kind: Kind, c: Case) {
  const { B, T, D, H } = c;
  const G = gatesOf(kind, H);
  const { trace } = forwardRef(kind, c);
  const dTokens = new Float64Array(c.tokens.length);
  const dw = new Float64Array(c.w.length);
  const dwh = new Float64Array(c.wh.length);
  const dbh = new Float64Array(c.bh.length);
  const dbi = new Float64Array(c.bi.length);
  for (let d = 0; d < D; d++) {
    for (let b = 0; b < B; b++) {
      const steps = trace.filter((s) => s.d === d && s.b === b).reverse();
      let dh = [...Array(H).keys()].map((k) => c.dy[(d * B + b) * H + k]!);
      const dc = new Array<number>(H).fill(0);
      for (const { t, hp, cp, v } of steps) {
        const dz = new Array<number>(G).fill(0); // gradient of the pre-activations x + h Wh (+ bh)
        const dgh = new Array<number>(G).fill(0); // of h Wh + bh (GRU's n part differs)
        const dhPrev = new Array<number>(H).fill(0);
        for (let k = 0; k < H; k++) {
          if (kind === 'lstm') {
            const [i, f, o, g, tc] = [v.i![k]!, v.f![k]!, v.o![k]!, v.g![k]!, v.tc![k]!];
            const dcTot = dc[k]! + dh[k]! * o * (1 - tc * tc);
            dz[k] = dcTot * g * i * (1 - i);
            dz[H + k] = dcTot * cp[k]! * f * (1 - f);
            dz[2 * H + k] = dh[k]! * tc * o * (1 - o);
            dz[3 * H + k] = dcTot * i * (1 - g * g);
            dc[k] = dcTot * f;
          } else {
            const [r, z, n] = [v.r![k]!, v.z![k]!, v.n![k]!];
            const dnPre = dh[k]! * (1 - z) * (1 - n * n);
            dz[k] = dnPre * v.ghn![k]! * r * (1 - r);
            dz[H + k] = dh[k]! * (hp[k]! - n) * z * (1 - z);
            dz[2 * H + k] = dnPre;
            dhPrev[k] = dh[k]! * z;
          }
        }
        for (let j = 0; j < G; j++) dgh[j] = kind === 'gru' && j >= 2 * H ? dz[j]! * v.r![j - 2 * H]! : dz[j]!;
        for (let j = 0; j < G; j++) {
          // x = tokens w + bi: dz reaches the bias, the input kernel and the token.
          dbi[d * G + j]! += dz[j]!;
          for (let e = 0; e < c.E; e++) {
            dw[(d * c.E + e) * G + j]! += c.tokens[(b * T + t) * c.E + e]! * dz[j]!;
            dTokens[(b * T + t) * c.E + e]! += dz[j]! * c.w[(d * c.E + e) * G + j]!;
          }
          dbh[d * G + j]! += dgh[j]!;
          for (let k = 0; k < H; k++) {
            dwh[(d * H + k) * G + j]! += hp[k]! * dgh[j]!;
            dhPrev[k]! += dgh[j]! * c.wh[(d * H + k) * G + j]!;
          }
        }
        dh = dhPrev;
      }
    }
  }
  return { dTokens, dw, dwh, dbi, dbh };
}

// ---------------------------------------------------------------------------------------------------------

function randomCase(
  kind: Kind,
  B: number,
  T: number,
  D: number,
  H: number,
  mask: number[][],
  seed: number,
  E = 3,
): Case {
  let state = seed;
  const rnd = () => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return (state / 2147483648) * 2 - 1;
  };
  const G = gatesOf(kind, H);
  const fill = (n: number, scale: number) => Float64Array.from({ length: n }, () => Math.fround(rnd() * scale));
  return {
    B,
    T,
    D,
    H,
    E,
    tokens: fill(B * T * E, 1.5),
    w: fill(D * E * G, 0.8),
    wh: fill(D * H * G, 0.8),
    bi: fill(D * G, 0.5),
    bh: fill(D * G, 0.5),
    mask: Float64Array.from(mask.flat()),
    dy: fill(D * B * H, 1),
  };
}

/** The fused op's h and gradients on the active backend. */
function fused(kind: Kind, c: Case, tokensGrad = true) {
  const G = gatesOf(kind, c.H);
  return tf.tidy(() => {
    const f32 = (a: Float64Array, shape: number[]) => tf.tensor(Float32Array.from(a), shape);
    const tokens = f32(c.tokens, [c.B * c.T, c.E]);
    const w = f32(c.w, [c.D, c.E, G]);
    const bi = f32(c.bi, [c.D, 1, G]);
    const wh = f32(c.wh, [c.D, c.H, G]);
    const bh = f32(c.bh, [c.D, 1, G]);
    const mask = f32(c.mask, [c.B, c.T]);
    const dy = f32(c.dy, [c.D, c.B, c.H]);
    const f = (a: tf.Tensor[]) =>
      kind === 'lstm'
        ? lstmSequence(a[0]!, a[1]!, a[2]!, a[3]!, mask, { tokensGrad })
        : gruSequence(a[0]!, a[1]!, a[2]!, a[3]!, a[4]!, mask, { tokensGrad });
    const args = kind === 'lstm' ? [tokens, w, bi, wh] : [tokens, w, bi, wh, bh];
    const h = f(args).dataSync().slice();
    const g = tf
      .grads((...a: tf.Tensor[]) => tf.sum(tf.mul(f(a), dy)))(args)
      .map((t) => t.dataSync().slice());
    return { h, dTokens: g[0]!, dw: g[1]!, dbi: g[2]!, dwh: g[3]!, dbh: g[4] };
  });
}

/** Every gradient of `got` against the reference. */
function assertGrads(kind: Kind, got: ReturnType<typeof fused>, want: ReturnType<typeof backwardRef>, what: string) {
  assertClose(got.dTokens, want.dTokens, 1e-4, `${what} dTokens`);
  assertClose(got.dw, want.dw, 1e-4, `${what} dw`);
  assertClose(got.dbi, want.dbi, 1e-4, `${what} dbi`);
  assertClose(got.dwh, want.dwh, 1e-4, `${what} dwh`);
  if (kind === 'gru') assertClose(got.dbh!, want.dbh, 1e-4, `${what} dbh`);
}

/** max |a - e| <= tol * max(1, max |e|). */
function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: size`);
  let scale = 1;
  let diff = 0;
  for (let i = 0; i < expected.length; i++) {
    scale = Math.max(scale, Math.abs(expected[i]!));
    diff = Math.max(diff, Math.abs(actual[i]! - expected[i]!));
  }
  assert.ok(diff <= tol * scale, `${what}: max diff ${diff} > ${tol} x ${scale}`);
}

before(async () => {
  registerTrainingKernels();
  await activateWasm();
});

describe('float64 references', () => {
  // The references check each other: backwardRef against central differences of forwardRef.
  for (const kind of ['lstm', 'gru'] as const) {
    test(`${kind}: backpropagation through time matches finite differences`, () => {
      const c = randomCase(
        kind,
        2,
        4,
        2,
        2,
        [
          [1, 1, 0, 1],
          [1, 1, 1, 0],
        ],
        7,
      );
      const loss = (cc: Case) => forwardRef(kind, cc).h.reduce((acc, v, i) => acc + v * cc.dy[i]!, 0);
      const g = backwardRef(kind, c);
      const eps = 1e-6;
      for (const [name, arr, grad] of [
        ['tokens', c.tokens, g.dTokens],
        ['w', c.w, g.dw],
        ['wh', c.wh, g.dwh],
        ['bi', c.bi, g.dbi],
        ...(kind === 'gru' ? [['bh', c.bh, g.dbh] as const] : []),
      ] as const) {
        for (let i = 0; i < arr.length; i++) {
          const keep = arr[i]!;
          arr[i] = keep + eps;
          const up = loss(c);
          arr[i] = keep - eps;
          const down = loss(c);
          arr[i] = keep;
          const fd = (up - down) / (2 * eps);
          assert.ok(Math.abs(fd - grad[i]!) < 1e-6, `${kind} d${name}[${i}]: ${grad[i]} vs ${fd}`);
        }
      }
    });
  }
});

describe('fused recurrences', () => {
  test('are registered on wasm and cpu only', async () => {
    for (const backend of ['wasm', 'cpu']) {
      await tf.setBackend(backend);
      assert.ok(fusedRnnAvailable(), backend);
    }
    await tf.setBackend('wasm');
  });

  // Variable lengths (PAD at the end, as collate makes them), an all-PAD row, and a hole in the middle.
  const masks = [
    [1, 1, 1, 1, 1, 1],
    [1, 1, 1, 0, 0, 0],
    [1, 0, 0, 0, 0, 0],
    [0, 0, 0, 0, 0, 0],
    [1, 1, 0, 1, 1, 0],
  ];
  for (const kind of ['lstm', 'gru'] as const) {
    for (const backend of ['wasm', 'cpu']) {
      test(`${kind} on ${backend}: h and gradients match the float64 reference (1 and 2 directions)`, async () => {
        await tf.setBackend(backend);
        try {
          for (const [D, H, seed] of [
            [2, 3, 1],
            [1, 5, 2],
            [2, 8, 3],
          ] as const) {
            const c = randomCase(kind, masks.length, 6, D, H, masks, seed);
            const want = backwardRef(kind, c);
            const got = fused(kind, c);
            const what = `${kind} ${backend} D=${D} H=${H}`;
            assertClose(got.h, forwardRef(kind, c).h, 1e-5, `${what} h`);
            assertGrads(kind, got, want, what);
            // PAD positions get exactly no gradient.
            for (let i = 0; i < c.B * c.T; i++) {
              if (c.mask[i] !== 0) continue;
              for (let e = 0; e < c.E; e++) assert.equal(got.dTokens[i * c.E + e], 0, `${what} PAD token ${i}`);
            }
          }
          // Frozen tokens: zeros for them, the same gradients for the rest.
          const c = randomCase(kind, masks.length, 6, 2, 4, masks, 5);
          const frozen = fused(kind, c, false);
          assert.ok(frozen.dTokens.every((v) => v === 0));
          assertGrads(
            kind,
            { ...frozen, dTokens: Float32Array.from(backwardRef(kind, c).dTokens) },
            backwardRef(kind, c),
            'frozen',
          );
        } finally {
          await tf.setBackend('wasm');
        }
      });
    }

    test(`${kind} on wasm: a larger batch (B 32, T 12, H 64, E 16, 2 directions) matches the reference`, () => {
      const T = 12;
      const B = 32;
      const mask = Array.from({ length: B }, (_, b) =>
        Array.from({ length: T }, (_, t) => (t < 1 + ((b * 7) % T) ? 1 : 0)),
      );
      const c = randomCase(kind, B, T, 2, 64, mask, 11, 16);
      c.wh = c.wh.map((v) => Math.fround(v * 0.15)); // about PyTorch's U(-1/sqrt(H), 1/sqrt(H))
      const want = backwardRef(kind, c);
      const got = fused(kind, c);
      assertClose(got.h, forwardRef(kind, c).h, 1e-5, 'h');
      assertGrads(kind, got, want, 'B 32');
    });
  }

  test('a batch of PAD only: h and every gradient are zero (wasm and cpu)', async () => {
    for (const backend of ['wasm', 'cpu']) {
      await tf.setBackend(backend);
      for (const kind of ['lstm', 'gru'] as const) {
        const c = randomCase(
          kind,
          2,
          3,
          2,
          3,
          [
            [0, 0, 0],
            [0, 0, 0],
          ],
          9,
        );
        const got = fused(kind, c);
        for (const [name, v] of Object.entries(got)) {
          assert.ok(v === undefined || v.every((x) => x === 0), `${backend} ${kind} ${name}`);
        }
      }
    }
    await tf.setBackend('wasm');
  });

  test('no tensors leak; bad shapes are InvalidInputError naming the field', () => {
    const tokens = tf.zeros([6, 3]);
    const w = tf.zeros([1, 3, 8]);
    const b = tf.zeros([1, 1, 8]);
    const wh = tf.zeros([1, 2, 8]);
    const mask = tf.ones([2, 3]);
    const w3 = tf.zeros([1, 3, 6]);
    const b3 = tf.zeros([1, 1, 6]);
    const wh3 = tf.zeros([1, 2, 6]);
    try {
      const before = tf.memory().numTensors;
      tf.tidy(() => {
        tf.grads((...a: tf.Tensor[]) => tf.sum(lstmSequence(a[0]!, a[1]!, a[2]!, a[3]!, mask)))([tokens, w, b, wh]);
      });
      assert.equal(tf.memory().numTensors, before);
      const field = (name: string) => (e: unknown) => isInvalidInput(e) && e.field === name;
      assert.throws(() => lstmSequence(tf.zeros([5, 3]), w, b, wh, mask), field('tokens'));
      assert.throws(() => lstmSequence(tokens, tf.zeros([1, 4, 8]), b, wh, mask), field('w'));
      assert.throws(() => lstmSequence(tokens, w, tf.zeros([1, 8]), wh, mask), field('b'));
      assert.throws(() => lstmSequence(tokens, w, b, tf.zeros([1, 2, 6]), mask), field('wh'));
      assert.throws(() => lstmSequence(tokens, w, b, wh, tf.ones([2, 4])), field('tokens'));
      assert.throws(() => gruSequence(tokens, w3, b3, wh3, tf.zeros([1, 1, 5]), mask), field('bh'));
    } finally {
      tf.dispose([tokens, w, b, wh, mask, w3, b3, wh3]);
    }
  });
});
