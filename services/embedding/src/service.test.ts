import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { EmbeddingService, VectorFormat, type StreamMatrixResponse } from '@ch8/contracts/embedding';
import { assembleMatrix } from '@ch8/embeddings/matrix-stream';
import { vocabularyHash } from '@ch8/embeddings/vocabulary';
import { randomEntries, vectorFileBytes, writeVectorFile } from '@ch8/embeddings/write';
import { createClient, type Client } from '@ch8/service-kit/client';
import { createLogger } from '@ch8/service-kit/logger';
import { Code, GrpcError } from '@ch8/service-kit/status';
import { parseEmbeddingConfig } from './config.ts';
import { createEmbeddingServer } from './server.ts';

const DIM = 8;
const WORDS = ['the', 'movie', 'was', 'good', 'bad', 'film', 'not', 'great', 'plot', 'actors'];
const ENTRIES = randomEntries(WORDS, DIM, 7);
const ASK = ['good', 'movie', 'zebra', 'bad', 'aardvark', 'good'];

let dir: string;
let root: string;
let outside: string;
let stop: () => Promise<void>;
let client: Client<typeof EmbeddingService>;
const logLines: string[] = [];

/** The expected pruned matrix: <pad> zeros, then the asked words the source has, in source order. */
function expected(words: readonly string[] | null): { tokens: string[]; matrix: Float32Array } {
  const kept = ENTRIES.filter(([w]) => words === null || words.includes(w));
  const matrix = new Float32Array((kept.length + 1) * DIM);
  kept.forEach(([, v], i) => matrix.set(v, (i + 1) * DIM));
  return { tokens: ['<pad>', ...kept.map(([w]) => w)], matrix };
}

async function codeOf(p: Promise<unknown>): Promise<{ code: Code; details: string }> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof GrpcError, String(e));
    return { code: e.code, details: e.details };
  }
  assert.fail('expected the call to fail');
}

const bits = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ch8-embsvc-'));
  root = join(dir, 'data');
  outside = join(dir, 'outside');
  await mkdir(join(root, 'sub'), { recursive: true });
  await mkdir(outside);
  await writeVectorFile(join(root, 'w2v.bin'), 'word2vec-binary', ENTRIES, DIM);
  await writeVectorFile(join(root, 'w2v.bin.gz'), 'word2vec-binary', ENTRIES, DIM, { gzip: true });
  await writeVectorFile(join(root, 'w2v.txt'), 'word2vec-text', ENTRIES, DIM);
  await writeVectorFile(join(root, 'ft.vec'), 'fasttext-vec', ENTRIES, DIM, { trailingSpace: true });
  await writeVectorFile(join(root, 'glove.txt'), 'glove-text', ENTRIES, DIM);
  await writeVectorFile(join(root, 'sub', 'glove.txt.gz'), 'glove-text', ENTRIES, DIM, { gzip: true });
  await writeVectorFile(join(root, 'wink.json'), 'wink-json', ENTRIES, DIM);
  await writeVectorFile(join(root, 'plain.json'), 'wink-json', ENTRIES, DIM, { jsonLayout: 'plain' });
  // A duplicate word (first wins) and a word that is not valid UTF-8.
  const dupBad: Array<readonly [string | Uint8Array, Float32Array]> = [
    ...ENTRIES,
    ['good', new Float32Array(DIM).fill(9)],
    [new Uint8Array([0x66, 0xff, 0x66]), new Float32Array(DIM)],
  ];
  await writeVectorFile(join(root, 'dups.bin'), 'word2vec-binary', dupBad, DIM);
  // Bad files.
  await writeVectorFile(join(root, 'truncated.bin'), 'word2vec-binary', ENTRIES, DIM, { headerCount: 20 });
  const cut = vectorFileBytes('word2vec-binary', ENTRIES, DIM);
  await writeFile(join(root, 'cut.bin'), cut.subarray(0, cut.length - 10));
  await writeFile(join(root, 'garbled.txt'), '10 eight\nthe 0.1 0.2\n');
  await writeFile(join(root, 'short.txt'), 'the 0.1 0.2 0.3\nmovie 0.1 0.2\ngood 0.4 0.5 0.6\n');
  await writeFile(join(root, 'nan.txt'), 'the 0.1 0.2 0.3\nmovie 0.1 zero 0.3\n');
  await writeFile(join(root, 'unknown.dat'), 'hello world\nthis is not vectors\n');
  // Outside the root, reachable by `..`, an absolute path, a symlinked file and a symlinked folder.
  await writeVectorFile(join(outside, 'secret.bin'), 'word2vec-binary', ENTRIES, DIM);
  await symlink(join(outside, 'secret.bin'), join(root, 'link.bin'));
  await symlink(outside, join(root, 'linkdir'));
  // The default source lives outside the roots and is still allowed.
  await writeVectorFile(join(outside, 'default.txt'), 'glove-text', ENTRIES, DIM);

  const config = parseEmbeddingConfig({ CH8_DATA_ROOTS: root, CH8_CACHE_DIR: join(dir, 'cache') });
  const logger = createLogger({ level: 'info', write: (l) => void logLines.push(l) });
  const { server, close } = createEmbeddingServer({ config, logger, defaultSource: join(outside, 'default.txt') });
  const port = await server.listen('127.0.0.1:0');
  server.ready();
  client = createClient(EmbeddingService, `127.0.0.1:${port}`);
  stop = async () => {
    client.close();
    await server.shutdown(1000);
    await close();
  };
});

