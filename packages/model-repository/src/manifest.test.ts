import test from 'node:test';
import assert from 'node:assert/strict';
import { InvalidInputError, VocabularyMismatchError } from '@ch8/errors';
import { vocabularyHash } from '@ch8/embeddings/vocabulary';
import { resolveConfig } from '@ch8/models/config';
import { LABELS, SIGNATURE, computeSplitMetrics, validateManifest, type ModelManifest } from './manifest.ts';
import { D, TOKENS, V, tinyConfig } from './fixtures.ts';

const FILE = '/models/m/3/manifest.json';

/** A valid formatVersion 2 manifest written out by hand (not by the code under test). */
function sample(): ModelManifest {
  return {
    format: 'ch8-sentiment-model',
    formatVersion: 2,
    name: 'm',
    version: 3,
    model: resolveConfig(tinyConfig('bow-frozen')),
    vocabulary: { size: V, dim: D, hash: vocabularyHash(TOKENS, D), tokens: [...TOKENS] },
    tokenizer: { training: { kind: 'chapter', version: 1 }, raw: { kind: 'raw', version: 1 } },
    labels: ['negative', 'positive'],
    signature: {
      inputs: [{ name: 'TEXT', datatype: 'BYTES', shape: [-1] }],
      outputs: [
        { name: 'PROBABILITY', datatype: 'FP32', shape: [-1] },
        { name: 'LABEL', datatype: 'BYTES', shape: [-1] },
      ],
    },
    training: { anything: [1, 'two', { three: null }] },
    metrics: {
      epochs: [
        { epoch: 1, trainLoss: 0.7, trainAccuracy: 0.5, trainExamplesPerSecond: 100, seconds: 1 },
        {
          epoch: 2,
          trainLoss: 0.6,
          trainAccuracy: 0.6,
          devLoss: 0.65,
          devAccuracy: 0.55,
          trainExamplesPerSecond: 100,
          seconds: 1,
        },
        {
          epoch: 3,
          trainLoss: 0.5,
          trainAccuracy: 0.7,
          devLoss: 0.6,
          devAccuracy: 0.6,
          trainExamplesPerSecond: 100,
          seconds: 1,
        },
      ],
      bestEpoch: 3,
      devAccuracy: 0.6,
      splits: {
        dev: {
          examples: 10,
          dropped: 2,
          loss: 0.6,
          accuracy: 0.7,
          precision: 0.8,
          recall: 4 / 6,
          f1: 8 / 11,
          confusion: [
            [3, 1],
            [2, 4],
          ],
        },
        empty: {
          examples: 0,
          dropped: 5,
          loss: 0,
          accuracy: 0,
          precision: 0,
          recall: 0,
          f1: 0,
          confusion: [
            [0, 0],
            [0, 0],
          ],
        },
      },
    },
    backend: { backend: 'wasm', device: 'wasm (SIMD)' },
    timings: { totalSeconds: 3.5, trainSeconds: 3 },
    createdAt: '2025-06-01T12:34:56.789Z',
    runId: 'r1',
    weights: {
      file: 'weights.bin',
      byteLength: 4 * (D + 1 + V * D),
      sha256: 'ab'.repeat(32),
      dtype: 'float32',
      entries: [
        { name: 'w', shape: [D], offset: 0, length: D },
        { name: 'b', shape: [], offset: 4 * D, length: 1 },
        { name: 'embeddings', shape: [V, D], offset: 4 * (D + 1), length: V * D },
      ],
    },
  };
}

test('a complete manifest validates and comes back unchanged', () => {
  const m = sample();
  assert.deepEqual(validateManifest(structuredClone(m), FILE), m);
  const noRun = structuredClone(m) as Partial<ModelManifest>;
  delete noRun.runId;
  assert.equal(validateManifest(noRun, FILE).runId, undefined);
  assert.deepEqual(LABELS, ['negative', 'positive']);
  assert.deepEqual(JSON.parse(JSON.stringify(SIGNATURE)), m.signature);
  assert.throws(() => (SIGNATURE.inputs as unknown[]).push({}), TypeError, 'SIGNATURE is frozen');
});

test('computeSplitMetrics matches hand-computed figures and the 0 conventions', () => {
  assert.deepEqual(
    computeSplitMetrics(
      [
        [3, 1],
        [2, 4],
      ],
      0.6,
      2,
    ),
    sample().metrics.splits.dev,
  );
  assert.deepEqual(
    computeSplitMetrics(
      [
        [5, 0],
        [0, 0],
      ],
      0.1,
    ),
    {
      examples: 5,
      dropped: 0,
      loss: 0.1,
      accuracy: 1,
      precision: 0,
      recall: 0,
      f1: 0,
      confusion: [
        [5, 0],
        [0, 0],
      ],
    },
  );
  const nothingPositivePredicted = computeSplitMetrics(
    [
      [2, 0],
      [3, 0],
    ],
    1,
  );
  assert.equal(nothingPositivePredicted.precision, 0);
  assert.equal(nothingPositivePredicted.recall, 0);
  assert.equal(nothingPositivePredicted.accuracy, 0.4);
});

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- free-form edits of parsed JSON
type Edit = [string, (j: any) => void, typeof InvalidInputError | typeof VocabularyMismatchError, string];

