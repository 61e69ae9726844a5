import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Bucketing, type StreamBatchesRequest } from '@ch8/contracts/dataset';
import { decodeBatch } from '@ch8/batching/arrow';
import type { Batch } from '@ch8/batching/collate';
import { Code, GrpcError } from '@ch8/service-kit/status';
import { startStack, type Stack } from './test-stack.ts';

const MAX_BUFFERED = 2;
let built = 0;
let ended: { built: number; completed: boolean } | undefined;
/** Read through a call so TypeScript does not narrow what the hooks assign. */
const lastEnd = () => ended;
let stack: Stack;
let id = '';
/** Kept examples of train: index -> ids. */
const train = new Map<number, number[]>();

before(async () => {
  stack = await startStack({
    maxBufferedBatches: MAX_BUFFERED,
    trainRows: 2000,
    streamHooks: {
      onBatch: (n) => void (built = n),
      onEnd: (info) => void (ended = info),
    },
  });
  id = (await stack.dataset.prepareDataset({ source: { kind: { case: 'sst2', value: { dir: 'sst2' } } } })).dataset!
    .datasetId;
  const total = Number((await stack.dataset.getExamples({ datasetId: id, split: 'train', limit: 1 })).total);
  for (let offset = 0; offset < total; offset += 1000) {
    for (const e of (await stack.dataset.getExamples({ datasetId: id, split: 'train', offset, limit: 1000 })).examples)
      train.set(e.index, e.inputIds);
  }
});
after(() => stack.stop());

type Req = Partial<Omit<StreamBatchesRequest, '$typeName' | '$unknown'>>;

async function collect(
  req: Req,
): Promise<Array<{ epoch: number; batchIndex: number; batchesInEpoch: number; batch: Batch; bytes: Uint8Array }>> {
  const out = [];
  for await (const m of stack.dataset.streamBatches({ datasetId: id, split: 'train', batchSize: 64, ...req })) {
    out.push({
      epoch: m.epoch,
      batchIndex: m.batchIndex,
      batchesInEpoch: m.batchesInEpoch,
      batch: decodeBatch(m.arrowIpc),
      bytes: m.arrowIpc,
    });
    assert.equal(m.batchSize, out.at(-1)!.batch.batchSize);
    assert.equal(m.maxLength, out.at(-1)!.batch.maxLength);
  }
  return out;
}

async function rejectsWith(p: Promise<unknown>, code: Code, detail: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => e instanceof GrpcError && e.code === code && detail.test(e.details));
}

test("Arrow round trip: collated, padded with 0, longest first, the examples' own ids and labels", async () => {
  const got = await collect({ batchSize: 50, shuffle: true, seed: 5n });
  assert.ok(got.length > 1);
  const labels = new Map(
    (await stack.dataset.getExamples({ datasetId: id, split: 'train', limit: 1000 })).examples.map((e) => [
      e.index,
      e.label,
    ]),
  );
  for (const { batch } of got) {
    const { batchSize: b, maxLength: t } = batch;
    assert.equal(batch.inputIds.length, b * t);
    for (let r = 0; r < b; r++) {
      const ids = train.get(batch.indices[r]!)!;
      assert.equal(batch.lengths[r], ids.length);
      assert.deepEqual([...batch.inputIds.subarray(r * t, r * t + ids.length)], ids);
      assert.ok(batch.inputIds.subarray(r * t + ids.length, (r + 1) * t).every((x) => x === 0));
      if (r > 0) assert.ok(batch.lengths[r - 1]! >= batch.lengths[r]!);
      const label = labels.get(batch.indices[r]!);
      if (label !== undefined) assert.equal(batch.labels[r], label);
    }
    assert.equal(t, Math.max(...batch.lengths));
  }
});

test('each example exactly once per epoch, epochs back to back with their own order', async () => {
  const got = await collect({ shuffle: true, seed: 11n, epoch: 3, epochs: 2 });
  const perEpoch = new Map<number, number[]>();
  for (const g of got) {
    const list = perEpoch.get(g.epoch) ?? [];
    list.push(...g.batch.indices);
    perEpoch.set(g.epoch, list);
    assert.equal(g.batchesInEpoch, Math.ceil(train.size / 64));
  }
  assert.deepEqual([...perEpoch.keys()], [3, 4]);
  for (const list of perEpoch.values()) {
    assert.equal(list.length, train.size);
    assert.deepEqual(
      [...list].sort((x, y) => x - y),
      [...train.keys()].sort((x, y) => x - y),
    );
  }
  assert.notDeepEqual(perEpoch.get(3), perEpoch.get(4));
  assert.deepEqual(
    got.filter((g) => g.epoch === 3).map((g) => g.batchIndex),
    [...Array(Math.ceil(train.size / 64)).keys()],
  );
});

test('determinism by seed: same seed same bytes, another seed another order; no shuffle keeps file order', async () => {
  const a = await collect({ shuffle: true, seed: 42n });
  const b = await collect({ shuffle: true, seed: 42n });
  const c = await collect({ shuffle: true, seed: 43n });
  assert.deepEqual(
    a.map((x) => Buffer.from(x.bytes).toString('base64')),
    b.map((x) => Buffer.from(x.bytes).toString('base64')),
  );
  assert.notDeepEqual(
    a.map((x) => [...x.batch.indices]),
    c.map((x) => [...x.batch.indices]),
  );
  const plain = await collect({ shuffle: false });
  const first = [...plain[0]!.batch.indices].sort((x, y) => x - y);
  assert.deepEqual(first, [...train.keys()].slice(0, 64));
});

