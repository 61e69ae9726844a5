/**
 * The gateway on tfjs's WebGPU backend: models loaded there, every read asynchronous. Batched, padded predictions
 * through the gateway against the model library's own output for each text alone, on the same backend; GPU
 * validation errors fail the test. The CPU handoff threshold is 0, so even these tiny tensors run as shaders.
 * Skipped, with the reason, where no WebGPU adapter exists (packages/webgpu/scripts/install-software-gpu.sh
 * installs a software one).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GatewayService } from '@ch8/contracts/gateway';
import { createClient } from '@ch8/service-kit/client';
import { checkGpuErrors, initWebgpu } from '@ch8/webgpu/setup';
import { exportVersion, scratchRoot, startGateway, tinyModelAsync, TOKENS } from './fixtures.ts';

const adapter = await initWebgpu({ allowSoftware: true, cpuHandoffThreshold: 0 });
const skip = adapter === null ? 'no WebGPU adapter on this machine (install-software-gpu.sh installs one)' : undefined;

test('predictions on webgpu equal the model library on each text alone', { skip }, async () => {
  const repo = await scratchRoot();
  const model = await tinyModelAsync('cnn', 5);
  await exportVersion(repo.root, 'gpu', model);
  const gw = await startGateway(repo.root, { CH8_GATEWAY_MAX_DELAY_MS: '20' });
  const client = createClient(GatewayService, gw.address);
  try {
    const texts = [
      ['great', 'movie'],
      ['the', 'plot', 'was', 'dull', '.'],
      ['i', 'loved', 'it', '!'],
    ];
    // Three concurrent calls: batched into one padded model call.
    const answers = await Promise.all(texts.map((t) => client.predict({ texts: [t.join(' ')] })));
    for (const [i, tokens] of texts.entries()) {
      const ids = Int32Array.from(tokens.map((t) => TOKENS.indexOf(t)));
      const [want] = await model.predictProbabilitiesAsync({ inputIds: ids, batchSize: 1, maxLength: ids.length });
      const got = answers[i]!.predictions[0]!;
      assert.deepEqual(got.tokens, tokens);
      assert.ok(Math.abs(got.probability - want!) < 1e-5, `${tokens.join(' ')}: ${got.probability} vs ${want}`);
    }
    await checkGpuErrors();
  } finally {
    client.close();
    await gw.stop();
    model.dispose();
    await repo.remove();
  }
});
