import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { isInvalidInput } from '@ch8/errors';
import { BACKENDS, selectBackend } from './select.ts';

test('auto tries backends best first and reports each one skipped, with a reason', async () => {
  const lines: string[] = [];
  const info = await selectBackend({ log: (l) => lines.push(l) });
  const chosen = BACKENDS.indexOf(info.backend);
  assert.ok(chosen >= 0);
  assert.deepEqual(
    info.fallbacks.map((f) => f.backend),
    BACKENDS.slice(0, chosen),
  );
  for (const f of info.fallbacks) assert.ok(f.reason.length > 10, `reason for ${f.backend}: ${f.reason}`);
  assert.equal(info.tfBackend, tf.getBackend());
  assert.equal(lines.length, chosen + 1);
  assert.match(lines.at(-1) ?? '', new RegExp(`^backend ${info.backend}: selected`));
  // Here (no libtensorflow, no hardware GPU) that means wasm, with SIMD, reported as such.
  const nativeMissing = info.fallbacks.filter((f) => /no native addon|not installed/.test(f.reason)).length === 2;
  if (nativeMissing && info.fallbacks.some((f) => f.backend === 'webgpu')) {
    assert.equal(info.backend, 'wasm');
    assert.equal(info.tfBackend, 'wasm');
    assert.match(info.device, /^CPU .*, wasm (SIMD|no SIMD), 1 thread$/);
    assert.match(info.fallbacks[0]?.reason ?? '', /pnpm rebuild @tensorflow\/tfjs-node-gpu/);
  }
});

test('training kernels are in place after selecting wasm', async () => {
  const info = await selectBackend({ prefer: 'wasm' });
  assert.equal(info.backend, 'wasm');
  assert.deepEqual(info.fallbacks, []);
  assert.ok(tf.getKernel('UnsortedSegmentSum', 'wasm'));
  assert.ok(tf.getKernel('Conv2DBackpropFilter', 'wasm'));
  // An embedding gradient runs on wasm.
  const e = tf.tensor2d([1, 2, 3, 4, 5, 6], [3, 2]);
  const g = tf.grad((t: tf.Tensor) => tf.gather(t, tf.tensor1d([2, 2, 0], 'int32')).sum())(e);
  assert.deepEqual(g.arraySync(), [
    [1, 1],
    [0, 0],
    [2, 2],
  ]);
});

test("prefer 'cpu' gives the cpu backend", async () => {
  const info = await selectBackend({ prefer: 'cpu' });
  assert.equal(info.backend, 'cpu');
  assert.equal(info.tfBackend, 'cpu');
  assert.equal(tf.getBackend(), 'cpu');
  assert.deepEqual(info.fallbacks, []);
  assert.match(info.device, /plain JavaScript/);
});

test('an unknown preferred backend is an InvalidInputError naming the field', async () => {
  await assert.rejects(
    selectBackend({ prefer: 'tpu' as never }),
    (e: unknown) => isInvalidInput(e) && e.field === 'prefer' && /unknown backend "tpu"/.test(e.message),
  );
});

test('an unavailable preferred backend fails with a typed error and the reason, and changes nothing', async () => {
  await selectBackend({ prefer: 'cpu' });
  let info;
  try {
    info = await selectBackend({ prefer: 'tfjs-node' });
  } catch (e) {
    assert.equal((e as Error).name, 'FailedPreconditionError');
    assert.match((e as Error).message, /backend tfjs-node is not available: .*tfjs-node/);
    assert.equal(tf.getBackend(), 'cpu');
    return;
  }
  // Only where libtensorflow is really installed.
  assert.equal(info.backend, 'tfjs-node');
  assert.equal(info.tfBackend, 'tensorflow');
});

test("prefer 'webgpu' takes a software adapter too, and reports it", async () => {
  let info;
  try {
    info = await selectBackend({ prefer: 'webgpu' });
  } catch (e) {
    // No adapter at all on this machine (no Vulkan / GL driver): a typed error with the reason.
    assert.equal((e as Error).name, 'FailedPreconditionError');
    assert.match((e as Error).message, /backend webgpu is not available/);
    return;
  }
  assert.equal(info.backend, 'webgpu');
  assert.equal(info.tfBackend, 'webgpu');
  assert.ok(info.adapter);
  assert.match(info.device, /^GPU .*WebGPU over /);
  if (info.adapter.software) assert.match(info.device, /software\)$/);
  const y = await tf.matMul(tf.ones([2, 3]), tf.ones([3, 2])).data();
  assert.deepEqual(Array.from(y), [3, 3, 3, 3]);
  // And back to wasm in the same process.
  assert.equal((await selectBackend({ prefer: 'wasm' })).tfBackend, 'wasm');
});
