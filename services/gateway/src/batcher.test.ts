import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { CancelledError, DeadlineExceededError, OverloadedError } from '@ch8/errors';
import { Code, statusOf } from '@ch8/service-kit/status';
import { Batcher } from './batcher.ts';

/** A batcher whose model call doubles numbers and records each call's items; `gate` holds calls until opened. */
function doubling(options: { maxBatch: number; maxDelayMs: number; maxQueue: number }) {
  const calls: number[][] = [];
  let open: () => void = () => {};
  let gate: Promise<void> = Promise.resolve();
  const batcher = new Batcher<number, number>({ ...options, label: 'model t version 1' }, async (items) => {
    calls.push([...items]);
    await gate;
    return items.map((x) => 2 * x);
  });
  return {
    batcher,
    calls,
    hold() {
      gate = new Promise((r) => (open = r));
    },
    release: () => open(),
    /** Resolves once `n` calls have started (not a fixed sleep: a loaded machine may run timers before immediates). */
    async started(n: number): Promise<void> {
      while (calls.length < n) await new Promise((r) => setImmediate(r));
    },
  };
}

test('concurrent requests are merged into one call up to maxBatch, results back in order', async () => {
  const t = doubling({ maxBatch: 5, maxDelayMs: 50, maxQueue: 100 });
  const results = await Promise.all([
    t.batcher.enqueue([1, 2]),
    t.batcher.enqueue([3]),
    t.batcher.enqueue([4, 5, 6]),
    t.batcher.enqueue([7]),
  ]);
  assert.deepEqual(results, [[2, 4], [6], [8, 10, 12], [14]]);
  // 7 items, batches of at most 5 in arrival order; the third request spans both calls.
  assert.deepEqual(t.calls, [
    [1, 2, 3, 4, 5],
    [6, 7],
  ]);
});

test('a lone request waits at most maxDelayMs; a full batch goes at once', async () => {
  const t = doubling({ maxBatch: 4, maxDelayMs: 80, maxQueue: 100 });
  let started = Date.now();
  await t.batcher.enqueue([1]);
  const waited = Date.now() - started;
  assert.ok(waited >= 70 && waited < 1000, `waited ${waited} ms`);
  started = Date.now();
  await t.batcher.enqueue([1, 2, 3, 4]);
  assert.ok(Date.now() - started < 60, `a full batch waited ${Date.now() - started} ms`);
});

test("gatherTurn: a call either waits for the callers read later in the same turn, or starts in the caller's turn", async () => {
  for (const gatherTurn of [true, false]) {
    const calls: number[][] = [];
    const b = new Batcher<number, number>(
      { maxBatch: 10, maxDelayMs: 0, maxQueue: 10, label: 'x', gatherTurn },
      async (items) => {
        calls.push([...items]);
        return items.map((x) => -x);
      },
    );
    assert.equal(b.gatherTurn, gatherTurn);
    // A caller whose request is read later in this turn of the event loop (an I/O callback queued before the call).
    let later: Promise<number[]> | undefined;
    setImmediate(() => (later = b.enqueue([3])));
    // Two requests of the same synchronous code are one call either way.
    const first = Promise.all([b.enqueue([1]), b.enqueue([2])]);
    assert.deepEqual(await first, [[-1], [-2]]);
    while (later === undefined) await new Promise((r) => setImmediate(r));
    assert.deepEqual(await later, [-3]);
    assert.deepEqual(calls, gatherTurn ? [[1, 2, 3]] : [[1, 2], [3]], `gatherTurn ${gatherTurn}`);
  }
  // Switched while running (a version that turns to the plain scorer after its warm-up): applies to the next call.
  const calls: number[][] = [];
  const b = new Batcher<number, number>({ maxBatch: 10, maxDelayMs: 0, maxQueue: 10, label: 'x' }, async (items) => {
    calls.push([...items]);
    return items;
  });
  b.gatherTurn = false;
  let later: Promise<number[]> | undefined;
  setImmediate(() => (later = b.enqueue([2])));
  await b.enqueue([1]);
  while (later === undefined) await new Promise((r) => setImmediate(r));
  await later;
  assert.deepEqual(calls, [[1], [2]]);
});

test('items arriving while a call runs form the next call', async () => {
  const t = doubling({ maxBatch: 100, maxDelayMs: 0, maxQueue: 100 });
  t.hold();
  const first = t.batcher.enqueue([1]);
  await t.started(1);
  assert.equal(t.batcher.busy, true);
  const later = [t.batcher.enqueue([2]), t.batcher.enqueue([3, 4])];
  await sleep(10);
  assert.equal(t.calls.length, 1);
  t.release();
  assert.deepEqual(await Promise.all([first, ...later]), [[2], [4], [6, 8]]);
  assert.deepEqual(t.calls, [[1], [2, 3, 4]]);
});

