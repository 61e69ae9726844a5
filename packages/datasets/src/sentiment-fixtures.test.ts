import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isInvalidInput } from '@ch8/errors';
import { loadSentimentFixtures, readSentimentFixture, type FixtureRow } from './sentiment-fixtures.ts';

const key = (r: FixtureRow): string => `${r.source}:${r.entry}`;

describe('npm sentiment fixtures', () => {
  it('reads each set: 1,000 labelled sentences, the trailing empty entry dropped', async () => {
    for (const source of ['amazon', 'imdb', 'yelp'] as const) {
      const { rows, read, droppedInvalid } = await readSentimentFixture(source);
      assert.equal(read, 1001);
      assert.equal(droppedInvalid, 1);
      assert.equal(rows.length, 1000);
      assert.equal(rows.filter((r) => r.label === 1).length, 500);
      assert.ok(rows.every((r) => r.source === source && r.text.trim() !== ''));
    }
  });

  it('splits 80/10/10, stratified, without overlap or repeated texts, deterministically', async () => {
    const a = await loadSentimentFixtures({ seed: 7 });
    const b = await loadSentimentFixtures({ seed: 7 });
    assert.deepEqual(a, b);
    const all = [...a.train, ...a.dev, ...a.test];
    assert.equal(all.length + a.info.droppedDuplicates, 3000);
    assert.equal(a.info.read, 3003);
    assert.equal(a.info.droppedInvalid, 3);
    assert.ok(a.info.droppedDuplicates > 0 && a.info.droppedDuplicates < 30);
    assert.equal(new Set(all.map(key)).size, all.length);
    assert.equal(new Set(all.map((r) => r.text.trim())).size, all.length);
    assert.ok(Math.abs(a.train.length / all.length - 0.8) < 0.01);
    assert.ok(Math.abs(a.dev.length / all.length - 0.1) < 0.01);
    for (const split of [a.train, a.dev, a.test]) {
      for (const source of ['amazon', 'imdb', 'yelp']) {
        const s = split.filter((r) => r.source === source);
        const pos = s.filter((r) => r.label === 1).length;
        assert.ok(Math.abs(pos / s.length - 0.5) < 0.05, `${source} balance ${pos}/${s.length}`);
      }
    }
  });

  it('another seed gives another split; chosen sources and fractions are honoured', async () => {
    const a = await loadSentimentFixtures({ seed: 1 });
    const b = await loadSentimentFixtures({ seed: 2 });
    assert.notDeepEqual(a.dev.map(key), b.dev.map(key));
    const y = await loadSentimentFixtures({ sources: ['yelp'], fractions: { train: 0.5, dev: 0.5 } });
    assert.equal(y.test.length, 0);
    assert.ok(y.train.every((r) => r.source === 'yelp'));
    assert.equal(y.train.length + y.dev.length + y.info.droppedDuplicates, 1000);
  });

  it('bad options -> InvalidInputError', async () => {
    await assert.rejects(loadSentimentFixtures({ fractions: { train: 0.9, dev: 0.2 } }), isInvalidInput);
    await assert.rejects(loadSentimentFixtures({ fractions: { train: -1, dev: 0 } }), isInvalidInput);
    await assert.rejects(loadSentimentFixtures({ seed: 0.5 }), isInvalidInput);
    await assert.rejects(loadSentimentFixtures({ sources: [] }), isInvalidInput);
    await assert.rejects(loadSentimentFixtures({ sources: ['twitter' as never] }), isInvalidInput);
  });
});
