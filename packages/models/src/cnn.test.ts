import test from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '@ch8/backend/select';
import { createModel, type NamedWeight } from './model.ts';
import type { Batch } from './batch.ts';
import { D, batchOf, relClose, tinyConfig, tinyEmbeddings } from './fixtures.ts';

/**
 * Kim CNN in plain float64 code, written from its definition (no im2col, no pooling kernel): for each width k and
 * filter f, z[t] = b[f] + sum_j,c x[t + j, c] W[j*D + c, f] over the windows t < max(len - k + 1, 1) (x is zero past
 * the sentence), the feature is max_t relu(z[t]), the logit a linear map of the features; mean BCE loss. Gradients
 * by the chain rule through the first maximal window (a window with relu(z) = 0 passes nothing back).
 */
function reference(batch: Batch, weights: NamedWeight[], widths: number[], filters: number) {
  const w = new Map(weights.map((x) => [x.name, Array.from(x.values)]));
  const E = w.get('embeddings')!;
  const out = w.get('out/kernel')!;
  const outBias = w.get('out/bias')![0]!;
  const B = batch.batchSize;
  const T = batch.maxLength;
  const grads = new Map<string, number[]>();
  for (const k of widths) {
    grads.set(`conv${k}/kernel`, new Array<number>(k * D * filters).fill(0));
    grads.set(`conv${k}/bias`, new Array<number>(filters).fill(0));
  }
  grads.set('out/kernel', new Array<number>(widths.length * filters).fill(0));
  grads.set('out/bias', [0]);
  const tableGrad = new Map<number, number[]>();
  let loss = 0;
  const logits: number[] = [];
  for (let b = 0; b < B; b++) {
    const ids: number[] = [];
    for (let t = 0; t < T; t++) if (batch.inputIds[b * T + t] !== 0) ids.push(batch.inputIds[b * T + t]!);
    const len = ids.length;
    const x = (t: number, c: number): number => (t < len ? E[ids[t]! * D + c]! : 0);
    const feats: { value: number; t: number; k: number; f: number; g: number }[] = [];
    widths.forEach((k, g) => {
      const W = w.get(`conv${k}/kernel`)!;
      const bias = w.get(`conv${k}/bias`)!;
      for (let f = 0; f < filters; f++) {
        let best = -Infinity;
        let at = -1;
        for (let t = 0; t < Math.max(len - k + 1, 1); t++) {
          let z = bias[f]!;
          for (let j = 0; j < k; j++) for (let c = 0; c < D; c++) z += x(t + j, c) * W[(j * D + c) * filters + f]!;
          const h = Math.max(z, 0);
          if (h > best) {
            best = h;
            at = t;
          }
        }
        feats.push({ value: best, t: at, k, f, g });
      }
    });
    let z = outBias;
    feats.forEach((p, i) => (z += p.value * out[i]!));
    logits.push(z);
    const y = batch.labels[b]!;
    loss += (Math.max(z, 0) - z * y + Math.log1p(Math.exp(-Math.abs(z)))) / B;
    const dz = (1 / (1 + Math.exp(-z)) - y) / B;
    grads.get('out/bias')![0]! += dz;
    feats.forEach((p, i) => {
      grads.get('out/kernel')![i]! += dz * p.value;
      if (p.value <= 0) return; // relu'(0) = 0
      const dh = dz * out[i]!;
      const W = w.get(`conv${p.k}/kernel`)!;
      const dW = grads.get(`conv${p.k}/kernel`)!;
      grads.get(`conv${p.k}/bias`)![p.f]! += dh;
      for (let j = 0; j < p.k; j++) {
        const t = p.t + j;
        if (t >= len) continue;
        const row = tableGrad.get(ids[t]!) ?? new Array<number>(D).fill(0);
        tableGrad.set(ids[t]!, row);
        for (let c = 0; c < D; c++) {
          dW[(j * D + c) * filters + p.f]! += dh * x(t, c);
          row[c]! += dh * W[(j * D + c) * filters + p.f]!;
        }
      }
    });
  }
  return { loss, logits, grads, tableGrad };
}

const BATCHES: [string, Batch][] = [
  // Lengths 6, 4, 3, 1: windows of width 3 and 4 past some sentences' ends, one sentence shorter than every width.
  ['mixed lengths', batchOf([[1, 2, 9, 2], [8], [3, 4, 5, 6, 7, 11], [10, 10, 4]], [0, 1, 1, 0])],
  // Padded length 2 < the widest width: every example has one window, read past the padded batch.
  ['T below the widths', batchOf([[5, 6], [7]], [1, 0])],
  // The same sentences with PAD columns beyond the longest.
  ['extra PAD columns', batchOf([[4, 3, 2], [9], [1, 1]], [1, 1, 0], 7)],
];

for (const backend of ['wasm', 'cpu'] as const) {
  test(`${backend}: cnn logits, loss and gradients equal a float64 Kim CNN in plain code (widths 3 and 4)`, async () => {
    await selectBackend({ prefer: backend });
    assert.equal(tf.getBackend(), backend);
    const widths = [3, 4];
    const filters = 5;
    const m = createModel(tinyConfig('cnn', { widths, filters }), { embeddings: tinyEmbeddings() });
    try {
      const before = tf.memory().numTensors;
      for (const [what, batch] of BATCHES) {
        const ref = reference(batch, m.getWeights(), widths, filters);
        const p = m.predictProbabilities(batch);
        ref.logits.forEach((z, b) => assert.ok(Math.abs(p[b]! - 1 / (1 + Math.exp(-z))) < 1e-5, `${what}: p[${b}]`));
        const g = m.gradients(batch);
        assert.ok(Math.abs(g.loss - ref.loss) <= 1e-5 * ref.loss, `${what}: loss ${g.loss} vs ${ref.loss}`);
        for (const [name, want] of ref.grads) {
          assert.equal(relClose(g.params.get(name)!, want, 1e-4, 1e-7), undefined, `${what}: ${name}`);
        }
        const rows = [...g.embeddingRows];
        const used = [...new Set(batch.inputIds)].filter((id) => id !== 0);
        assert.deepEqual(
          [...rows].sort((a, b) => a - b),
          used.sort((a, b) => a - b),
          `${what}: rows`,
        );
        const want = rows.flatMap((id) => ref.tableGrad.get(id) ?? new Array<number>(D).fill(0));
        assert.equal(relClose(g.embeddings!, want, 1e-4, 1e-7), undefined, `${what}: embedding rows`);
      }
      assert.equal(tf.memory().numTensors, before, 'no tensors leaked');
    } finally {
      m.dispose();
    }
  });
}
