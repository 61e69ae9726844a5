import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { isInvalidInput, isNotFound } from '@ch8/errors';
import { loadDataset } from './dataset.ts';

const dir = mkdtempSync(join(tmpdir(), 'ch8-dataset-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('loadDataset', () => {
  it('defaults to the npm sentiment fixtures with the raw tokenizer', async () => {
    const d = await loadDataset();
    assert.equal(d.kind, 'sentiment-fixtures');
    assert.deepEqual(d.tokenizer, { kind: 'raw', version: 1 });
    assert.equal(d.train.length + d.dev.length + (d.test?.length ?? 0), 2982);
    assert.deepEqual(Object.keys(d.train[0] ?? {}).sort(), ['label', 'text']);
    const again = await loadDataset({ kind: 'sentiment-fixtures', seed: 0 });
    assert.deepEqual(again.dev, d.dev);
  });

  it('SST-2 directory with the chapter tokenizer', async () => {
    writeFileSync(join(dir, 'train.tsv'), 'sentence\tlabel\ngood \t1\n');
    writeFileSync(join(dir, 'dev.tsv'), 'sentence\tlabel\nbad \t0\n');
    const d = await loadDataset({ kind: 'sst2', dir });
    assert.deepEqual(d.tokenizer, { kind: 'chapter', version: 1 });
    assert.deepEqual([d.train, d.dev, d.test], [[{ text: 'good ', label: 1 }], [{ text: 'bad ', label: 0 }], undefined]);
    await assert.rejects(loadDataset({ kind: 'sst2', dir: join(dir, 'missing') }), isNotFound);
  });

  it('labelled files, tokenizer configurable', async () => {
    writeFileSync(join(dir, 'a.csv'), 'text,label\nNice!,1\n');
    writeFileSync(join(dir, 'b.jsonl'), '{"text":"Meh.","label":0}\n');
    const d = await loadDataset({ kind: 'files', train: join(dir, 'a.csv'), dev: join(dir, 'b.jsonl'), test: join(dir, 'a.csv') });
    assert.deepEqual(d.tokenizer, { kind: 'raw', version: 1 });
    assert.deepEqual(d.test, [{ text: 'Nice!', label: 1 }]);
    const c = await loadDataset({ kind: 'files', train: join(dir, 'a.csv'), dev: join(dir, 'a.csv'), tokenizer: { kind: 'chapter', version: 1 } });
    assert.equal(c.tokenizer.kind, 'chapter');
    assert.equal(c.test, undefined);
    await assert.rejects(
      loadDataset({ kind: 'files', train: join(dir, 'a.csv'), dev: join(dir, 'a.csv'), tokenizer: { kind: 'bpe' as never, version: 1 } }),
      isInvalidInput,
    );
  });

  it('unknown kind -> InvalidInputError', async () => {
    await assert.rejects(loadDataset({ kind: 'imagenet' } as never), (e: unknown) => isInvalidInput(e) && e.field === 'dataset.kind');
  });
});
