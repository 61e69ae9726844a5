import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, truncate, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { isInvalidInput, isNotFound } from '@ch8/errors';
import { cacheKey, loadOrBuildTable } from './cache.ts';
import { makeTable } from './table.ts';
import { readTable, writeTable } from './table-file.ts';
import { randomEntries, writeVectorFile } from './write.ts';

let dir = '';
let source = '';
const ENTRIES = randomEntries(50, 6, 21);
const WORDS = ['w3', 'w10', 'w50', 'nothere'];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ch8-emb-cache-'));
  source = join(dir, 'vectors.bin');
  await writeVectorFile(source, 'word2vec-binary', ENTRIES, 6);
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function bits(v: Float32Array): string {
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex');
}

test('writeTable/readTable round-trip; the matrix is a view of the file buffer', async () => {
  const table = makeTable([
    ['x', [1, 2]],
    ['ünï', [3.25, -4]],
    ['a\nb', [5, 6]],
  ]);
  const path = join(dir, 'rt', 't.ch8emb');
  await writeTable(path, table, { note: 'hi' });
  const { table: back, extra } = await readTable(path);
  assert.deepEqual(back.vocab.tokens, table.vocab.tokens);
  assert.equal(back.vocab.hash, table.vocab.hash);
  assert.equal(bits(back.matrix), bits(table.matrix));
  assert.equal(back.dim, 2);
  assert.deepEqual(extra, { note: 'hi' });
  assert.ok(back.matrix.buffer.byteLength >= (await readFile(path)).length);
  assert.deepEqual(await readdir(join(dir, 'rt')), ['t.ch8emb']); // no temp file left
});

test('sha256 checksums work too, and catch a flipped byte', async () => {
  const table = makeTable(randomEntries(20, 4, 3));
  const path = join(dir, 'sha', 't.ch8emb');
  await writeTable(path, table, {}, { checksum: 'sha256' });
  const bytes = await readFile(path);
  assert.equal(bytes.readUInt32LE(12), 2);
  assert.equal(bits((await readTable(path)).table.matrix), bits(table.matrix));
  bytes[bytes.length - 1] = (bytes[bytes.length - 1] as number) ^ 1;
  await writeFile(path, bytes);
  await assert.rejects(readTable(path), (e: unknown) => isInvalidInput(e) && /checksum/.test(e.message));
});

test('build, then a hit with the same table; other words or a changed file miss', async () => {
  const cacheDir = join(dir, 'c1');
  const first = await loadOrBuildTable({ source, words: WORDS, cacheDir });
  assert.equal(first.cacheHit, false);
  assert.deepEqual(first.table.vocab.tokens, ['<pad>', 'w3', 'w10', 'w50']);
  const files = await readdir(cacheDir);
  assert.deepEqual(files, [`${first.key}.ch8emb`]); // atomic write: no temp files left
  const second = await loadOrBuildTable({ source, words: [...WORDS].reverse(), cacheDir });
  assert.equal(second.cacheHit, true);
  assert.equal(second.key, first.key);
  assert.equal(second.table.vocab.hash, first.table.vocab.hash);
  assert.equal(bits(second.table.matrix), bits(first.table.matrix));
  assert.deepEqual(second.table.stats, first.table.stats);
  const other = await loadOrBuildTable({ source, words: ['w1'], cacheDir });
  assert.equal(other.cacheHit, false);
  assert.notEqual(other.key, first.key);
  const all = await loadOrBuildTable({ source, words: null, cacheDir });
  assert.equal(all.table.vocab.size, 51);
  await utimes(source, new Date(), new Date(Date.now() + 5000));
  assert.notEqual(await cacheKey(source, undefined, WORDS), first.key);
  const changed = await loadOrBuildTable({ source, words: WORDS, cacheDir });
  assert.equal(changed.cacheHit, false);
});

test('a corrupt cache file is detected and rebuilt, never served', async () => {
  const cacheDir = join(dir, 'c2');
  const first = await loadOrBuildTable({ source, words: WORDS, cacheDir });
  const bytes = await readFile(first.cachePath);
  bytes[bytes.length - 100] = (bytes[bytes.length - 100] as number) ^ 0xff; // one flipped byte in the matrix
  await writeFile(first.cachePath, bytes);
  await assert.rejects(readTable(first.cachePath), (e: unknown) => isInvalidInput(e) && /checksum/.test(e.message));
  const again = await loadOrBuildTable({ source, words: WORDS, cacheDir });
  assert.equal(again.cacheHit, false);
  assert.match(again.rebuilt ?? '', /checksum/);
  assert.equal(bits(again.table.matrix), bits(first.table.matrix));
  assert.equal((await loadOrBuildTable({ source, words: WORDS, cacheDir })).cacheHit, true);
});

test('a truncated cache file is detected and rebuilt', async () => {
  const cacheDir = join(dir, 'c3');
  const first = await loadOrBuildTable({ source, words: WORDS, cacheDir });
  await truncate(first.cachePath, 200);
  const again = await loadOrBuildTable({ source, words: WORDS, cacheDir });
  assert.equal(again.cacheHit, false);
  assert.match(again.rebuilt ?? '', /payload/);
  await truncate(first.cachePath, 10);
  assert.match((await loadOrBuildTable({ source, words: WORDS, cacheDir })).rebuilt ?? '', /only 10 bytes/);
  await writeFile(first.cachePath, 'not a table at all, just some text that is long enough to have a header');
  assert.match((await loadOrBuildTable({ source, words: WORDS, cacheDir })).rebuilt ?? '', /magic/);
  assert.deepEqual(await readdir(cacheDir), [`${first.key}.ch8emb`]);
});

test('a cache file of another key at this name is not served', async () => {
  const cacheDir = join(dir, 'c4');
  const a = await loadOrBuildTable({ source, words: ['w1'], cacheDir });
  const b = await loadOrBuildTable({ source, words: ['w2'], cacheDir });
  await writeFile(b.cachePath, await readFile(a.cachePath));
  const again = await loadOrBuildTable({ source, words: ['w2'], cacheDir });
  assert.equal(again.cacheHit, false);
  assert.deepEqual(again.table.vocab.tokens, ['<pad>', 'w2']);
});

test('missing source -> NotFoundError; missing table file -> NotFoundError', async () => {
  await assert.rejects(
    loadOrBuildTable({ source: join(dir, 'nope'), words: ['a'], cacheDir: join(dir, 'c5') }),
    (e: unknown) => isNotFound(e),
  );
  await assert.rejects(readTable(join(dir, 'nope.ch8emb')), (e: unknown) => isNotFound(e));
});

test('concurrent calls for one table share a single build', async () => {
  const cacheDir = join(dir, 'c7');
  const [a, b] = await Promise.all([
    loadOrBuildTable({ source, words: WORDS, cacheDir }),
    loadOrBuildTable({ source, words: WORDS, cacheDir }),
  ]);
  assert.equal(a.table.matrix, b.table.matrix);
  assert.deepEqual(await readdir(cacheDir), [`${a.key}.ch8emb`]);
});

test('a failed write leaves no temp file', async () => {
  const table = makeTable([['x', [1]]]);
  const bad = { ...table, matrix: new Float32Array(5) };
  const d = join(dir, 'c6');
  await assert.rejects(writeTable(join(d, 't.ch8emb'), bad), (e: unknown) => isInvalidInput(e));
  await writeTable(join(d, 'ok.ch8emb'), table);
  // The target is a directory: rename fails, the temp file is removed.
  await assert.rejects(writeTable(d, table));
  assert.deepEqual(await readdir(d), ['ok.ch8emb']);
});
