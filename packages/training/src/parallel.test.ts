/**
 * Data-parallel training (parallel.ts) against single-thread training on the same batches: real worker threads on
 * wasm, a small generated data set. The reference is the single-thread path (`SentimentModel.trainStep` and
 * `train` with workers 1), which computes each step in one forward and backward pass over the whole batch.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { create } from '@bufbuild/protobuf';
import { selectBackend } from '@ch8/backend/select';
import { epochBatches } from '@ch8/batching/plan';
import { RunConfigSchema } from '@ch8/contracts/trainer';
import { InvalidInputError } from '@ch8/errors';
import { createModel } from '@ch8/models/model';
import { resolveTrainingConfig, type TrainingConfigInput } from './config.ts';
import { exportRun } from './export.ts';
import { localFeed } from './feed.ts';
import { toyData } from './fixtures.ts';
import { DataParallel } from './parallel.ts';
import { trainingConfigFromProto, trainingConfigToProto } from './proto.ts';
import { train, type StepEvent } from './run.ts';

await selectBackend({ prefer: 'wasm' });

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ch8-parallel-'));
});
after(() => rm(dir, { recursive: true, force: true }));

const isField = (f: string) => (e: unknown) => e instanceof InvalidInputError && e.field === f;

const cfg = (extra: Partial<TrainingConfigInput>) =>
  resolveTrainingConfig({ model: 'bow-finetune', epochs: 2, batchSize: 12, seed: 3, learningRate: 0.05, ...extra });

/** Per-step mean losses from a run's step events (every step reported): each epoch's running means unrolled. */
function stepLosses(events: StepEvent[], batchSize: number, trainExamples: number): number[] {
  const out: number[] = [];
  let prev = { epoch: 0, sum: 0, n: 0 };
  for (const e of events) {
    if (e.epoch !== prev.epoch) prev = { epoch: e.epoch, sum: 0, n: 0 };
    const n = Math.min(e.step * batchSize, trainExamples);
    const sum = e.loss * n;
    out.push((sum - prev.sum) / (n - prev.n));
    prev = { epoch: e.epoch, sum, n };
  }
  return out;
}

