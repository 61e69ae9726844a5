import test from 'node:test';
import assert from 'node:assert/strict';
import { InvalidInputError } from '@ch8/errors';
import { SparseRowAdam } from './sparse-adam.ts';

test('lazy Adam: touched rows follow the Adam formula (duplicates summed), other rows and PAD stay', () => {
  const d = 2;
  const table = Float32Array.from([0, 0, 1, 1, 2, 2, 3, 3]);
  const opt = new SparseRowAdam(4, d, 0.1, 'lazy');
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

test('dense mode follows dense Adam (PyTorch formula) exactly enough while touching only the batch rows', () => {
  const rows = 6;
  const d = 3;
  const lr = 0.01;
  const init = Float32Array.from({ length: rows * d }, (_, i) => (i < d ? 0 : Math.sin(i)));
  const lazyTable = Float32Array.from(init);
  const denseTable = Float64Array.from(init);
  const m = new Float64Array(rows * d);
  const v = new Float64Array(rows * d);
  const opt = new SparseRowAdam(rows, d, lr, 'dense');
  // Rows used per step: some rows skip many steps, row 5 appears only once.
  const schedule = [[1, 2], [1], [3], [1, 3], [5], [2], [1], [1], [2, 3], [1]];
  schedule.forEach((ids, s) => {
    const t = s + 1;
    const g = new Float64Array(rows * d);
    for (const id of ids) for (let j = 0; j < d; j++) g[id * d + j] = Math.cos(t * 7 + id * 3 + j);
    for (let i = d; i < rows * d; i++) {
      m[i] = 0.9 * m[i]! + 0.1 * g[i]!;
      v[i] = 0.999 * v[i]! + 0.001 * g[i]! * g[i]!;
      const denom = Math.sqrt(v[i]!) / Math.sqrt(1 - 0.999 ** t) + 1e-8;
      denseTable[i]! -= ((lr / (1 - 0.9 ** t)) * m[i]!) / denom;
    }
    const idArr = Int32Array.from(ids);
    opt.catchUpRows(lazyTable, idArr);
    const tokenGrad = new Float32Array(ids.length * d);
    ids.forEach((id, r) => tokenGrad.set(Float32Array.from(g.subarray(id * d, (id + 1) * d)), r * d));
    const untouched = Float32Array.from(lazyTable);
    opt.step(
      lazyTable,
      idArr,
      Int32Array.from(ids, (_, r) => r + 1),
      tokenGrad,
    );
    for (let row = 0; row < rows; row++) {
      if (ids.includes(row)) continue;
      assert.deepEqual(
        lazyTable.subarray(row * d, (row + 1) * d),
        untouched.subarray(row * d, (row + 1) * d),
        'a step writes only its rows',
      );
    }
  });
  opt.flush(lazyTable);
  for (let i = 0; i < rows * d; i++) {
    assert.ok(Math.abs(lazyTable[i]! - denseTable[i]!) < 1e-5, `entry ${i}: ${lazyTable[i]} vs dense ${denseTable[i]}`);
  }
  assert.deepEqual(Array.from(lazyTable.subarray(0, d)), [0, 0, 0], 'PAD row');
  const lazy = new SparseRowAdam(rows, d, lr, 'lazy');
  const t2 = Float32Array.from(init);
  lazy.step(t2, Int32Array.from([1]), Int32Array.from([1]), Float32Array.from([1, 1, 1]));
  lazy.step(t2, Int32Array.from([2]), Int32Array.from([1]), Float32Array.from([1, 1, 1]));
  lazy.flush(t2);
  const afterOne = Float32Array.from(init);
  new SparseRowAdam(rows, d, lr, 'lazy').step(
    afterOne,
    Int32Array.from([1]),
    Int32Array.from([1]),
    Float32Array.from([1, 1, 1]),
  );
  assert.deepEqual(t2.subarray(d, 2 * d), afterOne.subarray(d, 2 * d), 'lazy mode leaves a row alone when unused');
});

test('stepRows on summed rows equals step on positions; getState/setState continue bit for bit; bad states are refused', () => {
  const rows = 5;
  const d = 2;
  const init = Float32Array.from({ length: rows * d }, (_, i) => (i < d ? 0 : Math.cos(i)));
  for (const mode of ['dense', 'lazy'] as const) {
    const a = new SparseRowAdam(rows, d, 0.01, mode);
    const b = new SparseRowAdam(rows, d, 0.01, mode);
    const ta = Float32Array.from(init);
    const tb = Float32Array.from(init);
    // Positions look up [3, 1, 3]: summed by hand, row 3 gets 0.5 + 0.25 and -1 + 2.
    a.step(ta, Int32Array.from([3, 1]), Int32Array.from([1, 2, 1]), Float32Array.from([0.5, -1, 0.1, 0.2, 0.25, 2]));
    b.stepRows(tb, Int32Array.from([3, 1]), Float32Array.from([0.75, 1, 0.1, 0.2]));
    assert.deepEqual(tb, ta, `${mode}: stepRows`);
    a.step(ta, Int32Array.from([2]), Int32Array.from([1]), Float32Array.from([1, 1]));
    const c = new SparseRowAdam(rows, d, 0.01, mode);
    c.setState(a.getState());
    const tc = Float32Array.from(ta);
    for (const opt of [a, c]) {
      const t = opt === a ? ta : tc;
      opt.catchUpRows(t, Int32Array.from([3]));
      opt.step(t, Int32Array.from([3]), Int32Array.from([1]), Float32Array.from([-0.5, 0.5]));
      opt.flush(t);
    }
    assert.deepEqual(tc, ta, `${mode}: restored state continues identically`);
    assert.deepEqual(c.getState(), a.getState());
    const field = (f: string) => (e: unknown) => e instanceof InvalidInputError && e.field === f;
    const s = a.getState();
    assert.throws(() => c.setState({ ...s, m: new Float32Array(3) }, 'x.'), field('x.m'));
    assert.throws(() => c.setState({ ...s, t: -1 }), field('t'));
    assert.throws(() => c.setState({ ...s, last: new Int32Array(mode === 'dense' ? 0 : 5) }), field('last'));
    assert.throws(() => b.stepRows(tb, Int32Array.from([1]), new Float32Array(3)), field('rowGrad'));
  }
});

test('dense mode with a learning-rate change follows dense Adam whose rate changes at that step', () => {
  const rows = 4;
  const d = 2;
  const init = Float32Array.from({ length: rows * d }, (_, i) => (i < d ? 0 : Math.sin(i * 3)));
  const table = Float32Array.from(init);
  const ref = Float64Array.from(init);
  const m = new Float64Array(rows * d);
  const v = new Float64Array(rows * d);
  const opt = new SparseRowAdam(rows, d, 0.02, 'dense');
  const schedule = [[1, 2], [1], [3], [1], [2], [2, 3]];
  schedule.forEach((ids, s) => {
    const t = s + 1;
    const lr = t <= 3 ? 0.02 : 0.005;
    if (t === 4) {
      const before = Float32Array.from(table);
      opt.setLearningRate(table, 0.005);
      assert.notDeepEqual(table, before, 'pending moves applied with the old rate');
    }
    const g = new Float64Array(rows * d);
    for (const id of ids) for (let j = 0; j < d; j++) g[id * d + j] = Math.cos(t * 5 + id + j);
    for (let i = d; i < rows * d; i++) {
      m[i] = 0.9 * m[i]! + 0.1 * g[i]!;
      v[i] = 0.999 * v[i]! + 0.001 * g[i]! * g[i]!;
      ref[i]! -= ((lr / (1 - 0.9 ** t)) * m[i]!) / (Math.sqrt(v[i]!) / Math.sqrt(1 - 0.999 ** t) + 1e-8);
    }
    const idArr = Int32Array.from(ids);
    opt.catchUpRows(table, idArr);
    const tokenGrad = new Float32Array(ids.length * d);
    ids.forEach((id, r) => tokenGrad.set(Float32Array.from(g.subarray(id * d, (id + 1) * d)), r * d));
    opt.step(
      table,
      idArr,
      Int32Array.from(ids, (_, r) => r + 1),
      tokenGrad,
    );
  });
  opt.flush(table);
  for (let i = 0; i < rows * d; i++) {
    assert.ok(Math.abs(table[i]! - ref[i]!) < 1e-5, `entry ${i}: ${table[i]} vs dense ${ref[i]}`);
  }
  assert.equal(opt.learningRate, 0.005);
});