test('a full queue refuses with OverloadedError (RESOURCE_EXHAUSTED); room again once drained', async () => {
  const t = doubling({ maxBatch: 2, maxDelayMs: 0, maxQueue: 3 });
  t.hold();
  const running = t.batcher.enqueue([1, 2]); // taken into the first call at once
  await t.started(1);
  const queued = t.batcher.enqueue([3, 4, 5]); // fills the queue
  await assert.rejects(t.batcher.enqueue([6]), (e: unknown) => {
    assert.ok(e instanceof OverloadedError);
    assert.match(e.message, /queue of model t version 1 is full \(3 texts waiting.*limit of 3/);
    return true;
  });
  t.release();
  assert.deepEqual(await running, [2, 4]);
  assert.deepEqual(await queued, [6, 8, 10]);
  assert.deepEqual(await t.batcher.enqueue([6]), [12]);
});

test('a request whose deadline passes while queued is never computed (DEADLINE_EXCEEDED); a cancelled one neither', async () => {
  const t = doubling({ maxBatch: 10, maxDelayMs: 0, maxQueue: 100 });
  t.hold();
  const running = t.batcher.enqueue([1]);
  await t.started(1);
  const late = t.batcher.enqueue([2, 3], { deadline: Date.now() + 30 });
  const controller = new AbortController();
  const cancelled = t.batcher.enqueue([4], { signal: controller.signal });
  const fine = t.batcher.enqueue([5]);
  controller.abort();
  await assert.rejects(cancelled, (e: unknown) => e instanceof CancelledError);
  await sleep(60); // the deadline passes while the first call still runs
  t.release();
  await assert.rejects(
    late,
    (e: unknown) =>
      e instanceof DeadlineExceededError &&
      statusOf(e).code === Code.DEADLINE_EXCEEDED &&
      /deadline passed/.test(e.message),
  );
  assert.deepEqual(await running, [2]);
  assert.deepEqual(await fine, [10]);
  assert.deepEqual(t.calls, [[1], [5]], 'neither the late nor the cancelled items were computed');
  assert.equal(t.batcher.depth, 0);
  await assert.rejects(
    t.batcher.enqueue([9], { deadline: Date.now() - 1 }),
    (e: unknown) => e instanceof DeadlineExceededError && statusOf(e).code === Code.DEADLINE_EXCEEDED,
  );
});

test('a request cancelled through an Abortable (a call context, no AbortSignal) is dropped and never computed', async () => {
  const t = doubling({ maxBatch: 10, maxDelayMs: 0, maxQueue: 100 });
  /** A hand-made Abortable: listeners kept in a list, run once by abort(). */
  const abortable = () => {
    let listeners: (() => void)[] = [];
    let aborted = false;
    return {
      get aborted() {
        return aborted;
      },
      onAbort(listener: () => void) {
        listeners.push(listener);
        return () => (listeners = listeners.filter((l) => l !== listener));
      },
      abort() {
        aborted = true;
        for (const l of listeners.splice(0)) l();
      },
      get listening() {
        return listeners.length;
      },
    };
  };
  t.hold();
  const running = t.batcher.enqueue([1]);
  await t.started(1);
  const call = abortable();
  const answered = abortable();
  const cancelled = t.batcher.enqueue([4, 6], { signal: call });
  const fine = t.batcher.enqueue([5], { signal: answered });
  assert.equal(t.batcher.depth, 3);
  call.abort();
  await assert.rejects(cancelled, (e: unknown) => e instanceof CancelledError);
  assert.equal(t.batcher.depth, 1, 'its texts left the queue at once');
  t.release();
  assert.deepEqual(await running, [2]);
  assert.deepEqual(await fine, [10]);
  assert.equal(answered.listening, 0, 'an answered request removes its listener');
  assert.deepEqual(t.calls, [[1], [5]]);
  const already = abortable();
  already.abort();
  await assert.rejects(t.batcher.enqueue([7], { signal: already }), (e: unknown) => e instanceof CancelledError);
});

test('a failed model call fails the requests in it, the next call works; close refuses new ones', async () => {
  let fail = true;
  const b = new Batcher<number, number>({ maxBatch: 2, maxDelayMs: 0, maxQueue: 10, label: 'x' }, async (items) => {
    if (fail) throw new Error('boom');
    return items;
  });
  const [r1, r2] = await Promise.allSettled([b.enqueue([1, 2]), b.enqueue([3])]);
  assert.equal(r1.status, 'rejected');
  assert.equal(r2.status, 'rejected');
  fail = false;
  assert.deepEqual(await b.enqueue([7]), [7]);
  b.close(new CancelledError('closing'));
  await assert.rejects(b.enqueue([1]), /closing/);
});
