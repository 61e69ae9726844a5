import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { isInvalidInput, isNotFound } from '@ch8/errors';
import { detectFormat } from './format.ts';
import type { VectorFormat } from './format.ts';
import { pruneVectors, readVectors } from './prune.ts';
import type { VectorEntry } from './prune.ts';
import { randomEntries, vectorFileBytes, writeVectorFile } from './write.ts';

let dir = '';
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ch8-emb-readers-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function collect(path: string, opts: Parameters<typeof readVectors>[1] = {}): Promise<VectorEntry[]> {
  const out: VectorEntry[] = [];
  for await (const e of readVectors(path, opts)) out.push(e);
  return out;
}

function bits(v: Float32Array): string {
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex');
}

const DIM = 5;
const ENTRIES = randomEntries(['the', 'movie', 'café', 'naïve', '<s>', 'end.'], DIM, 7);

const CASES: Array<{
  name: string;
  format: VectorFormat;
  detected: VectorFormat;
  opts: Parameters<typeof vectorFileBytes>[3];
}> = [
  { name: 'word2vec binary', format: 'word2vec-binary', detected: 'word2vec-binary', opts: {} },
  {
    name: 'word2vec binary without newlines',
    format: 'word2vec-binary',
    detected: 'word2vec-binary',
    opts: { newline: false },
  },
  { name: 'word2vec binary gzipped', format: 'word2vec-binary', detected: 'word2vec-binary', opts: { gzip: true } },
  { name: 'word2vec text', format: 'word2vec-text', detected: 'word2vec-text', opts: {} },
  {
    name: 'fastText .vec (trailing space)',
    format: 'fasttext-vec',
    detected: 'word2vec-text',
    opts: { trailingSpace: true },
  },
  { name: 'GloVe text', format: 'glove-text', detected: 'glove-text', opts: {} },
  { name: 'GloVe text gzipped', format: 'glove-text', detected: 'glove-text', opts: { gzip: true } },
  { name: 'wink JSON', format: 'wink-json', detected: 'wink-json', opts: {} },
  { name: 'plain JSON object', format: 'wink-json', detected: 'wink-json', opts: { jsonLayout: 'plain' } },
  { name: 'wink JSON gzipped', format: 'wink-json', detected: 'wink-json', opts: { gzip: true } },
];

describe('every format reads back bit-exact, detected from content', () => {
  for (const c of CASES) {
    test(c.name, async () => {
      // A misleading extension: detection must look at the bytes.
      const path = join(dir, `${c.name.replace(/\W+/g, '-')}.txt`);
      await writeVectorFile(path, c.format, ENTRIES, DIM, c.opts);
      const info = await detectFormat(path);
      assert.equal(info.format, c.detected);
      assert.equal(info.gzip, c.opts?.gzip === true);
      const got = await collect(path);
      assert.deepEqual(
        got.map((e) => e.word),
        ENTRIES.map(([w]) => w),
      );
      got.forEach((e, i) => assert.equal(bits(e.vector), bits((ENTRIES[i] as [string, Float32Array])[1]), e.word));
      // Reading with the format named explicitly gives the same.
      const named = await collect(path, { format: c.format });
      assert.deepEqual(
        named.map((e) => e.word),
        got.map((e) => e.word),
      );
    });
  }
});

test('entries crossing chunk boundaries (tiny window) read the same', async () => {
  const entries = randomEntries(300, 7, 3);
  for (const format of ['word2vec-binary', 'word2vec-text', 'wink-json'] as const) {
    const path = join(dir, `chunks-${format}`);
    await writeVectorFile(path, format, entries, 7);
    const got = await collect(path, { chunkBytes: 97 });
    assert.equal(got.length, 300, format);
    got.forEach((e, i) => {
      const [w, v] = entries[i] as [string, Float32Array];
      assert.equal(e.word, w);
      assert.equal(bits(e.vector), bits(v), `${format} ${w}`);
    });
  }
});