after(async () => {
  await stop();
  await rm(dir, { recursive: true, force: true });
});

describe('LoadTable, GetVocabulary, StreamMatrix on every format', () => {
  const cases: Array<[string, VectorFormat]> = [
    ['w2v.bin', VectorFormat.WORD2VEC_BINARY],
    ['w2v.bin.gz', VectorFormat.WORD2VEC_BINARY],
    ['w2v.txt', VectorFormat.WORD2VEC_TEXT],
    ['ft.vec', VectorFormat.WORD2VEC_TEXT], // detection reports fastText .vec as word2vec text
    ['glove.txt', VectorFormat.GLOVE_TEXT],
    ['sub/glove.txt.gz', VectorFormat.GLOVE_TEXT],
    ['wink.json', VectorFormat.WINK_JSON],
    ['plain.json', VectorFormat.WINK_JSON],
  ];
  for (const [file, format] of cases) {
    test(file, async () => {
      const { table } = await client.loadTable({ source: file, words: ASK });
      assert.ok(table);
      const want = expected(ASK);
      assert.equal(table.format, format);
      assert.equal(table.dim, DIM);
      assert.equal(table.vocabSize, want.tokens.length);
      assert.equal(table.source, file);
      assert.equal(table.vocabHash, vocabularyHash(want.tokens, DIM));
      const c = table.coverage;
      assert.ok(c);
      assert.deepEqual(
        [c.requested, c.found, c.missing, c.missingSample, c.duplicates, c.invalidUtf8],
        [5n, 3n, 2n, ['aardvark', 'zebra'], 0n, 0n],
      );
      assert.ok(table.bytesRead > 0n);
      const vocab = await client.getVocabulary({ tableId: table.tableId });
      assert.deepEqual(vocab.tokens, want.tokens);
      assert.equal(vocab.tokens[0], '<pad>');
      assert.equal(vocab.vocabHash, table.vocabHash);
      assert.equal(vocab.dim, DIM);
      const m = await assembleMatrix(client.streamMatrix({ tableId: table.tableId }));
      assert.equal(m.chunks, 1);
      assert.equal(m.vocabHash, table.vocabHash);
      assert.ok(bits(m.matrix).equals(bits(want.matrix)), 'matrix differs');
    });
  }
});

