import test from 'node:test';
import { createHash } from 'node:crypto';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '@ch8/backend/select';
import { InvalidInputError } from '@ch8/errors';
import { createModel, type SentimentModel, type TrainingState } from './model.ts';
import { decodeTrainingState, encodeTrainingState } from './checkpoint.ts';
import type { ModelConfigInput } from './config.ts';
import { batchOf, tinyConfig, tinyEmbeddings } from './fixtures.ts';

/** Six different batches: varying T, ids that skip steps (dense embedding Adam catches them up later). */
const SCHEDULE = [
  batchOf([[1, 2, 3], [4, 5], [6]], [1, 0, 1]),
  batchOf(
    [
      [7, 8],
      [1, 9, 10, 11],
    ],
    [0, 1],
  ),
  batchOf([[2, 2, 2, 5]], [1]),
  batchOf([[11, 3], [6, 7, 8], [9], [10, 1]], [0, 0, 1, 1]),
  batchOf([[4, 4, 4, 4, 4]], [0]),
  batchOf(
    [
      [1, 3, 5, 7],
      [2, 4, 6],
    ],
    [1, 0],
  ),
];
const K = 3;

/** Trains on the schedule's steps `from`..`to` - 1, halving the learning rate after step 2 (a schedule). */
function trainSteps(m: SentimentModel, from: number, to: number): number[] {
  const losses: number[] = [];
  for (let i = from; i < to; i++) {
    losses.push(m.trainStep(SCHEDULE[i]!).loss);
    if (i === 1) m.setLearningRate(m.learningRate / 2);
  }
  return losses;
}

function sameArray(a: ArrayLike<number>, b: ArrayLike<number>, what: string): void {
  assert.equal(a.length, b.length, `${what}: length`);
  for (let i = 0; i < a.length; i++) {
    // Bit for bit (Object.is also tells -0 from 0).
    if (!Object.is(a[i], b[i])) assert.fail(`${what}[${i}]: ${a[i]} vs ${b[i]}`);
  }
}

function sameState(a: TrainingState, b: TrainingState, what: string): void {
  assert.deepEqual(a.config, b.config);
  assert.equal(a.step, b.step, `${what}: step`);
  assert.equal(a.learningRate, b.learningRate, `${what}: learningRate`);
  sameArray(a.params, b.params, `${what}: params`);
  sameArray(a.embeddings, b.embeddings, `${what}: embeddings`);
  assert.equal(a.adam === undefined, b.adam === undefined);
  if (a.adam !== undefined && b.adam !== undefined) {
    assert.deepEqual(
      [a.adam.iterations, a.adam.accBeta1, a.adam.accBeta2],
      [b.adam.iterations, b.adam.accBeta1, b.adam.accBeta2],
    );
    sameArray(a.adam.m, b.adam.m, `${what}: adam.m`);
    sameArray(a.adam.v, b.adam.v, `${what}: adam.v`);
  }
  assert.equal(a.embeddingAdam === undefined, b.embeddingAdam === undefined);
  if (a.embeddingAdam !== undefined && b.embeddingAdam !== undefined) {
    assert.equal(a.embeddingAdam.t, b.embeddingAdam.t);
    sameArray(a.embeddingAdam.m, b.embeddingAdam.m, `${what}: embeddingAdam.m`);
    sameArray(a.embeddingAdam.v, b.embeddingAdam.v, `${what}: embeddingAdam.v`);
    sameArray(a.embeddingAdam.last, b.embeddingAdam.last, `${what}: embeddingAdam.last`);
  }
}

const CASES: [string, ModelConfigInput][] = [
  ['bow-frozen', tinyConfig('bow-frozen')],
  ['bow-finetune dense', tinyConfig('bow-finetune', { embeddingOptimizer: 'dense', learningRate: 0.05 })],
  ['bow-finetune lazy', tinyConfig('bow-finetune', { embeddingOptimizer: 'lazy', learningRate: 0.05 })],
  ['cnn', tinyConfig('cnn', { learningRate: 0.02 })],
  ['gru', tinyConfig('gru', { learningRate: 0.02 })],
];

