import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { selectBackend } from '@ch8/backend/select';
import { epochBatches } from '@ch8/batching/plan';
import { InvalidInputError } from '@ch8/errors';
import { createModel, type NamedWeight, type SentimentModel } from '@ch8/models/model';
import { AVERAGE_EVERY, WeightAverage } from './average.ts';
import { decodeCheckpoint, encodeCheckpoint } from './checkpoints.ts';
import { resolveTrainingConfig, type TrainingConfigInput } from './config.ts';
import { localFeed } from './feed.ts';
import { interruptAndResume, toyData } from './fixtures.ts';
import { train } from './run.ts';

await selectBackend({ prefer: 'cpu' });

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ch8-average-'));
});
after(() => rm(dir, { recursive: true, force: true }));

const cfg = (extra: Partial<TrainingConfigInput> = {}) =>
  resolveTrainingConfig({ model: 'bow-finetune', epochs: 3, batchSize: 16, seed: 3, learningRate: 0.05, ...extra });

/** A stand-in for a model that hands out a scripted sequence of weights and records what is set. */
function scriptedModel(sequence: NamedWeight[][]): SentimentModel & { set: NamedWeight[][] } {
  let i = 0;
  const set: NamedWeight[][] = [];
  return {
    set,
    getWeightsAsync: async () => sequence[i++]!.map((w) => ({ ...w, values: w.values.slice() })),
    setWeights: (ws: readonly NamedWeight[]) => void set.push(ws.map((w) => ({ ...w, values: w.values.slice() }))),
  } as unknown as SentimentModel & { set: NamedWeight[][] };
}

describe('WeightAverage', () => {
  test('folds weights as an exponential moving average (checked against float64 arithmetic)', async () => {
    const decay = 0.99;
    const every = 4;
    const n = 6;
    const sequence: NamedWeight[][] = [];
    for (let s = 0; s < n; s++) {
      sequence.push([
        { name: 'a', shape: [3], values: Float32Array.from([s, -2 * s, Math.sin(s)]) },
        { name: 'embeddings', shape: [2, 2], values: Float32Array.from([0, 0, s * s, 1 / (s + 1)]) },
      ]);
    }
    const avg = new WeightAverage(decay, null, every);
    const model = scriptedModel(sequence);
    for (let s = 0; s < n; s++) await avg.fold(model);
    // float64: the first fold starts the average, every later one mixes with k = decay^every.
    const k = decay ** every;
    const expect = sequence[0]!.map((w) => Array.from(w.values));
    for (let s = 1; s < n; s++) {
      sequence[s]!.forEach((w, j) => {
        for (let i = 0; i < w.values.length; i++) expect[j]![i] = k * expect[j]![i]! + (1 - k) * w.values[i]!;
      });
    }
    const got = avg.weights!;
    assert.deepEqual(
      got.map((w) => w.name),
      ['a', 'embeddings'],
    );
    got.forEach((w, j) =>
      w.values.forEach((v, i) => assert.ok(Math.abs(v - expect[j]![i]!) < 1e-5, `${w.name}[${i}]`)),
    );
    assert.equal(avg.due(every), true);
    assert.equal(avg.due(every + 1), false);
  });

  test('scores with the average in place, then puts the raw weights back', async () => {
    const raw = [{ name: 'a', shape: [2], values: Float32Array.from([1, 2]) }];
    const avg = new WeightAverage(0.5, [{ name: 'a', shape: [2], values: Float32Array.from([7, 8]) }]);
    const model = scriptedModel([raw]);
    const seen = await avg.withAverage(model, async () => model.set.at(-1)![0]!.values[0]);
    assert.equal(seen, 7);
    assert.deepEqual(Array.from(model.set.at(-1)![0]!.values), [1, 2]);
  });

  test('a decay outside (0, 1) is refused', () => {
    assert.throws(() => new WeightAverage(1), InvalidInputError);
    assert.throws(() => new WeightAverage(0), InvalidInputError);
    assert.throws(
      () => resolveTrainingConfig({ model: 'mlp', weightAverage: 1 }),
      (e: Error) => {
        return e instanceof InvalidInputError && e.field === 'weight_average';
      },
    );
    assert.throws(() => resolveTrainingConfig({ model: 'mlp', weightAverage: -0.1 }), InvalidInputError);
  });
});

describe('a run with weight averaging', () => {
  test('exports and scores the average of the weights, not the last step', async () => {
    const data = toyData();
    const result = await train(cfg({ weightAverage: 0.9, devSplit: null }), localFeed(data));
    const plain = await train(cfg({ devSplit: null }), localFeed(data));
    // Training itself is unchanged by averaging (the same loss per epoch, up to float rounding: reading the weights
    // brings the lazily updated embedding rows up to date earlier than training alone would) ...
    result.epochs.forEach((e, i) => assert.ok(Math.abs(e.trainLoss - plain.epochs[i]!.trainLoss) < 1e-6));
    // ... but what is kept is not the last step's weights.
    const dense = (r: typeof result) => r.weights.find((w) => w.name !== 'embeddings')!.values;
    assert.notDeepEqual(Array.from(dense(result)), Array.from(dense(plain)));
    // The train split's score is that of the exported weights, computed again by a fresh model.
    const m = createModel({ kind: 'bow-finetune', vocabSize: data.tokens.length, dim: data.dim });
    try {
      m.setWeights(result.weights);
      const steps = Math.ceil(data.splits[0]!.examples.length / 16) * 3;
      assert.ok(steps >= AVERAGE_EVERY);
      const r = m.evaluate(epochBatches(data.splits[0]!.examples, { batchSize: 64, shuffle: false }));
      assert.ok(Math.abs(r.accuracy - result.splits['train']!.accuracy) < 1e-9);
    } finally {
      m.dispose();
    }
  });

  test('resumes bit-identically from a checkpoint, which stores the average', async () => {
    const config = cfg({ weightAverage: 0.95, patience: 3, epochs: 4 });
    const { whole, resumed, store } = await interruptAndResume(config, dir);
    const saved = await store.load();
    assert.ok(saved?.average !== null && saved?.average !== undefined);
    const again = decodeCheckpoint(encodeCheckpoint(saved), 'x');
    assert.deepEqual(again.average, saved.average);
    assert.deepEqual(again.best, saved.best);
    assert.deepEqual(
      resumed.epochs.map((e) => [e.trainLoss, e.devAccuracy, e.devLoss]),
      whole.epochs.map((e) => [e.trainLoss, e.devAccuracy, e.devLoss]),
    );
    assert.deepEqual(resumed.weights, whole.weights);
  });
});
