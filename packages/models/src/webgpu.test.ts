/**
 * The zoo on tfjs's WebGPU backend (problem 77) against the cpu backend, at tiny sizes with the CPU handoff
 * threshold at 0 so that every op runs as a shader. Skipped, with the reason, where no WebGPU adapter exists
 * (install a software one with packages/webgpu/scripts/install-software-gpu.sh).
 *
 * Training is driven through the public `logits()` and `tf.variableGrads` (every read is `await data()`:
 * `dataSync()` does not work on webgpu in Node), with Adam on the model's trainable variables.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initWebgpu, checkGpuErrors } from '@ch8/webgpu/setup';
import { createModel, type ModelBatch as Batch, type SentimentModel } from './model.ts';
import { MODEL_KINDS, type ModelConfigInput, type ModelKind } from './config.ts';
import { decodeTrainingState, encodeTrainingState } from './checkpoint.ts';

const adapter = await initWebgpu({ allowSoftware: true, cpuHandoffThreshold: 0 });
const SKIP = 'no WebGPU adapter on this machine (install one: packages/webgpu/scripts/install-software-gpu.sh)';

const V = 12;
const LR = 0.01;
const D = 8;

function config(kind: ModelKind): ModelConfigInput {
  return { kind, vocabSize: V, dim: D, hidden: 4, filters: 3, widths: [2, 3], heads: 2, seed: 3 };
}

function embeddings(): Float32Array {
  const e = new Float32Array(V * D);
  let s = 12345;
  for (let i = D; i < e.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    e[i] = (s / 2 ** 32 - 0.5) * 2;
  }
  return e;
}

/** Three examples of lengths 5, 3, 1, collated (longest first, PAD 0), with `extra` more PAD columns. */
function batch(extra = 0): Batch {
  const rows = [[3, 4, 5, 6, 7], [1, 2, 9], [11]];
  const T = 5 + extra;
  const ids = new Int32Array(rows.length * T);
  rows.forEach((r, b) => ids.set(r, b * T));
  return { inputIds: ids, batchSize: rows.length, maxLength: T, labels: new Float32Array([1, 0, 1]) };
}

function maxRelDiff(a: ArrayLike<number>, b: ArrayLike<number>, floor: number): number {
  assert.equal(a.length, b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    worst = Math.max(worst, Math.abs(x - y) / Math.max(Math.abs(x), Math.abs(y), floor));
  }
  return worst;
}

interface Trace {
  losses: number[];
  /** Gradients of the first step, flattened over the variables. */
  grads: number[];
  /** Largest |gradient| per element over all steps. */
  gradPeak: number[];
  weights: number[];
}

/** `steps` Adam steps on the model's trainable variables (dropout on), reading everything with `await data()`. */
async function train(backend: string, kind: ModelKind, steps: number): Promise<Trace> {
  await tf.setBackend(backend);
  const model: SentimentModel = createModel(config(kind), { embeddings: embeddings() });
  const b = batch();
  const labels = tf.tensor1d(b.labels!);
  const optimizer = tf.train.adam(LR);
  const losses: number[] = [];
  let grads: number[] = [];
  let gradPeak: number[] = [];
  let names: string[] = [];
  try {
    for (let i = 0; i < steps; i++) {
      const { value, grads: g } = tf.variableGrads(
        () => tf.losses.sigmoidCrossEntropy(labels, model.logits(b, true)) as tf.Scalar,
      );
      names = Object.keys(g);
      assert.ok(names.length > 0, 'the model has trainable variables');
      losses.push((await value.data())[0]!);
      let flat: number[] = [];
      for (const n of names) flat = flat.concat(Array.from(await g[n]!.data()));
      if (i === 0) grads = flat;
      gradPeak = flat.map((v, j) => Math.max(Math.abs(v), gradPeak[j] ?? 0));
      optimizer.applyGradients(names.map((n) => ({ name: n, tensor: g[n]! })));
      value.dispose();
      tf.dispose(Object.values(g));
    }
    let weights: number[] = [];
    for (const n of names) weights = weights.concat(Array.from(await tf.engine().registeredVariables[n]!.data()));
    if (backend === 'webgpu') await checkGpuErrors();
    return { losses, grads, gradPeak, weights };
  } finally {
    optimizer.dispose();
    labels.dispose();
    model.dispose();
  }
}

