import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { DatasetService, TabularFormat, TokenizerKind } from '@ch8/contracts/dataset';
import { decodeBatch, encodeBatch } from '@ch8/batching/arrow';
import { collate } from '@ch8/batching/collate';
import { randomEntries, writeVectorFile } from '@ch8/embeddings/write';
import { NotFoundError } from '@ch8/errors';
import { silentLogger } from '@ch8/service-kit/logger';
import { createServer } from '@ch8/service-kit/server';
import type { Command } from './command.ts';
import { runCommand } from './testing.ts';
import {
  chapterBatch,
  chapterExample,
  dataShowCommand,
  dataStatsCommand,
  pyRepr,
  type ShowReport,
  type StatsReport,
} from './commands/data.ts';

let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ch8-cli-data-'));
  await writeVectorFile(
    join(dir, 'vec.txt'),
    'glove-text',
    randomEntries(['good', 'film', 'bad', 'plot', "n't", 'it', 'is'], 4, 3),
    4,
  );
  await writeFile(
    join(dir, 'train.tsv'),
    "sentence\tlabel\ngood film \t1\nxyzzy plugh \t0\nbad bad plot , it is n't \t0\nit 's good \t1\n",
  );
  await writeFile(join(dir, 'dev.tsv'), '\ufeffsentence\tlabel\r\nbad film \r\n'.replace(' \r\n', ' \t0\r\n'));
  await writeFile(join(dir, 'broken.tsv'), 'sentence\tlabel\ngood film \t1\ngood film\n');
});
after(() => rm(dir, { recursive: true, force: true }));

const run = (command: Command, argv: string[]) => runCommand(command, argv, { cwd: dir });

const local = ['--vectors', 'vec.txt', '--cache-dir', 'cache'];

test('data stats: per-split counts with the pruned vectors, cached the second time', async () => {
  const { code, value, text } = await run(dataStatsCommand, [
    '--train',
    'train.tsv',
    '--dev',
    'dev.tsv',
    ...local,
    '--json',
  ]);
  assert.equal(code, 0);
  const r = value as StatsReport;
  assert.equal(JSON.parse(text).vocab_hash, r.vocab_hash);
  assert.equal(r.via, 'local');
  assert.equal(r.tokenizer, 'chapter@1');
  assert.equal(r.dim, 4);
  // good film bad plot it is n't: 7 words + <pad>; 's , xyzzy plugh are OOV.
  assert.equal(r.vocab_size, 8);
  assert.deepEqual(
    r.splits.map((s) => [s.split, s.rows_read, s.kept, s.dropped_empty, s.tokens, s.oov_tokens]),
    [
      ['train', 4, 3, 1, 14, 4],
      ['dev', 1, 1, 0, 2, 0],
    ],
  );
  assert.deepEqual(r.splits[0]?.lengths, { min: 2, max: 6, mean: 10 / 3, p50: 2, p95: 6 });
  assert.equal(r.cache_hit, false);
  const again = await run(dataStatsCommand, ['--train', 'train.tsv', '--dev', 'dev.tsv', ...local]);
  assert.match(again.text, /train\s+4\s+3\s+1\s+14\s+4/);
  assert.equal((again.value as StatsReport).cache_hit, true);
});

