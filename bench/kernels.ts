/**
 * bench:kernels — stock tfjs 4.22 kernels vs @ch8/backend's, measured in one process, interleaved (stock, ours,
 * stock, ours ...) so machine load hits both alike; medians reported. Seeded inputs; prints one JSON document.
 *
 *   pnpm bench:kernels            (about a minute on one core)
 *   pnpm bench:kernels --quick    (fewer repetitions)
 *
 * Last, whole training steps of every @ch8/models kind (synthetic seeded batches: vocab 16k, d 100, 64 x 40
 * tokens) with stock vs our kernels.
 */
import os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { convMaxPool } from '@ch8/backend/conv';
import { registerTrainingKernels, useStockKernels } from '@ch8/backend/kernels';
import { activateWasm } from '@ch8/backend/wasm';
import { MODEL_KINDS } from '@ch8/models/config';
import { createModel } from '@ch8/models/model';

const quick = process.argv.includes('--quick');
const REPS = quick ? 3 : 7;

interface Case {
  name: string;
  backend: 'wasm' | 'cpu';
  what: string;
  /** Median wall-clock ms. */
  stock_ms: number | null;
  ours_ms: number;
  /** Median process CPU ms (user + system): steadier than wall time on a shared machine. */
  stock_cpu_ms: number | null;
  ours_cpu_ms: number;
  speedup: number | null;
  speedup_cpu: number | null;
  note?: string;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
};

interface Timing {
  wall: number;
  cpu: number;
}

/** Time `f` (synchronous tfjs work, results read back) once, disposing what it makes: wall and process CPU ms. */
function timeOnce(f: () => tf.Tensor | tf.Tensor[]): Timing {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  tf.tidy(() => {
    const r = f();
    for (const t of Array.isArray(r) ? r : [r]) t.dataSync();
  });
  const wall = performance.now() - t0;
  const c = process.cpuUsage(c0);
  return { wall, cpu: (c.user + c.system) / 1000 };
}

const med = (ts: Timing[]): Timing => ({ wall: median(ts.map((t) => t.wall)), cpu: median(ts.map((t) => t.cpu)) });

/** Warm both, then alternate stock and ours REPS times; medians. */
function compare(f: () => tf.Tensor | tf.Tensor[], reps = REPS): { stock: Timing; ours: Timing } {
  const stock: Timing[] = [];
  const ours: Timing[] = [];
  for (const s of [true, false]) {
    useStockKernels(s);
    timeOnce(f);
  }
  for (let i = 0; i < reps; i++) {
    useStockKernels(true);
    stock.push(timeOnce(f));
    useStockKernels(false);
    ours.push(timeOnce(f));
  }
  useStockKernels(false);
  return { stock: med(stock), ours: med(ours) };
}

function oursOnly(f: () => tf.Tensor | tf.Tensor[], reps = REPS): Timing {
  timeOnce(f);
  const xs: Timing[] = [];
  for (let i = 0; i < reps; i++) xs.push(timeOnce(f));
  return med(xs);
}

const round = (x: number): number => Math.round(x * 100) / 100;
const cases: Case[] = [];
function record(
  name: string,
  backend: 'wasm' | 'cpu',
  what: string,
  stock: Timing | null,
  ours: Timing,
  note?: string,
) {
  const c: Case = {
    name,
    backend,
    what,
    stock_ms: stock === null ? null : round(stock.wall),
    ours_ms: round(ours.wall),
    stock_cpu_ms: stock === null ? null : round(stock.cpu),
    ours_cpu_ms: round(ours.cpu),
    speedup: stock === null ? null : round(stock.wall / ours.wall),
    speedup_cpu: stock === null ? null : round(stock.cpu / Math.max(ours.cpu, 0.01)),
  };
  if (note !== undefined) c.note = note;
  cases.push(c);
  process.stderr.write(
    `${name}: stock ${c.stock_ms} ms (${c.stock_cpu_ms} cpu), ours ${c.ours_ms} ms (${c.ours_cpu_ms} cpu)\n`,
  );
}

const scale = (t: Timing, k: number): Timing => ({ wall: t.wall * k, cpu: t.cpu * k });

const rnd = (shape: number[], seed: number) => tf.randomNormal(shape, 0, 1, 'float32', seed);
const keep = <T extends tf.Tensor>(t: T): T => tf.keep(t);

