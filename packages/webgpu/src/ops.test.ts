import test from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initWebgpu, checkGpuErrors } from './setup.ts';
import { maxRelDiff, runOn } from './test-helpers.ts';

const NO_ADAPTER = 'no WebGPU adapter on this machine (install one: packages/webgpu/scripts/install-software-gpu.sh)';
const info = await initWebgpu({ allowSoftware: true, cpuHandoffThreshold: 0 });

/** Seeded uniform values in [-1, 1). */
function values(n: number, seed: number): number[] {
  let s = seed >>> 0;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out.push(s / 2 ** 31 - 1);
  }
  return out;
}

const x23 = () => tf.tensor2d(values(6, 1), [2, 3]);
const x34 = () => tf.tensor2d(values(12, 2), [3, 4]);
const x243 = () => tf.tensor3d(values(24, 3), [2, 4, 3]);

/** Ops the model zoo uses, forward and backward, each compared with the cpu backend. */
const CASES: Record<string, () => tf.Tensor | tf.Tensor[]> = {
  'add/mul/sub/div broadcast': () =>
    tf.div(tf.sub(tf.mul(x23(), tf.tensor1d([1, 2, 3])), 0.5), tf.add(tf.abs(x23()), 1)),
  'unary: exp log sigmoid tanh relu sqrt neg': () => [
    tf.exp(x23()),
    tf.log(tf.add(tf.abs(x23()), 0.1)),
    tf.sigmoid(x23()),
    tf.tanh(x23()),
    tf.relu(x23()),
    tf.sqrt(tf.abs(x23())),
    tf.neg(x23()),
  ],
  'softplus / logSigmoid': () => [tf.softplus(x23()), tf.logSigmoid(x23())],
  matMul: () => tf.matMul(x23(), x34()),
  'matMul transposeA/transposeB': () => [tf.matMul(x34(), x34(), true, false), tf.matMul(x23(), x23(), false, true)],
  'batched matMul': () => tf.matMul(x243(), tf.tensor3d(values(18, 4), [2, 3, 3])),
  'reductions float': () => [
    tf.sum(x243(), 1),
    tf.mean(x243(), [0, 2]),
    tf.max(x243(), 1),
    tf.min(x243(), -1),
    tf.logSumExp(x23(), 1),
  ],
  softmax: () => tf.softmax(x23()),
  'transpose float 3D': () => tf.transpose(x243(), [2, 0, 1]),
  'gather rows (embedding lookup)': () => tf.gather(x34(), tf.tensor1d([2, 0, 2, 1], 'int32')),
  'unsortedSegmentSum (gather gradient)': () => tf.unsortedSegmentSum(x34(), tf.tensor1d([1, 0, 1], 'int32'), 3),
  'concat / slice / stack / reverse': () => [
    tf.concat([x23(), x23()], 1),
    tf.slice(x243(), [0, 1, 0], [2, 2, 3]),
    tf.stack([x23(), x23()], 1),
    tf.reverse(x243(), 1),
  ],
  'where / greater / equal / cast': () => [
    tf.where(tf.greater(x23(), 0), x23(), tf.zerosLike(x23())),
    tf.cast(tf.equal(tf.tensor1d([0, 3, 0], 'int32'), 0), 'float32'),
  ],
  conv1d: () =>
    tf.conv1d(tf.tensor3d(values(2 * 5 * 3, 5), [2, 5, 3]), tf.tensor3d(values(2 * 3 * 4, 6), [2, 3, 4]), 1, 'same'),
  'conv1d gradients': () => {
    const x = tf.tensor3d(values(2 * 5 * 3, 5), [2, 5, 3]);
    const w = tf.tensor3d(values(2 * 3 * 4, 6), [2, 3, 4]);
    const g = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
      tf.sum(tf.square(tf.conv1d(a as tf.Tensor3D, b as tf.Tensor3D, 1, 'valid'))),
    );
    return g([x, w]);
  },
  'dense + sigmoid cross-entropy gradients': () => {
    const g = tf.grads((w: tf.Tensor, b: tf.Tensor) => {
      const z = tf.add(tf.matMul(x23(), w), b);
      return tf.losses.sigmoidCrossEntropy(tf.tensor2d([[1], [0]]), z);
    });
    return g([tf.tensor2d(values(3, 7), [3, 1]), tf.tensor1d([0.1])]);
  },
  'gather gradient': () =>
    tf.grad((t: tf.Tensor) =>
      tf.sum(tf.mul(tf.gather(t, tf.tensor1d([2, 0, 2], 'int32')), tf.tensor2d(values(12, 8), [3, 4]))),
    )(x34()),
  'tanh/sigmoid chain gradient (RNN cell)': () =>
    tf.grad((h: tf.Tensor) => tf.sum(tf.mul(tf.sigmoid(tf.matMul(h, x34())), tf.tanh(tf.matMul(h, x34())))))(
      tf.tensor2d(values(6, 9), [2, 3]),
    ),
  'max pooling over time with mask': () => {
    const x = x243();
    const mask = tf
      .tensor2d([
        [1, 1, 0, 0],
        [1, 1, 1, 0],
      ])
      .expandDims(2);
    return tf.max(tf.add(tf.mul(x, mask), tf.mul(tf.sub(1, mask), -1e9)), 1);
  },
};

for (const [name, f] of Object.entries(CASES)) {
  test(`webgpu matches cpu: ${name}`, async (t) => {
    if (info === null) return t.skip(NO_ADAPTER);
    const want = await runOn('cpu', f);
    const got = await runOn('webgpu', f);
    await checkGpuErrors();
    assert.equal(got.length, want.length);
    for (let i = 0; i < want.length; i++) {
      const w = want[i]!;
      const g = got[i]!;
      assert.deepEqual(g.shape, w.shape, `output ${i} shape`);
      assert.equal(g.dtype, w.dtype, `output ${i} dtype`);
      const d = maxRelDiff(g.values, w.values, 0.1);
      assert.ok(d < 1e-5, `output ${i}: max relative difference ${d}`);
    }
  });
}
