import test from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '@ch8/backend/select';
import { InvalidInputError } from '@ch8/errors';
import { createModel, type ModelBatch } from './model.ts';
import { MODEL_KINDS, resolveConfig } from './config.ts';
import { useStockOps } from './ops.ts';
import { D, LABELS, ROWS, V, batchOf, inInputOrder, relClose, tinyConfig, tinyEmbeddings } from './fixtures.ts';

async function onBackend(name: 'wasm' | 'cpu'): Promise<void> {
  await selectBackend({ prefer: name });
  assert.equal(tf.getBackend(), name);
}

test('config: defaults are the reference ones, bad fields are InvalidInputError naming the field', () => {
  const c = resolveConfig({ kind: 'cnn', vocabSize: 10, dim: 4 });
  assert.deepEqual([c.widths, c.filters, c.dropout, c.finetune, c.learningRate], [[3, 4, 5], 100, 0.5, true, 1e-3]);
  assert.equal(resolveConfig({ kind: 'bow-frozen', vocabSize: 10, dim: 4 }).learningRate, 1e-2);
  assert.equal(resolveConfig({ kind: 'bilstm', vocabSize: 10, dim: 4 }).hidden, 128);
  const cases: [object, string][] = [
    [{ kind: 'rnn', vocabSize: 10, dim: 4 }, 'kind'],
    [{ kind: 'mlp', vocabSize: 1, dim: 4 }, 'vocabSize'],
    [{ kind: 'mlp', vocabSize: 10, dim: 0 }, 'dim'],
    [{ kind: 'mlp', vocabSize: 10, dim: 4, dropout: 1 }, 'dropout'],
    [{ kind: 'bow-frozen', vocabSize: 10, dim: 4, finetune: true }, 'finetune'],
    [{ kind: 'attention', vocabSize: 10, dim: 6, heads: 4 }, 'heads'],
    [{ kind: 'cnn', vocabSize: 10, dim: 4, widths: [] }, 'widths'],
  ];
  for (const [input, field] of cases) {
    assert.throws(
      () => resolveConfig(input as never),
      (e: unknown) => e instanceof InvalidInputError && e.field === field,
    );
  }
});

test('bad batches are InvalidInputError: length, ids, empty rows, labels', async () => {
  await onBackend('cpu');
  const m = createModel(tinyConfig('bow-finetune'), { embeddings: tinyEmbeddings() });
  try {
    const ok = batchOf(ROWS, LABELS);
    const field = (f: string) => (e: unknown) => e instanceof InvalidInputError && e.field === f;
    assert.throws(() => m.trainStep({ ...ok, maxLength: 4 }), field('inputIds'));
    assert.throws(() => m.trainStep(batchOf([[1, V]], [1])), field('inputIds'));
    assert.throws(() => m.trainStep(batchOf([[1, -1]], [1])), field('inputIds'));
    assert.throws(
      () =>
        m.trainStep(
          batchOf(
            [
              [1, 2],
              [0, 0],
            ],
            [1, 0],
          ),
        ),
      field('inputIds'),
    );
    assert.throws(() => m.trainStep(batchOf(ROWS, [1, 0, 2])), field('labels'));
    assert.throws(() => m.trainStep({ ...ok, labels: undefined }), field('labels'));
    assert.throws(() => m.trainStep({ ...ok, batchSize: 0 }), field('batchSize'));
    assert.throws(() => createModel(tinyConfig('mlp'), { embeddings: new Float32Array(3) }), field('embeddings'));
    assert.equal(m.steps, 0, 'no step was taken');
  } finally {
    m.dispose();
  }
});