registerTrainingKernels();
const wasm = await activateWasm();

// 1. Dense layer backward (the weight and input gradients are matMuls with transposeA / transposeB).
{
  const x = keep(rnd([256, 300], 1));
  const w = keep(rnd([300, 256], 2));
  const dy = keep(rnd([256, 256], 3));
  const r = compare(() => [tf.matMul(dy, w, false, true), tf.matMul(x, dy, true, false)]);
  record('dense_backward_matmuls', 'wasm', 'dx = dy·Wᵀ, dW = xᵀ·dy; x [256,300], W [300,256]', r.stock, r.ours);
  const b = keep(tf.zeros([256]));
  const g = compare(() =>
    tf.grads((xx: tf.Tensor, ww: tf.Tensor, bb: tf.Tensor) =>
      tf.sum(tf.mul(tf.relu(tf.add(tf.matMul(xx, ww), bb)), dy)),
    )([x, w, b]),
  );
  record('dense_relu_grads', 'wasm', 'tf.grads of relu(x·W + b), same sizes', g.stock, g.ours);
}

// 2. Whole MLP training step with Adam (tfjs-layers Dense uses _FusedMatMul).
{
  const model = tf.sequential();
  model.add(
    tf.layers.dense({
      units: 256,
      inputShape: [300],
      activation: 'relu',
      kernelInitializer: tf.initializers.glorotUniform({ seed: 4 }),
    }),
  );
  model.add(tf.layers.dense({ units: 1, kernelInitializer: tf.initializers.glorotUniform({ seed: 5 }) }));
  const x = keep(rnd([256, 300], 6));
  const y = keep(tf.cast(tf.greater(rnd([256, 1], 7), 0), 'float32'));
  const opt = tf.train.adam(1e-3);
  const r = compare(() => {
    opt.minimize(() => tf.losses.sigmoidCrossEntropy(y, model.apply(x) as tf.Tensor));
    return [];
  });
  record('mlp_adam_step', 'wasm', 'tfjs-layers Dense 300-256-1, batch 256, Adam step', r.stock, r.ours);
}

// 3. Embedding lookup: gather rows of a 16k x 100 table for a [64, 40] batch.
{
  const table = keep(rnd([16000, 100], 8));
  const ids = keep(tf.randomUniform([64, 40], 0, 16000, 'int32', 9));
  const r = compare(() => tf.gather(table, ids));
  record('gather_embedding', 'wasm', 'gather E [16000,100] by ids [64,40]', r.stock, r.ours);
}

// 4. Gradient of gather = UnsortedSegmentSum. wasm has none: ours vs the stock cpu kernel, which loops over
//    every segment (~80 ms per segment here): timed once at 20 and 40 segments, scaled to 14k.
{
  const rows = 2560;
  const x = keep(rnd([rows, 100], 10));
  const ids = (n: number) => keep(tf.randomUniform([rows], 0, n, 'int32', 11) as tf.Tensor1D);
  const ids14k = ids(14000);
  const oursWasm = oursOnly(() => tf.unsortedSegmentSum(x, ids14k, 14000));
  record(
    'segment_sum_14k_wasm',
    'wasm',
    `UnsortedSegmentSum [${rows},100] into 14000 segments`,
    null,
    oursWasm,
    'stock wasm has no UnsortedSegmentSum',
  );
  await tf.setBackend('cpu');
  const ids20 = ids(20);
  const ids40 = ids(40);
  useStockKernels(true);
  const s20 = timeOnce(() => tf.unsortedSegmentSum(x, ids20, 20));
  const s40 = timeOnce(() => tf.unsortedSegmentSum(x, ids40, 40));
  useStockKernels(false);
  // Proportional to the segment count (fixed costs are negligible next to ~80 ms per segment).
  const stock14k = scale(s40, 14000 / 40);
  const ours14k = oursOnly(() => tf.unsortedSegmentSum(x, ids14k, 14000));
  record(
    'segment_sum_14k_cpu',
    'cpu',
    `UnsortedSegmentSum [${rows},100] into 14000 segments`,
    stock14k,
    ours14k,
    `stock measured ${round(s20.wall)} ms at 20 and ${round(s40.wall)} ms at 40 segments, extrapolated x 14000/40`,
  );
  await activateWasm();
}

