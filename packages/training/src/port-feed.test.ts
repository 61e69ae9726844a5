import assert from 'node:assert/strict';
import { MessageChannel } from 'node:worker_threads';
import { test } from 'node:test';
import { selectBackend } from '@ch8/backend/select';
import type { Batch } from '@ch8/batching/collate';
import { DependencyUnavailableError, NotFoundError } from '@ch8/errors';
import { resolveTrainingConfig } from './config.ts';
import { localFeed, type DataFeed } from './feed.ts';
import { toyData } from './fixtures.ts';
import { portFeed, portLog, serveFeed } from './port-feed.ts';
import { train } from './run.ts';

await selectBackend({ prefer: 'cpu' });

const plain = (b: Batch) => ({
  ...b,
  inputIds: [...b.inputIds],
  labels: [...b.labels],
  lengths: [...b.lengths],
  indices: [...b.indices],
});
const epoch = { batchSize: 32, seed: 4, epoch: 1, shuffle: true, bucketing: 'chunk' } as const;

async function over(feed: DataFeed | (() => Promise<DataFeed>), prefetch = 4) {
  const { port1, port2 } = new MessageChannel();
  const logs: string[] = [];
  const stop = serveFeed(port1, async () => {
    portLog(port1)('opening');
    return typeof feed === 'function' ? feed() : feed;
  });
  return { remote: () => portFeed(port2, { prefetch, log: (l) => logs.push(l) }), logs, stop };
}

test('the same info, matrix and batches as the feed it serves', async () => {
  const local = localFeed(toyData());
  const { remote, logs, stop } = await over(local);
  try {
    const r = await remote();
    assert.deepEqual(r.info, local.info);
    assert.deepEqual(logs, ['opening']);
    assert.deepEqual(await r.matrix(), await local.matrix());
    const want: Batch[] = [];
    for await (const b of local.batches('train', epoch)) want.push(b);
    const got: Batch[] = [];
    for await (const b of r.batches('train', epoch)) got.push(b);
    assert.equal(got.length, 10);
    assert.deepEqual(got.map(plain), want.map(plain));
  } finally {
    stop();
  }
});

test('a consumer that stops early stops the producer; it never runs more than `prefetch` ahead', async () => {
  const local = localFeed(toyData());
  let produced = 0;
  const counting: DataFeed = {
    ...local,
    async *batches(split, o, signal) {
      for await (const b of local.batches(split, o, signal)) {
        produced++;
        yield b;
      }
    },
  };
  const { remote, stop } = await over(counting, 2);
  try {
    const r = await remote();
    let taken = 0;
    for await (const _ of r.batches('train', epoch)) {
      void _;
      if (++taken === 3) break;
    }
    await new Promise((res) => setTimeout(res, 50));
    assert.ok(produced <= 3 + 2, `produced ${produced}`); // taken + prefetch
  } finally {
    stop();
  }
});

test('errors come back as the same typed errors, with their field', async () => {
  const failing = await over(() => Promise.reject(new NotFoundError('no data set "x"', { field: 'dataset_id' })));
  await assert.rejects(
    failing.remote(),
    (e: Error) => e instanceof NotFoundError && e.field === 'dataset_id' && /no data set "x"/.test(e.message),
  );
  failing.stop();

  const local = localFeed(toyData());
  const broken: DataFeed = {
    ...local,
    async *batches(split, o, signal) {
      let n = 0;
      for await (const b of local.batches(split, o, signal)) {
        if (++n === 4) throw new DependencyUnavailableError('dataset service StreamBatches: connection refused');
        yield b;
      }
    },
  };
  const { remote, stop } = await over(broken);
  const r = await remote();
  let seen = 0;
  await assert.rejects(
    (async () => {
      for await (const _ of r.batches('train', epoch)) {
        void _;
        seen++;
      }
    })(),
    (e: Error) => e instanceof DependencyUnavailableError && /connection refused/.test(e.message),
  );
  assert.equal(seen, 3);
  stop();
});

test('training through the port gives bit-identical results', async () => {
  const config = resolveTrainingConfig({ model: 'mlp', epochs: 2, batchSize: 16, seed: 2 });
  const direct = await train(config, localFeed(toyData()));
  const { remote, stop } = await over(localFeed(toyData()));
  try {
    const viaPort = await train(config, await remote());
    assert.deepEqual(
      viaPort.epochs.map((e) => [e.trainLoss, e.devAccuracy]),
      direct.epochs.map((e) => [e.trainLoss, e.devAccuracy]),
    );
    assert.deepEqual(viaPort.weights, direct.weights);
  } finally {
    stop();
  }
});
