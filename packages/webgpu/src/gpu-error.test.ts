import test from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend, WebGPUProgram } from '@tensorflow/tfjs-backend-webgpu';
import { initWebgpu, checkGpuErrors, webgpuDevice, isGpuValidationError, GpuValidationError } from './setup.ts';

const NO_ADAPTER = 'no WebGPU adapter on this machine (install one: packages/webgpu/scripts/install-software-gpu.sh)';

test('GpuValidationError carries every message and names the first', () => {
  const e = new GpuValidationError(['bad shader', 'invalid pipeline']);
  assert.equal(e.name, 'GpuValidationError');
  assert.deepEqual(e.errors, ['bad shader', 'invalid pipeline']);
  assert.match(e.message, /bad shader.*1 more/);
  assert.equal(isGpuValidationError(e), true);
  assert.equal(isGpuValidationError(new Error('bad shader')), false);
});

test('checkGpuErrors is a no-op before set-up', async () => {
  await checkGpuErrors();
});

const info = await initWebgpu({ allowSoftware: true, cpuHandoffThreshold: 0 });

/** A program whose WGSL does not type-check: writes a bool where an f32 is expected. */
class BrokenProgram implements WebGPUProgram {
  variableNames = ['A'];
  workgroupSize: [number, number, number] = [64, 1, 1];
  size = true;
  outputShape: number[];
  dispatchLayout = { x: [0] };
  dispatch: [number, number, number] = [1, 1, 1];
  shaderKey = 'ch8BrokenOnPurpose';
  constructor(n: number) {
    this.outputShape = [n];
  }
  getUserCode = () => `
    fn main(index : i32) {
      if (index < uniforms.size) {
        setOutputAtIndex(index, index > 0);
      }
    }
  `;
}

test('an invalid shader makes the next data() read throw GpuValidationError (not garbage)', async (t) => {
  if (info === null) return t.skip(NO_ADAPTER);
  await tf.setBackend('webgpu');
  const x = tf.tensor1d([1, 2, 3, 4]);
  const backend = tf.backend() as unknown as WebGPUBackend;
  const out = tf.engine().makeTensorFromTensorInfo(backend.runWebGPUProgram(new BrokenProgram(4), [x], 'float32'));
  await assert.rejects(
    out.data(),
    (e: unknown) =>
      isGpuValidationError(e) && e.errors.some((m) => m.includes('ch8BrokenOnPurpose') || m.includes('WGSL')),
  );
  out.dispose();
  x.dispose();
  // Reported once, then cleared: the next read works.
  assert.deepEqual(Array.from(await tf.mul(tf.tensor1d([1, 2]), 3).data()), [3, 6]);
});

test('checkGpuErrors throws for an error raised directly on the device', async (t) => {
  if (info === null) return t.skip(NO_ADAPTER);
  const device = webgpuDevice();
  assert.ok(device !== undefined);
  device.createShaderModule({ code: 'this is not WGSL', label: 'ch8-not-wgsl' });
  await assert.rejects(checkGpuErrors(), isGpuValidationError);
  await checkGpuErrors(); // cleared
});
