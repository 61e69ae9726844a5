import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { selectBackend } from '@ch8/backend/select';
import type { Batch } from '@ch8/batching/collate';
import { CancelledError, FailedPreconditionError, InvalidInputError } from '@ch8/errors';
import { listVersions, loadModel } from '@ch8/model-repository/repository';
import { createModel } from '@ch8/models/model';
import { epochBatches } from '@ch8/batching/plan';
import { directoryCheckpointStore } from './checkpoints.ts';
import { resolveTrainingConfig, type TrainingConfigInput } from './config.ts';
import { exportRun } from './export.ts';
import { localFeed, type DataFeed } from './feed.ts';
import { interruptAndResume, toyData } from './fixtures.ts';
import { train, type EpochEvent, type StepEvent } from './run.ts';

await selectBackend({ prefer: 'cpu' });

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ch8-training-'));
});
after(() => rm(dir, { recursive: true, force: true }));

const cfg = (extra: Partial<TrainingConfigInput> = {}) =>
  resolveTrainingConfig({ model: 'bow-finetune', epochs: 4, batchSize: 32, seed: 5, learningRate: 0.05, ...extra });

/** Dev accuracy of weights scored independently of the run (a fresh model, the library's collate, no feed). */
async function devAccuracyOf(
  weights: Awaited<ReturnType<typeof train>>['weights'],
  kind: 'bow-finetune' | 'mlp',
): Promise<number> {
  const data = toyData();
  const m = createModel({ kind, vocabSize: data.tokens.length, dim: data.dim });
  try {
    m.setWeights(weights);
    const dev = data.splits[1]!.examples;
    const p = await m.predictProbabilitiesAsync({
      ...[...epochBatches(dev, { batchSize: dev.length, shuffle: false })][0]!,
    });
    const b = [...epochBatches(dev, { batchSize: dev.length, shuffle: false })][0]!;
    let ok = 0;
    for (let i = 0; i < b.batchSize; i++) if ((p[i]! > 0.5 ? 1 : 0) === b.labels[i]) ok++;
    return ok / b.batchSize;
  } finally {
    m.dispose();
  }
}