test("data show: the chapter's form, and --collate pads with 0, longest first", async () => {
  const { value, text } = await run(dataShowCommand, ['--n', '2', '--train', 'train.tsv', '--collate', ...local]);
  const r = value as ShowReport;
  assert.equal(r.examples.length, 2);
  assert.deepEqual(
    r.examples.map((e) => e.tokens),
    [
      ['good', 'film'],
      ['bad', 'bad', 'plot', 'it', 'is', "n't"],
    ],
  );
  const lines = text.split('\n');
  const [good, film] = r.examples[0]!.input_ids as [number, number];
  assert.equal(lines[0], `{'text': 'good film ', 'label': tensor([1.]), 'input_ids': tensor([${good}, ${film}])}`);
  assert.match(
    lines[1]!,
    /^\{'text': "bad bad plot , it is n't ", 'label': tensor\(\[0\.\]\), 'input_ids': tensor\(\[/,
  );
  assert.deepEqual(r.batch?.lengths, [6, 2]);
  assert.deepEqual(r.batch?.index, [2, 0]);
  assert.deepEqual(r.batch?.input_ids[1], [good, film, 0, 0, 0, 0]);
  assert.deepEqual(r.batch?.label, [[0], [1]]);
  assert.match(text, /'label': tensor\(\[\[0\.\],\n {8}\[1\.\]\]\)\}$/);
  // The dev split only when asked for; a split the data lacks is bad usage.
  const dev = await run(dataShowCommand, ['--split', 'dev', '--dev', 'dev.tsv', ...local, '--json']);
  assert.equal((dev.value as ShowReport).examples[0]?.text, 'bad film ');
  // One data set, one vocabulary: the dev split of train + dev has the ids `data stats` of train + dev reports.
  const both = ['--train', 'train.tsv', '--dev', 'dev.tsv', ...local, '--json'];
  const stats = (await run(dataStatsCommand, both)).value as StatsReport;
  const shown = (await run(dataShowCommand, ['--split', 'dev', ...both])).value as ShowReport;
  assert.equal(shown.vocab_hash, stats.vocab_hash);
  assert.deepEqual(shown.examples[0]?.tokens, ['bad', 'film']);
  await assert.rejects(run(dataShowCommand, ['--split', 'dev', '--train', 'train.tsv', ...local]), /no split "dev"/);
});

test('python-style rendering helpers', () => {
  assert.equal(pyRepr("it 's"), `"it 's"`);
  assert.equal(pyRepr('say "hi" it\'s'), `'say "hi" it\\'s'`);
  assert.equal(
    chapterExample({ index: 0, text: 'a', label: 0, input_ids: [5785, 66, 113845], tokens: [] }),
    "{'text': 'a', 'label': tensor([0.]), 'input_ids': tensor([  5785,     66, 113845])}",
  );
  assert.equal(
    chapterBatch({
      input_ids: [
        [12, 3],
        [4, 0],
      ],
      label: [[1], [0]],
      lengths: [2, 1],
      index: [1, 0],
    }),
    "{'input_ids': tensor([[12,  3],\n        [ 4,  0]]), 'label': tensor([[1.],\n        [0.]])}",
  );
});

test('bad input: a broken TSV names file and line, a missing file is not found, a bad --tokenizer is refused', async () => {
  await assert.rejects(
    run(dataStatsCommand, ['--train', 'broken.tsv', ...local]),
    (e: Error) => e.name === 'InvalidInputError' && /broken\.tsv, line 3/.test(e.message),
  );
  await assert.rejects(run(dataStatsCommand, ['--train', 'nope.tsv', ...local]), NotFoundError);
  await assert.rejects(
    run(dataStatsCommand, ['--train', 'train.tsv', '--tokenizer', 'bpe', ...local]),
    /--tokenizer must be chapter or raw/,
  );
  await assert.rejects(
    run(dataStatsCommand, ['--train', 'train.tsv', '--vectors', 'missing.txt', '--cache-dir', 'cache']),
    NotFoundError,
  );
});

test('--addr sends the work to a dataset service (stats from PrepareDataset, examples and the collated batch from it)', async () => {
  const seen: unknown[] = [];
  const examples = [
    { index: 0, text: 'good film ', label: 1, inputIds: [1, 2], tokens: ['good', 'film'] },
    { index: 2, text: 'bad plot ', label: 0, inputIds: [3, 4, 5], tokens: ['bad', 'plot', 'x'] },
  ];
  const info = {
    datasetId: 'ds-1',
    name: 'stub',
    tableId: 't-1',
    vocabHash: 'h'.repeat(64),
    vocabSize: 6,
    dim: 4,
    tokenizer: TokenizerKind.CHAPTER,
    tokenizerVersion: 'chapter@1',
    splits: [
      {
        split: 'train',
        rowsRead: 3n,
        kept: 2n,
        droppedEmpty: 1n,
        tokens: 7n,
        oovTokens: 2n,
        lengths: { min: 2, max: 3, mean: 2.5, p50: 2, p95: 3 },
      },
    ],
  };
  const server = createServer({ name: 'stub', logger: silentLogger }).add(DatasetService, {
    prepareDataset: (req) => {
      seen.push(req);
      return { dataset: info };
    },
    async *streamBatches(req) {
      seen.push(req);
      yield {
        arrowIpc: encodeBatch(collate(examples.map((e) => ({ ...e, inputIds: Int32Array.from(e.inputIds) })))),
        batchSize: 2,
        maxLength: 3,
        batchesInEpoch: 1,
      };
    },
    getExamples: (req) => {
      if (req.datasetId !== 'ds-1') throw new NotFoundError('no such data set');
      return { examples: examples.slice(0, req.limit), total: 2n };
    },
    getDataset: () => ({ dataset: info }),
    listDatasets: () => ({ datasets: [info] }),
  });
  const addr = `127.0.0.1:${await server.listen('127.0.0.1:0')}`;
  try {
    const stats = await run(dataStatsCommand, ['--addr', addr, '--train', 'train.tsv', '--json']);
    const r = stats.value as StatsReport;
    assert.equal(r.dataset_id, 'ds-1');
    assert.deepEqual(r.splits[0], {
      split: 'train',
      rows_read: 3,
      kept: 2,
      dropped_empty: 1,
      tokens: 7,
      oov_tokens: 2,
      oov_rate: 2 / 7,
      lengths: { min: 2, max: 3, mean: 2.5, p50: 2, p95: 3 },
    });
    const req = seen[0] as {
      source: {
        kind: {
          case: string;
          value: {
            files: Array<{ split: string; path: string }>;
            format: number;
            textColumn: string;
            labelColumn: string;
          };
        };
      };
      tokenizer: number;
      embedding: { source: string };
    };
    assert.equal(req.source.kind.case, 'tabular');
    assert.deepEqual(
      req.source.kind.value.files.map((f) => [f.split, f.path]),
      [['train', join(dir, 'train.tsv')]],
    );
    assert.equal(req.tokenizer, TokenizerKind.CHAPTER);
    // The TSVs as the in-process reader takes them: TSV, the sentence and label columns; the service's vectors.
    assert.deepEqual(
      [
        req.source.kind.value.format,
        req.source.kind.value.textColumn,
        req.source.kind.value.labelColumn,
        req.embedding.source,
      ],
      [TabularFormat.TSV, 'sentence', 'label', ''],
    );

    const show = await run(dataShowCommand, [
      '--addr',
      addr,
      '--n',
      '2',
      '--collate',
      '--tokenizer',
      'raw',
      '--vectors',
      'vec.txt',
    ]);
    const s = show.value as ShowReport;
    const builtin = seen[1] as { source: { kind: { case: string } }; tokenizer: number; embedding: { source: string } };
    assert.deepEqual(
      [builtin.source.kind.case, builtin.tokenizer, builtin.embedding.source],
      ['builtin', TokenizerKind.RAW, join(dir, 'vec.txt')],
    );
    assert.deepEqual(
      s.examples.map((e) => e.input_ids),
      [
        [1, 2],
        [3, 4, 5],
      ],
    );
    assert.deepEqual(s.batch?.input_ids, [
      [3, 4, 5],
      [1, 2, 0],
    ]);
    assert.equal((seen[2] as { batchSize: number; shuffle: boolean }).batchSize, 2);
    assert.match(show.text, /'input_ids': tensor\(\[\[3, 4, 5\],\n {8}\[1, 2, 0\]\]\)/);
    assert.ok(decodeBatch(encodeBatch(collate([]))).batchSize === 0);
  } finally {
    await server.shutdown(200);
  }
  // Nobody listening: the failure surfaces (as UNAVAILABLE).
  await assert.rejects(
    run(dataStatsCommand, ['--addr', addr]),
    (e: Error & { code?: number }) => e.name === 'GrpcError' && e.code === 14,
  );
});
