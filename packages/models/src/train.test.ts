import test from 'node:test';
import assert from 'node:assert/strict';
import { selectBackend } from '@ch8/backend/select';
import { CancelledError, InvalidInputError } from '@ch8/errors';
import { createModel } from './model.ts';
import { fit, type EpochProgress, type StepProgress } from './train.ts';
import { LABELS, ROWS, batchOf, tinyConfig, tinyEmbeddings } from './fixtures.ts';

await selectBackend({ prefer: 'wasm' });

test('fit reports every step and epoch, evaluates, and learns', async () => {
  const m = createModel(tinyConfig('mlp', { learningRate: 0.02 }), { embeddings: tinyEmbeddings() });
  try {
    const steps: StepProgress[] = [];
    const epochs: EpochProgress[] = [];
    const b = batchOf(ROWS, LABELS);
    const history = await fit(m, {
      epochs: 5,
      batches: () => [b, b, b],
      evalBatches: () => [b],
      onStep: (p) => steps.push(p),
      onEpoch: (p) => epochs.push(p),
    });
    assert.equal(steps.length, 15);
    assert.deepEqual(steps.at(-1)!.globalStep, 15);
    assert.equal(epochs.length, 5);
    assert.deepEqual(history, epochs);
    assert.ok(epochs.every((e) => e.trainExamples === 9 && e.eval?.examples === 3 && e.examplesPerSecond > 0));
    assert.ok(epochs[4]!.trainLoss < epochs[0]!.trainLoss, 'loss goes down');
  } finally {
    m.dispose();
  }
});

test('fit: cancellation is a CancelledError, empty epochs and bad epochs are InvalidInputError', async () => {
  const m = createModel(tinyConfig('bow-frozen'));
  try {
    const b = batchOf(ROWS, LABELS);
    const ac = new AbortController();
    let n = 0;
    await assert.rejects(
      fit(m, { epochs: 3, batches: () => [b, b, b], signal: ac.signal, onStep: () => ++n === 2 && ac.abort() }),
      CancelledError,
    );
    assert.equal(m.steps, 2);
    await assert.rejects(fit(m, { epochs: 1, batches: () => [] }), InvalidInputError);
    await assert.rejects(fit(m, { epochs: 0, batches: () => [b] }), InvalidInputError);
  } finally {
    m.dispose();
  }
});