for (const backend of ['cpu', 'wasm'] as const) {
  test(`${backend}: resuming from an encoded checkpoint ends bit-identical to an uninterrupted run`, async () => {
    await selectBackend({ prefer: backend });
    for (const [name, config] of CASES) {
      const what = `${backend} ${name}`;
      const baseline = tf.memory().numTensors;
      const whole = createModel(config, { embeddings: tinyEmbeddings() });
      const first = createModel(config, { embeddings: tinyEmbeddings() });
      // The restored model starts from other embeddings and weights: the state must replace all of them.
      const resumed = createModel(config, { embeddings: tinyEmbeddings(99) });
      try {
        const wholeLosses = trainSteps(whole, 0, SCHEDULE.length);
        const firstLosses = trainSteps(first, 0, K);
        const bytes = encodeTrainingState(await first.getTrainingState());
        resumed.setTrainingState(decodeTrainingState(bytes, 'ckpt.bin'));
        assert.deepEqual([resumed.steps, resumed.learningRate], [K, first.learningRate]);
        const restLosses = trainSteps(resumed, K, SCHEDULE.length);
        sameArray([...firstLosses, ...restLosses], wholeLosses, `${what}: losses`);
        sameState(await resumed.getTrainingState(), await whole.getTrainingState(), what);
        // Reads that bring the rows up to date agree too.
        const [a, b] = [resumed.getWeights(), whole.getWeights()];
        a.forEach((w, i) => sameArray(w.values, b[i]!.values, `${what}: ${w.name}`));
        assert.ok(wholeLosses[5] !== wholeLosses[0], 'training moved');
      } finally {
        whole.dispose();
        first.dispose();
        resumed.dispose();
      }
      assert.equal(tf.memory().numTensors, baseline, `${what}: no tensor leaked`);
    }
  });
}

test('the beta powers are tfjs float32 products, not Math.pow: a state keeps them exactly', async () => {
  await selectBackend({ prefer: 'cpu' });
  const m = createModel(tinyConfig('bow-frozen'));
  try {
    let b1 = Math.fround(0.9);
    let b2 = Math.fround(0.999);
    let differs = false;
    for (let t = 1; t <= 40; t++) {
      m.trainStep(SCHEDULE[t % SCHEDULE.length]!);
      b1 = Math.fround(b1 * Math.fround(0.9));
      b2 = Math.fround(b2 * Math.fround(0.999));
      if (Math.fround(Math.pow(0.999, t + 1)) !== b2 || Math.fround(Math.pow(0.9, t + 1)) !== b1) differs = true;
    }
    const s = await m.getTrainingState();
    assert.deepEqual([s.adam!.iterations, s.adam!.accBeta1, s.adam!.accBeta2], [40, b1, b2]);
    assert.ok(differs, 'Math.pow would not have rebuilt them');
  } finally {
    m.dispose();
  }
});

test('setLearningRate: both optimizers take the new rate (as a model built with it); bad rates are refused', async () => {
  await selectBackend({ prefer: 'wasm' });
  for (const kind of ['bow-finetune', 'cnn'] as const) {
    const changed = createModel(tinyConfig(kind, { learningRate: 0.01 }), { embeddings: tinyEmbeddings() });
    const built = createModel(tinyConfig(kind, { learningRate: 0.003 }), { embeddings: tinyEmbeddings() });
    try {
      changed.setLearningRate(0.003);
      const a = SCHEDULE.map((b) => changed.trainStep(b).loss);
      const b = SCHEDULE.map((x) => built.trainStep(x).loss);
      sameArray(a, b, `${kind}: losses`);
      const [wa, wb] = [changed.getWeights(), built.getWeights()];
      wa.forEach((w, i) => sameArray(w.values, wb[i]!.values, `${kind}: ${w.name}`));
      for (const bad of [0, -1, Number.NaN, Infinity]) {
        assert.throws(
          () => changed.setLearningRate(bad),
          (e: unknown) => e instanceof InvalidInputError && e.field === 'learningRate',
        );
      }
    } finally {
      changed.dispose();
      built.dispose();
    }
  }
});

test('a state before the first step restores; a state during a step is refused', async () => {
  await selectBackend({ prefer: 'wasm' });
  const config = tinyConfig('bow-finetune');
  const a = createModel(config, { embeddings: tinyEmbeddings() });
  const b = createModel(config);
  try {
    const s = await a.getTrainingState();
    assert.equal(s.adam, undefined);
    assert.equal(s.embeddingAdam, undefined);
    b.setTrainingState(decodeTrainingState(encodeTrainingState(s)));
    sameArray(b.getEmbeddings(), a.getEmbeddings(), 'embeddings');
    sameArray([b.trainStep(SCHEDULE[0]!).loss], [a.trainStep(SCHEDULE[0]!).loss], 'first loss');
    const step = a.trainStepAsync(SCHEDULE[1]!);
    await assert.rejects(a.getTrainingState(), /already running/);
    await step;
  } finally {
    a.dispose();
    b.dispose();
  }
});

