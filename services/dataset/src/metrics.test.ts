import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DatasetService } from '@ch8/contracts/dataset';
import { InvalidInputError } from '@ch8/errors';
import { createClient } from '@ch8/service-kit/client';
import { parseExposition } from '@ch8/service-kit/exposition';
import { Code, type GrpcError } from '@ch8/service-kit/status';
import { startServiceProcess } from '@ch8/service-kit/testing';
import { parseDatasetConfig } from './config.ts';
import { startStack } from './test-stack.ts';

const PACKAGE = fileURLToPath(new URL('..', import.meta.url));

test('CH8_DATASET_METRICS_ADDR: 127.0.0.1:9462 by default, off, or HOST:PORT; anything else fails the start', () => {
  assert.equal(parseDatasetConfig({}).metricsAddress, '127.0.0.1:9462');
  assert.equal(parseDatasetConfig({ CH8_DATASET_METRICS_ADDR: 'off' }).metricsAddress, 'off');
  assert.equal(parseDatasetConfig({ CH8_DATASET_METRICS_ADDR: '[::1]:0' }).metricsAddress, '[::1]:0');
  assert.throws(
    () => parseDatasetConfig({ CH8_DATASET_METRICS_ADDR: 'localhost' }),
    (e: InvalidInputError) => e instanceof InvalidInputError && e.field === 'CH8_DATASET_METRICS_ADDR',
  );
});

test('main.ts serves /metrics on the logged address: calls by method and code, examples prepared, batches streamed', async () => {
  // The embedding service in this process (the stack's); the dataset service under test as its own process.
  const stack = await startStack({ trainRows: 100 });
  const service = await startServiceProcess({
    main: 'src/main.ts',
    cwd: PACKAGE,
    env: {
      CH8_DATASET_ADDR: '127.0.0.1:0',
      CH8_DATASET_METRICS_ADDR: '127.0.0.1:0',
      CH8_EMBEDDING_ADDR: stack.embeddingAddr,
      CH8_DATA_ROOTS: stack.root,
      CH8_LOG_LEVEL: 'info',
    },
  });
  const client = createClient(DatasetService, service.address);
  try {
    const prepared = await client.prepareDataset({
      source: { kind: { case: 'sst2', value: { dir: join(stack.root, 'sst2') } } },
    });
    const datasetId = prepared.dataset!.datasetId;
    // The same content again: known, nothing counted twice.
    await client.prepareDataset({ source: { kind: { case: 'sst2', value: { dir: join(stack.root, 'sst2') } } } });
    const splits = prepared.dataset!.splits;
    // The generator's own account of the rows it wrote (test-stack.ts), not the service's.
    assert.equal(Number(splits.find((s) => s.split === 'train')!.droppedEmpty), stack.train.allOov);
    let batches = 0;
    for await (const _ of client.streamBatches({ datasetId, split: 'train', batchSize: 16 })) batches++;
    const kept = Number(prepared.dataset!.splits.find((s) => s.split === 'train')!.kept);
    assert.equal(batches, Math.ceil(kept / 16));
    await assert.rejects(client.getDataset({ datasetId: 'no-such-data-set' }), (e: GrpcError) => {
      assert.equal(e.code, Code.NOT_FOUND);
      return true;
    });
    await assert.rejects(
      client.prepareDataset({ source: { kind: { case: 'sst2', value: { dir: '/nowhere/outside/the/roots' } } } }),
    );

    const res = await fetch(service.metricsUrl);
    assert.equal(res.status, 200);
    const m = parseExposition(await res.text());
    const p = 'ch8_dataset_';
    assert.equal(m.value(`${p}requests_total`, { method: 'PrepareDataset', code: 'OK' }), 2);
    assert.equal(m.value(`${p}datasets_prepared_total`, { result: 'new' }), 1);
    assert.equal(m.value(`${p}datasets_prepared_total`, { result: 'known' }), 1);
    assert.equal(m.value(`${p}datasets_registered`), 1);
    assert.equal(m.value(`${p}examples_dropped_total`), stack.train.allOov + stack.dev.allOov);
    assert.equal(
      m.value(`${p}examples_prepared_total`),
      stack.train.lines.length - stack.train.allOov + stack.dev.lines.length - stack.dev.allOov,
    );
    assert.equal(m.value(`${p}requests_total`, { method: 'StreamBatches', code: 'OK' }), 1);
    assert.equal(m.value(`${p}requests_total`, { method: 'GetDataset', code: 'NOT_FOUND' }), 1);
    assert.equal(m.sum(`${p}request_errors_total`, { method: 'PrepareDataset' }), 1);
    assert.equal(m.sum(`${p}request_errors_total`), 2);
    assert.equal(m.value(`${p}stream_messages_sent_total`, { method: 'StreamBatches' }), batches);
    assert.equal(m.value(`${p}request_duration_seconds_count`, { method: 'StreamBatches' }), 1);
    for (const f of m.families.keys()) assert.ok(f.startsWith(p), `${f} is prefixed ${p}`);
  } finally {
    client.close();
    assert.equal(await service.stop(), 0);
    await stack.stop();
  }
});
