import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { vocabularyHash } from '@ch8/embeddings/vocabulary';
import { randomEntries, writeVectorFile } from '@ch8/embeddings/write';
import { isNotFound } from '@ch8/errors';
import type { DatasetSpec } from './dataset.ts';
import { prepareLocal } from './local.ts';

const DIM = 3;
/** The vector file's words, in file order (not sorted, not the data's order). */
const SOURCE = ['plot', 'the', 'zebra', 'movie', 'bad', 'good', 'film'];
const ENTRIES = randomEntries(SOURCE, DIM, 5);
let dir: string;
let vectors: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ch8-local-'));
  vectors = join(dir, 'vectors.bin');
  await writeVectorFile(vectors, 'word2vec-binary', ENTRIES, DIM);
  await writeFile(join(dir, 'train.tsv'), 'sentence\tlabel\ngood movie \t1\nxyzzy \t0\nthe bad bad plot \t0\n');
  await writeFile(join(dir, 'dev.tsv'), 'sentence\tlabel\nfilm good \t1\n');
  // The same rows, words first seen in another order.
  await writeFile(join(dir, 'train2.tsv'), 'sentence\tlabel\nthe bad bad plot \t0\ngood movie \t1\nxyzzy \t0\n');
});
after(() => rm(dir, { recursive: true, force: true }));

const tabular = (train: string): DatasetSpec => ({
  kind: 'tabular',
  files: [
    { split: 'train', path: join(dir, train) },
    { split: 'dev', path: join(dir, 'dev.tsv') },
  ],
  format: 'tsv',
  textColumn: 'sentence',
  labelColumn: 'label',
  tokenizer: { kind: 'chapter', version: 1 },
});

describe('prepareLocal', () => {
  it('prunes to the data set words in vector-file order, maps every split, caches the table', async () => {
    const logs: string[] = [];
    const p = await prepareLocal(tabular('train.tsv'), {
      vectors,
      cacheDir: join(dir, 'cache'),
      log: (l) => logs.push(l),
    });
    // Kept words in the vector file's order ('zebra' is not in the data); 'xyzzy' is not in the vectors.
    const tokens = ['<pad>', 'plot', 'the', 'movie', 'bad', 'good', 'film'];
    assert.deepEqual(p.tokens, tokens);
    assert.equal(p.vocabHash, vocabularyHash(tokens, DIM));
    assert.equal(p.dim, DIM);
    assert.equal(p.vectors, vectors);
    assert.deepEqual(p.tokenizer, { kind: 'chapter', version: 1 });
    assert.match(p.description, /train=.*train\.tsv, dev=.*dev\.tsv/);
    // Row 0 zeros, then the file's vectors of the kept words, bit for bit.
    const want = new Float32Array(tokens.length * DIM);
    tokens.slice(1).forEach((t, i) => want.set(ENTRIES[SOURCE.indexOf(t)]![1], (i + 1) * DIM));
    assert.deepEqual(p.matrix, want);
    const id = (t: string) => tokens.indexOf(t);
    assert.deepEqual(
      p.splits.map((s) => [
        s.name,
        s.examples.map((e) => [e.index, [...e.inputIds], e.label]),
        s.stats.rows,
        s.stats.kept,
        s.stats.oovTokens,
      ]),
      [
        [
          'train',
          [
            [0, [id('good'), id('movie')], 1],
            [2, [id('the'), id('bad'), id('bad'), id('plot')], 0],
          ],
          3,
          2,
          1,
        ],
        ['dev', [[0, [id('film'), id('good')], 1]], 1, 1, 0],
      ],
    );
    assert.equal(p.cacheHit, false);
    assert.ok(logs.some((l) => l.includes('7 words')) && logs.some((l) => l.includes('built')), logs.join('\n'));

    const again = await prepareLocal(tabular('train.tsv'), { vectors, cacheDir: join(dir, 'cache') });
    assert.equal(again.cacheHit, true);
    assert.deepEqual([again.tokens, again.vocabHash, again.matrix], [p.tokens, p.vocabHash, p.matrix]);
  });

  it('the vocabulary does not depend on the order the data names its words', async () => {
    const a = await prepareLocal(tabular('train.tsv'), { vectors, cacheDir: join(dir, 'cache-a') });
    const b = await prepareLocal(tabular('train2.tsv'), { vectors, cacheDir: join(dir, 'cache-b') });
    assert.deepEqual(b.tokens, a.tokens);
    assert.equal(b.vocabHash, a.vocabHash);
  });

  it('a missing vector file or data file is NotFoundError', async () => {
    await assert.rejects(
      prepareLocal(tabular('train.tsv'), { vectors: join(dir, 'nope.bin'), cacheDir: join(dir, 'cache') }),
      isNotFound,
    );
    await assert.rejects(prepareLocal(tabular('missing.tsv'), { vectors, cacheDir: join(dir, 'cache') }), isNotFound);
  });
});