test('setTrainingState checks everything first and names the field', async () => {
  await selectBackend({ prefer: 'cpu' });
  const config = tinyConfig('bow-finetune');
  const a = createModel(config, { embeddings: tinyEmbeddings() });
  const b = createModel(config);
  try {
    a.trainStep(SCHEDULE[0]!);
    const s = await a.getTrainingState();
    const field = (f: string) => (e: unknown) => e instanceof InvalidInputError && e.field === f;
    const cases: [TrainingState, string][] = [
      [{ ...s, config: { ...s.config, hidden: 5 } }, 'config.hidden'],
      [{ ...s, config: { ...s.config, learningRate: 0.5 } }, 'config.learningRate'],
      [{ ...s, step: -1 }, 'step'],
      [{ ...s, learningRate: 0 }, 'learningRate'],
      [{ ...s, params: s.params.subarray(1) }, 'params'],
      [{ ...s, embeddings: new Float32Array(3) }, 'embeddings'],
      [{ ...s, embeddings: s.embeddings.map((v, i) => (i === 0 ? 1 : v)) }, 'embeddings'],
      [{ ...s, adam: { ...s.adam!, m: new Float32Array(2) } }, 'adam.m'],
      [{ ...s, adam: { ...s.adam!, accBeta1: 2 } }, 'adam.accBeta1'],
      [{ ...s, embeddingAdam: { ...s.embeddingAdam!, last: new Int32Array(1) } }, 'embeddingAdam.last'],
      [{ ...s, embeddingAdam: { ...s.embeddingAdam!, v: new Float32Array(1) } }, 'embeddingAdam.v'],
    ];
    const untouched = b.getEmbeddings();
    for (const [bad, f] of cases) assert.throws(() => b.setTrainingState(bad), field(f), f);
    assert.equal(b.steps, 0, 'nothing changed');
    sameArray(b.getEmbeddings(), untouched, 'embeddings unchanged');
    const frozen = createModel(tinyConfig('bow-frozen'));
    try {
      assert.throws(() => frozen.setTrainingState({ ...s, config: frozen.config }), field('embeddingAdam'));
    } finally {
      frozen.dispose();
    }
  } finally {
    a.dispose();
    b.dispose();
  }
});

test('decodeTrainingState: corrupt, truncated, foreign or inconsistent bytes are InvalidInputError with the file', async () => {
  await selectBackend({ prefer: 'cpu' });
  const m = createModel(tinyConfig('cnn'), { embeddings: tinyEmbeddings() });
  try {
    m.trainStep(SCHEDULE[0]!);
    const bytes = encodeTrainingState(await m.getTrainingState());
    const rejects = (b: Uint8Array, pattern: RegExp, f?: string) =>
      assert.throws(
        () => decodeTrainingState(b, 'state.bin'),
        (e: unknown) =>
          e instanceof InvalidInputError &&
          e.file === 'state.bin' &&
          pattern.test(e.message) &&
          (f === undefined || e.field === f),
      );
    for (const at of [20, Math.floor(bytes.length / 2), bytes.length - 40, bytes.length - 1]) {
      const flipped = Buffer.from(bytes);
      flipped[at]! ^= 0x10;
      rejects(flipped, /checksum/, 'sha256');
    }
    for (const n of [0, 10, 60, bytes.length - 1]) rejects(bytes.subarray(0, n), /truncated|checksum/);
    rejects(Buffer.concat([bytes, Buffer.from([0])]), /checksum/);
    rejects(Buffer.from(JSON.stringify({ format: 'x' }).padEnd(100)), /magic/);
    // A well-formed file whose header lies: re-sealed with a fresh checksum, still refused by the content checks.
    const reseal = (edit: (h: Record<string, unknown>) => void): Buffer => {
      const n = bytes.readUInt32LE(8);
      const header = JSON.parse(bytes.subarray(12, 12 + n).toString('utf8')) as Record<string, unknown>;
      edit(header);
      const json = Buffer.from(JSON.stringify(header).padEnd(Math.ceil((12 + n + 64) / 8) * 8 - 12));
      const prefix = Buffer.from(bytes.subarray(0, 12));
      prefix.writeUInt32LE(json.length, 8);
      const body = Buffer.concat([prefix, json, bytes.subarray(12 + n, bytes.length - 32)]);
      return Buffer.concat([body, createHash('sha256').update(body).digest()]);
    };
    assert.equal(
      decodeTrainingState(
        reseal(() => {}),
        'state.bin',
      ).step,
      1,
      'an unedited reseal decodes',
    );
    rejects(
      reseal((h) => (h.formatVersion = 99)),
      /version/,
      'formatVersion',
    );
    rejects(
      reseal((h) => ((h.config as Record<string, unknown>).filters = 2)),
      /values for this config/,
      'arrays[0].length',
    );
    rejects(
      reseal((h) => ((h.config as Record<string, unknown>).kind = 'nope')),
      /kind/,
      'config.kind',
    );
    rejects(
      reseal((h) => (h.learningRate = 'fast')),
      /positive/,
      'learningRate',
    );
    rejects(
      reseal((h) => (h.step = -2)),
      /non-negative/,
      'step',
    );
    rejects(
      reseal((h) => ((h.arrays as Record<string, unknown>[])[1]!.offset = 1e9)),
      /outside/,
      'arrays[1].offset',
    );
    rejects(
      reseal((h) => (h.arrays as unknown[]).pop()),
      /missing/,
      'arrays',
    );
    const ok = decodeTrainingState(bytes, 'state.bin');
    assert.equal(ok.step, 1);
    assert.ok(ok.embeddingAdam !== undefined && ok.adam !== undefined);
  } finally {
    m.dispose();
  }
});
