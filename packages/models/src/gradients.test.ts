import test from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '@ch8/backend/select';
import { InvalidInputError } from '@ch8/errors';
import { GradientAccumulator, shareRows, takeRows } from './gradients.ts';
import { createModel, type ModelBatch, type SentimentModel } from './model.ts';
import type { ModelKind } from './config.ts';
import { D, V, batchOf, relClose, tinyConfig, tinyEmbeddings } from './fixtures.ts';
import { Rng } from './rng.ts';

async function onBackend(name: 'wasm' | 'cpu'): Promise<void> {
  await selectBackend({ prefer: name });
  assert.equal(tf.getBackend(), name);
}

const field = (f: string) => (e: unknown) => e instanceof InvalidInputError && e.field === f;

/** A collated batch of `n` random rows (1-6 tokens, ids 1..V-1) with random labels. */
function randomBatch(rng: Rng, n: number): ModelBatch {
  const rows: number[][] = [];
  const labels: number[] = [];
  for (let i = 0; i < n; i++) {
    const len = 1 + Math.floor(rng.next() * 6);
    rows.push(Array.from({ length: len }, () => 1 + Math.floor(rng.next() * (V - 1))));
    labels.push(rng.next() < 0.5 ? 0 : 1);
  }
  return batchOf(rows, labels);
}

/** The chunks stacked into one batch (padded to the longest), rows in order. */
function stack(chunks: ModelBatch[]): ModelBatch {
  const T = Math.max(...chunks.map((c) => c.maxLength));
  const B = chunks.reduce((a, c) => a + c.batchSize, 0);
  const inputIds = new Int32Array(B * T);
  const labels = new Float32Array(B);
  let row = 0;
  for (const c of chunks) {
    for (let r = 0; r < c.batchSize; r++, row++) {
      inputIds.set(c.inputIds.subarray(r * c.maxLength, (r + 1) * c.maxLength), row * T);
      labels[row] = c.labels![r]!;
    }
  }
  return { inputIds, batchSize: B, maxLength: T, labels };
}

/** One data-parallel step as `count` replicas would take it: each share on its own stream, the sums applied. */
function shareStep(m: SentimentModel, chunks: ModelBatch[], count: number) {
  const acc = m.newAccumulator();
  for (let index = 0; index < count; index++) {
    const stream = m.dropoutStream(m.steps);
    for (const c of chunks) acc.add(m.computeGradients(c, { share: { index, count }, stream }));
  }
  return m.applyGradients(acc.result());
}

const KINDS: [ModelKind, object][] = [
  ['bow-finetune', { learningRate: 0.05 }],
  ['bow-finetune', { learningRate: 0.05, embeddingOptimizer: 'lazy' }],
  ['mlp', { learningRate: 0.02 }],
  ['cnn', { learningRate: 0.02 }],
  ['bilstm', { learningRate: 0.02 }],
  ['attention', { learningRate: 0.02, encoderDropout: 0.2 }],
];

test('shares of each batch, summed and applied once, take the steps trainStep takes (dropout on)', async () => {
  await onBackend('wasm');
  for (const [kind, extra] of KINDS) {
    const what = `${kind} ${JSON.stringify(extra)}`;
    const config = tinyConfig(kind, extra);
    const ref = createModel(config, { embeddings: tinyEmbeddings() });
    const par = createModel(config, { embeddings: tinyEmbeddings() });
    try {
      const rng = new Rng(5);
      const before = tf.memory().numTensors;
      for (let step = 0; step < 6; step++) {
        // 7 rows over 3 shares: 3, 2, 2 rows; the last step has 2 rows, so one share is empty.
        const batch = randomBatch(rng, step === 5 ? 2 : 7);
        const want = ref.trainStep(batch);
        const got = shareStep(par, [batch], 3);
        assert.ok(
          Math.abs(got.loss - want.loss) <= 1e-5 * want.loss,
          `${what} step ${step}: ${got.loss} vs ${want.loss}`,
        );
        assert.deepEqual([got.correct, got.examples], [want.correct, want.examples], what);
      }
      const want = ref.getWeights();
      par.getWeights().forEach((w, i) => {
        let [a, b] = [w.values, want[i]!.values];
        if (w.name === 'attn/qkv_bias') {
          // The key bias adds the same score to every key of a query: softmax ignores it, its gradient is 0 up to
          // rounding, and Adam turns rounding noise into steps of about lr. Compare the query and value biases.
          const drop = (x: Float32Array) => Float32Array.from([...x.subarray(0, D), ...x.subarray(2 * D)]);
          [a, b] = [drop(a), drop(b)];
        }
        assert.equal(relClose(a, b, 1e-4, 1e-6), undefined, `${what} ${w.name}`);
      });
      // Each holds one tfjs Adam (2 beta powers, m, v) made during the steps: computing gradients kept nothing.
      assert.equal(tf.memory().numTensors, before + 2 * 4, `${what}: no tensors leaked`);
    } finally {
      ref.dispose();
      par.dispose();
    }
  }
});