test('binary detection is not fooled by a vector whose first byte is a line break', async () => {
  const path = join(dir, 'tricky.bin');
  const v = new Float32Array(
    Uint8Array.from([0x0a, 0x00, 0x80, 0x3f, 0x31, 0x2e, 0x35, 0x20, 0x32, 0x20, 0x33, 0x0a]).buffer,
  );
  await writeVectorFile(
    path,
    'word2vec-binary',
    [
      ['x', v],
      ['y', [1, 2, 3]],
    ],
    3,
  );
  assert.equal((await detectFormat(path)).format, 'word2vec-binary');
  const got = await collect(path);
  assert.equal(bits(got[0]?.vector ?? new Float32Array()), bits(v));
});

test('text values become the float32 nearest to the decimal', async () => {
  const path = join(dir, 'decimals.txt');
  await writeFile(path, '2 3\nx 0.1 -1e-3 3.14159265358979\ny 1 2 16777217\n');
  const [x, y] = await collect(path);
  assert.deepEqual(Array.from(x?.vector ?? []), [Math.fround(0.1), Math.fround(-1e-3), Math.fround(3.14159265358979)]);
  assert.deepEqual(Array.from(y?.vector ?? []), [1, 2, 16777216]);
});

test('the real wink layout: metadata keys, vectors with l2norm and index appended, escaped words', async () => {
  const path = join(dir, 'wink-like.json');
  await writeFile(
    path,
    '{"precision":8,"l2NormIndex":2,"wordIndex":3,"size":3,"dimensions":2,"words":["a\\"b","c",","],' +
      '"vectors":{"a\\"b":[0.5,-1,1.1,0],"c":[2,3,3.6,1],",":[-0.25,0.125,0.3,2]},"unkVector":[0,0,-1]}',
  );
  const got = await collect(path);
  assert.deepEqual(
    got.map((e) => [e.word, Array.from(e.vector)]),
    [
      ['a"b', [0.5, -1]],
      ['c', [2, 3]],
      [',', [-0.25, 0.125]],
    ],
  );
});

test('a gzipped file is read to its end: bytesRead equals the compressed size', async () => {
  const entries = randomEntries(2000, 10, 5);
  const path = join(dir, 'big.bin.gz');
  const bytes = vectorFileBytes('word2vec-binary', entries, 10, { gzip: true });
  await writeFile(path, bytes);
  const table = await pruneVectors({ source: path, words: ['w1', 'w2000'], chunkBytes: 4096 });
  assert.equal(table.stats.bytesRead, bytes.length);
  assert.equal(table.stats.fileBytes, bytes.length);
  assert.equal(table.stats.entries, 2000);
  assert.equal(table.vocab.size, 3);
});

