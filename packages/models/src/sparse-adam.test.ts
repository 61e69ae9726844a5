import test from 'node:test';
import assert from 'node:assert/strict';
import { SparseRowAdam } from './sparse-adam.ts';

test('lazy Adam: touched rows follow the Adam formula (duplicates summed), other rows and PAD stay', () => {
  const d = 2;
  const table = Float32Array.from([0, 0, 1, 1, 2, 2, 3, 3]);
  const opt = new SparseRowAdam(4, d, 0.1);
  // Positions look up rows [2, 0(PAD), 2] -> local ids [1, 0, 1]; ids = [2].
  const grad = Float32Array.from([0.5, -1, 9, 9, 0.5, -1]);
  opt.step(table, Int32Array.from([2]), Int32Array.from([1, 0, 1]), grad);
  // Step 1: m = 0.1 g, v = 0.001 g^2; update = lr * sqrt(1 - b2) / (1 - b1) * m / (sqrt(v) + eps) ~ lr * sign(g).
  const g = [1, -2];
  g.forEach((gj, j) => {
    const m = 0.1 * gj;
    const v = 0.001 * gj * gj;
    const expected = 2 - ((0.1 * Math.sqrt(0.001)) / 0.1) * (m / (Math.sqrt(v) + 1e-8));
    assert.ok(Math.abs(table[2 * d + j]! - expected) < 1e-6, `row 2 col ${j}: ${table[2 * d + j]} vs ${expected}`);
  });
  assert.deepEqual(Array.from(table.subarray(0, 2 * d)), [0, 0, 1, 1]);
  assert.deepEqual(Array.from(table.subarray(3 * d)), [3, 3]);
  assert.equal(opt.steps, 1);
});
