import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isInvalidInput } from '@ch8/errors';
import { collate } from './collate.ts';
import {
  batchPlan,
  createRng,
  epochBatches,
  paddingStats,
  plannedBatches,
  shuffleInPlace,
  type BatchPlanOptions,
} from './plan.ts';

/** Deterministic pseudo-random lengths 1..60 with a long tail. */
function makeLengths(n: number): Int32Array {
  const rnd = createRng(12345);
  return Int32Array.from({ length: n }, () => 1 + Math.floor(60 * rnd() ** 2));
}

function assertExactlyOnce(plan: Int32Array[], n: number): void {
  const seen = new Uint8Array(n);
  for (const b of plan) for (const p of b) seen[p]! += 1;
  assert.ok(
    seen.every((c) => c === 1),
    'every example exactly once',
  );
}

const flat = (plan: Int32Array[]): number[] => plan.flatMap((b) => [...b]);

describe('createRng / shuffleInPlace', () => {
  it('is deterministic per (seed, stream) and differs across them', () => {
    const a = createRng(42, 0);
    const b = createRng(42, 0);
    const xs = Array.from({ length: 5 }, () => a());
    assert.deepEqual(
      xs,
      Array.from({ length: 5 }, () => b()),
    );
    assert.notDeepEqual(xs, Array.from({ length: 5 }, createRng(42, 1)));
    assert.notDeepEqual(xs, Array.from({ length: 5 }, createRng(43, 0)));
    assert.notDeepEqual(xs, Array.from({ length: 5 }, createRng(42 + 2 ** 32, 0)));
    assert.ok(xs.every((x) => x >= 0 && x < 1));
  });

  it('shuffles to a permutation, roughly uniformly', () => {
    const counts = new Array<number>(4).fill(0);
    const rnd = createRng(1);
    for (let k = 0; k < 4000; k++) counts[shuffleInPlace([0, 1, 2, 3], rnd).indexOf(0)]! += 1;
    for (const c of counts) assert.ok(c > 850 && c < 1150, `first-position count ${c}`);
  });
});

describe('batchPlan', () => {
  const n = 1003;
  const lengths = makeLengths(n);

  for (const bucketing of ['none', 'chunk', 'global'] as const) {
    it(`${bucketing}: every example exactly once, batch sizes, determinism by seed and epoch`, () => {
      const opts: BatchPlanOptions = { batchSize: 32, seed: 7, epoch: 0, bucketing, bucketChunk: 200 };
      const plan = batchPlan(lengths, opts);
      assertExactlyOnce(plan, n);
      assert.equal(plan.filter((b) => b.length !== 32).length, 1);
      assert.deepEqual(flat(batchPlan(lengths, opts)), flat(plan));
      assert.notDeepEqual(flat(batchPlan(lengths, { ...opts, epoch: 1 })), flat(plan));
      assert.notDeepEqual(flat(batchPlan(lengths, { ...opts, seed: 8 })), flat(plan));
      assertExactlyOnce(batchPlan(lengths, { ...opts, epoch: 3 }), n);
    });
  }

  it('without shuffle: consecutive runs in input order', () => {
    const plan = batchPlan(lengths, { batchSize: 100, shuffle: false });
    assert.equal(plan.length, 11);
    assert.deepEqual(
      flat(plan),
      Array.from({ length: n }, (_, i) => i),
    );
    assert.equal(plan[10]?.length, 3);
  });

  it('bucketing cuts padding; global sorts each batch by length', () => {
    const random = paddingStats(batchPlan(lengths, { batchSize: 32, seed: 1 }), lengths);
    const chunk = paddingStats(batchPlan(lengths, { batchSize: 32, seed: 1, bucketing: 'chunk' }), lengths);
    const global = paddingStats(batchPlan(lengths, { batchSize: 32, seed: 1, bucketing: 'global' }), lengths);
    assert.equal(random.tokens, global.tokens);
    assert.ok(random.padShare > 0.4, `random ${random.padShare}`);
    assert.ok(chunk.padShare < random.padShare / 2, `chunk ${chunk.padShare}`);
    assert.ok(global.padShare < 0.05, `global ${global.padShare}`);
    for (const b of batchPlan(lengths, { batchSize: 32, seed: 1, bucketing: 'global' })) {
      for (let i = 1; i < b.length; i++) assert.ok(lengths[b[i - 1]!]! >= lengths[b[i]!]!);
    }
  });

  it('bucketing is stable for equal lengths without shuffle', () => {
    const plan = batchPlan([2, 1, 2, 1, 2], { batchSize: 2, shuffle: false, bucketing: 'global' });
    assert.deepEqual(
      plan.map((b) => [...b]),
      [[0, 2], [4, 1], [3]],
    );
  });

  it('handles very long sequences (sort fallback) and keeps them all', () => {
    const ls = [5, 100000, 3, 100000, 7];
    const plan = batchPlan(ls, { batchSize: 2, shuffle: false, bucketing: 'global' });
    assert.deepEqual(
      plan.map((b) => [...b]),
      [[1, 3], [4, 0], [2]],
    );
  });

  it('dropLast drops the one short batch', () => {
    const plan = batchPlan(lengths, { batchSize: 32, seed: 2, bucketing: 'chunk', bucketChunk: 320, dropLast: true });
    assert.ok(plan.every((b) => b.length === 32));
    assert.equal(plan.length, Math.floor(n / 32));
    assert.equal(batchPlan([], { batchSize: 4 }).length, 0);
  });

  it('bad options -> InvalidInputError with the field', () => {
    const field = (f: string) => (e: unknown) => isInvalidInput(e) && e.field === f;
    assert.throws(() => batchPlan(lengths, { batchSize: 0 }), field('batch_size'));
    assert.throws(() => batchPlan(lengths, { batchSize: -3 }), field('batch_size'));
    assert.throws(() => batchPlan(lengths, { batchSize: 2.5 }), field('batch_size'));
    assert.throws(() => batchPlan(lengths, { batchSize: 2, seed: 0.1 }), field('seed'));
    assert.throws(() => batchPlan(lengths, { batchSize: 2, epoch: -1 }), field('epoch'));
    assert.throws(() => batchPlan(lengths, { batchSize: 2, bucketing: 'sorted' as never }), field('bucketing'));
    assert.throws(() => batchPlan(lengths, { batchSize: 2, bucketChunk: 0 }), field('bucket_chunk'));
  });
});

