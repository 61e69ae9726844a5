import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mix32, mulberry32, shuffleInPlace, uniform01 } from './random.ts';

test('mulberry32 is deterministic per state and differs between states', () => {
  const a = mulberry32(1);
  const b = mulberry32(1);
  const first = [a(), a(), a()];
  assert.deepEqual(first, [b(), b(), b()]);
  const c = mulberry32(2);
  assert.notDeepEqual(first, [c(), c(), c()]);
  for (const v of first) assert.ok(Number.isInteger(v) && v >= 0 && v < 2 ** 32);
  const u = uniform01(1);
  assert.equal(u(), first[0]! / 4294967296);
});

test('uniform01 stays in [0, 1) and is roughly uniform', () => {
  const r = uniform01(42);
  const bins = new Array<number>(10).fill(0);
  for (let i = 0; i < 10_000; i++) {
    const x = r();
    assert.ok(x >= 0 && x < 1);
    bins[Math.floor(x * 10)]!++;
  }
  for (const c of bins) assert.ok(c > 850 && c < 1150, `bin count ${c}`);
});

test('mix32 spreads nearby seeds; shuffle is a permutation', () => {
  assert.notEqual(mix32(1) & 0xff, mix32(2) & 0xff);
  const a = shuffleInPlace(
    Array.from({ length: 100 }, (_, i) => i),
    uniform01(7),
  );
  assert.deepEqual(
    [...a].sort((x, y) => x - y),
    Array.from({ length: 100 }, (_, i) => i),
  );
  assert.notDeepEqual(
    a,
    Array.from({ length: 100 }, (_, i) => i),
  );
});