test('the chunks of an accumulated step in shares (one of them empty) equal trainStep on the stacked chunks', async () => {
  await onBackend('wasm');
  for (const kind of ['cnn', 'bow-finetune'] as const) {
    const config = tinyConfig(kind, { learningRate: 0.02 });
    const ref = createModel(config, { embeddings: tinyEmbeddings() });
    const acc = createModel(config, { embeddings: tinyEmbeddings() });
    const par = createModel(config, { embeddings: tinyEmbeddings() });
    try {
      const rng = new Rng(9);
      for (let step = 0; step < 3; step++) {
        // A one-row chunk first: share 1 of 2 is empty there and must still advance its dropout stream.
        const chunks = [randomBatch(rng, 1), randomBatch(rng, 5), randomBatch(rng, 4)];
        const want = ref.trainStep(stack(chunks));
        for (const got of [acc.trainStepAccumulated(chunks), shareStep(par, chunks, 2)]) {
          assert.ok(Math.abs(got.loss - want.loss) <= 1e-5 * want.loss, `${kind}: ${got.loss} vs ${want.loss}`);
          assert.deepEqual([got.correct, got.examples], [want.correct, want.examples]);
        }
      }
      const want = ref.getWeights();
      for (const m of [acc, par]) {
        m.getWeights().forEach((w, i) => {
          assert.equal(relClose(w.values, want[i]!.values, 1e-4, 1e-6), undefined, `${kind} ${w.name}`);
        });
      }
    } finally {
      ref.dispose();
      acc.dispose();
      par.dispose();
    }
  }
});

test('shares are strided rows in the longest-first order; takeRows keeps the padded length', () => {
  assert.deepEqual([...shareRows(7, { index: 0, count: 3 })], [0, 3, 6]);
  assert.deepEqual([...shareRows(7, { index: 2, count: 3 })], [2, 5]);
  assert.deepEqual([...shareRows(1, { index: 1, count: 2 })], []);
  const b = batchOf([[1, 2, 3], [4, 5], [6]], [1, 0, 1]);
  const part = takeRows(b, Int32Array.from([0, 2]));
  assert.deepEqual([...part.inputIds], [1, 2, 3, 6, 0, 0]);
  assert.deepEqual([part.batchSize, part.maxLength, [...part.labels!]], [2, 3, [1, 1]]);
});

