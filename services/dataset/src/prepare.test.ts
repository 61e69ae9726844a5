import assert from 'node:assert/strict';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { DatasetService, TabularFormat, TokenizerKind } from '@ch8/contracts/dataset';
import { createClient } from '@ch8/service-kit/client';
import { silentLogger } from '@ch8/service-kit/logger';
import { Code, GrpcError } from '@ch8/service-kit/status';
import { parseDatasetConfig } from './config.ts';
import { createDatasetServer } from './server.ts';
import { sst2Rows, startStack, tsv, type Stack } from './test-stack.ts';

let stack: Stack;
before(async () => {
  stack = await startStack();
});
after(() => stack.stop());

async function rejectsWith(p: Promise<unknown>, code: Code, ...details: RegExp[]): Promise<GrpcError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof GrpcError, String(e));
    assert.equal(Code[e.code], Code[code], e.details);
    for (const d of details) assert.match(e.details, d);
    return e;
  }
  assert.fail('expected the call to fail');
}

async function count(): Promise<number> {
  return (await stack.dataset.listDatasets({})).datasets.length;
}

test('prepares SST-2 against the real embedding service: ids, counts, vocabulary hash', async () => {
  const res = await stack.dataset.prepareDataset({
    source: { kind: { case: 'sst2', value: { dir: join(stack.root, 'sst2') } } },
    name: 'mini',
  });
  const d = res.dataset!;
  assert.equal(d.name, 'mini');
  assert.equal(d.tokenizer, TokenizerKind.CHAPTER);
  assert.equal(d.tokenizerVersion, 'chapter@1');
  // The embedding service agrees on the table and its vocabulary.
  const vocab = await stack.embedding.getVocabulary({ tableId: d.tableId });
  assert.equal(vocab.vocabHash, d.vocabHash);
  assert.equal(d.vocabSize, vocab.tokens.length);
  assert.equal(d.dim, 8);
  assert.equal(vocab.tokens[0], '<pad>');
  const [train, dev] = d.splits;
  assert.equal(train?.split, 'train');
  assert.equal(train?.rowsRead, 300n);
  assert.equal(train?.droppedEmpty, BigInt(stack.train.allOov));
  assert.equal(train?.kept, BigInt(300 - stack.train.allOov));
  assert.equal(train?.tokens, BigInt(stack.train.tokens));
  assert.equal(train?.oovTokens, BigInt(stack.train.oovTokens));
  assert.ok(train!.lengths!.min >= 1 && train!.lengths!.max <= 12 && train!.lengths!.p50 <= train!.lengths!.p95);
  assert.equal(dev?.rowsRead, 40n);
  assert.equal(dev?.kept, BigInt(40 - stack.dev.allOov));

  // Examples: ids are the vocabulary's ids of the kept tokens, in order.
  const ex = await stack.dataset.getExamples({ datasetId: d.datasetId, split: 'train', limit: 20 });
  assert.equal(ex.total, BigInt(300 - stack.train.allOov));
  assert.equal(ex.examples.length, 20);
  for (const e of ex.examples) {
    const words = e.text
      .trim()
      .split(/\s+/)
      .filter((w) => vocab.tokens.includes(w));
    assert.deepEqual(e.tokens, words);
    assert.deepEqual(
      e.inputIds,
      words.map((w) => vocab.tokens.indexOf(w)),
    );
    assert.ok(e.label === 0 || e.label === 1);
  }
  // Rows with only unknown words are missing from the examples (row 9 is one).
  assert.ok(!ex.examples.some((e) => e.index === 9));
  assert.ok(ex.examples.every((e, i) => i === 0 || e.index > ex.examples[i - 1]!.index));
  assert.equal((await stack.dataset.getExamples({ datasetId: d.datasetId, split: 'dev' })).examples.length, 4);

  // Registered, found by id; preparing again gives the same id and registers nothing new.
  assert.equal((await stack.dataset.getDataset({ datasetId: d.datasetId })).dataset?.vocabHash, d.vocabHash);
  const again = await stack.dataset.prepareDataset({ source: { kind: { case: 'sst2', value: { dir: 'sst2' } } } });
  assert.equal(again.dataset?.datasetId, d.datasetId);
  assert.ok((await stack.dataset.listDatasets({})).datasets.some((x) => x.datasetId === d.datasetId));
});