interface OwnTrace {
  losses: number[];
  correct: number[];
  /** Largest |gradient| per dense weight over the steps (cpu only: `gradients()` reads synchronously). */
  gradPeak: number[];
  dense: number[];
  embeddings: Float32Array;
  initialEmbeddings: Float32Array;
}

/** `steps` of the model's own `trainStepAsync` (dropout on, dense Adam + row-sparse embedding Adam). */
async function ownSteps(backend: string, kind: ModelKind, steps: number): Promise<OwnTrace> {
  await tf.setBackend(backend);
  const before = new Set(Object.keys(tf.engine().registeredVariables));
  const model = createModel(config(kind), { embeddings: embeddings() });
  const mine = Object.keys(tf.engine().registeredVariables).filter((n) => !before.has(n));
  assert.ok(mine.length > 0, 'the model owns variables');
  const initialEmbeddings = model.getEmbeddings();
  const b = batch();
  const losses: number[] = [];
  const correct: number[] = [];
  let gradPeak: number[] = [];
  try {
    for (let i = 0; i < steps; i++) {
      if (backend === 'cpu') {
        const g = model.gradients(b, { training: true });
        const flat = [...g.params.values()].flatMap((v) => Array.from(v));
        gradPeak = flat.map((v, j) => Math.max(Math.abs(v), gradPeak[j] ?? 0));
      }
      const r = await model.trainStepAsync(b);
      losses.push(r.loss);
      correct.push(r.correct);
    }
    let dense: number[] = [];
    for (const n of mine) dense = dense.concat(Array.from(await tf.engine().registeredVariables[n]!.data()));
    if (backend === 'webgpu') await checkGpuErrors();
    return { losses, correct, gradPeak, dense, embeddings: model.getEmbeddings(), initialEmbeddings };
  } finally {
    model.dispose();
  }
}