for (const backend of ['wasm', 'cpu'] as const) {
  test(`${backend}: every model gives the same output for a padded and an unpadded sequence, and trains`, async () => {
    await onBackend(backend);
    for (const kind of MODEL_KINDS) {
      const m = createModel(tinyConfig(kind, { learningRate: 0.02 }), { embeddings: tinyEmbeddings() });
      try {
        const padded = batchOf(ROWS, undefined, 8);
        const batched = inInputOrder(padded, m.predictProbabilities(padded));
        assert.equal(batched.length, ROWS.length);
        ROWS.forEach((row, i) => {
          const alone = m.predictProbabilities(batchOf([row], undefined));
          assert.ok(Math.abs(alone[0]! - batched[i]!) < 1e-5, `${kind} row ${i}: ${alone[0]} vs ${batched[i]}`);
          assert.ok(batched[i]! > 0 && batched[i]! < 1);
        });
        const before = tf.memory().numTensors;
        const b = batchOf(ROWS, LABELS);
        const first = m.evaluate([b]);
        for (let i = 0; i < 30; i++) m.trainStep(b);
        const last = m.evaluate([b]);
        const lastAsync = await m.evaluateAsync([b]);
        assert.deepEqual(lastAsync, last, `${kind}: evaluateAsync agrees with evaluate`);
        assert.equal(
          tf.memory().numTensors,
          before + (m.parameterCount > 0 ? 4 : 0),
          `${kind} leaks no tensors per step`,
        );
        assert.ok(last.loss < first.loss, `${kind}: loss ${first.loss} -> ${last.loss}`);
        assert.equal(last.examples, 3);
      } finally {
        m.dispose();
      }
    }
  });
}

/** Gradients of the model with stock tfjs ops and stock gradients on the cpu backend: the reference. */
async function referenceGradients(kind: (typeof MODEL_KINDS)[number], training: boolean) {
  await onBackend('cpu');
  useStockOps(true);
  const m = createModel(tinyConfig(kind), { embeddings: tinyEmbeddings() });
  try {
    return m.gradients(batchOf(ROWS, LABELS), { training });
  } finally {
    useStockOps(false);
    m.dispose();
  }
}

for (const kind of MODEL_KINDS) {
  test(`${kind}: gradients on wasm and cpu agree with stock tfjs cpu gradients to 1e-3`, async () => {
    for (const training of [false, true]) {
      const ref = await referenceGradients(kind, training);
      for (const backend of ['wasm', 'cpu'] as const) {
        await onBackend(backend);
        const m = createModel(tinyConfig(kind), { embeddings: tinyEmbeddings() });
        try {
          const g = m.gradients(batchOf(ROWS, LABELS), { training });
          assert.ok(
            Math.abs(g.loss - ref.loss) <= 1e-4 * Math.abs(ref.loss),
            `${backend} loss ${g.loss} vs ${ref.loss}`,
          );
          for (const [name, want] of ref.params) {
            const diff = relClose(g.params.get(name)!, want, 1e-3);
            assert.equal(diff, undefined, `${backend} ${kind} ${name} (dropout ${training}): ${diff}`);
          }
          assert.deepEqual(g.embeddingRows, ref.embeddingRows);
          if (kind === 'bow-frozen') assert.equal(g.embeddings, undefined);
          else assert.equal(relClose(g.embeddings!, ref.embeddings!, 1e-3), undefined, `${backend} embeddings`);
        } finally {
          m.dispose();
        }
      }
    }
  });
}

test('bow-finetune gradients match a float64 finite-difference check in plain code', async () => {
  await onBackend('wasm');
  const E = tinyEmbeddings();
  const m = createModel(tinyConfig('bow-finetune'), { embeddings: E });
  try {
    const batch = batchOf(ROWS, LABELS);
    const g = m.gradients(batch);
    const w = Array.from(m.getWeights().find((x) => x.name === 'out/kernel')!.values);
    const bias = m.getWeights().find((x) => x.name === 'out/bias')!.values[0]!;
    const table = Array.from(E);
    const loss = (wv: number[], bv: number, tab: number[]): number => {
      let sum = 0;
      ROWS.forEach((row, i) => {
        let z = bv;
        for (let j = 0; j < D; j++) {
          let mean = 0;
          for (const id of row) mean += tab[id * D + j]!;
          z += (wv[j]! * mean) / row.length;
        }
        sum += Math.max(z, 0) - z * LABELS[i]! + Math.log1p(Math.exp(-Math.abs(z)));
      });
      return sum / ROWS.length;
    };
    const h = 1e-6;
    const fdW = w.map((_, j) => {
      const p = [...w];
      const q = [...w];
      p[j]! += h;
      q[j]! -= h;
      return (loss(p, bias, table) - loss(q, bias, table)) / (2 * h);
    });
    assert.equal(relClose(g.params.get('out/kernel')!, fdW, 1e-3), undefined);
    const fdB = (loss(w, bias + h, table) - loss(w, bias - h, table)) / (2 * h);
    assert.ok(Math.abs(g.params.get('out/bias')![0]! - fdB) < 1e-3 * Math.abs(fdB) + 1e-6);
    const fdE: number[] = [];
    for (const id of g.embeddingRows) {
      for (let j = 0; j < D; j++) {
        const p = [...table];
        const q = [...table];
        p[id * D + j]! += h;
        q[id * D + j]! -= h;
        fdE.push((loss(w, bias, p) - loss(w, bias, q)) / (2 * h));
      }
    }
    assert.equal(relClose(g.embeddings!, fdE, 1e-3), undefined);
  } finally {
    m.dispose();
  }
});