describe('train', () => {
  test('learns a task with a known answer; events in order; the best epoch is what it returns', async () => {
    const steps: StepEvent[] = [];
    const epochs: EpochEvent[] = [];
    const r = await train(cfg({ epochs: 5 }), localFeed(toyData()), {
      events: { onStep: (s) => steps.push(s), onEpoch: (e) => epochs.push(e) },
      stepEvery: 2,
    });
    assert.equal(r.epochs.length, 5);
    assert.deepEqual(epochs, r.epochs);
    assert.ok(
      steps.length > 0 &&
        steps.every((s, i) => i === 0 || s.epoch > steps[i - 1]!.epoch || s.step > steps[i - 1]!.step),
      'steps in order',
    );
    assert.ok(steps.every((s) => s.stepsInEpoch === 10 && s.step % 2 === 0));
    assert.ok(r.devAccuracy! > 0.8, `dev accuracy ${r.devAccuracy}`);
    const bestAcc = Math.max(...r.epochs.map((e) => e.devAccuracy!));
    assert.equal(r.devAccuracy, bestAcc);
    assert.equal(r.epochs[r.bestEpoch - 1]!.devAccuracy, bestAcc);
    // The returned weights are the best epoch's: scored independently, they give its dev accuracy.
    assert.equal(await devAccuracyOf(r.weights, 'bow-finetune'), bestAcc);
    assert.equal(r.splits['dev']!.accuracy, bestAcc);
    const c = r.splits['dev']!.confusion;
    assert.equal(c[0][0] + c[0][1] + c[1][0] + c[1][1], 80);
    assert.equal(r.splits['train']!.examples, 320);
    assert.equal(r.stopReason, 'epochs');
  });

  test('the same config gives bit-identical results; another seed differs', async () => {
    const a = await train(cfg({ model: 'mlp' }), localFeed(toyData()));
    const b = await train(cfg({ model: 'mlp' }), localFeed(toyData()));
    const c = await train(cfg({ model: 'mlp', seed: 6 }), localFeed(toyData()));
    assert.deepEqual(
      a.epochs.map((e) => e.trainLoss),
      b.epochs.map((e) => e.trainLoss),
    );
    assert.deepEqual(a.weights, b.weights);
    assert.notDeepEqual(
      a.epochs.map((e) => e.trainLoss),
      c.epochs.map((e) => e.trainLoss),
    );
  });

  test('early stopping: stops after `patience` epochs without a better dev accuracy, exports the best', async () => {
    const r = await train(cfg({ epochs: 40, patience: 2, learningRate: 0.2 }), localFeed(toyData()));
    assert.equal(r.stopReason, 'early-stopping');
    assert.ok(r.epochs.length < 40);
    assert.equal(r.epochs.length, r.bestEpoch + 2);
    assert.ok(r.epochs.slice(r.bestEpoch).every((e) => e.devAccuracy! <= r.devAccuracy!));
  });

  test('each epoch is asked for before the one before it is scored; one asked for and not trained is stopped', async () => {
    const base = localFeed(toyData());
    const log: string[] = [];
    let streams = 0;
    /** The base feed, logging when a stream starts (its first batch asked for) and when it ends. */
    const logged: DataFeed = {
      ...base,
      async *batches(split, o, signal) {
        const name = split === 'train' ? `train ${o.epoch}` : split;
        log.push(`open ${name}`);
        streams++;
        let n = 0;
        try {
          for await (const b of base.batches(split, o, signal) as AsyncIterable<Batch>) {
            n++;
            yield b;
          }
        } finally {
          streams--;
          log.push(`end ${name} after ${n}`);
        }
      },
    };
    const r = await train(cfg({ epochs: 40, patience: 2, learningRate: 0.2 }), logged, {
      events: { onEpoch: (e) => log.push(`scored ${e.epoch - 1}`) },
    });
    assert.equal(r.stopReason, 'early-stopping');
    const at = (entry: string): number => {
      const i = log.indexOf(entry);
      assert.ok(i >= 0, `${entry} missing from ${log.join(', ')}`);
      return i;
    };
    // The first epoch before the dev batches; epoch e + 1 before epoch e is scored.
    assert.ok(at('open train 0') < at('open dev'));
    for (let e = 0; e + 1 < r.epochs.length; e++) assert.ok(at(`open train ${e + 1}`) < at(`scored ${e}`));
    // Every trained epoch read whole.
    const steps = Math.ceil(toyData().splits[0]!.examples.length / 32);
    for (let e = 0; e < r.epochs.length; e++) assert.ok(log.includes(`end train ${e} after ${steps}`), log.join(', '));
    // The epoch asked for after the last one trained: stopped after its first batch, before the final scoring.
    const extra = r.epochs.length;
    assert.ok(at(`end train ${extra} after 1`) < log.lastIndexOf('open train 0'), log.join(', '));
    assert.ok(!log.includes(`open train ${extra + 1}`));
    assert.equal(streams, 0, 'every stream ended');
  });

  test('a run of one epoch asks for no epoch it will not train', async () => {
    const base = localFeed(toyData());
    const opened: number[] = [];
    const feed: DataFeed = {
      ...base,
      batches(split, o, signal) {
        if (split === 'train') opened.push(o.epoch);
        return base.batches(split, o, signal);
      },
    };
    await train(cfg({ epochs: 1 }), feed);
    // The final scoring reads the train split in order (epoch 0, unshuffled): one shuffled epoch was asked for.
    assert.deepEqual(opened, [0, 0]);
  });

  test('learning-rate decay on a plateau', async () => {
    const r = await train(cfg({ epochs: 12, lrDecay: 0.5, learningRate: 0.2 }), localFeed(toyData()));
    const rates = r.epochs.map((e) => e.learningRate);
    assert.equal(rates[0], 0.2);
    for (let i = 1; i < r.epochs.length; i++) {
      const improved =
        r.epochs[i - 1]!.devAccuracy! > Math.max(-1, ...r.epochs.slice(0, i - 1).map((e) => e.devAccuracy!));
      assert.equal(rates[i], improved ? rates[i - 1] : rates[i - 1]! * 0.5, `epoch ${i + 1}`);
    }
  });

  test('full batch (batch_size 0): one accumulated step per epoch, loss falls', async () => {
    const steps: StepEvent[] = [];
    const r = await train(
      cfg({ model: 'bow-frozen', batchSize: 0, epochs: 15, learningRate: 0.1 }),
      localFeed(toyData()),
      { fullBatchChunk: 64, events: { onStep: (s) => steps.push(s) } },
    );
    assert.equal(steps.length, 0);
    assert.ok(r.epochs.at(-1)!.trainLoss < r.epochs[0]!.trainLoss);
    assert.ok(r.devAccuracy! > 0.7, String(r.devAccuracy));
  });

  test('cancel stops within one batch with CancelledError', async () => {
    const abort = new AbortController();
    let seen = 0;
    await assert.rejects(
      train(cfg({ epochs: 3 }), localFeed(toyData()), {
        signal: abort.signal,
        stepEvery: 1,
        events: {
          onStep: () => {
            if (++seen === 3) abort.abort();
          },
        },
      }),
      CancelledError,
    );
    assert.equal(seen, 3);
  });

  test('bad splits are refused naming the field', async () => {
    await assert.rejects(
      train(cfg({ trainSplit: 'nope' }), localFeed(toyData())),
      (e: Error) => e instanceof InvalidInputError && e.field === 'train_split',
    );
    await assert.rejects(
      train(cfg({ devSplit: 'test' }), localFeed(toyData())),
      (e: Error) => e instanceof InvalidInputError && e.field === 'dev_split',
    );
  });

  test('the time spent waiting for batches is measured', async () => {
    const base = localFeed(toyData());
    const slow: DataFeed = {
      ...base,
      async *batches(split, o, signal) {
        for await (const b of base.batches(split, o, signal) as AsyncIterable<Batch>) {
          await new Promise((r) => setTimeout(r, 25));
          yield b;
        }
      },
    };
    const fast = await train(cfg({ epochs: 1, model: 'bow-frozen' }), base);
    const waited = await train(cfg({ epochs: 1, model: 'bow-frozen' }), slow);
    assert.ok(waited.dataWaitShare > 0.5, `slow feed: ${waited.dataWaitShare}`);
    assert.ok(fast.dataWaitShare < waited.dataWaitShare);
  });
});

