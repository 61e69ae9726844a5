import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { selectBackend } from '@ch8/backend/select';
import { InvalidInputError } from '@ch8/errors';
import { resolveTrainingConfig, type TrainingConfigInput } from './config.ts';
import { localFeed } from './feed.ts';
import { interruptAndResume, toyData } from './fixtures.ts';
import { train } from './run.ts';

await selectBackend({ prefer: 'cpu' });

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ch8-word-dropout-'));
});
after(() => rm(dir, { recursive: true, force: true }));

const cfg = (extra: Partial<TrainingConfigInput> = {}) =>
  resolveTrainingConfig({ model: 'mlp', epochs: 4, batchSize: 16, seed: 2, learningRate: 0.02, ...extra });

test('word dropout changes what the steps see, still learns the task, and resumes bit-identically', async () => {
  const config = cfg({ wordDropout: 0.3, patience: 4 });
  const plain = await train(cfg({ patience: 4 }), localFeed(toyData()));
  const { whole, resumed } = await interruptAndResume(config, dir);
  assert.notEqual(whole.epochs[0]!.trainLoss, plain.epochs[0]!.trainLoss);
  // The toy task's answer is known (fixtures.ts): well above chance with a third of the words gone.
  assert.ok(whole.devAccuracy! > 0.8, `dev accuracy ${whole.devAccuracy}`);
  assert.deepEqual(
    resumed.epochs.map((e) => [e.trainLoss, e.devAccuracy]),
    whole.epochs.map((e) => [e.trainLoss, e.devAccuracy]),
  );
  assert.deepEqual(resumed.weights, whole.weights);
});

test('word dropout out of [0, 1) or with full-batch steps is refused naming the field', () => {
  for (const input of [{ wordDropout: 1 }, { wordDropout: -0.2 }, { wordDropout: 0.1, batchSize: 0 }]) {
    assert.throws(
      () => cfg(input),
      (e: Error) => e instanceof InvalidInputError && e.field === 'word_dropout',
    );
  }
});