for (const kind of MODEL_KINDS) {
  test(`${kind}: training steps on webgpu match the cpu backend`, async (t) => {
    if (adapter === null) return t.skip(SKIP);
    const steps = 3;
    const cpu = await train('cpu', kind, steps);
    const gpu = await train('webgpu', kind, steps);
    assert.equal(gpu.losses.length, steps);
    const dl = maxRelDiff(gpu.losses, cpu.losses, 1e-3);
    assert.ok(dl < 1e-5, `losses ${gpu.losses} vs ${cpu.losses}: ${dl}`);
    // Gradients near zero carry only rounding noise: compare them on the scale of the largest one.
    const gmax = Math.max(...cpu.grads.map(Math.abs));
    const dg = maxRelDiff(gpu.grads, cpu.grads, gmax);
    assert.ok(dg < 1e-5, `gradients differ by ${dg} of the largest`);
    // A parameter whose gradient is analytically zero (attention's key bias: softmax ignores a shift) gets only
    // rounding noise, which Adam normalises into steps of up to lr on either backend. Those are held to that
    // bound; every other weight must match.
    const noise = cpu.gradPeak.map((g, j) => Math.max(g, gpu.gradPeak[j]!) < 1e-7 * gmax);
    const keep = (w: number[]) => w.filter((_, j) => !noise[j]);
    const dw = maxRelDiff(keep(gpu.weights), keep(cpu.weights), 1e-2);
    assert.ok(dw < 1e-5, `weights after ${steps} steps differ by ${dw}`);
    noise.forEach((isNoise, j) => {
      if (isNoise)
        assert.ok(Math.abs(gpu.weights[j]! - cpu.weights[j]!) <= 2 * steps * LR, `noise-gradient weight ${j}`);
    });
    assert.ok(keep(cpu.weights).length >= cpu.weights.length / 4, 'most weights are compared strictly');
    assert.notDeepEqual(cpu.losses[0], cpu.losses[steps - 1], 'training moved the loss');
  });

  test(`${kind}: the model's own trainStepAsync on webgpu matches cpu (dense and embedding updates)`, async (t) => {
    if (adapter === null) return t.skip(SKIP);
    const steps = 3;
    const cpu = await ownSteps('cpu', kind, steps);
    const gpu = await ownSteps('webgpu', kind, steps);
    const dl = maxRelDiff(gpu.losses, cpu.losses, 1e-3);
    assert.ok(dl < 1e-5, `losses ${gpu.losses} vs ${cpu.losses}: ${dl}`);
    assert.deepEqual(gpu.correct, cpu.correct);
    // As above: weights whose gradient is only rounding noise (peak below 1e-7 of the largest) are held to Adam's
    // step bound; the rest must match.
    const gmax = cpu.gradPeak.reduce((a, g) => Math.max(a, g), 0);
    const noise = cpu.gradPeak.map((g) => g < 1e-7 * gmax);
    const keep = (w: number[]) => w.filter((_, j) => !noise[j]);
    const dw = maxRelDiff(keep(gpu.dense), keep(cpu.dense), 1e-2);
    assert.ok(dw < 1e-5, `dense weights after ${steps} steps differ by ${dw}`);
    noise.forEach((isNoise, j) => {
      if (isNoise) assert.ok(Math.abs(gpu.dense[j]! - cpu.dense[j]!) <= 2 * steps * 1e-2, `noise-gradient weight ${j}`);
    });
    const de = maxRelDiff(gpu.embeddings, cpu.embeddings, 1e-2);
    assert.ok(de < 1e-5, `embeddings after ${steps} steps differ by ${de}`);
    const moved = cpu.embeddings.some((v, i) => v !== cpu.initialEmbeddings[i]);
    assert.equal(moved, kind !== 'bow-frozen', 'only fine-tuned models change the embedding matrix');
  });

  test(`${kind}: PAD columns do not change the logits on webgpu`, async (t) => {
    if (adapter === null) return t.skip(SKIP);
    await tf.setBackend('webgpu');
    const model = createModel(config(kind), { embeddings: embeddings() });
    try {
      const read = async (b: Batch) => {
        const z = model.logits(b, false);
        const v = Array.from(await z.data());
        z.dispose();
        return v;
      };
      const tight = await read(batch());
      const padded = await read(batch(3));
      const alone = await read({ inputIds: new Int32Array([1, 2, 9]), batchSize: 1, maxLength: 3 });
      await checkGpuErrors();
      assert.ok(maxRelDiff(padded, tight, 1e-3) < 1e-5, `padded ${padded} vs ${tight}`);
      assert.ok(maxRelDiff(alone, [tight[1]!], 1e-3) < 1e-5, `alone ${alone} vs in batch ${tight[1]}`);
    } finally {
      model.dispose();
    }
  });
}

test('a model trained on webgpu gives its weights from the GPU; a copy loaded from them predicts the same', async (t) => {
  if (adapter === null) return t.skip(SKIP);
  await tf.setBackend('webgpu');
  const model = createModel(config('cnn'), { embeddings: embeddings() });
  try {
    await model.trainStepAsync(batch());
    // getWeights() would need dataSync, which cannot read GPU tensors in Node: an export reads asynchronously.
    const weights = await model.getWeightsAsync();
    const loaded = createModel(config('cnn'));
    loaded.setWeights(weights);
    try {
      const [a, b] = await Promise.all([
        model.predictProbabilitiesAsync(batch()),
        loaded.predictProbabilitiesAsync(batch()),
      ]);
      await checkGpuErrors();
      assert.deepEqual(Array.from(b), Array.from(a));
      assert.deepEqual(
        (await loaded.getWeightsAsync()).map((w) => Array.from(w.values)),
        (await model.getWeightsAsync()).map((w) => Array.from(w.values)),
      );
    } finally {
      loaded.dispose();
    }
  } finally {
    model.dispose();
  }
});