test('frozen embeddings stay frozen; dense parameters still train', async () => {
  await onBackend('wasm');
  for (const config of [
    tinyConfig('bow-frozen'),
    tinyConfig('mlp', { finetune: false }),
    tinyConfig('cnn', { finetune: false }),
  ]) {
    const E = tinyEmbeddings();
    const m = createModel(config, { embeddings: E });
    try {
      const w0 = m.getWeights()[0]!.values;
      for (let i = 0; i < 3; i++) m.trainStep(batchOf(ROWS, LABELS));
      assert.deepEqual(m.getEmbeddings(), E, `${config.kind}: E unchanged`);
      assert.notDeepEqual(m.getWeights()[0]!.values, w0, `${config.kind}: dense weights changed`);
    } finally {
      m.dispose();
    }
  }
});

test('fine-tuning updates only the rows a batch uses, never PAD', async () => {
  await onBackend('wasm');
  for (const kind of ['bow-finetune', 'cnn', 'bilstm'] as const) {
    const E = tinyEmbeddings();
    const m = createModel(tinyConfig(kind), { embeddings: E });
    try {
      m.trainStep(batchOf([[3, 4, 3], [5]], [1, 0], 6));
      const after = m.getEmbeddings();
      for (let id = 0; id < V; id++) {
        const row = after.subarray(id * D, (id + 1) * D);
        const was = E.subarray(id * D, (id + 1) * D);
        if (id === 3 || id === 4 || id === 5) assert.notDeepEqual(row, was, `${kind}: row ${id} trained`);
        else assert.deepEqual(row, was, `${kind}: row ${id} untouched`);
      }
      assert.ok(
        after.subarray(0, D).every((v) => v === 0),
        'PAD row stays zero',
      );
    } finally {
      m.dispose();
    }
  }
});

test('setWeights rejects unknown, missing and misshapen weights', async () => {
  await onBackend('cpu');
  const m = createModel(tinyConfig('mlp'));
  try {
    const w = m.getWeights();
    assert.throws(
      () => m.setWeights([...w, { name: 'nope', shape: [1], values: new Float32Array(1) }]),
      InvalidInputError,
    );
    assert.throws(() => m.setWeights(w.slice(1)), InvalidInputError);
    assert.throws(
      () => m.setWeights(w.map((x, i) => (i === 0 ? { ...x, shape: [1, x.values.length] } : x))),
      InvalidInputError,
    );
    m.setWeights(w);
    assert.deepEqual(m.getWeights(), w);
  } finally {
    m.dispose();
  }
});

test('edge shapes: one-token batches (T = 1), one example, unidirectional RNNs', async () => {
  await onBackend('wasm');
  const configs = [
    ...MODEL_KINDS.map((k) => tinyConfig(k)),
    tinyConfig('bilstm', { bidirectional: false }),
    tinyConfig('gru', { bidirectional: false }),
  ];
  for (const config of configs) {
    const m = createModel(config, { embeddings: tinyEmbeddings() });
    try {
      for (const rows of [[[1]], [[1], [2]], [[4, 5]]]) {
        const r = m.trainStep(
          batchOf(
            rows,
            rows.map(() => 1),
          ),
        );
        assert.ok(Number.isFinite(r.loss), `${config.kind} ${JSON.stringify(rows)}`);
      }
    } finally {
      m.dispose();
    }
  }
});

test('async variants (for webgpu) match the sync ones; concurrent steps are refused', async () => {
  await onBackend('wasm');
  const a = createModel(tinyConfig('cnn'), { embeddings: tinyEmbeddings() });
  const b = createModel(tinyConfig('cnn'), { embeddings: tinyEmbeddings() });
  try {
    const batch = batchOf(ROWS, LABELS);
    for (let i = 0; i < 3; i++) assert.deepEqual(await a.trainStepAsync(batch), b.trainStep(batch));
    assert.deepEqual(a.getEmbeddings(), b.getEmbeddings());
    assert.deepEqual(await a.predictProbabilitiesAsync(batch), b.predictProbabilities(batch));
    const first = a.trainStepAsync(batch);
    await assert.rejects(a.trainStepAsync(batch), /already running/);
    await first;
    assert.equal(a.steps, 4);
  } finally {
    a.dispose();
    b.dispose();
  }
});