describe('idempotence and sharing', () => {
  test('same source and word set => same table_id; detect == explicit format; other words => other id', async () => {
    const a = (await client.loadTable({ source: 'w2v.bin', words: ['bad', 'good', 'movie'] })).table;
    const b = (
      await client.loadTable({
        source: 'w2v.bin',
        words: ['movie', 'good', 'bad', 'good'],
        format: VectorFormat.WORD2VEC_BINARY,
      })
    ).table;
    const c = (await client.loadTable({ source: join(root, 'w2v.bin'), words: ['movie', 'good'] })).table;
    assert.ok(a && b && c);
    assert.equal(a.tableId, b.tableId);
    assert.equal(a.vocabHash, b.vocabHash);
    assert.equal(b.cacheHit, true);
    assert.notEqual(c.tableId, a.tableId);
    assert.match(a.tableId, /^[0-9a-f]{32}$/);
  });

  test('concurrent loads of one key share one build', async () => {
    const before = logLines.filter((l) => l.includes('table loaded')).length;
    const words = ['plot', 'actors', 'the'];
    const all = await Promise.all([1, 2, 3, 4].map(() => client.loadTable({ source: 'w2v.txt', words })));
    const ids = new Set(all.map((r) => r.table?.tableId));
    assert.equal(ids.size, 1);
    assert.equal(logLines.filter((l) => l.includes('table loaded')).length - before, 1);
    assert.equal(all.filter((r) => r.table?.cacheHit === false).length, 1);
  });

  test('a second server with the same cache dir serves the same id from disk', async () => {
    const config = parseEmbeddingConfig({ CH8_DATA_ROOTS: root, CH8_CACHE_DIR: join(dir, 'cache') });
    const { server, close } = createEmbeddingServer({ config, logger: createLogger({ level: 'silent' }) });
    const port = await server.listen('127.0.0.1:0');
    const other = createClient(EmbeddingService, `127.0.0.1:${port}`);
    try {
      const first = (await client.loadTable({ source: 'glove.txt', words: ['not', 'great'] })).table;
      const second = (await other.loadTable({ source: 'glove.txt', words: ['great', 'not'] })).table;
      assert.equal(second?.tableId, first?.tableId);
      assert.equal(second?.cacheHit, true);
      assert.equal(second?.vocabHash, first?.vocabHash);
    } finally {
      other.close();
      await server.shutdown(500);
      await close();
    }
  });

  test('keep_all keeps every word, counting duplicates and invalid UTF-8', async () => {
    const { table } = await client.loadTable({ source: 'dups.bin', keepAll: true });
    assert.ok(table?.coverage);
    assert.equal(table.vocabSize, WORDS.length + 2); // <pad>, the words, the invalid one (decoded with U+FFFD)
    assert.equal(table.coverage.duplicates, 1n);
    assert.equal(table.coverage.invalidUtf8, 1n);
    assert.equal(table.coverage.missing, 0n);
    const { entries } = await client.lookup({ tableId: table.tableId, tokens: ['good'], includeVectors: true });
    assert.deepEqual(entries[0]?.vector, Array.from(ENTRIES[3]![1]), 'first occurrence wins');
  });

  test('an empty source loads the default source, even outside the roots', async () => {
    const { table } = await client.loadTable({ words: ['film'] });
    assert.equal(table?.vocabSize, 2);
    assert.equal(table?.format, VectorFormat.GLOVE_TEXT);
  });
});

describe('Lookup, StreamMatrix chunking, ListTables', () => {
  let tableId = '';
  before(async () => {
    tableId = (await client.loadTable({ source: 'w2v.bin', keepAll: true })).table?.tableId ?? '';
  });

  test('Lookup gives ids and exact vectors; OOV tokens have no id', async () => {
    const { entries } = await client.lookup({
      tableId,
      tokens: ['movie', 'nope', '<pad>', 'actors'],
      includeVectors: true,
    });
    assert.deepEqual(
      entries.map((e) => [e.token, e.id]),
      [
        ['movie', 2],
        ['nope', undefined],
        ['<pad>', 0],
        ['actors', 10],
      ],
    );
    assert.deepEqual(entries[0]?.vector, Array.from(ENTRIES[1]![1]));
    assert.deepEqual(entries[1]?.vector, []);
    assert.deepEqual(entries[2]?.vector, new Array(DIM).fill(0));
    const plain = await client.lookup({ tableId, tokens: ['movie'] });
    assert.equal(plain.entries[0]?.id, 2);
    assert.deepEqual(plain.entries[0]?.vector, []);
  });

  test('StreamMatrix respects max_chunk_bytes, never splits rows, reassembles bit-exactly', async () => {
    const max = 3 * 4 * DIM + 5; // room for 3 rows
    const chunks: StreamMatrixResponse[] = [];
    for await (const c of client.streamMatrix({ tableId, maxChunkBytes: max })) chunks.push(c);
    assert.equal(chunks.length, Math.ceil((WORDS.length + 1) / 3));
    for (const [i, c] of chunks.entries()) {
      assert.ok(c.data.length <= max);
      assert.equal(c.data.length, 4 * DIM * c.rowCount);
      assert.equal(c.vocabSize, i === 0 ? WORDS.length + 1 : 0);
      assert.equal(c.vocabHash === '', i !== 0);
    }
    const m = await assembleMatrix(
      (async function* () {
        yield* chunks;
      })(),
    );
    assert.ok(bits(m.matrix).equals(bits(expected(null).matrix)));
    const { code } = await codeOf(assembleMatrix(client.streamMatrix({ tableId, maxChunkBytes: 4 * DIM - 1 })));
    assert.equal(code, Code.INVALID_ARGUMENT);
  });

  test('assembleMatrix rejects a broken stream', async () => {
    const chunks: StreamMatrixResponse[] = [];
    for await (const c of client.streamMatrix({ tableId, maxChunkBytes: 4 * DIM * 4 })) chunks.push(c);
    const gen = async function* (list: typeof chunks) {
      yield* list;
    };
    await assert.rejects(assembleMatrix(gen([chunks[0]!, chunks[2]!])), /does not continue/);
    await assert.rejects(assembleMatrix(gen(chunks.slice(0, 1))), /ended at row 4 of 11/);
  });

  test('ListTables lists each loaded table once', async () => {
    const { tables } = await client.listTables({});
    const ids = tables.map((t) => t.tableId);
    assert.ok(ids.includes(tableId));
    assert.equal(new Set(ids).size, ids.length);
    assert.ok(tables.length >= 8);
  });
});