describe('checkpoints and resume', () => {
  test('a run interrupted after an epoch resumes from its checkpoint and ends bit-identical to an uninterrupted run', async () => {
    for (const model of ['bow-finetune', 'mlp'] as const) {
      const config = cfg({ model, epochs: 4, patience: 3 });
      const { whole, resumed, cutFiles } = await interruptAndResume(config, join(dir, model));
      assert.deepEqual(cutFiles, ['epoch-2.ckpt', 'epoch-1.ckpt']);
      assert.deepEqual(
        resumed.epochs.map((e) => [e.trainLoss, e.devAccuracy, e.devLoss]),
        whole.epochs.map((e) => [e.trainLoss, e.devAccuracy, e.devLoss]),
        model,
      );
      assert.deepEqual(resumed.weights, whole.weights, model);
      assert.deepEqual(resumed.splits, whole.splits);
      assert.equal(resumed.bestEpoch, whole.bestEpoch);
    }
  });

  test('a corrupt newest checkpoint falls back to the one before; all corrupt fails naming them', async () => {
    const config = cfg({ epochs: 3 });
    const storeDir = join(dir, 'corrupt');
    const store = directoryCheckpointStore(storeDir);
    const abort = new AbortController();
    await assert.rejects(
      train(config, localFeed(toyData()), {
        checkpoints: store,
        signal: abort.signal,
        events: { onEpoch: (e) => e.epoch === 2 && abort.abort() },
      }),
      CancelledError,
    );
    await writeFile(join(storeDir, 'epoch-2.ckpt'), 'garbage');
    const logs: string[] = [];
    const resumed = await train(config, localFeed(toyData()), {
      checkpoints: directoryCheckpointStore(storeDir, { log: (l) => logs.push(l) }),
    });
    assert.equal(resumed.resumedFromEpoch, 1);
    assert.ok(
      logs.some((l) => /epoch-2\.ckpt/.test(l)),
      logs.join('\n'),
    );
    for (const f of await readdir(storeDir)) await writeFile(join(storeDir, f), 'garbage');
    await assert.rejects(
      train(config, localFeed(toyData()), { checkpoints: directoryCheckpointStore(storeDir) }),
      (e: Error) => e instanceof FailedPreconditionError && /no checkpoint verifies/.test(e.message),
    );
  });

  test('a checkpoint of another configuration is refused', async () => {
    const storeDir = join(dir, 'other');
    await train(cfg({ epochs: 1 }), localFeed(toyData()), { checkpoints: directoryCheckpointStore(storeDir) });
    await assert.rejects(
      train(cfg({ epochs: 1, seed: 9 }), localFeed(toyData()), { checkpoints: directoryCheckpointStore(storeDir) }),
      FailedPreconditionError,
    );
  });

  test('a failure while writing a checkpoint leaves no partial file', async () => {
    const storeDir = join(dir, 'failing');
    const store = directoryCheckpointStore(storeDir, {
      hooks: { beforeRename: () => Promise.reject(new Error('disk full')) },
    });
    await assert.rejects(train(cfg({ epochs: 1 }), localFeed(toyData()), { checkpoints: store }), /disk full/);
    assert.deepEqual(await readdir(storeDir), []);
  });
});

describe('export', () => {
  test('exports the best weights with vocabulary, tokenizers and metrics; the loaded version predicts as the run scored', async () => {
    const data = toyData();
    const feed = localFeed(data);
    const r = await train(cfg({ epochs: 3, exportName: 'toy-bow' }), feed);
    const root = join(dir, 'repo');
    const v = await exportRun(root, r, {
      feed: feed.info,
      backend: { backend: 'cpu', device: 'test' },
      runId: 'run-1',
    });
    assert.equal(v.version, 1);
    assert.deepEqual(await listVersions(root, 'toy-bow'), [1]);
    const { model, manifest } = await loadModel(v.path, { expectedVocabHash: data.vocabHash });
    try {
      assert.equal(manifest.metrics.devAccuracy, r.devAccuracy);
      assert.equal(manifest.metrics.bestEpoch, r.bestEpoch);
      assert.deepEqual(manifest.tokenizer, {
        training: { kind: 'chapter', version: 1 },
        raw: { kind: 'raw', version: 1 },
      });
      assert.equal(manifest.runId, 'run-1');
      assert.deepEqual(manifest.vocabulary.tokens, data.tokens);
      const dev = [...epochBatches(data.splits[1]!.examples, { batchSize: 256, shuffle: false })];
      assert.equal((await model.evaluateAsync(dev)).accuracy, r.devAccuracy);
    } finally {
      model.dispose();
    }
    await assert.rejects(
      exportRun(
        root,
        { ...r, config: { ...r.config, exportName: '../x' } },
        { feed: feed.info, backend: { backend: 'cpu', device: 'test' } },
      ),
      InvalidInputError,
    );
  });
});