test('training on padded batches gives the same weights as on tight batches (PAD never contributes)', async () => {
  await onBackend('wasm');
  for (const kind of MODEL_KINDS) {
    // Attention's encoder dropout draws one mask value per position, so its masks depend on T: switch it off.
    const config = tinyConfig(kind, { encoderDropout: 0 });
    const tight = createModel(config, { embeddings: tinyEmbeddings() });
    const padded = createModel(config, { embeddings: tinyEmbeddings() });
    try {
      for (let i = 0; i < 5; i++) {
        tight.trainStep(batchOf(ROWS, LABELS));
        padded.trainStep(batchOf(ROWS, LABELS, 9));
      }
      if (kind === 'attention') {
        // The key bias's true gradient is 0 (softmax ignores it): Adam turns its float noise into full steps, so
        // compare what the model computes rather than that parameter.
        const p = batchOf(ROWS, undefined);
        assert.equal(relClose(padded.predictProbabilities(p), tight.predictProbabilities(p), 1e-4), undefined, kind);
        continue;
      }
      const a = tight.getWeights();
      const b = padded.getWeights();
      a.forEach((w, i) => assert.equal(relClose(b[i]!.values, w.values, 1e-5), undefined, `${kind} ${w.name}`));
    } finally {
      tight.dispose();
      padded.dispose();
    }
  }
});

