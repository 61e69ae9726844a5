import test from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initWebgpu, checkGpuErrors, isGpuValidationError } from './setup.ts';
import { fixedKernelNames, upstreamKernel } from './kernels.ts';
import { maxRelDiff, runOn } from './test-helpers.ts';

const NO_ADAPTER = 'no WebGPU adapter on this machine (install one: packages/webgpu/scripts/install-software-gpu.sh)';
const info = await initWebgpu({ allowSoftware: true, cpuHandoffThreshold: 0 });

/** Seeded int32 values in [-range, range). */
function ints(n: number, seed: number, range = 1000): number[] {
  let s = seed >>> 0;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    out.push((s % (2 * range)) - range);
  }
  return out;
}

function size(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

const TRANSPOSES: Array<[number[], number[]]> = [
  [[5], [0]],
  [
    [3, 5],
    [1, 0],
  ],
  [
    [2, 3, 4],
    [2, 0, 1],
  ],
  [
    [2, 3, 4],
    [0, 2, 1],
  ],
  [
    [2, 3, 4],
    [1, 0, 2],
  ],
  [
    [2, 1, 3, 2],
    [3, 1, 0, 2],
  ],
  [
    [2, 2, 3, 1, 2],
    [4, 3, 2, 1, 0],
  ],
];

test('the fixes are registered over the upstream kernels', (t) => {
  if (info === null) return t.skip(NO_ADAPTER);
  assert.deepEqual(
    fixedKernelNames().sort(),
    ['All', 'Any', 'ArgMax', 'ArgMin', 'Max', 'Mean', 'Min', 'Prod', 'Sum', 'Transpose'].sort(),
  );
});

test('upstream int32 transpose is broken: its invalid shader now fails loudly instead of reading zeros', async (t) => {
  if (info === null) return t.skip(NO_ADAPTER);
  await tf.setBackend('webgpu');
  const upstream = upstreamKernel('Transpose');
  assert.ok(upstream !== undefined);
  const x = tf.tensor3d([1, 2, 3, 4, 5, 6, 7, 8], [2, 2, 2], 'int32');
  const out = upstream({ inputs: { x }, backend: tf.backend(), attrs: { perm: [2, 0, 1] } }) as tf.TensorInfo;
  const y = tf.engine().makeTensorFromTensorInfo(out);
  await assert.rejects(
    y.data(),
    (e: unknown) => isGpuValidationError(e) && /TransposeProgram|setOutputAtIndex/.test(e.message),
  );
  x.dispose();
  y.dispose();
  // The errors were reported once; the device keeps working.
  assert.deepEqual(Array.from(await tf.add(tf.tensor1d([1], 'int32'), 1).data()), [2]);
  await checkGpuErrors();
});

for (const dtype of ['int32', 'bool'] as const) {
  for (const [shape, perm] of TRANSPOSES) {
    test(`${dtype} transpose ${JSON.stringify(shape)} perm ${JSON.stringify(perm)} matches cpu`, async (t) => {
      if (info === null) return t.skip(NO_ADAPTER);
      const data = ints(size(shape), shape.length * 7 + perm[0]!).map((v) => (dtype === 'bool' ? (v > 0 ? 1 : 0) : v));
      const f = () => tf.transpose(tf.tensor(data, shape, dtype), perm);
      const want = await runOn('cpu', f);
      const got = await runOn('webgpu', f);
      await checkGpuErrors();
      assert.deepEqual(got, want);
    });
  }
}

test('int32 transpose keeps values beyond 2^24 exact (upstream rank-2 path rounds them through f32)', async (t) => {
  if (info === null) return t.skip(NO_ADAPTER);
  const big = [16777217, -16777219, 2147483647, -2147483648, 123456789, 7];
  const got = await runOn('webgpu', () => tf.transpose(tf.tensor2d(big, [2, 3], 'int32')));
  assert.deepEqual(got[0]!.values, [16777217, -2147483648, -16777219, 123456789, 2147483647, 7]);
});

const REDUCE: Record<string, (x: tf.Tensor, b: tf.Tensor) => tf.Tensor[]> = {
  sum: (x) => [tf.sum(x, 0), tf.sum(x, [0, 2]), tf.sum(x, 1, true), tf.sum(x, -1)],
  prod: (x) => [tf.prod(tf.clipByValue(x, -3, 3), 1)],
  max: (x) => [tf.max(x, 0), tf.max(x, [0, 1], true)],
  min: (x) => [tf.min(x, 1), tf.min(x, [1, 2])],
  mean: (x) => [tf.mean(x, 0), tf.mean(x, [0, 2], true)],
  argMax: (x) => [tf.argMax(x, 0), tf.argMax(x, 1)],
  argMin: (x) => [tf.argMin(x, 0), tf.argMin(x, 1)],
  'any/all': (_x, b) => [tf.any(b, 0), tf.all(b, [0, 2]), tf.any(b, 1, true)],
};

for (const [name, f] of Object.entries(REDUCE)) {
  test(`int32/bool ${name} over outer axes matches cpu`, async (t) => {
    if (info === null) return t.skip(NO_ADAPTER);
    const shape = [3, 4, 5];
    const xs = ints(size(shape), 11, 50);
    const g = () =>
      f(
        tf.tensor(xs, shape, 'int32'),
        tf.tensor(
          xs.map((v) => (v % 3 === 0 ? 1 : 0)),
          shape,
          'bool',
        ),
      );
    const want = await runOn('cpu', g);
    const got = await runOn('webgpu', g);
    await checkGpuErrors();
    assert.equal(got.length, want.length);
    for (let i = 0; i < want.length; i++) {
      const w = want[i]!;
      const o = got[i]!;
      assert.deepEqual([o.shape, o.dtype], [w.shape, w.dtype], `output ${i}`);
      // Integer results are exact; a float mean may differ in the last bit (another summation order).
      if (w.dtype === 'float32')
        assert.ok(maxRelDiff(o.values, w.values) < 1e-6, `output ${i}: ${o.values} vs ${w.values}`);
      else assert.deepEqual(o.values, w.values, `output ${i}`);
    }
  });
}
