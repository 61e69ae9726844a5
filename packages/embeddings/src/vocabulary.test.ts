import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isInvalidInput } from '@ch8/errors';
import { PAD_ID, PAD_TOKEN, Vocabulary, vocabularyHash } from './vocabulary.ts';

test('ids both ways, <pad> at 0', () => {
  const v = Vocabulary.fromWords(['the', 'movie', 'café'], 3);
  assert.equal(v.size, 4);
  assert.equal(v.idOf(PAD_TOKEN), PAD_ID);
  assert.equal(v.idOf('café'), 3);
  assert.equal(v.tokenOf(2), 'movie');
  assert.equal(v.idOf('nope'), undefined);
  assert.equal(v.tokenOf(4), undefined);
  assert.equal(v.tokenOf(-1), undefined);
  assert.equal(v.tokenOf(1.5), undefined);
  assert.ok(v.has('the') && !v.has('The'));
});

test('hash: same tokens, order and dim -> same hash; any change -> another', () => {
  const a = Vocabulary.fromWords(['x', 'y'], 2);
  assert.equal(a.hash, Vocabulary.fromWords(['x', 'y'], 2).hash);
  assert.match(a.hash, /^[0-9a-f]{64}$/);
  assert.notEqual(a.hash, Vocabulary.fromWords(['y', 'x'], 2).hash);
  assert.notEqual(a.hash, Vocabulary.fromWords(['x', 'y'], 3).hash);
  assert.notEqual(a.hash, Vocabulary.fromWords(['x', 'y', 'z'], 2).hash);
  // Token boundaries count: ["ab","c"] differs from ["a","bc"].
  assert.notEqual(Vocabulary.fromWords(['ab', 'c'], 2).hash, Vocabulary.fromWords(['a', 'bc'], 2).hash);
  assert.equal(a.hash, vocabularyHash([PAD_TOKEN, 'x', 'y'], 2));
  // Many tokens (crosses the hash's block buffer) still hash the same way twice.
  const many = Array.from({ length: 100_000 }, (_, i) => `token${i}`);
  assert.equal(Vocabulary.fromWords(many, 5).hash, vocabularyHash([PAD_TOKEN, ...many], 5));
});

test('rejects a vocabulary without <pad> first, a repeated token, or a bad dim', () => {
  assert.throws(
    () => new Vocabulary(['x', PAD_TOKEN], 2),
    (e: unknown) => isInvalidInput(e) && e.field === 'tokens',
  );
  assert.throws(
    () => Vocabulary.fromWords(['x', 'x'], 2),
    (e: unknown) => isInvalidInput(e) && /twice/.test(e.message),
  );
  assert.throws(
    () => Vocabulary.fromWords([PAD_TOKEN], 2),
    (e: unknown) => isInvalidInput(e),
  );
  assert.throws(
    () => Vocabulary.fromWords(['x'], 0),
    (e: unknown) => isInvalidInput(e) && e.field === 'dim',
  );
});

test('trusted vocabularies index lazily but behave the same', () => {
  const tokens = [PAD_TOKEN, 'a', 'b'];
  const v = Vocabulary.trusted(tokens, 4);
  assert.equal(v.hash, new Vocabulary(tokens, 4).hash);
  assert.equal(v.idOf('b'), 2);
  assert.equal(v.tokenOf(1), 'a');
  assert.throws(
    () => Vocabulary.trusted(['a'], 4),
    (e: unknown) => isInvalidInput(e),
  );
  const dup = Vocabulary.trusted([PAD_TOKEN, 'a', 'a'], 4);
  assert.throws(
    () => dup.idOf('a'),
    (e: unknown) => isInvalidInput(e) && /twice/.test(e.message),
  );
});
