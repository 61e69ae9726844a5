import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { selectBackend } from '@ch8/backend/select';
import { collate } from '@ch8/batching/collate';
import { createModel, type SentimentModel } from '@ch8/models/model';
import { BowScorer, FLOAT_ROUNDING_TOLERANCE } from './bow-scorer.ts';
import { exportVersion, scratchRoot, tinyModel } from './fixtures.ts';
import { LoadedVersion } from './loaded.ts';

await selectBackend({ prefer: 'cpu' });

/** Deterministic id rows (ids 1..V-1, lengths 1..maxLength) from a small LCG. */
function idRows(V: number, count: number, maxLength: number, seed: number): Int32Array[] {
  let x = seed >>> 0;
  const next = () => (x = (Math.imul(x, 1664525) + 1013904223) >>> 0);
  return Array.from({ length: count }, () =>
    Int32Array.from({ length: 1 + (next() % maxLength) }, () => 1 + (next() % (V - 1))),
  );
}

/** The model library's tfjs forward pass: each row alone (batch of one, no padding). */
function aloneReference(model: SentimentModel, rows: Int32Array[]): number[] {
  return rows.map((ids) => model.predictProbabilities({ inputIds: ids, batchSize: 1, maxLength: ids.length })[0]!);
}

/** The model library's tfjs forward pass over all rows as one padded batch (collate), in the rows' order. */
function batchReference(model: SentimentModel, rows: Int32Array[]): number[] {
  const batch = collate(rows.map((inputIds, index) => ({ inputIds, label: 0, index })));
  const p = model.predictProbabilities(batch);
  const out = new Array<number>(rows.length);
  for (let r = 0; r < batch.batchSize; r++) out[batch.indices[r]!] = p[r]!;
  return out;
}

describe('BowScorer', () => {
  const models: SentimentModel[] = [];
  after(() => models.forEach((m) => m.dispose()));
  const keep = (m: SentimentModel) => (models.push(m), m);

  for (const kind of ['bow-frozen', 'bow-finetune'] as const) {
    test(`${kind}: equals the tfjs forward pass to float rounding, alone and padded in a batch`, async () => {
      // A trained tiny model, and a larger random one (vocabulary 300, dimension 50, trained a few steps).
      const tiny = keep(tinyModel(kind, 5));
      const large = keep(createModel({ kind, vocabSize: 300, dim: 50, seed: 11 }));
      const rowsOf = (V: number) => idRows(V, 40, 30, 7);
      large.trainStep(collate(rowsOf(300).map((inputIds, i) => ({ inputIds, label: i % 2, index: i }))));
      for (const model of [tiny, large]) {
        const scorer = await BowScorer.of(model);
        assert.ok(scorer !== undefined, `${kind} has a scorer`);
        const rows = rowsOf(model.config.vocabSize);
        const got = scorer.probabilities(rows);
        for (const reference of [aloneReference(model, rows), batchReference(model, rows)]) {
          got.forEach((p, i) => {
            assert.ok(Math.abs(p - reference[i]!) <= 1e-6, `row ${i}: ${p} vs tfjs ${reference[i]}`);
            assert.equal(p, Math.fround(p), 'a float32, as sent');
          });
          assert.deepEqual(scorer.agreesWith(rows, reference).equal, true);
        }
        // The probabilities are not all one value: the comparison means something.
        assert.ok(new Set(got).size > rows.length / 2);
      }
    });
  }

  test('other kinds have no scorer', async () => {
    for (const kind of ['mlp', 'cnn'] as const) assert.equal(await BowScorer.of(keep(tinyModel(kind, 2))), undefined);
  });

  test('agreesWith: a reference of other weights, another length or NaN is not equal', async () => {
    const a = keep(tinyModel('bow-finetune', 1));
    const b = keep(tinyModel('bow-finetune', 2));
    const scorer = (await BowScorer.of(a))!;
    const rows = idRows(a.config.vocabSize, 20, 6, 3);
    const other = aloneReference(b, rows);
    const check = scorer.agreesWith(rows, other);
    assert.equal(check.equal, false);
    assert.ok(check.maxDifference > FLOAT_ROUNDING_TOLERANCE);
    const own = aloneReference(a, rows);
    assert.equal(scorer.agreesWith(rows, own.slice(1)).equal, false);
    assert.equal(
      scorer.agreesWith(
        rows,
        own.map((p, i) => (i === 3 ? NaN : p)),
      ).equal,
      false,
    );
  });
});

describe('LoadedVersion compute path', () => {
  let repo: Awaited<ReturnType<typeof scratchRoot>>;
  before(async () => {
    repo = await scratchRoot();
  });
  after(() => repo.remove());

  test('a bag-of-words version is computed by the scorer, other kinds by tfjs; answers equal the model library', async () => {
    const batching = { maxBatch: 16, maxDelayMs: 1, maxQueue: 100 };
    for (const [name, kind, path] of [
      ['bow', 'bow-frozen', 'bow-scorer'],
      ['mlp', 'mlp', 'tfjs'],
    ] as const) {
      const model = tinyModel(kind, 4);
      try {
        await exportVersion(repo.root, name, model);
        const loaded = await LoadedVersion.load(`${repo.root}/${name}/1`, batching);
        try {
          assert.equal(loaded.compute.path, path);
          // The scorer's calls start in the caller's turn; tfjs calls gather the turn's callers first.
          assert.equal(loaded.compute.gatherTurn, path === 'tfjs');
          if (path === 'bow-scorer') assert.ok(loaded.compute.maxDifference! <= 1e-6);
          const texts = ['I loved it!', 'the plot was dull', 'great fun , not bad'];
          const got = await loaded.predict(texts);
          got.forEach((p, i) => {
            const ids = Int32Array.from(p.ids);
            const ref = aloneReference(model, [ids])[0]!;
            assert.ok(Math.abs(p.probability - ref) <= 1e-6, `${texts[i]}: ${p.probability} vs ${ref}`);
            assert.equal(p.labelId, p.probability > 0.5 ? 1 : 0);
          });
        } finally {
          await loaded.drainAndDispose(0);
        }
      } finally {
        model.dispose();
      }
    }
  });
});