describe('epochBatches', () => {
  it('yields collated batches covering every example once', () => {
    const lengths = makeLengths(100);
    const examples = Array.from(lengths, (len, i) => ({
      inputIds: new Int32Array(len).fill(i + 1),
      label: i % 2,
      index: 500 + i,
    }));
    const seen: number[] = [];
    for (const b of epochBatches(examples, { batchSize: 16, seed: 3, bucketing: 'chunk', bucketChunk: 48 })) {
      assert.ok(b.batchSize <= 16);
      assert.equal(b.inputIds.length, b.batchSize * b.maxLength);
      for (let r = 0; r < b.batchSize; r++) {
        const i = b.indices[r]! - 500;
        assert.equal(b.lengths[r], lengths[i]);
        assert.equal(b.labels[r], i % 2);
        assert.equal(b.inputIds[r * b.maxLength], i + 1);
      }
      seen.push(...b.indices);
    }
    assert.deepEqual(
      seen.sort((a, b) => a - b),
      Array.from({ length: 100 }, (_, i) => 500 + i),
    );
    assert.throws(() => [...epochBatches(examples, { batchSize: 0 })], isInvalidInput);
  });
});

describe('plannedBatches', () => {
  const lengths = makeLengths(203);
  const examples = Array.from(lengths, (len, i) => ({
    inputIds: new Int32Array(len).fill(i + 1),
    label: i % 2,
    index: i,
  }));

  for (const bucketing of ['none', 'chunk', 'global'] as const) {
    it(`${bucketing}: the plan's batches in order, collated, with their place in the epoch; epochBatches is the same`, () => {
      const opts: BatchPlanOptions = { batchSize: 16, seed: 9, epoch: 2, bucketing, bucketChunk: 64 };
      const plan = batchPlan(lengths, opts);
      const got = [...plannedBatches(examples, opts)];
      assert.deepEqual(
        got.map((p) => [p.batchIndex, p.batchesInEpoch]),
        plan.map((_, b) => [b, plan.length]),
      );
      got.forEach((p, b) => assert.deepEqual(p.batch, collate(Array.from(plan[b]!, (i) => examples[i]!))));
      assert.deepEqual(
        [...epochBatches(examples, opts)],
        got.map((p) => p.batch),
      );
    });
  }

  it('collates a batch only when the iteration reaches it', () => {
    let reads = 0;
    const counted = new Proxy(examples, {
      get(target, key, receiver) {
        if (typeof key === 'string' && /^\d+$/.test(key)) reads++;
        return Reflect.get(target, key, receiver);
      },
    });
    const it = plannedBatches(counted, { batchSize: 16, seed: 1 });
    assert.equal(reads, 0, 'nothing before the first next()');
    it.next();
    assert.equal(reads, examples.length + 16, 'lengths once, then the first batch');
    it.next();
    assert.equal(reads, examples.length + 32);
    it.return(undefined);
  });
});