// 5. Max over time and its gradient (equal-mask with broadcasting).
{
  const h = keep(rnd([64, 40, 300], 13));
  const r = compare(() => tf.grad((t: tf.Tensor) => tf.sum(tf.max(t, 1)))(h));
  record('max_over_time_grad', 'wasm', 'grad of max over axis 1, [64,40,300]', r.stock, r.ours);
  const h4 = keep(tf.reshape(h, [64, 40, 1, 300]));
  const m = compare(() =>
    tf.grad((t: tf.Tensor) => tf.sum(tf.maxPool(t as tf.Tensor4D, [40, 1], [40, 1], 'valid')))(h4),
  );
  record('maxpool_over_time_grad', 'wasm', 'grad of maxPool window [40,1], [64,40,1,300]', m.stock, m.ours);
}

// 6. Attention: batched products q·kᵀ and weights·v, forward + backward, 64 examples x 4 heads.
{
  const q = keep(rnd([256, 40, 25], 14));
  const k = keep(rnd([256, 40, 25], 15));
  const v = keep(rnd([256, 40, 25], 16));
  const r = compare(() =>
    tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
      tf.sum(tf.matMul(tf.softmax(tf.matMul(a, b, false, true)), c)),
    )([q, k, v]),
  );
  record('attention_grads', 'wasm', 'grads of softmax(q·kᵀ)·v, [256,40,25] each', r.stock, r.ours);
}

// 7. conv1d (Kim CNN width 5, 100 filters over 100-d embeddings): input gradient, and the filter gradient
//    (none in stock wasm: ours vs the stock cpu kernel).
{
  const x = keep(rnd([64, 40, 100], 17));
  const f = keep(rnd([5, 100, 100], 18));
  const dy = keep(rnd([64, 36, 100], 19));
  const r = compare(() =>
    tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.conv1d(t as tf.Tensor3D, f as tf.Tensor3D, 1, 'valid'), dy)))(x),
  );
  record('conv1d_input_grad', 'wasm', 'd/dx of conv1d [64,40,100] * [5,100,100]', r.stock, r.ours);
  const filterGrad = (xx: tf.Tensor, d: tf.Tensor) => () =>
    tf.grad((w: tf.Tensor) => tf.sum(tf.mul(tf.conv1d(xx as tf.Tensor3D, w as tf.Tensor3D, 1, 'valid'), d)))(f);
  const wasmFilter = oursOnly(filterGrad(x, dy));
  // The stock cpu kernel takes ~50 s for 64 examples: timed on 4 and scaled by 16 (cost is linear in batch).
  await tf.setBackend('cpu');
  const x4 = keep(tf.slice(x, [0, 0, 0], [4, 40, 100]));
  const dy4 = keep(tf.slice(dy, [0, 0, 0], [4, 36, 100]));
  useStockKernels(true);
  const cpuFilter = scale(timeOnce(filterGrad(x4, dy4)), 16);
  useStockKernels(false);
  await activateWasm();
  record(
    'conv1d_filter_grad',
    'wasm',
    'd/dW of the same conv1d',
    cpuFilter,
    wasmFilter,
    'stock wasm has no Conv2DBackpropFilter: baseline is the stock cpu backend, timed on 4 examples x 16',
  );
}

// 7b. The Kim CNN's feature op (width 3, 100 filters over 100-d embeddings, every window valid): conv1d, bias,
//     ReLU and max over time op by op (dense im2col gradients: the path above) vs the fused convMaxPool, whose
//     gradient goes through each maximum's window only. Both with our kernels; alternated, medians.
{
  for (const T of [12, 40]) {
    const k = 3;
    const x = keep(rnd([64, T, 100], 30 + T));
    const w = keep(rnd([k * 100, 100], 31));
    const b = keep(rnd([100], 32));
    const dy = keep(rnd([64, 100], 33));
    const valid = new Array<number>(64).fill(T - k + 1);
    const opByOp = () =>
      tf.grads((xs: tf.Tensor, ws: tf.Tensor, bs: tf.Tensor) => {
        const z = tf.conv2d(
          tf.reshape(xs, [64, 1, T, 100]) as tf.Tensor4D,
          tf.reshape(ws, [1, k, 100, 100]) as tf.Tensor4D,
          1,
          'valid',
        );
        const h = tf.relu(tf.add(z, bs)) as tf.Tensor4D;
        return tf.sum(tf.mul(tf.reshape(tf.maxPool(h, [1, T - k + 1], [1, T - k + 1], 'valid'), [64, 100]), dy));
      })([x, w, b]);
    const fused = () =>
      tf.grads((xs: tf.Tensor, ws: tf.Tensor, bs: tf.Tensor) => tf.sum(tf.mul(convMaxPool(xs, ws, bs, k, valid), dy)))([
        x,
        w,
        b,
      ]);
    const a: Timing[] = [];
    const f: Timing[] = [];
    timeOnce(opByOp);
    timeOnce(fused);
    for (let i = 0; i < REPS; i++) {
      a.push(timeOnce(opByOp));
      f.push(timeOnce(fused));
    }
    record(
      `cnn_feature_grads_T${T}`,
      'wasm',
      `grads of max_t relu(conv1d + b) for x [64,${T},100], w [${k * 100},100]: op by op vs convMaxPool`,
      med(a),
      med(f),
      '"stock" here is the op-by-op formulation on our kernels (dense im2col gradients), "ours" the fused op',
    );
  }
}

