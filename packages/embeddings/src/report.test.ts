import assert from 'node:assert/strict';
import { test } from 'node:test';
import { lookupReport, pruneReport } from './report.ts';
import { makeTable } from './table.ts';

test('lookup JSON: ids, exact float32 values, null for OOV', () => {
  const table = makeTable([
    ['good', [0.1, -2.5]],
    ['bad', [1e-8, 3]],
  ]);
  const out = lookupReport(table, ['bad', 'ugly', 'good']);
  assert.deepEqual(out, {
    tokens: [
      { token: 'bad', id: 2, vector: [Math.fround(1e-8), 3] },
      { token: 'ugly', id: null, vector: null },
      { token: 'good', id: 1, vector: [Math.fround(0.1), -2.5] },
    ],
  });
  // Printed and parsed back, the numbers are the same float32 bits.
  const back = JSON.parse(JSON.stringify(out)) as typeof out;
  assert.deepEqual(Float32Array.from(back.tokens[2]?.vector ?? []), table.matrix.subarray(2, 4));
  assert.equal(JSON.stringify(back.tokens[2]?.vector), '[0.10000000149011612,-2.5]');
});

test('prune JSON: counts, dims and the run figures', () => {
  const table = makeTable([['x', [1, 2, 3]]], undefined, 'v.bin');
  table.stats = { ...table.stats, requested: 3, missing: 2, missingSample: ['a', 'b'], bytesRead: 99 };
  const r = pruneReport(table, { seconds: 1.5, peakRssBytes: 1234 });
  assert.deepEqual(
    { ...r, vocab_hash: r.vocab_hash.length },
    {
      source: 'v.bin',
      format: 'memory',
      requested: 3,
      found: 1,
      missing: 2,
      missing_sample: ['a', 'b'],
      duplicates: 0,
      invalid_utf8: 0,
      dim: 3,
      vocab_size: 2,
      vocab_hash: 64,
      seconds: 1.5,
      bytes_read: 99,
      peak_rss_bytes: 1234,
      cache_hit: false,
    },
  );
});
