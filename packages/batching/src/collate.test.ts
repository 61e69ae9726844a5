import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isInvalidInput } from '@ch8/errors';
import { batchRow, checkBatch, collate } from './collate.ts';

// The chapter's example: the first four SST-2 training examples.
const CHAPTER = [
  { inputIds: Int32Array.from([5785, 66, 113845, 18, 12, 15095, 1594]), label: 0, index: 0 },
  { inputIds: Int32Array.from([3475, 87, 15888, 90, 27695, 42637]), label: 0, index: 1 },
  { inputIds: Int32Array.from([4, 5053, 45, 3305, 31647, 348, 904, 2815, 47, 1276, 1964]), label: 1, index: 2 },
  { inputIds: Int32Array.from([987, 14528, 4941, 873, 12, 208, 898]), label: 0, index: 3 },
];

describe('collate', () => {
  it("reproduces the chapter's example exactly", () => {
    const b = collate(CHAPTER);
    assert.equal(b.batchSize, 4);
    assert.equal(b.maxLength, 11);
    const rows = [0, 1, 2, 3].map((r) => [...batchRow(b, r)]);
    assert.deepEqual(rows, [
      [4, 5053, 45, 3305, 31647, 348, 904, 2815, 47, 1276, 1964],
      [5785, 66, 113845, 18, 12, 15095, 1594, 0, 0, 0, 0],
      [987, 14528, 4941, 873, 12, 208, 898, 0, 0, 0, 0],
      [3475, 87, 15888, 90, 27695, 42637, 0, 0, 0, 0, 0],
    ]);
    // label [[1], [0], [0], [0]]
    assert.deepEqual([...b.labels], [1, 0, 0, 0]);
    assert.deepEqual([...b.lengths], [11, 7, 7, 6]);
    assert.deepEqual([...b.indices], [2, 0, 3, 1]);
    assert.ok(b.inputIds instanceof Int32Array && b.inputIds.length === 44);
    assert.ok(b.labels instanceof Float32Array);
  });

  it('is stable for equal lengths whatever the input order', () => {
    const ex = [3, 1, 3, 2, 3, 1].map((len, i) => ({
      inputIds: new Int32Array(len).fill(i + 1),
      label: i % 2,
      index: 10 + i,
    }));
    const b = collate(ex);
    assert.deepEqual([...b.indices], [10, 12, 14, 13, 11, 15]);
    assert.deepEqual([...b.lengths], [3, 3, 3, 2, 1, 1]);
    assert.deepEqual([...batchRow(b, 3)], [4, 4, 0]);
  });

  it('accepts plain arrays of ids; B=1, T=1; empty batch; zero-length rows', () => {
    const one = collate([{ inputIds: [7], label: 1, index: 0 }]);
    assert.deepEqual([one.batchSize, one.maxLength, [...one.inputIds]], [1, 1, [7]]);
    const none = collate([]);
    assert.deepEqual([none.batchSize, none.maxLength, none.inputIds.length, none.labels.length], [0, 0, 0, 0]);
    const blank = collate([
      { inputIds: [], label: 0, index: 4 },
      { inputIds: [5, 6], label: 1, index: 5 },
    ]);
    assert.deepEqual([...blank.inputIds], [5, 6, 0, 0]);
    assert.deepEqual([...blank.lengths], [2, 0]);
  });

  it('bad examples -> InvalidInputError', () => {
    assert.throws(
      () => collate([CHAPTER[0]!, { label: 1, index: 1 } as never]),
      (e: unknown) => isInvalidInput(e) && e.entry === 2 && e.field === 'input_ids',
    );
  });

  it('checkBatch finds inconsistent arrays', () => {
    const b = collate(CHAPTER);
    checkBatch(b);
    assert.throws(
      () => checkBatch({ ...b, maxLength: 10 }),
      (e: unknown) => isInvalidInput(e) && e.field === 'input_ids',
    );
    assert.throws(
      () => checkBatch({ ...b, labels: new Float32Array(3) }),
      (e: unknown) => isInvalidInput(e) && e.field === 'label',
    );
    assert.throws(
      () => checkBatch({ ...b, lengths: new Int32Array(5) }),
      (e: unknown) => isInvalidInput(e) && e.field === 'length',
    );
    assert.throws(
      () => checkBatch({ ...b, indices: [0, 1, 2, 3] as never }),
      (e: unknown) => isInvalidInput(e) && e.field === 'index',
    );
    assert.throws(
      () => checkBatch({ ...b, batchSize: -1 }),
      (e: unknown) => isInvalidInput(e) && e.field === 'batch_size',
    );
  });
});
