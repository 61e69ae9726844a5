import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { isInvalidInput, isNotFound } from '@ch8/errors';
import { checkDatasetSpec, datasetWords, loadDataset, type DatasetSpec } from './dataset.ts';
import { readSentimentFixture } from './sentiment-fixtures.ts';

const dir = mkdtempSync(join(tmpdir(), 'ch8-dataset-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const names = (d: { splits: Array<{ name: string; rows: unknown[] }> }) => d.splits.map((s) => [s.name, s.rows.length]);

describe('loadDataset', () => {
  it('defaults to the builtin review sets (split seed 0) with the raw tokenizer', async () => {
    const d = await loadDataset();
    assert.equal(d.kind, 'builtin');
    assert.deepEqual(d.tokenizer, { kind: 'raw', version: 1 });
    // The split sizes the README documents for seed 0 with all three sets.
    assert.deepEqual(names(d), [
      ['train', 2385],
      ['dev', 299],
      ['test', 298],
    ]);
    assert.deepEqual(Object.keys(d.splits[0]!.rows[0]!).sort(), ['label', 'text']);
    assert.match(d.description, /amazon, imdb, yelp.*seed 0/);
    const again = await loadDataset({ kind: 'builtin', seed: 0, sets: [] });
    assert.deepEqual(again.splits, d.splits);
    const other = await loadDataset({ kind: 'builtin', seed: 1 });
    assert.notDeepEqual(other.splits[1]!.rows, d.splits[1]!.rows);
  });

  it('builtin: only the sets asked for, with their seed', async () => {
    const yelp = new Set((await readSentimentFixture('yelp')).rows.map((r) => r.text));
    const d = await loadDataset({ kind: 'builtin', sets: ['yelp'], seed: 3 });
    const rows = d.splits.flatMap((s) => s.rows);
    assert.ok(rows.length > 950 && rows.length <= 1000, String(rows.length));
    assert.ok(rows.every((r) => yelp.has(r.text)));
    assert.match(d.description, /\(yelp\), split seed 3/);
  });

  it('SST-2 directory: train and dev with the chapter tokenizer unless told otherwise', async () => {
    const sst2 = join(dir, 'sst2');
    mkdirSync(sst2);
    writeFileSync(join(sst2, 'train.tsv'), 'sentence\tlabel\ngood \t1\nfine film \t1\n');
    writeFileSync(join(sst2, 'dev.tsv'), 'sentence\tlabel\nbad \t0\n');
    const d = await loadDataset({ kind: 'sst2', dir: sst2 });
    assert.equal(d.kind, 'sst2');
    assert.deepEqual(d.tokenizer, { kind: 'chapter', version: 1 });
    assert.deepEqual(d.splits, [
      {
        name: 'train',
        rows: [
          { text: 'good ', label: 1 },
          { text: 'fine film ', label: 1 },
        ],
      },
      { name: 'dev', rows: [{ text: 'bad ', label: 0 }] },
    ]);
    assert.deepEqual(
      (await loadDataset({ kind: 'sst2', dir: sst2, tokenizer: { kind: 'raw', version: 1 } })).tokenizer,
      { kind: 'raw', version: 1 },
    );
    await assert.rejects(loadDataset({ kind: 'sst2', dir: join(dir, 'missing') }), isNotFound);
  });

  it('tabular: any split names in the given order, tsv/csv/jsonl, named columns, raw tokenizer unless set', async () => {
    writeFileSync(join(dir, 'a.csv'), 'id,review,stars\n1,"Nice, really!",1\n2,Meh.,0\n');
    writeFileSync(join(dir, 'b.jsonl'), '{"review":"Great.","stars":1}\n');
    writeFileSync(join(dir, 'c.txt'), 'stars\treview\n0\tBad plot\n');
    const files = [
      { split: 'fold-b', path: join(dir, 'b.jsonl') },
      { split: 'fold.a', path: join(dir, 'a.csv') },
    ];
    const d = await loadDataset({ kind: 'tabular', files, textColumn: 'review', labelColumn: 'stars' });
    assert.equal(d.kind, 'tabular');
    assert.deepEqual(d.tokenizer, { kind: 'raw', version: 1 });
    assert.deepEqual(d.splits, [
      { name: 'fold-b', rows: [{ text: 'Great.', label: 1 }] },
      {
        name: 'fold.a',
        rows: [
          { text: 'Nice, really!', label: 1 },
          { text: 'Meh.', label: 0 },
        ],
      },
    ]);
    assert.equal(d.description, `files fold-b=${join(dir, 'b.jsonl')}, fold.a=${join(dir, 'a.csv')}`);
    // An explicit format reads a file whose name says nothing; the tokenizer can be the chapter's.
    const t = await loadDataset({
      kind: 'tabular',
      files: [{ split: 'x_1', path: join(dir, 'c.txt') }],
      format: 'tsv',
      textColumn: 'review',
      labelColumn: 'stars',
      tokenizer: { kind: 'chapter', version: 1 },
    });
    assert.deepEqual(t.splits, [{ name: 'x_1', rows: [{ text: 'Bad plot', label: 0 }] }]);
    assert.equal(t.tokenizer.kind, 'chapter');
    // Default columns are text/label: a.csv has neither.
    await assert.rejects(
      loadDataset({ kind: 'tabular', files: [{ split: 'train', path: join(dir, 'a.csv') }] }),
      (e: unknown) => isInvalidInput(e) && e.field === 'text',
    );
  });
});

describe('checkDatasetSpec', () => {
  const cases: Array<[unknown, string]> = [
    [{ kind: 'imagenet' }, 'kind'],
    [null, 'kind'],
    [{ kind: 'sst2', dir: '' }, 'dir'],
    [{ kind: 'sst2', dir: 'a\0b' }, 'dir'],
    [{ kind: 'builtin', sets: ['netflix'] }, 'sets'],
    [{ kind: 'builtin', seed: 1.5 }, 'seed'],
    [{ kind: 'tabular', files: [] }, 'files'],
    [{ kind: 'tabular', files: [{ split: 'a b', path: 'x.tsv' }] }, 'files.split'],
    [{ kind: 'tabular', files: [{ split: '', path: 'x.tsv' }] }, 'files.split'],
    [{ kind: 'tabular', files: [{ split: 'x'.repeat(65), path: 'x.tsv' }] }, 'files.split'],
    [
      {
        kind: 'tabular',
        files: [
          { split: 'train', path: 'x.tsv' },
          { split: 'train', path: 'y.tsv' },
        ],
      },
      'files.split',
    ],
    [{ kind: 'tabular', files: [{ split: 'train', path: ' ' }] }, 'files.path'],
    [{ kind: 'tabular', files: [{ split: 'train', path: 'x' }], format: 'xml' }, 'format'],
    [{ kind: 'tabular', files: [{ split: 'train', path: 'x' }], textColumn: '' }, 'textColumn'],
    [{ kind: 'tabular', files: [{ split: 'train', path: 'x' }], labelColumn: '' }, 'labelColumn'],
    [{ kind: 'builtin', tokenizer: { kind: 'bpe', version: 1 } }, 'tokenizer.kind'],
  ];
  it('refuses a bad spec naming the field, before reading anything', async () => {
    for (const [spec, field] of cases) {
      assert.throws(
        () => checkDatasetSpec(spec as DatasetSpec),
        (e: unknown) => isInvalidInput(e) && e.field === field,
        JSON.stringify(spec),
      );
      await assert.rejects(loadDataset(spec as DatasetSpec), (e: unknown) => isInvalidInput(e) && e.field === field);
    }
  });

  it('accepts the valid ones', () => {
    checkDatasetSpec({ kind: 'builtin' });
    checkDatasetSpec({ kind: 'builtin', sets: ['amazon', 'imdb'], seed: 2 ** 40 });
    checkDatasetSpec({ kind: 'sst2', dir: 'data/sst2' });
    checkDatasetSpec({
      kind: 'tabular',
      files: [{ split: 'A-z_0.9', path: 'f.json' }],
      format: 'jsonl',
      textColumn: 't',
      labelColumn: 'l',
    });
  });
});

describe('datasetWords', () => {
  it('the distinct tokens of every split under the data set tokenizer, sorted', () => {
    const splits = [
      { name: 'train', rows: [{ text: 'The movie , is GOOD ', label: 1 as const }] },
      { name: 'dev', rows: [{ text: "it 's not good", label: 0 as const }] },
    ];
    assert.deepEqual(datasetWords({ tokenizer: { kind: 'chapter', version: 1 }, splits }), [
      "'s",
      ',',
      'good',
      'is',
      'it',
      'movie',
      'not',
      'the',
    ]);
    // Raw text: punctuation and clitics split off the way SST-2's text is.
    const raw = [{ name: 'x', rows: [{ text: "Isn't it GOOD?", label: 1 as const }] }];
    assert.deepEqual(datasetWords({ tokenizer: { kind: 'raw', version: 1 }, splits: raw }), [
      '?',
      'good',
      'is',
      'it',
      "n't",
    ]);
  });
});