test('bucketing (chunk, global) groups similar lengths: far less padding, still each example once', async () => {
  const pad = (got: Awaited<ReturnType<typeof collect>>) => {
    let cells = 0;
    let tokens = 0;
    for (const { batch } of got) {
      cells += batch.batchSize * batch.maxLength;
      for (const l of batch.lengths) tokens += l;
    }
    return (cells - tokens) / cells;
  };
  const random = await collect({ shuffle: true, seed: 1n, batchSize: 16 });
  const none = await collect({ shuffle: true, seed: 1n, batchSize: 16, bucketing: Bucketing.NONE });
  assert.deepEqual(
    none.map((g) => g.bytes),
    random.map((g) => g.bytes),
    'unspecified = none',
  );
  const bucketed = await collect({ shuffle: true, seed: 1n, batchSize: 16, bucketing: Bucketing.CHUNK });
  assert.ok(pad(bucketed) < pad(random) / 3, `${pad(bucketed)} vs ${pad(random)}`);
  const global = await collect({ shuffle: true, seed: 1n, batchSize: 16, bucketing: Bucketing.GLOBAL });
  // One chunk of every example: every batch but the last holds a single length (lengths 1-12, far more than 16 each).
  assert.ok(pad(global) <= pad(bucketed), `${pad(global)} vs ${pad(bucketed)}`);
  assert.ok(global.filter((g) => g.batch.batchSize === 16 && new Set(g.batch.lengths).size > 1).length <= 12);
  for (const got of [bucketed, global]) {
    assert.equal(
      got.reduce((n, g) => n + g.batch.batchSize, 0),
      train.size,
    );
    assert.equal(new Set(got.flatMap((g) => [...g.batch.indices])).size, train.size);
  }
});

test('a slow consumer: the service builds only a bounded number of batches ahead', async () => {
  ended = undefined;
  built = 0;
  const epochs = 10;
  const batchesInEpoch = Math.ceil(train.size / 64);
  const stream = stack.dataset.streamBatches({ datasetId: id, split: 'train', batchSize: 64, epochs });
  const it = stream[Symbol.asyncIterator]();
  const first = await it.next();
  assert.equal(first.done, false);
  const bytes = first.value!.arrowIpc.byteLength;
  // Wait until the producer has stopped (no batch built for 250 ms).
  let ahead = -1;
  for (let i = 0; i < 40 && built !== ahead; i++) {
    ahead = built;
    await sleep(250);
  }
  // The server's own buffer (CH8_MAX_BUFFERED_BATCHES), grpc-js's client read-ahead (16 messages) and what fits in
  // the HTTP/2 flow-control windows (64 KiB each way, counted twice for slack).
  const bound = MAX_BUFFERED + 16 + Math.ceil((4 * 65_536) / bytes);
  assert.ok(ahead <= bound, `built ${ahead} of ${epochs * batchesInEpoch}, bound ${bound} (${bytes} bytes a batch)`);
  assert.ok(ahead < (epochs * batchesInEpoch) / 2);
  await sleep(200);
  assert.equal(built, ahead, 'nothing more is built while the consumer waits');
  let n = 1;
  while (!(await it.next()).done) n++;
  assert.equal(n, epochs * batchesInEpoch);
  assert.equal(built, n);
  assert.deepEqual(lastEnd(), { built: n, completed: true });
});

test('a cancelled stream stops the work', async () => {
  ended = undefined;
  const ac = new AbortController();
  let seen = 0;
  let bytes = 0;
  const total = 20 * Math.ceil(train.size / 64);
  await assert.rejects(
    async () => {
      for await (const m of stack.dataset.streamBatches(
        { datasetId: id, split: 'train', batchSize: 64, epochs: 20 },
        { signal: ac.signal },
      )) {
        bytes = m.arrowIpc.byteLength;
        if (++seen === 3) ac.abort();
      }
    },
    (e: unknown) => e instanceof GrpcError && e.code === Code.CANCELLED,
  );
  for (let i = 0; i < 100 && lastEnd() === undefined; i++) await sleep(20);
  assert.equal(lastEnd()?.completed, false);
  const stoppedAt = built;
  const bound = 3 + MAX_BUFFERED + 16 + Math.ceil((4 * 65_536) / bytes);
  assert.ok(stoppedAt <= bound && stoppedAt < total / 2, `built ${stoppedAt} of ${total}, bound ${bound}`);
  await sleep(200);
  assert.equal(built, stoppedAt);

  // Leaving the loop early (break) cancels the call too.
  ended = undefined;
  for await (const _ of stack.dataset.streamBatches({ datasetId: id, split: 'train', batchSize: 64, epochs: 20 }))
    break;
  for (let i = 0; i < 100 && lastEnd() === undefined; i++) await sleep(20);
  assert.equal(lastEnd()?.completed, false);
});

test('bad requests: batch size 0, unknown split, unknown data set, seed too large, unknown bucketing', async () => {
  await rejectsWith(collect({ batchSize: 0 }), Code.INVALID_ARGUMENT, /batch_size/);
  await rejectsWith(collect({ split: 'validation' }), Code.INVALID_ARGUMENT, /split/);
  await rejectsWith(collect({ datasetId: 'ds-unknown' }), Code.NOT_FOUND, /ds-unknown/);
  await rejectsWith(collect({ seed: 2n ** 60n }), Code.INVALID_ARGUMENT, /seed/);
  await rejectsWith(collect({ bucketing: 7 as Bucketing }), Code.INVALID_ARGUMENT, /bucketing/);
});
