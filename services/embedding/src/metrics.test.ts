import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { EmbeddingService } from '@ch8/contracts/embedding';
import { InvalidInputError } from '@ch8/errors';
import { randomEntries, writeVectorFile } from '@ch8/embeddings/write';
import { createClient } from '@ch8/service-kit/client';
import { parseExposition } from '@ch8/service-kit/exposition';
import { Code, type GrpcError } from '@ch8/service-kit/status';
import { startServiceProcess } from '@ch8/service-kit/testing';
import { parseEmbeddingConfig } from './config.ts';

const PACKAGE = fileURLToPath(new URL('..', import.meta.url));

test('CH8_EMBEDDING_METRICS_ADDR: 127.0.0.1:9461 by default, off, or HOST:PORT; anything else fails the start', () => {
  assert.equal(parseEmbeddingConfig({}).metricsAddress, '127.0.0.1:9461');
  assert.equal(parseEmbeddingConfig({ CH8_EMBEDDING_METRICS_ADDR: 'off' }).metricsAddress, 'off');
  assert.equal(parseEmbeddingConfig({ CH8_EMBEDDING_METRICS_ADDR: '0.0.0.0:0' }).metricsAddress, '0.0.0.0:0');
  assert.throws(
    () => parseEmbeddingConfig({ CH8_EMBEDDING_METRICS_ADDR: '9461' }),
    (e: InvalidInputError) => e instanceof InvalidInputError && e.field === 'CH8_EMBEDDING_METRICS_ADDR',
  );
});

test('main.ts serves /metrics on the logged address: calls by method and code, stream messages, tables and rows', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ch8-emb-metrics-'));
  const words = ['good', 'bad', 'movie'];
  await writeVectorFile(join(dir, 'tiny.txt'), 'glove-text', randomEntries(words, 4, 3), 4);
  const service = await startServiceProcess({
    main: 'src/main.ts',
    cwd: PACKAGE,
    env: {
      CH8_EMBEDDING_ADDR: '127.0.0.1:0',
      CH8_EMBEDDING_METRICS_ADDR: '127.0.0.1:0',
      CH8_DATA_ROOTS: dir,
      CH8_CACHE_DIR: join(dir, 'cache'),
      CH8_LOG_LEVEL: 'info',
    },
  });
  const client = createClient(EmbeddingService, service.address);
  try {
    assert.match(service.metricsUrl, /^http:\/\/127\.0\.0\.1:[1-9]\d*\/metrics$/);
    const table = (await client.loadTable({ source: 'tiny.txt', words: ['good', 'movie'] })).table!;
    // The same words again: the table from memory.
    await client.loadTable({ source: 'tiny.txt', words: ['movie', 'good'] });
    let chunks = 0;
    for await (const _ of client.streamMatrix({ tableId: table.tableId, maxChunkBytes: 16 })) chunks++;
    assert.equal(chunks, 3, '<pad>, good, movie: one 4-float row per 16-byte chunk');
    await client.listTables({});
    await assert.rejects(client.getVocabulary({ tableId: 'no-such-table' }), (e: GrpcError) => {
      assert.equal(e.code, Code.NOT_FOUND);
      return true;
    });

    const res = await fetch(service.metricsUrl);
    assert.equal(res.status, 200);
    const m = parseExposition(await res.text());
    const p = 'ch8_embedding_';
    assert.equal(m.value(`${p}requests_total`, { method: 'LoadTable', code: 'OK' }), 2);
    assert.equal(m.value(`${p}requests_total`, { method: 'StreamMatrix', code: 'OK' }), 1);
    assert.equal(m.value(`${p}requests_total`, { method: 'ListTables', code: 'OK' }), 1);
    assert.equal(m.value(`${p}requests_total`, { method: 'GetVocabulary', code: 'NOT_FOUND' }), 1);
    assert.equal(m.value(`${p}request_errors_total`, { method: 'GetVocabulary', code: 'NOT_FOUND' }), 1);
    assert.equal(m.sum(`${p}request_errors_total`), 1);
    assert.equal(m.value(`${p}request_duration_seconds_count`, { method: 'LoadTable' }), 2);
    assert.equal(m.value(`${p}table_loads_total`, { from: 'source' }), 1);
    assert.equal(m.value(`${p}table_loads_total`, { from: 'memory' }), 1);
    assert.equal(m.value(`${p}table_loads_total`, { from: 'disk_cache' }), 0);
    assert.equal(m.value(`${p}tables_loaded`), 1);
    assert.equal(m.value(`${p}matrix_rows_sent_total`), 3);
    assert.equal(m.value(`${p}stream_messages_sent_total`, { method: 'StreamMatrix' }), chunks);
    assert.ok(m.families.has(`${p}process_resident_memory_bytes`), 'process metrics');
    for (const f of m.families.keys()) assert.ok(f.startsWith(p), `${f} is prefixed ${p}`);
  } finally {
    client.close();
    assert.equal(await service.stop(), 0);
    await rm(dir, { recursive: true, force: true });
  }
});
