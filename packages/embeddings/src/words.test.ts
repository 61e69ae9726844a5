import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { isInvalidInput, isNotFound } from '@ch8/errors';
import { chapterTokens, wordsFromTsv } from './words.ts';

let dir = '';
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ch8-emb-words-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('chapter tokenization: lower-case, split on white space', () => {
  assert.deepEqual(chapterTokens("  It 's   NOT\ta Good movie . "), ['it', "'s", 'not', 'a', 'good', 'movie', '.']);
  assert.deepEqual(chapterTokens(''), []);
});

test('distinct words of the sentence column of several TSVs, header skipped, first-seen order', async () => {
  const a = join(dir, 'train.tsv');
  const b = join(dir, 'dev.tsv');
  await writeFile(a, 'sentence\tlabel\nA good Movie \t1\nbad movie\t0\n');
  await writeFile(b, 'sentence\tlabel\r\nsentence label good\t1\r\n\r\n');
  assert.deepEqual([...(await wordsFromTsv([a, b]))], ['a', 'good', 'movie', 'bad', 'sentence', 'label']);
  const c = join(dir, 'test.tsv');
  await writeFile(c, 'index\tsentence\n0\tHello there\n');
  assert.deepEqual([...(await wordsFromTsv(c))], ['hello', 'there']);
});

test('bad TSVs: no sentence column, a short row, a missing file', async () => {
  const a = join(dir, 'nohead.tsv');
  await writeFile(a, 'text\tlabel\nx\t1\n');
  await assert.rejects(wordsFromTsv(a), (e: unknown) => isInvalidInput(e) && e.line === 1 && e.field === 'sentence');
  const b = join(dir, 'short.tsv');
  await writeFile(b, 'label\tsentence\n1\tok\n0\n');
  await assert.rejects(wordsFromTsv(b), (e: unknown) => isInvalidInput(e) && e.line === 3 && e.file === b);
  await assert.rejects(wordsFromTsv(join(dir, 'nope.tsv')), (e: unknown) => isNotFound(e));
});