describe('data-parallel training', () => {
  test('2 workers take the steps 1 worker takes: 50 steps, losses to 1e-5 (bow-finetune, sparse row updates)', async () => {
    const data = toyData();
    const batches = [...epochBatches(data.splits[0]!.examples, { batchSize: 10, seed: 1, shuffle: true })];
    for (const kind of ['bow-finetune'] as const) {
      const config = { kind, vocabSize: data.tokens.length, dim: data.dim, seed: 4, learningRate: 0.02 };
      const ref = createModel(config, { embeddings: data.matrix });
      const dp = await DataParallel.start(config, data.matrix, { workers: 2, backend: 'wasm' });
      try {
        for (let step = 0; step < 50; step++) {
          const batch = batches[step % batches.length]!;
          const want = ref.trainStep(batch);
          const got = await dp.step(batch);
          assert.ok(Math.abs(got.loss - want.loss) <= 1e-5, `${kind} step ${step}: ${got.loss} vs ${want.loss}`);
          assert.deepEqual([got.correct, got.examples], [want.correct, want.examples], `${kind} step ${step}`);
        }
        const dev = [...epochBatches(data.splits[1]!.examples, { batchSize: 80, shuffle: false })];
        assert.equal(dp.model.evaluate(dev).accuracy, ref.evaluate(dev).accuracy, `${kind}: dev accuracy`);
        assert.equal(dp.liveWorkers, 1);
      } finally {
        await dp.close();
        dp.model.dispose();
        ref.dispose();
      }
      assert.equal(dp.liveWorkers, 0, 'the worker thread ended');
    }
  });

  test('the replicas follow the primary through a learning-rate change, a restored state, new weights, a direct step', async () => {
    const data = toyData();
    const batches = [...epochBatches(data.splits[0]!.examples, { batchSize: 10, seed: 2, shuffle: true })];
    const config = { kind: 'mlp' as const, vocabSize: data.tokens.length, dim: data.dim, seed: 4, learningRate: 0.02 };
    const ref = createModel(config, { embeddings: data.matrix });
    const other = createModel(config, { embeddings: data.matrix });
    const dp = await DataParallel.start(config, data.matrix, { workers: 2, backend: 'wasm' });
    let next = 0;
    const steps = async (n: number, what: string) => {
      for (let i = 0; i < n; i++) {
        const batch = batches[next++ % batches.length]!;
        const want = ref.trainStep(batch);
        const got = await dp.step(batch);
        assert.ok(Math.abs(got.loss - want.loss) <= 1e-5, `${what} step ${i}: ${got.loss} vs ${want.loss}`);
      }
    };
    try {
      await steps(4, 'start');
      for (const m of [ref, dp.model]) m.setLearningRate(0.005);
      await steps(3, 'after setLearningRate');
      for (const b of batches.slice(-3)) other.trainStep(b);
      const state = await other.getTrainingState();
      for (const m of [ref, dp.model]) m.setTrainingState(state);
      await steps(3, 'after setTrainingState');
      for (const b of batches.slice(-2)) other.trainStep(b);
      const weights = other.getWeights();
      for (const m of [ref, dp.model]) m.setWeights(weights);
      await steps(3, 'after setWeights');
      for (const m of [ref, dp.model]) m.trainStep(batches[0]!);
      await steps(3, 'after a direct trainStep');
      const want = ref.getWeights();
      dp.model.getWeights().forEach((w, i) => {
        const ref = want[i]!.values;
        const scale = ref.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
        w.values.forEach((v, j) => assert.ok(Math.abs(v - ref[j]!) <= 1e-4 * scale + 1e-6, `${w.name}[${j}]`));
      });
    } finally {
      await dp.close();
      dp.model.dispose();
      ref.dispose();
      other.dispose();
    }
  });

  test('train() with workers 2 = workers 1: step losses, dev accuracy per epoch, recorded in result and export', async () => {
    for (const model of ['bow-finetune', 'cnn'] as const) {
      const runs = [];
      for (const workers of [1, 2]) {
        const steps: StepEvent[] = [];
        const messages: string[] = [];
        const config = cfg({ model, workers, maxBatchesPerEpoch: 25, epochs: 2, batchSize: 12 });
        const r = await train(config, localFeed(toyData()), {
          events: { onStep: (s) => steps.push(s), onMessage: (m) => messages.push(m) },
          stepEvery: 1,
        });
        runs.push({ r, losses: stepLosses(steps, 12, 320), messages });
      }
      const [one, two] = runs as [(typeof runs)[0], (typeof runs)[0]];
      assert.equal(two.losses.length, 50);
      two.losses.forEach((l, i) => assert.ok(Math.abs(l - one.losses[i]!) <= 1e-5, `${model} step ${i}`));
      assert.deepEqual(
        two.r.epochs.map((e) => e.devAccuracy),
        one.r.epochs.map((e) => e.devAccuracy),
        `${model}: dev accuracy after each epoch`,
      );
      assert.deepEqual([one.r.workers, two.r.workers, two.r.config.workers], [1, 2, 2]);
      assert.ok(two.messages.some((m) => /data-parallel: 2 replicas/.test(m)));
      assert.ok(two.r.epochs.every((e) => e.dataWaitShare >= 0 && e.dataWaitShare < 1));
      if (model === 'cnn') {
        const data = toyData();
        const v = await exportRun(dir, two.r, {
          feed: localFeed(data).info,
          backend: { backend: 'wasm', device: 'x' },
        });
        const manifest = JSON.parse(await readFile(join(v.path, 'manifest.json'), 'utf8'));
        assert.equal(manifest.training.workers, 2, 'workers in the export manifest');
      }
    }
  });

  test('full batch (batch_size 0, chunks split across 2 workers) equals 1 worker: mlp (dropout), bow-frozen', async () => {
    for (const model of ['mlp', 'bow-frozen'] as const) {
      const results = [];
      for (const workers of [1, 2]) {
        const config = cfg({ model, workers, batchSize: 0, epochs: 3, learningRate: 0.02 });
        results.push(await train(config, localFeed(toyData()), { fullBatchChunk: 100 }));
      }
      const [one, two] = results as [(typeof results)[0], (typeof results)[0]];
      assert.equal(two.workers, 2);
      one.epochs.forEach((e, i) => {
        assert.ok(Math.abs(two.epochs[i]!.trainLoss - e.trainLoss) <= 1e-5, `${model} epoch ${i + 1}`);
        assert.equal(two.epochs[i]!.devAccuracy, e.devAccuracy, `${model} epoch ${i + 1}`);
      });
    }
  });

  test('a failing worker fails the run with its message; every other worker thread ends; no hang', async () => {
    const started = performance.now();
    // Through train(): a worker that throws (3 replicas).
    await assert.rejects(
      train(cfg({ workers: 3, epochs: 1 }), localFeed(toyData()), {
        workerFault: { worker: 2, step: 3, kind: 'throw' },
      }),
      (e: unknown) =>
        e instanceof Error && /data-parallel worker 2 of 3: injected fault: worker 2 at step 3/.test(e.message),
    );
    // The executor itself: a worker whose thread exits without a word; the healthy one is stopped too.
    const data = toyData();
    const config = { kind: 'mlp' as const, vocabSize: data.tokens.length, dim: data.dim };
    const batches = [...epochBatches(data.splits[0]!.examples, { batchSize: 16, seed: 1, shuffle: true })];
    const dp = await DataParallel.start(config, data.matrix, {
      workers: 3,
      backend: 'wasm',
      fault: { worker: 1, step: 2, kind: 'exit' },
    });
    try {
      await dp.step(batches[0]!);
      await dp.step(batches[1]!);
      const want = /data-parallel worker 1 of 3: its thread exited \(code 70\)/;
      await assert.rejects(dp.step(batches[2]!), want);
      await assert.rejects(dp.step(batches[3]!), want, 'later steps are refused with the same error');
      assert.equal(dp.model.steps, 2, 'the failed step applied nothing');
    } finally {
      await dp.close();
      dp.model.dispose();
    }
    assert.equal(dp.liveWorkers, 0, 'every worker thread ended');
    assert.ok(performance.now() - started < 30_000);
  });

  test('workers is validated naming the field; the wire maps 0 to 1; GPU backends keep 1', () => {
    for (const workers of [0, -1, 1.5, 65, Number.NaN]) {
      assert.throws(() => cfg({ workers }), isField('workers'), String(workers));
    }
    assert.equal(cfg({}).workers, 1);
    assert.equal(cfg({ workers: 2, backend: 'wasm' }).workers, 2);
    assert.throws(() => cfg({ workers: 2, backend: 'webgpu' }), isField('workers'));
    assert.throws(() => cfg({ workers: 2, backend: 'tfjs-node-gpu' }), isField('workers'));
    const wire = create(RunConfigSchema, { ...trainingConfigToProto(cfg({ workers: 3 })) });
    assert.equal(wire.workers, 3);
    assert.equal(trainingConfigFromProto(wire).workers, 3);
    assert.equal(trainingConfigFromProto(create(RunConfigSchema, { model: 'mlp', epochs: 1 })).workers, 1);
    assert.throws(
      () => trainingConfigFromProto(create(RunConfigSchema, { model: 'mlp', epochs: 1, workers: 65 })),
      isField('workers'),
    );
  });
});