const EDITS: Edit[] = [
  ['not an object', (j) => Object.keys(j).forEach((k) => delete j[k]), InvalidInputError, 'format'],
  ['format', (j) => (j.format = 'onnx'), InvalidInputError, 'format'],
  ['formatVersion 3', (j) => (j.formatVersion = 3), InvalidInputError, 'formatVersion'],
  ['formatVersion 1 is converted elsewhere', (j) => (j.formatVersion = 1), InvalidInputError, 'formatVersion'],
  ['extra top-level field', (j) => (j.extra = 1), InvalidInputError, 'extra'],
  ['missing top-level field', (j) => delete j.timings, InvalidInputError, 'timings'],
  ['bad name', (j) => (j.name = '../x'), InvalidInputError, 'name'],
  ['version 0', (j) => (j.version = 0), InvalidInputError, 'version'],
  ['version 1.5', (j) => (j.version = 1.5), InvalidInputError, 'version'],
  ['model kind', (j) => (j.model.kind = 'rnn'), InvalidInputError, 'model.kind'],
  ['model field missing (not resolved)', (j) => delete j.model.dropout, InvalidInputError, 'model.dropout'],
  ['model field unknown', (j) => (j.model.layers = 2), InvalidInputError, 'model.layers'],
  ['model widths', (j) => (j.model.widths = [0]), InvalidInputError, 'model.widths[0]'],
  ['vocabulary extra', (j) => (j.vocabulary.words = []), InvalidInputError, 'vocabulary.words'],
  ['vocabulary pad first', (j) => (j.vocabulary.tokens[0] = 'pad'), InvalidInputError, 'vocabulary.tokens[0]'],
  ['vocabulary duplicate', (j) => (j.vocabulary.tokens[5] = 'good'), InvalidInputError, 'vocabulary.tokens[5]'],
  ['vocabulary non-string', (j) => (j.vocabulary.tokens[2] = 2), InvalidInputError, 'vocabulary.tokens[2]'],
  ['vocabulary size vs tokens', (j) => (j.vocabulary.size = 11), InvalidInputError, 'vocabulary.size'],
  ['vocabulary size vs model', (j) => (j.model.vocabSize = 13), InvalidInputError, 'vocabulary.size'],
  ['vocabulary dim vs model', (j) => (j.vocabulary.dim = 5), InvalidInputError, 'vocabulary.dim'],
  ['vocabulary hash malformed', (j) => (j.vocabulary.hash = 'xyz'), InvalidInputError, 'vocabulary.hash'],
  ['tokens changed, hash kept', (j) => (j.vocabulary.tokens[3] = 'cinema'), VocabularyMismatchError, 'vocabulary.hash'],
  [
    'hash of another vocabulary',
    (j) => (j.vocabulary.hash = vocabularyHash(TOKENS, D + 1)),
    VocabularyMismatchError,
    'vocabulary.hash',
  ],
  ['tokenizer kind', (j) => (j.tokenizer.training.kind = 'bpe'), InvalidInputError, 'tokenizer.training.kind'],
  [
    'tokenizer version unknown',
    (j) => (j.tokenizer.training.version = 2),
    VocabularyMismatchError,
    'tokenizer.training.version',
  ],
  [
    'raw tokenizer version unknown',
    (j) => (j.tokenizer.raw.version = 99),
    VocabularyMismatchError,
    'tokenizer.raw.version',
  ],
  ['tokenizer version malformed', (j) => (j.tokenizer.raw.version = '1'), InvalidInputError, 'tokenizer.raw.version'],
  ['tokenizer as a string', (j) => (j.tokenizer.training = 'chapter@1'), InvalidInputError, 'tokenizer.training'],
  ['tokenizer extra', (j) => (j.tokenizer.training.lower = true), InvalidInputError, 'tokenizer.training.lower'],
  ['labels swapped', (j) => (j.labels = ['positive', 'negative']), InvalidInputError, 'labels'],
  ['signature datatype', (j) => (j.signature.outputs[0].datatype = 'FP64'), InvalidInputError, 'signature'],
  ['training not an object', (j) => (j.training = []), InvalidInputError, 'training'],
  [
    'epoch trainLoss missing',
    (j) => delete j.metrics.epochs[2].trainLoss,
    InvalidInputError,
    'metrics.epochs[2].trainLoss',
  ],
  [
    'epoch trainLoss null',
    (j) => (j.metrics.epochs[2].trainLoss = null),
    InvalidInputError,
    'metrics.epochs[2].trainLoss',
  ],
  [
    'epoch accuracy > 1',
    (j) => (j.metrics.epochs[1].devAccuracy = 1.5),
    InvalidInputError,
    'metrics.epochs[1].devAccuracy',
  ],
  ['epoch extra', (j) => (j.metrics.epochs[0].lr = 0.1), InvalidInputError, 'metrics.epochs[0].lr'],
  ['epochs out of order', (j) => (j.metrics.epochs[1].epoch = 1), InvalidInputError, 'metrics.epochs[1].epoch'],
  ['epoch 0', (j) => (j.metrics.epochs[0].epoch = 0), InvalidInputError, 'metrics.epochs[0].epoch'],
  ['bestEpoch not an epoch', (j) => (j.metrics.bestEpoch = 4), InvalidInputError, 'metrics.bestEpoch'],
  ['devAccuracy', (j) => (j.metrics.devAccuracy = -0.1), InvalidInputError, 'metrics.devAccuracy'],
  [
    'split accuracy off',
    (j) => (j.metrics.splits.dev.accuracy = 0.71),
    InvalidInputError,
    'metrics.splits.dev.accuracy',
  ],
  ['split f1 off', (j) => (j.metrics.splits.dev.f1 = 0.8), InvalidInputError, 'metrics.splits.dev.f1'],
  [
    'split confusion sum',
    (j) => (j.metrics.splits.dev.examples = 11),
    InvalidInputError,
    'metrics.splits.dev.confusion',
  ],
  [
    'split confusion flat',
    (j) => (j.metrics.splits.dev.confusion = [3, 1, 2, 4]),
    InvalidInputError,
    'metrics.splits.dev.confusion',
  ],
  [
    'split confusion row',
    (j) => j.metrics.splits.dev.confusion[0].push(0),
    InvalidInputError,
    'metrics.splits.dev.confusion[0]',
  ],
  [
    'split confusion count',
    (j) => (j.metrics.splits.dev.confusion[1][1] = -4),
    InvalidInputError,
    'metrics.splits.dev.confusion[1][1]',
  ],
  [
    'split missing field',
    (j) => delete j.metrics.splits.empty.dropped,
    InvalidInputError,
    'metrics.splits.empty.dropped',
  ],
  ['backend device empty', (j) => (j.backend.device = ''), InvalidInputError, 'backend.device'],
  ['timing not a number', (j) => (j.timings.totalSeconds = 'long'), InvalidInputError, 'timings.totalSeconds'],
  ['createdAt not ISO', (j) => (j.createdAt = 'yesterday'), InvalidInputError, 'createdAt'],
  ['createdAt impossible', (j) => (j.createdAt = '2025-13-45T99:00:00Z'), InvalidInputError, 'createdAt'],
  ['runId empty', (j) => (j.runId = ''), InvalidInputError, 'runId'],
  ['weights file', (j) => (j.weights.file = '../weights.bin'), InvalidInputError, 'weights.file'],
  ['weights dtype', (j) => (j.weights.dtype = 'float16'), InvalidInputError, 'weights.dtype'],
  ['weights sha256', (j) => (j.weights.sha256 = 'AB'.repeat(32)), InvalidInputError, 'weights.sha256'],
  ['weights byteLength', (j) => (j.weights.byteLength += 4), InvalidInputError, 'weights.byteLength'],
  ['entry length', (j) => (j.weights.entries[0].length = 5), InvalidInputError, 'weights.entries[0].length'],
  ['entry offset', (j) => (j.weights.entries[1].offset = 28), InvalidInputError, 'weights.entries[1].offset'],
  ['entry name repeated', (j) => (j.weights.entries[1].name = 'w'), InvalidInputError, 'weights.entries[1].name'],
  ['entry shape', (j) => (j.weights.entries[0].shape = [-6]), InvalidInputError, 'weights.entries[0].shape[0]'],
  ['embeddings shape', (j) => (j.weights.entries[2].shape = [D, V]), InvalidInputError, 'weights.entries[2].shape'],
  ['no embeddings', (j) => (j.weights.entries[2].name = 'table'), InvalidInputError, 'weights.entries'],
];

test('every wrong field is refused with the right error class, the file and the field path', () => {
  for (const [what, edit, kind, field] of EDITS) {
    const j = structuredClone(sample());
    edit(j);
    assert.throws(
      () => validateManifest(j, FILE),
      (e: unknown) => {
        assert.ok(e instanceof kind, `${what}: ${String(e)}`);
        assert.equal((e as InvalidInputError).field, field, `${what}: ${String(e)}`);
        assert.equal((e as InvalidInputError).file, FILE, what);
        assert.ok((e as Error).message.startsWith(`${FILE}, field ${field}: `), `${what}: ${(e as Error).message}`);
        return true;
      },
      what,
    );
  }
  assert.throws(
    () => validateManifest(null, FILE),
    (e: unknown) => e instanceof InvalidInputError && e.field === 'manifest',
  );
  assert.throws(
    () => validateManifest([], FILE),
    (e: unknown) => e instanceof InvalidInputError && e.field === 'manifest',
  );
});