test('GradientAccumulator adds dense gradients and merges embedding rows by id (hand-computed)', () => {
  const acc = new GradientAccumulator(2, 5, 2);
  acc.add({
    examples: 2,
    lossSum: 1.5,
    correct: 1,
    grad: Float32Array.from([1, 2]),
    embeddingGrad: { rows: Int32Array.from([3, 1]), values: Float32Array.from([1, 1, 2, 2]) },
  });
  acc.add({
    examples: 1,
    lossSum: 0.5,
    correct: 1,
    grad: Float32Array.from([0.5, -1]),
    embeddingGrad: { rows: Int32Array.from([4, 3]), values: Float32Array.from([5, 5, 10, 20]) },
  });
  const r = acc.result();
  assert.deepEqual([r.examples, r.lossSum, r.correct, [...r.grad]], [3, 2, 2, [1.5, 1]]);
  assert.deepEqual([...r.embeddingGrad!.rows], [3, 1, 4]);
  assert.deepEqual([...r.embeddingGrad!.values], [11, 21, 2, 2, 5, 5]);
  acc.reset();
  acc.add({
    examples: 1,
    lossSum: 1,
    correct: 0,
    grad: Float32Array.from([1, 1]),
    embeddingGrad: { rows: Int32Array.from([1]), values: Float32Array.from([7, 8]) },
  });
  const again = acc.result();
  assert.deepEqual(
    [[...again.grad], [...again.embeddingGrad!.rows], [...again.embeddingGrad!.values]],
    [[1, 1], [1], [7, 8]],
  );
  const g = { examples: 1, lossSum: 0, correct: 0, grad: new Float32Array(2) };
  assert.throws(() => acc.add({ ...g, grad: new Float32Array(3) }), field('grad'));
  const rows = (ids: number[]) => ({ rows: Int32Array.from(ids), values: new Float32Array(ids.length * 2) });
  assert.throws(() => acc.add({ ...g, embeddingGrad: rows([0]) }), field('embeddingGrad.rows'));
  assert.throws(() => acc.add({ ...g, embeddingGrad: rows([5]) }), field('embeddingGrad.rows'));
  assert.throws(() => new GradientAccumulator(2).add({ ...g, embeddingGrad: rows([1]) }), field('grad'));
});

test('applyGradients and computeGradients refuse what does not fit the model', async () => {
  await onBackend('cpu');
  const frozen = createModel(tinyConfig('bow-frozen'), { embeddings: tinyEmbeddings() });
  try {
    const P = frozen.parameterCount;
    const g = { examples: 2, lossSum: 1, correct: 1, grad: new Float32Array(P) };
    assert.throws(() => frozen.applyGradients({ ...g, examples: 0 }), field('examples'));
    assert.throws(() => frozen.applyGradients({ ...g, grad: new Float32Array(P + 1) }), field('grad'));
    const e = { rows: Int32Array.from([1]), values: new Float32Array(D) };
    assert.throws(() => frozen.applyGradients({ ...g, embeddingGrad: e }), field('embeddingGrad'));
    const b = batchOf([[1, 2]], [1]);
    assert.throws(() => frozen.computeGradients(b, { share: { index: 2, count: 2 } }), field('share.index'));
    assert.throws(() => frozen.computeGradients(b, { share: { index: 0, count: 0 } }), field('share.count'));
    assert.throws(() => frozen.dropoutStream(-1), field('step'));
    assert.equal(frozen.steps, 0);
    frozen.applyGradients(g);
    assert.equal(frozen.steps, 1, 'a zero gradient is still a step');
  } finally {
    frozen.dispose();
  }
});

test('a model on a shared table updates it in place; params out and in', async () => {
  await onBackend('cpu');
  const table = new Float32Array(new SharedArrayBuffer(V * D * 4));
  table.set(tinyEmbeddings());
  const before = table.slice();
  const m = createModel(tinyConfig('bow-finetune', { learningRate: 0.1 }), { sharedEmbeddings: table });
  const replica = createModel(m.config, { sharedEmbeddings: table });
  try {
    const batch = batchOf([[1, 2], [3]], [1, 0]);
    m.trainStep(batch);
    assert.notDeepEqual(table.slice(D, 4 * D), before.slice(D, 4 * D), 'rows 1-3 moved in the shared array');
    assert.deepEqual(table.slice(4 * D), before.slice(4 * D), 'rows the batch did not use untouched');
    replica.setParams(m.getParams());
    assert.deepEqual(replica.getWeights(), m.getWeights(), 'the replica sees the same weights');
    assert.deepEqual(m.getParams(new Float32Array(m.parameterCount)), m.getParams());
    assert.throws(() => m.getParams(new Float32Array(1)), field('params'));
    assert.throws(() => m.setParams(new Float32Array(1)), field('params'));
    const bad = new Float32Array(V * D).fill(1);
    assert.throws(() => createModel(m.config, { sharedEmbeddings: bad }), field('sharedEmbeddings'));
    assert.throws(
      () => createModel(m.config, { sharedEmbeddings: table, embeddings: table }),
      field('sharedEmbeddings'),
    );
  } finally {
    m.dispose();
    replica.dispose();
  }
});