test('CRLF line ends and a UTF-8 BOM give the same data set (same content, same id)', async () => {
  const dir = join(stack.root, 'crlf');
  await mkdir(dir);
  const { readFile } = await import('node:fs/promises');
  for (const f of ['train.tsv', 'dev.tsv']) {
    const text = await readFile(join(stack.root, 'sst2', f), 'utf8');
    await writeFile(join(dir, f), '\ufeff' + text.replace(/\n/g, '\r\n'));
  }
  const a = await stack.dataset.prepareDataset({
    source: { kind: { case: 'sst2', value: { dir: join(stack.root, 'sst2') } } },
  });
  const b = await stack.dataset.prepareDataset({ source: { kind: { case: 'sst2', value: { dir } } } });
  assert.equal(b.dataset?.datasetId, a.dataset?.datasetId);
  assert.deepEqual(
    b.dataset?.splits.map((s) => s.kept),
    a.dataset?.splits.map((s) => s.kept),
  );
});

test('tabular files (TSV and JSONL) with named columns, raw tokenizer by default, chapter on request', async () => {
  await writeFile(join(stack.root, 'tab-train.tsv'), 'label\ttext\n1\tw1 w2, w3!\n0\tzz1\n0\tW4 w5\n');
  await writeFile(join(stack.root, 'tab-dev.jsonl'), '{"text": "w6 w7", "label": 1}\n{"text": "w8", "label": 0}\n');
  const files = [
    { split: 'train', path: 'tab-train.tsv' },
    { split: 'dev', path: join(stack.root, 'tab-dev.jsonl') },
  ];
  const raw = await stack.dataset.prepareDataset({ source: { kind: { case: 'tabular', value: { files } } } });
  assert.equal(raw.dataset?.tokenizer, TokenizerKind.RAW);
  assert.deepEqual(
    raw.dataset?.splits.map((s) => [s.split, s.rowsRead, s.kept, s.droppedEmpty]),
    [
      ['train', 3n, 2n, 1n],
      ['dev', 2n, 2n, 0n],
    ],
  );
  const ex = await stack.dataset.getExamples({ datasetId: raw.dataset!.datasetId, split: 'train' });
  // Raw tokenization splits the punctuation off (',' is in the vectors, '!' is not) and lower-cases.
  assert.deepEqual(
    ex.examples.map((e) => e.tokens),
    [
      ['w1', 'w2', ',', 'w3'],
      ['w4', 'w5'],
    ],
  );
  const chapter = await stack.dataset.prepareDataset({
    source: {
      kind: {
        case: 'tabular',
        value: { files: files.slice(0, 1), format: TabularFormat.TSV, textColumn: 'text', labelColumn: 'label' },
      },
    },
    tokenizer: TokenizerKind.CHAPTER,
  });
  assert.notEqual(chapter.dataset?.datasetId, raw.dataset?.datasetId);
  const ex2 = await stack.dataset.getExamples({ datasetId: chapter.dataset!.datasetId, split: 'train' });
  assert.deepEqual(
    ex2.examples.map((e) => e.tokens),
    [['w1'], ['w4', 'w5']],
  );
});