describe('bad input gives typed errors naming the file and the entry or line', () => {
  async function fails(
    name: string,
    content: string | Buffer,
    expect: RegExp,
    where: { line?: number; entry?: number },
    format?: VectorFormat,
  ) {
    const path = join(dir, name);
    await writeFile(path, content);
    for (const run of [
      () => collect(path, format ? { format } : {}),
      () => pruneVectors({ source: path, words: null, ...(format ? { format } : {}) }),
    ]) {
      await assert.rejects(run(), (e: unknown) => {
        assert.ok(isInvalidInput(e), String(e));
        assert.match(e.message, expect);
        assert.equal(e.file, path);
        if (where.line !== undefined) assert.equal(e.line, where.line);
        if (where.entry !== undefined) assert.equal(e.entry, where.entry);
        return true;
      });
    }
  }
  const two = randomEntries(2, 3, 9);

  test('truncated binary file (fewer entries than the header says)', async () => {
    const full = vectorFileBytes('word2vec-binary', two, 3);
    await fails('trunc.bin', full.subarray(0, full.length - 5), /truncated/, { entry: 2 });
    await fails('short.bin', vectorFileBytes('word2vec-binary', two, 3, { headerCount: 3 }), /truncated/, { entry: 3 });
    // A header that lies by far must not make the reader allocate for it.
    await fails('huge.bin', vectorFileBytes('word2vec-binary', two, 3, { headerCount: 9e15 }), /truncated/, {
      entry: 3,
    });
  });
  test('truncated gzipped binary file', async () => {
    const full = vectorFileBytes('word2vec-binary', two, 3);
    await fails('trunc.bin.gz', gzipSync(full.subarray(0, full.length - 5)), /truncated/, { entry: 2 });
  });
  test('corrupt gzip stream', async () => {
    const gz = gzipSync(vectorFileBytes('word2vec-binary', randomEntries(500, 3, 1), 3));
    gz.fill(0x55, 200, 400);
    await fails('corrupt.gz', gz, /gzip|truncated|garbled|data after/, {}, 'word2vec-binary');
  });
  test('truncated text file', async () => {
    await fails('trunc.txt', '3 2\na 1 2\nb 3 4\n', /truncated.*3 entries.*has 2/, { entry: 3 });
  });
  test('more entries than the header says', async () => {
    await fails('long.txt', '1 2\na 1 2\nb 3 4\n', /more entries/, { line: 3, entry: 2 });
    await fails(
      'long.bin',
      Buffer.concat([vectorFileBytes('word2vec-binary', two, 3, { headerCount: 1 })]),
      /data after/,
      { entry: 2 },
      'word2vec-binary',
    );
  });
  test('garbled header', async () => {
    await fails('garbled1.txt', '3 x\na 1 2\n', /garbled header/, { line: 1 });
    await fails('garbled2.txt', '3 0\na 1 2\n', /garbled header/, { line: 1 });
    await fails('garbled3.bin', 'ab\x01cd\n', /garbled header/, { line: 1 }, 'word2vec-binary');
    await fails('garbled4.bin', '2 99999999\nab ', /garbled header/, { line: 1 }, 'word2vec-binary');
  });
  test('a text line with the wrong number of values', async () => {
    await fails('count.txt', '2 3\na 1 2 3\nb 1 2\n', /expected 3 values, found 2/, { line: 3, entry: 2 });
    await fails('count.glove', 'a 1 2 3\nb 1 2 3 4\n', /expected 3 values, found 4/, { line: 2, entry: 2 });
    await fails('count.json', '{"a":[1,2],"b":[1]}', /expected 2 values, found 1/, { entry: 2 });
  });
  test('non-numeric values', async () => {
    await fails('nan.txt', '1 2\na 1 x2\n', /value 2 is not a number: "x2"/, { line: 2, entry: 1 });
    await fails('nan.glove', 'a 1 2\nb 1 nan\n', /value 2 is not a number/, { line: 2 }, 'glove-text');
    await fails('nan.json', '{"a":[1,2],"b":[1,"q"]}', /value 2 is not a number/, { entry: 2 });
  });
  test('unknown format', async () => {
    await fails('unknown.txt', 'hello world\nthis is prose\n', /unknown vector format/, { line: 1 });
    await fails('empty.txt', '', /unknown vector format.*empty/, {});
  });
  test('malformed JSON', async () => {
    await fails('bad.json', '{"a":[1,2],"b":[1,2]', /unexpected end of JSON/, {});
    await fails('bad2.json', '{"a":[1,2] "b":[1,2]}', /expected "," or "}"/, {});
  });
  test('missing file -> NotFoundError', async () => {
    const path = join(dir, 'nope.bin');
    await assert.rejects(collect(path), (e: unknown) => isNotFound(e) && e.file === path);
    await assert.rejects(detectFormat(path), (e: unknown) => isNotFound(e));
    await assert.rejects(pruneVectors({ source: path, words: ['a'] }), (e: unknown) => isNotFound(e));
  });
});
