import assert from 'node:assert/strict';
import { test } from 'node:test';
import { create } from '@bufbuild/protobuf';
import type { Bucketing } from '@ch8/contracts/dataset';
import type { EmbeddingMode } from '@ch8/contracts/trainer';
import { RunConfigSchema } from '@ch8/contracts/trainer';
import { InvalidInputError } from '@ch8/errors';
import { resolveTrainingConfig } from './config.ts';
import { trainingConfigFromProto, trainingConfigToProto } from './proto.ts';

test('defaults: the model decides the embeddings, chunk bucketing, dev split, export name = model', () => {
  const c = resolveTrainingConfig({ model: 'cnn' });
  assert.deepEqual(c, {
    model: 'cnn',
    finetune: true,
    learningRate: null,
    batchSize: 64,
    epochs: 3,
    seed: 1,
    patience: 0,
    bucketing: 'chunk',
    trainSplit: 'train',
    devSplit: 'dev',
    exportName: 'cnn',
    backend: 'auto',
    dropout: null,
    maxBatchesPerEpoch: 0,
    lrDecay: 1,
    workers: 1,
    weightAverage: 0,
    wordDropout: 0,
  });
  assert.equal(resolveTrainingConfig({ model: 'bow-frozen' }).finetune, false);
  assert.equal(resolveTrainingConfig({ model: 'mlp', finetune: false }).finetune, false);
});

test('every bad field is refused naming it', () => {
  const cases: [Record<string, unknown>, string][] = [
    [{ model: 'gpt' }, 'model'],
    [{ model: 'bow-frozen', finetune: true }, 'embedding_mode'],
    [{ model: 'bow-finetune', finetune: false }, 'embedding_mode'],
    [{ model: 'mlp', learningRate: 0 }, 'learning_rate'],
    [{ model: 'mlp', learningRate: -1 }, 'learning_rate'],
    [{ model: 'mlp', epochs: 0 }, 'epochs'],
    [{ model: 'mlp', batchSize: -1 }, 'batch_size'],
    [{ model: 'mlp', seed: 2 ** 53 }, 'seed'],
    [{ model: 'mlp', seed: 1.5 }, 'seed'],
    [{ model: 'mlp', bucketing: 'sorted' }, 'bucketing'],
    [{ model: 'mlp', exportName: '../x' }, 'export_name'],
    [{ model: 'mlp', exportName: 'Big' }, 'export_name'],
    [{ model: 'mlp', backend: 'tpu' }, 'backend'],
    [{ model: 'mlp', dropout: 1 }, 'dropout'],
    [{ model: 'mlp', lrDecay: 0 }, 'lr_decay'],
    [{ model: 'mlp', devSplit: 'train' }, 'dev_split'],
    [{ model: 'mlp', devSplit: null, patience: 2 }, 'early_stopping_patience'],
  ];
  for (const [input, field] of cases) {
    assert.throws(
      () => resolveTrainingConfig(input as never),
      (e: Error) => e instanceof InvalidInputError && e.field === field,
      JSON.stringify(input),
    );
  }
});

test("RunConfig: zero values mean the contract's defaults; a config survives the wire unchanged", () => {
  const wire = create(RunConfigSchema, { model: 'bow-frozen', epochs: 2 });
  const c = trainingConfigFromProto(wire);
  assert.equal(c.batchSize, 0, 'batch_size 0 = full batch');
  assert.equal(c.bucketing, 'chunk');
  assert.equal(c.learningRate, null);
  assert.equal(c.devSplit, 'dev');
  assert.equal(c.exportName, 'bow-frozen');
  const full = resolveTrainingConfig({
    model: 'gru',
    learningRate: 1e-3,
    dropout: 0.3,
    seed: 2 ** 40,
    bucketing: 'global',
    patience: 2,
    lrDecay: 0.5,
    devSplit: 'dev',
    exportName: 'g1',
    maxBatchesPerEpoch: 7,
  });
  assert.deepEqual(trainingConfigFromProto(create(RunConfigSchema, trainingConfigToProto(full))), full);
  const noDev = resolveTrainingConfig({ model: 'mlp', devSplit: null });
  assert.deepEqual(trainingConfigFromProto(create(RunConfigSchema, trainingConfigToProto(noDev))), noDev);
  assert.throws(
    () => trainingConfigFromProto(create(RunConfigSchema, { model: 'mlp', epochs: 1, bucketing: 99 as Bucketing })),
    (e: Error) => e instanceof InvalidInputError && e.field === 'bucketing',
  );
  assert.throws(
    () =>
      trainingConfigFromProto(create(RunConfigSchema, { model: 'mlp', epochs: 1, embeddingMode: 7 as EmbeddingMode })),
    (e: Error) => e instanceof InvalidInputError && e.field === 'embedding_mode',
  );
  assert.throws(
    () => trainingConfigFromProto(create(RunConfigSchema, { model: 'mlp', epochs: 1, seed: 2n ** 60n })),
    (e: Error) => e instanceof InvalidInputError && e.field === 'seed',
  );
});
