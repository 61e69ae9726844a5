import test from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { probeAdaptersIsolated } from './setup.ts';

const setupUrl = new URL('./setup.ts', import.meta.url).href;
const packageDir = fileURLToPath(new URL('..', import.meta.url));
/** What native libraries print on their own while probing (Mesa/Vulkan loader, Dawn). */
const NATIVE_NOISE = /XDG_RUNTIME_DIR|Warning: |While initializing adapter/;

/** `initWebgpu({ allowSoftware: false, isolatedProbe })` in a fresh process: its result and its standard error. */
function initInChild(isolatedProbe: boolean): Promise<{ result: unknown; stderr: string }> {
  const script = [
    `const { initWebgpu } = await import(${JSON.stringify(setupUrl)});`,
    `const info = await initWebgpu({ allowSoftware: false, isolatedProbe: ${isolatedProbe} });`,
    'process.stdout.write(JSON.stringify({ result: info }));',
    'process.exit(0);',
  ].join('\n');
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', script],
      { cwd: packageDir, timeout: 120_000 },
      (error, stdout, stderr) => {
        if (error !== null) return reject(error);
        resolve({ result: (JSON.parse(stdout) as { result: unknown }).result, stderr });
      },
    );
  });
}

const seen = await probeAdaptersIsolated();

test('the isolated probe lists the adapters Dawn reaches, and says whether one is hardware', (t) => {
  if (seen.error !== undefined) return t.skip(`Dawn could not be loaded here: ${seen.error}`);
  for (const a of seen.adapters) {
    assert.ok(['vulkan', 'opengles', 'opengl', 'metal', 'd3d12', 'd3d11'].includes(a.api), a.api);
    assert.equal(typeof a.device, 'string');
  }
  if (seen.adapters.length === 0) assert.equal(seen.hardware, false);
});

test('without a hardware adapter, refusing software GPUs prints none of the native probing noise', async (t) => {
  if (seen.hardware) return t.skip('this machine has a hardware adapter: webgpu is used, and may print');
  const quiet = await initInChild(true);
  assert.equal(quiet.result, null);
  assert.doesNotMatch(quiet.stderr, NATIVE_NOISE);
  if (seen.adapters.length === 0) return; // no software adapter either: the in-process probe is quiet too
  // The contrast: probing in-process reaches the same software adapter and lets the libraries print.
  const loud = await initInChild(false);
  assert.equal(loud.result, null);
  assert.match(loud.stderr, NATIVE_NOISE);
});