// 8. RNN plumbing: unstack over time, and the gradient of a concat (split).
{
  const seq = keep(rnd([40, 64, 512], 20));
  const r = compare(() => tf.unstack(seq));
  record('unstack_time', 'wasm', 'unstack [40,64,512] along time', r.stock, r.ours);
  const parts = [0, 1, 2, 3, 4].map((i) => keep(rnd([64, 40, 100], 21 + i)));
  const c = compare(() => tf.grads((...ps: tf.Tensor[]) => tf.sum(tf.square(tf.concat(ps, 2))))(parts));
  record('concat_grad', 'wasm', 'grads of concat of 5 x [64,40,100] along the last axis', c.stock, c.ours);
}

// 9. Whole training steps of the model zoo (forward + backward + Adam), stock kernels vs ours.
const zoo: Record<string, { stock_cpu_ms: number; ours_cpu_ms: number; speedup_cpu: number }> = {};
{
  const V = 16000;
  const B = 64;
  const T = 40;
  let state = 7;
  const next = () => {
    state = (state * 1103515245 + 12345) & 0x7fffffff;
    return state / 0x7fffffff;
  };
  const batch = () => {
    const inputIds = new Int32Array(B * T);
    const labels = new Float32Array(B);
    for (let b = 0; b < B; b++) {
      const len = b === 0 ? T : 5 + Math.floor(next() * (T - 5));
      for (let t = 0; t < len; t++) inputIds[b * T + t] = 1 + Math.floor(next() * (V - 1));
      labels[b] = next() < 0.5 ? 1 : 0;
    }
    return { inputIds, batchSize: B, maxLength: T, labels };
  };
  const batches = [batch(), batch()];
  const steps = quick ? 1 : 3;
  for (const kind of MODEL_KINDS) {
    const models = {
      stock: createModel({ kind, vocabSize: V, dim: 100, seed: 1 }),
      ours: createModel({ kind, vocabSize: V, dim: 100, seed: 1 }),
    };
    const cpu: { stock: number[]; ours: number[] } = { stock: [], ours: [] };
    for (let i = -1; i < steps; i++) {
      for (const which of ['stock', 'ours'] as const) {
        useStockKernels(which === 'stock');
        const c0 = process.cpuUsage();
        models[which].trainStep(batches[(i + 2) % 2] as (typeof batches)[number]);
        const c = process.cpuUsage(c0);
        if (i >= 0) cpu[which].push((c.user + c.system) / 1000);
      }
    }
    useStockKernels(false);
    models.stock.dispose();
    models.ours.dispose();
    const s = median(cpu.stock);
    const o = median(cpu.ours);
    zoo[kind] = { stock_cpu_ms: round(s), ours_cpu_ms: round(o), speedup_cpu: round(s / o) };
    process.stderr.write(`zoo ${kind}: stock ${round(s)} cpu-ms/step, ours ${round(o)}\n`);
  }
}

const out = {
  bench: 'kernels',
  node: process.version,
  cpu: os.cpus()[0]?.model ?? 'unknown',
  wasm: { simd: wasm.simd, threads: wasm.threads },
  reps: REPS,
  method: 'same process, stock and ours interleaved per repetition (useStockKernels), median ms; seeded inputs',
  cases,
  zoo_train_step: zoo,
};
process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