test('the builtin sentiment review sets are the default source (raw tokenizer, train/dev/test)', async () => {
  const res = await stack.dataset.prepareDataset({});
  const d = res.dataset!;
  assert.equal(d.tokenizer, TokenizerKind.RAW);
  assert.deepEqual(
    d.splits.map((s) => [s.split, s.rowsRead]),
    [
      ['train', 2385n],
      ['dev', 299n],
      ['test', 298n],
    ],
  );
  for (const s of d.splits) assert.equal(s.kept + s.droppedEmpty, s.rowsRead);
  const one = await stack.dataset.prepareDataset({
    source: { kind: { case: 'builtin', value: { sets: ['yelp'], splitSeed: 3 } } },
  });
  assert.ok(one.dataset!.splits[0]!.rowsRead < 1000n);
  await rejectsWith(
    stack.dataset.prepareDataset({ source: { kind: { case: 'builtin', value: { sets: ['netflix'] } } } }),
    Code.INVALID_ARGUMENT,
    /netflix/,
  );
});

test('every bad input is INVALID_ARGUMENT naming file and line, a missing file NOT_FOUND, and nothing is registered', async () => {
  const before = await count();
  const good = sst2Rows(5, 9).lines;
  const cases: Array<[string, string, RegExp[]]> = [
    ['no-header', tsv(good, 'text\tlabel'), [/train\.tsv/, /line 1/]],
    ['wrong-header', tsv(good, 'sentence\tscore'), [/train\.tsv/, /line 1/]],
    ['no-tab', tsv([good[0]!, 'w1 w2 w3', good[1]!]), [/train\.tsv/, /line 3/]],
    ['bad-label', tsv([good[0]!, good[1]!, 'w1 \t2']), [/train\.tsv/, /line 4/, /label/]],
    ['empty', '', [/train\.tsv/, /line 1/, /empty/]],
  ];
  for (const [name, text, details] of cases) {
    const dir = join(stack.root, name);
    await mkdir(dir);
    await writeFile(join(dir, 'train.tsv'), text);
    await writeFile(join(dir, 'dev.tsv'), tsv(good));
    await rejectsWith(
      stack.dataset.prepareDataset({ source: { kind: { case: 'sst2', value: { dir } } } }),
      Code.INVALID_ARGUMENT,
      ...details,
    );
  }
  // dev.tsv missing: NOT_FOUND naming it.
  await mkdir(join(stack.root, 'no-dev'));
  await writeFile(join(stack.root, 'no-dev', 'train.tsv'), tsv(good));
  await rejectsWith(
    stack.dataset.prepareDataset({ source: { kind: { case: 'sst2', value: { dir: 'no-dev' } } } }),
    Code.NOT_FOUND,
    /dev\.tsv/,
  );
  await rejectsWith(
    stack.dataset.prepareDataset({ source: { kind: { case: 'sst2', value: { dir: 'nowhere' } } } }),
    Code.NOT_FOUND,
  );
  // Tabular: a bad label value in JSONL names the line; no files; a split named twice.
  await writeFile(join(stack.root, 'bad.jsonl'), '{"text": "w1", "label": 1}\n{"text": "w2", "label": "yes"}\n');
  await rejectsWith(
    stack.dataset.prepareDataset({
      source: { kind: { case: 'tabular', value: { files: [{ split: 'train', path: 'bad.jsonl' }] } } },
    }),
    Code.INVALID_ARGUMENT,
    /bad\.jsonl/,
    /line 2/,
  );
  await rejectsWith(
    stack.dataset.prepareDataset({ source: { kind: { case: 'tabular', value: { files: [] } } } }),
    Code.INVALID_ARGUMENT,
  );
  await rejectsWith(
    stack.dataset.prepareDataset({
      source: {
        kind: {
          case: 'tabular',
          value: {
            files: [
              { split: 'train', path: 'tab-train.tsv' },
              { split: 'train', path: 'tab-train.tsv' },
            ],
          },
        },
      },
    }),
    Code.INVALID_ARGUMENT,
    /twice/,
  );
  // A vector source the embedding service does not have: its error comes through, nothing registered.
  await rejectsWith(
    stack.dataset.prepareDataset({
      source: { kind: { case: 'sst2', value: { dir: 'sst2' } } },
      embedding: { source: 'missing-vectors.txt' },
    }),
    Code.NOT_FOUND,
    /embedding service/,
  );
  assert.equal(await count(), before);
});