test('webgpu: getTrainingState reads the GPU with await data(); a restored model continues as the uninterrupted one', async (t) => {
  if (adapter === null) return t.skip(SKIP);
  await tf.setBackend('webgpu');
  for (const kind of ['bow-finetune', 'cnn'] as const) {
    const whole = createModel(config(kind), { embeddings: embeddings() });
    const first = createModel(config(kind), { embeddings: embeddings() });
    const resumed = createModel(config(kind), { embeddings: embeddings() });
    try {
      const batches = [batch(), batch(2), batch(1), batch()];
      const wholeLosses: number[] = [];
      for (const b of batches) wholeLosses.push((await whole.trainStepAsync(b)).loss);
      const losses: number[] = [];
      for (const b of batches.slice(0, 2)) losses.push((await first.trainStepAsync(b)).loss);
      resumed.setTrainingState(decodeTrainingState(encodeTrainingState(await first.getTrainingState())));
      for (const b of batches.slice(2)) losses.push((await resumed.trainStepAsync(b)).loss);
      const [a, b] = [await resumed.getTrainingState(), await whole.getTrainingState()];
      await checkGpuErrors();
      assert.ok(maxRelDiff(losses, wholeLosses, 1e-3) < 1e-6, `${kind}: losses ${losses} vs ${wholeLosses}`);
      assert.ok(maxRelDiff(a.params, b.params, 1e-2) < 1e-6, `${kind}: params`);
      assert.ok(maxRelDiff(a.embeddings, b.embeddings, 1e-2) < 1e-6, `${kind}: embeddings`);
      assert.ok(maxRelDiff(a.adam!.m, b.adam!.m, 1e-4) < 1e-5, `${kind}: adam.m`);
      assert.deepEqual([a.step, a.adam!.accBeta1, a.adam!.accBeta2], [b.step, b.adam!.accBeta1, b.adam!.accBeta2]);
    } finally {
      whole.dispose();
      first.dispose();
      resumed.dispose();
    }
  }
});

test('webgpu: an accumulated step over two chunks equals trainStepAsync on the whole batch', async (t) => {
  if (adapter === null) return t.skip(SKIP);
  await tf.setBackend('webgpu');
  const whole = batch();
  const T = whole.maxLength;
  // Rows 0-1 (T = 5) and row 2 alone, trimmed to its one token.
  const chunks: Batch[] = [
    { inputIds: whole.inputIds.slice(0, 2 * T), batchSize: 2, maxLength: T, labels: whole.labels!.slice(0, 2) },
    { inputIds: whole.inputIds.slice(2 * T, 2 * T + 1), batchSize: 1, maxLength: 1, labels: whole.labels!.slice(2) },
  ];
  for (const kind of ['bow-finetune', 'cnn'] as const) {
    const ref = createModel(config(kind), { embeddings: embeddings() });
    const acc = createModel(config(kind), { embeddings: embeddings() });
    try {
      for (let i = 0; i < 2; i++) {
        const want = await ref.trainStepAsync(whole);
        const got = await acc.trainStepAccumulatedAsync(chunks);
        assert.ok(maxRelDiff([got.loss], [want.loss], 1e-3) < 1e-5, `${kind}: loss ${got.loss} vs ${want.loss}`);
        assert.equal(got.examples, 3);
      }
      const [a, b] = [await acc.getWeightsAsync(), await ref.getWeightsAsync()];
      await checkGpuErrors();
      a.forEach((w, i) => assert.ok(maxRelDiff(w.values, b[i]!.values, 1e-2) < 1e-5, `${kind} ${w.name}`));
    } finally {
      ref.dispose();
      acc.dispose();
    }
  }
});