/** The chunks' rows one after the other, padded to the longest T: the single batch the chunks stand for. */
function stack(chunks: ModelBatch[]): ModelBatch {
  const T = Math.max(...chunks.map((c) => c.maxLength));
  const B = chunks.reduce((n, c) => n + c.batchSize, 0);
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

/** Two full-batch steps, each over three chunks of different sizes and lengths sharing some ids. */
const STEPS = [
  [
    batchOf(
      [
        [1, 2, 3],
        [4, 5],
      ],
      [1, 0],
    ),
    batchOf([[3, 6, 7, 8, 9]], [1]),
    batchOf([[10, 1], [11], [2, 2, 5]], [0, 1, 0]),
  ],
  [
    batchOf([[9, 9], [8]], [1, 1]),
    batchOf([[4, 3, 2, 1]], [0]),
    batchOf(
      [
        [6, 10, 11],
        [7, 5, 1, 1, 1, 1],
      ],
      [1, 0],
    ),
  ],
];

async function* asyncChunks(chunks: ModelBatch[]): AsyncGenerator<ModelBatch> {
  for (const c of chunks) {
    await new Promise((resolve) => setImmediate(resolve));
    yield c;
  }
}

test('accumulated steps equal trainStep on the stacked batch (frozen and fine-tuned, dropout on, sync and async)', async () => {
  await onBackend('wasm');
  const configs = [
    tinyConfig('bow-frozen'),
    tinyConfig('bow-finetune', { learningRate: 0.05 }),
    tinyConfig('bow-finetune', { learningRate: 0.05, embeddingOptimizer: 'lazy' }),
    // One dropout layer (on [B, features]): the chunks' masks continue one stream, as the stacked batch's mask.
    tinyConfig('cnn', { learningRate: 0.02 }),
  ];
  for (const config of configs) {
    const what = `${config.kind} ${config.embeddingOptimizer ?? ''}`;
    const ref = createModel(config, { embeddings: tinyEmbeddings() });
    const sync = createModel(config, { embeddings: tinyEmbeddings() });
    const async = createModel(config, { embeddings: tinyEmbeddings() });
    try {
      const before = tf.memory().numTensors;
      for (const chunks of STEPS) {
        const want = ref.trainStep(stack(chunks));
        const gotSync = sync.trainStepAccumulated(chunks);
        const gotAsync = await async.trainStepAccumulatedAsync(asyncChunks(chunks));
        for (const got of [gotSync, gotAsync]) {
          assert.ok(
            Math.abs(got.loss - want.loss) <= 1e-5 * Math.abs(want.loss),
            `${what}: loss ${got.loss} vs ${want.loss}`,
          );
          assert.deepEqual([got.correct, got.examples], [want.correct, want.examples], what);
        }
      }
      assert.deepEqual([sync.steps, async.steps], [2, 2], 'one step per call');
      const want = ref.getWeights();
      for (const m of [sync, async]) {
        m.getWeights().forEach((w, i) => {
          assert.equal(relClose(w.values, want[i]!.values, 1e-5), undefined, `${what} ${w.name}`);
        });
      }
      if (config.kind !== 'bow-frozen') assert.notDeepEqual(want.at(-1)!.values, tinyEmbeddings(), `${what}: E moved`);
      // Each model now holds one tfjs Adam (two beta powers, m, v); accumulation itself keeps nothing.
      assert.equal(tf.memory().numTensors, before + 3 * 4, `${what}: no tensors leaked`);
    } finally {
      ref.dispose();
      sync.dispose();
      async.dispose();
    }
  }
});

test('accumulated steps: no chunks is InvalidInputError, a bad chunk aborts the step, concurrent steps are refused', async () => {
  await onBackend('cpu');
  const m = createModel(tinyConfig('bow-finetune'), { embeddings: tinyEmbeddings() });
  try {
    const field = (f: string) => (e: unknown) => e instanceof InvalidInputError && e.field === f;
    assert.throws(() => m.trainStepAccumulated([]), field('chunks'));
    await assert.rejects(m.trainStepAccumulatedAsync(asyncChunks([])), field('chunks'));
    const good = STEPS[0]!;
    assert.throws(() => m.trainStepAccumulated([good[0]!, { ...good[1]!, labels: undefined }]), field('labels'));
    assert.equal(m.steps, 0, 'no update after a failed chunk');
    const running = m.trainStepAccumulatedAsync(asyncChunks(good));
    assert.throws(() => m.trainStep(good[0]!), /already running/);
    await running;
    assert.equal(m.steps, 1);
    const again = createModel(tinyConfig('bow-finetune'), { embeddings: tinyEmbeddings() });
    try {
      // A failed accumulated step left nothing behind: the same step on a fresh model gives the same weights.
      again.trainStepAccumulated(good);
      assert.deepEqual(again.getWeights(), m.getWeights());
    } finally {
      again.dispose();
    }
  } finally {
    m.dispose();
  }
});

test('evaluate: the confusion matrix of a model whose logits are known by hand', async () => {
  await onBackend('wasm');
  const m = createModel(tinyConfig('bow-frozen'));
  try {
    // Logit = mean over the tokens of their first component: +1 for ids 1-5, -1 for ids 6-11.
    const E = new Float32Array(V * D);
    for (let id = 1; id < V; id++) E[id * D] = id <= 5 ? 1 : -1;
    m.setWeights(
      m.getWeights().map((w) => {
        if (w.name === 'embeddings') return { ...w, values: E };
        if (w.name === 'out/kernel')
          return { ...w, values: Float32Array.from({ length: D }, (_, j) => (j === 0 ? 1 : 0)) };
        return { ...w, values: new Float32Array(w.values.length) };
      }),
    );
    const batches = [
      // logits +1, -1, +1, -1: tp, fn, fp, tn
      batchOf([[1], [6], [2, 3], [7]], [1, 1, 0, 0]),
      // logits -1/3, +1/3, 0 (not > 0: predicted 0): tn, tp, fn
      batchOf(
        [
          [1, 6, 7],
          [2, 3, 8],
          [4, 9],
        ],
        [0, 1, 1],
      ),
    ];
    const want = { tn: 2, fp: 1, fn: 2, tp: 2 };
    for (const r of [m.evaluate(batches), await m.evaluateAsync(batches)]) {
      assert.deepEqual(r.confusion, [
        [want.tn, want.fp],
        [want.fn, want.tp],
      ]);
      assert.equal(r.examples, 7);
      assert.equal(r.accuracy, 4 / 7);
    }
    // Consistent with predictProbabilities on the same batches.
    let tp = 0;
    for (const b of batches) {
      const p = m.predictProbabilities(b);
      b.labels.forEach((y, i) => (tp += y === 1 && p[i]! > 0.5 ? 1 : 0));
    }
    assert.equal(tp, want.tp);
  } finally {
    m.dispose();
  }
});