test('paths outside CH8_DATA_ROOTS are PERMISSION_DENIED, symbolic links out of a root too', async () => {
  const before = await count();
  for (const dir of ['/etc', '../', '../../etc', '']) {
    const code = dir === '' ? Code.INVALID_ARGUMENT : Code.PERMISSION_DENIED;
    await rejectsWith(stack.dataset.prepareDataset({ source: { kind: { case: 'sst2', value: { dir } } } }), code);
  }
  await symlink('/etc', join(stack.root, 'escape'));
  await rejectsWith(
    stack.dataset.prepareDataset({ source: { kind: { case: 'sst2', value: { dir: 'escape' } } } }),
    Code.PERMISSION_DENIED,
    /outside/,
  );
  // No roots configured: nothing may be read over gRPC (the builtin sets still may).
  const { server, close } = createDatasetServer({
    config: parseDatasetConfig({ CH8_EMBEDDING_ADDR: stack.embeddingAddr, CH8_LOG_LEVEL: 'error' }),
    logger: silentLogger,
  });
  const addr = `127.0.0.1:${await server.listen('127.0.0.1:0')}`;
  const client = createClient(DatasetService, addr);
  try {
    await rejectsWith(
      client.prepareDataset({ source: { kind: { case: 'sst2', value: { dir: join(stack.root, 'sst2') } } } }),
      Code.PERMISSION_DENIED,
      /CH8_DATA_ROOTS/,
    );
  } finally {
    client.close();
    await server.shutdown(200);
    await close();
  }
  assert.equal(await count(), before);
});

test('embedding service down: UNAVAILABLE and nothing registered', async () => {
  // A port nobody listens on: bind one, then close it.
  const probe = createDatasetServer({ config: parseDatasetConfig({ CH8_LOG_LEVEL: 'error' }), logger: silentLogger });
  const deadPort = await probe.server.listen('127.0.0.1:0');
  await probe.server.shutdown(100);
  await probe.close();
  const { server, close } = createDatasetServer({
    config: parseDatasetConfig({
      CH8_EMBEDDING_ADDR: `127.0.0.1:${deadPort}`,
      CH8_DATA_ROOTS: stack.root,
      CH8_LOG_LEVEL: 'error',
    }),
    logger: silentLogger,
  });
  const addr = `127.0.0.1:${await server.listen('127.0.0.1:0')}`;
  const client = createClient(DatasetService, addr);
  try {
    await rejectsWith(
      client.prepareDataset({ source: { kind: { case: 'sst2', value: { dir: 'sst2' } } } }),
      Code.UNAVAILABLE,
      /embedding service LoadTable/,
    );
    assert.equal((await client.listDatasets({})).datasets.length, 0);
  } finally {
    client.close();
    await server.shutdown(200);
    await close();
  }
});

test('GetExamples and GetDataset: unknown id NOT_FOUND, unknown split INVALID_ARGUMENT', async () => {
  const d = (await stack.dataset.prepareDataset({ source: { kind: { case: 'sst2', value: { dir: 'sst2' } } } }))
    .dataset!;
  await rejectsWith(stack.dataset.getDataset({ datasetId: 'ds-nope' }), Code.NOT_FOUND, /ds-nope/);
  await rejectsWith(stack.dataset.getExamples({ datasetId: 'ds-nope', split: 'train' }), Code.NOT_FOUND);
  await rejectsWith(
    stack.dataset.getExamples({ datasetId: d.datasetId, split: 'test' }),
    Code.INVALID_ARGUMENT,
    /split/,
  );
  const far = await stack.dataset.getExamples({ datasetId: d.datasetId, split: 'dev', offset: 10_000 });
  assert.equal(far.examples.length, 0);
});
