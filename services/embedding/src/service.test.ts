import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { EmbeddingService, VectorFormat } from '@ch8/contracts/embedding';
import { vocabularyHash } from '@ch8/embeddings/vocabulary';
import { randomEntries, vectorFileBytes, writeVectorFile } from '@ch8/embeddings/write';
import { createClient, type Client } from '@ch8/service-kit/client';
import { createLogger } from '@ch8/service-kit/logger';
import { Code, GrpcError } from '@ch8/service-kit/status';
import { parseEmbeddingConfig } from './config.ts';
import { assembleMatrix } from './matrix.ts';
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
  const dupBad: Array<readonly [string | Uint8Array, Float32Array]> = [...ENTRIES, ['good', new Float32Array(DIM).fill(9)], [new Uint8Array([0x66, 0xff, 0x66]), new Float32Array(DIM)]];
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
