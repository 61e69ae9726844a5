import test from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { isInvalidInput, isFailedPrecondition } from './test-helpers.ts';
import { initWebgpu, isSoftwareAdapter, checkGpuErrors, webgpuDevice } from './setup.ts';

const NO_ADAPTER = 'no WebGPU adapter on this machine (install one: packages/webgpu/scripts/install-software-gpu.sh)';

// Validation comes before any probing, so this runs everywhere.
test('initWebgpu rejects a bad cpuHandoffThreshold with InvalidInputError', async () => {
  await assert.rejects(initWebgpu({ allowSoftware: true, cpuHandoffThreshold: -1 }), isInvalidInput);
  await assert.rejects(initWebgpu({ allowSoftware: true, cpuHandoffThreshold: 0.5 }), isInvalidInput);
});

test('isSoftwareAdapter tells CPU implementations from hardware', () => {
  assert.equal(
    isSoftwareAdapter({ device: 'llvmpipe-llvm-15-0-6-256-bits-', description: 'OpenGL ES 3.2 Mesa 22.3.6' }),
    true,
  );
  assert.equal(
    isSoftwareAdapter({ vendor: 'mesa', device: 'llvmpipe (LLVM 19.1.7, 256 bits)', description: 'lavapipe' }),
    true,
  );
  assert.equal(
    isSoftwareAdapter({ vendor: 'google', architecture: 'swiftshader', device: 'SwiftShader Device' }),
    true,
  );
  assert.equal(
    isSoftwareAdapter({ vendor: 'nvidia', architecture: 'ada', device: 'NVIDIA H100', description: '' }),
    false,
  );
  assert.equal(
    isSoftwareAdapter({ vendor: 'amd', architecture: 'rdna-3', device: '', description: 'AMD Radeon RX 7900' }),
    false,
  );
  assert.equal(isSoftwareAdapter({ vendor: 'nvidia', isFallbackAdapter: true }), true);
  assert.equal(isSoftwareAdapter({}), false);
});

const info = await initWebgpu({ allowSoftware: true, cpuHandoffThreshold: 0 });

test('initWebgpu reports the adapter and makes tf.setBackend("webgpu") work', async (t) => {
  if (info === null) return t.skip(NO_ADAPTER);
  assert.equal(typeof info.software, 'boolean');
  assert.ok(info.api.length > 0);
  assert.ok(info.device.length + info.description.length + info.vendor.length > 0, 'the adapter names itself');
  assert.ok(tf.engine().registryFactory['webgpu'] !== undefined);
  assert.equal(await tf.setBackend('webgpu'), true);
  assert.equal(tf.getBackend(), 'webgpu');
  assert.ok(webgpuDevice() !== undefined);
  // A second call returns the same adapter and changes nothing.
  assert.deepEqual(await initWebgpu({ allowSoftware: true }), info);
  assert.deepEqual(await initWebgpu({ allowSoftware: true, cpuHandoffThreshold: 0 }), info);
});

test('a software adapter is refused unless allowSoftware', async (t) => {
  if (info === null) return t.skip(NO_ADAPTER);
  if (!info.software) return t.skip(`the adapter is hardware (${info.device}); nothing to refuse`);
  assert.equal(await initWebgpu({ allowSoftware: false }), null);
});

test('the CPU handoff threshold cannot change after set-up', async (t) => {
  if (info === null) return t.skip(NO_ADAPTER);
  await assert.rejects(initWebgpu({ allowSoftware: true, cpuHandoffThreshold: 1000 }), isFailedPrecondition);
});

test('with threshold 0 tiny ops run as shaders and leave their results on the GPU', async (t) => {
  if (info === null) return t.skip(NO_ADAPTER);
  await tf.setBackend('webgpu');
  const device = webgpuDevice();
  assert.ok(device !== undefined);
  let modules = 0;
  const create = device.createShaderModule.bind(device);
  device.createShaderModule = (d: GPUShaderModuleDescriptor) => {
    modules++;
    return create(d);
  };
  try {
    const a = tf.tensor1d([1, 2, 3]);
    const out = tf.mul(tf.add(a, 1), 2.5);
    const backend = tf.backend() as unknown as {
      tensorMap: { get(id: object): { values?: unknown; resource?: unknown } };
    };
    const entry = backend.tensorMap.get(out.dataId);
    assert.equal(entry.values ?? null, null, 'the result lives in a GPU buffer, not in a CPU array');
    assert.ok(entry.resource != null);
    assert.deepEqual(Array.from(await out.data()), [5, 7.5, 10]);
    assert.ok(modules >= 1, 'at least one WGSL module was compiled');
    await checkGpuErrors();
  } finally {
    device.createShaderModule = create;
  }
});

test('dataSync() of a GPU tensor fails with a FailedPreconditionError that says to use data()', async (t) => {
  if (info === null) return t.skip(NO_ADAPTER);
  await tf.setBackend('webgpu');
  const a = tf.tensor1d([1, 2, 3]);
  assert.deepEqual(Array.from(a.dataSync()), [1, 2, 3], 'data still on the CPU reads synchronously');
  const b = tf.mul(a, 2);
  assert.throws(
    () => b.dataSync(),
    (e: unknown) => isFailedPrecondition(e) && /await tensor\.data\(\)/.test(e.message),
  );
  assert.throws(() => b.arraySync(), isFailedPrecondition);
  assert.deepEqual(Array.from(await b.data()), [2, 4, 6]);
  tf.dispose([a, b]);
});