describe('bad input: status codes, messages, and the service keeps serving', () => {
  const invalid: Array<[string, RegExp]> = [
    ['truncated.bin', /truncated\.bin.*(entry|line) \d+/],
    ['cut.bin', /cut\.bin.*(entry|line) \d+/],
    ['garbled.txt', /garbled\.txt, line 1/],
    ['short.txt', /short\.txt, line 2/],
    ['nan.txt', /nan\.txt, line 2/],
    ['unknown.dat', /unknown\.dat.*unknown vector format/],
  ];
  for (const [file, message] of invalid) {
    test(`${file} => INVALID_ARGUMENT`, async () => {
      const r = await codeOf(client.loadTable({ source: file, keepAll: true }));
      assert.equal(r.code, Code.INVALID_ARGUMENT, r.details);
      assert.match(r.details, message);
    });
  }

  test('wrong values in a requested word are caught when pruning too', async () => {
    const r = await codeOf(client.loadTable({ source: 'nan.txt', words: ['movie'] }));
    assert.equal(r.code, Code.INVALID_ARGUMENT);
  });

  test('empty word list without keep_all, unknown format number => INVALID_ARGUMENT', async () => {
    assert.equal((await codeOf(client.loadTable({ source: 'w2v.bin' }))).code, Code.INVALID_ARGUMENT);
    assert.equal((await codeOf(client.loadTable({ source: 'w2v.bin', words: ['<pad>'] }))).code, Code.INVALID_ARGUMENT);
    assert.equal(
      (await codeOf(client.loadTable({ source: 'w2v.bin', words: ['good'], format: 99 as VectorFormat }))).code,
      Code.INVALID_ARGUMENT,
    );
    assert.equal((await codeOf(client.getVocabulary({ tableId: '' }))).code, Code.INVALID_ARGUMENT);
  });

  test('missing file, unknown table_id => NOT_FOUND', async () => {
    assert.equal((await codeOf(client.loadTable({ source: 'nope.bin', words: ['good'] }))).code, Code.NOT_FOUND);
    assert.equal((await codeOf(client.loadTable({ source: 'sub/../nope.bin', words: ['good'] }))).code, Code.NOT_FOUND);
    for (const p of [
      client.getVocabulary({ tableId: 'f'.repeat(32) }),
      client.lookup({ tableId: 'f'.repeat(32), tokens: ['good'] }),
      assembleMatrix(client.streamMatrix({ tableId: 'f'.repeat(32) })),
    ]) {
      assert.equal((await codeOf(p)).code, Code.NOT_FOUND);
    }
  });

  test('paths outside the data roots => PERMISSION_DENIED (absolute, .., symlinks), existing or not', async () => {
    for (const source of [
      join(outside, 'secret.bin'),
      '../outside/secret.bin',
      'sub/../../outside/secret.bin',
      '../outside/does-not-exist.bin',
      'link.bin',
      'linkdir/secret.bin',
      'linkdir/does-not-exist.bin',
      '/etc/passwd',
      '/',
    ]) {
      const r = await codeOf(client.loadTable({ source, words: ['good'] }));
      assert.equal(r.code, Code.PERMISSION_DENIED, `${source}: ${r.details}`);
    }
  });

  test('a LoadTable whose deadline passes fails alone; the next call for the same table succeeds', async () => {
    const big = randomEntries(4000, DIM, 11);
    await writeVectorFile(join(root, 'big.txt'), 'glove-text', big, DIM);
    const r = await codeOf(client.loadTable({ source: 'big.txt', keepAll: true }, { timeoutMs: 1 }));
    assert.ok(r.code === Code.DEADLINE_EXCEEDED || r.code === Code.CANCELLED, r.details);
    const { table } = await client.loadTable({ source: 'big.txt', keepAll: true });
    assert.equal(table?.vocabSize, 4001);
  });

  test('the service still serves after all of the above', async () => {
    const { table } = await client.loadTable({ source: 'w2v.bin.gz', words: ['good', 'bad'] });
    assert.equal(table?.vocabSize, 3);
    const { entries } = await client.lookup({ tableId: table?.tableId ?? '', tokens: ['bad'] });
    assert.equal(entries[0]?.id, 2);
  });
});
