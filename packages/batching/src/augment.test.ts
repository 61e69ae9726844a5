import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InvalidInputError } from '@ch8/errors';
import { uniform01 } from '@ch8/random';
import { dropTokens } from './augment.ts';
import { collate } from './collate.ts';

const batch = () =>
  collate([
    { inputIds: [5, 6, 7, 8, 9, 10, 11, 12], label: 1, index: 0 },
    { inputIds: [3], label: 0, index: 1 },
    { inputIds: [20, 21, 22, 23], label: 0, index: 2 },
  ]);

/** The real tokens of each example, by example index. */
function rows(b: ReturnType<typeof batch>): Map<number, { ids: number[]; label: number }> {
  const out = new Map<number, { ids: number[]; label: number }>();
  for (let r = 0; r < b.batchSize; r++) {
    const ids = Array.from(b.inputIds.subarray(r * b.maxLength, r * b.maxLength + b.lengths[r]!));
    out.set(b.indices[r]!, { ids, label: b.labels[r]! });
  }
  return out;
}

test('drops tokens, keeps order, labels and indices; rows stay sorted and padded with 0', () => {
  const before = rows(batch());
  const b = dropTokens(batch(), 0.5, uniform01(7));
  const after = rows(b);
  assert.deepEqual([...after.keys()].sort(), [0, 1, 2]);
  for (const [i, { ids, label }] of after) {
    const orig = before.get(i)!;
    assert.equal(label, orig.label);
    assert.ok(ids.length >= 1 && ids.length <= orig.ids.length);
    // A subsequence of the original, in order.
    let j = 0;
    for (const id of ids) {
      while (j < orig.ids.length && orig.ids[j] !== id) j++;
      assert.ok(j < orig.ids.length, `${id} of example ${i} is not from it, in order`);
      j++;
    }
  }
  for (let r = 1; r < b.batchSize; r++) assert.ok(b.lengths[r - 1]! >= b.lengths[r]!);
  assert.equal(b.maxLength, b.lengths[0]);
  for (let r = 0; r < b.batchSize; r++)
    for (let t = b.lengths[r]!; t < b.maxLength; t++) assert.equal(b.inputIds[r * b.maxLength + t], 0);
});

test('the share of tokens dropped is the rate (10,000 tokens, within 2 points), never a whole example', () => {
  const examples = Array.from({ length: 1000 }, (_, i) => ({
    inputIds: Array.from({ length: 10 }, (_, t) => 1 + ((i + t) % 50)),
    label: i % 2,
    index: i,
  }));
  const b = dropTokens(collate(examples), 0.3, uniform01(11));
  let kept = 0;
  for (let r = 0; r < b.batchSize; r++) {
    assert.ok(b.lengths[r]! >= 1);
    kept += b.lengths[r]!;
  }
  assert.ok(Math.abs(1 - kept / 10000 - 0.3) < 0.02, `dropped ${1 - kept / 10000}`);
});

test('the same random stream gives the same batch; rate 0 leaves it as it is; a bad rate is refused', () => {
  assert.deepEqual(dropTokens(batch(), 0.4, uniform01(3)), dropTokens(batch(), 0.4, uniform01(3)));
  const b = batch();
  assert.equal(dropTokens(b, 0, uniform01(3)), b);
  assert.throws(() => dropTokens(batch(), 1, uniform01(3)), InvalidInputError);
  assert.throws(() => dropTokens(batch(), -0.1, uniform01(3)), InvalidInputError);
});
