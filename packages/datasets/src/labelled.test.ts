import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { isInvalidInput, isNotFound } from '@ch8/errors';
import { formatOf, parseLabelled, readLabelled } from './labelled.ts';

const dir = mkdtempSync(join(tmpdir(), 'ch8-labelled-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function invalidAt(line: number | undefined, field?: string, entry?: number) {
  return (e: unknown): boolean => isInvalidInput(e) && e.line === line && e.field === field && e.entry === entry;
}

describe('generic labelled sources', () => {
  it('tells the format from the extension', () => {
    assert.equal(formatOf('a/b.TSV'), 'tsv');
    assert.equal(formatOf('x.csv'), 'csv');
    assert.equal(formatOf('x.ndjson'), 'jsonl');
    assert.equal(formatOf('x.jsonl'), 'jsonl');
    assert.equal(formatOf('x.json'), 'json');
    assert.equal(formatOf('x.txt'), undefined);
    assert.throws(
      () => parseLabelled('a', 'x.txt'),
      (e: unknown) => isInvalidInput(e) && e.field === 'format',
    );
  });

  it('TSV with named columns, extra columns, BOM and CRLF', () => {
    const text = '\ufeffid\treview\tstars\r\n1\tgood stuff\tpos\r\n2\tbad stuff\tneg\r\n';
    const rows = parseLabelled(text, 'r.tsv', { textField: 'review', labelField: 'stars', labels: { pos: 1, neg: 0 } });
    assert.deepEqual(rows, [
      { text: 'good stuff', label: 1 },
      { text: 'bad stuff', label: 0 },
    ]);
  });

  it('CSV with quoted fields: commas, doubled quotes, newlines inside quotes', () => {
    const text = 'label,text\r\n1,"Great, really ""great"" film"\n0,"line one\nline two"\n1,plain\n';
    assert.deepEqual(parseLabelled(text, 'r.csv'), [
      { text: 'Great, really "great" film', label: 1 },
      { text: 'line one\nline two', label: 0 },
      { text: 'plain', label: 1 },
    ]);
    // The row after a quoted newline is reported at its own line.
    assert.throws(() => parseLabelled('label,text\n0,"a\nb"\n7,c\n', 'r.csv'), invalidAt(4, 'label'));
  });

  it('CSV errors: unterminated quote, junk after a quote, wrong field count', () => {
    assert.throws(() => parseLabelled('label,text\n1,"open\n', 'r.csv'), invalidAt(2));
    assert.throws(() => parseLabelled('label,text\n1,"x"y\n', 'r.csv'), invalidAt(2));
    assert.throws(() => parseLabelled('label,text\n1\n', 'r.csv'), invalidAt(2, 'label'));
  });

  it('JSON Lines with numbers, booleans and strings as labels', () => {
    const text = '{"text":"a","label":1}\n\n{"text":"b","label":"0"}\n{"text":"c","label":true}\n';
    const rows = parseLabelled(text, 'r.jsonl', { labels: { '0': 0, '1': 1, true: 1, false: 0 } });
    assert.deepEqual(rows, [
      { text: 'a', label: 1 },
      { text: 'b', label: 0 },
      { text: 'c', label: 1 },
    ]);
  });

  it('JSON Lines errors name the line and field', () => {
    assert.throws(() => parseLabelled('{"text":"a","label":1}\n{oops\n', 'r.jsonl'), invalidAt(2));
    assert.throws(() => parseLabelled('{"text":"a","label":3}\n', 'r.jsonl'), invalidAt(1, 'label'));
    assert.throws(() => parseLabelled('{"label":1}\n', 'r.jsonl'), invalidAt(1, 'text'));
    assert.throws(() => parseLabelled('[1]\n', 'r.jsonl'), invalidAt(1));
    // Default mapping does not accept booleans.
    assert.throws(() => parseLabelled('{"text":"a","label":true}\n', 'r.jsonl'), invalidAt(1, 'label'));
  });

  it('JSON arrays ({text, class} as npm sentiment ships them)', () => {
    const text = '[{"text":"good","class":1},{"text":"bad","class":0}]';
    assert.deepEqual(parseLabelled(text, 'x.json', { labelField: 'class' }), [
      { text: 'good', label: 1 },
      { text: 'bad', label: 0 },
    ]);
    assert.throws(
      () => parseLabelled('[{"text":"good","class":1},{"text":"","class":null}]', 'x.json', { labelField: 'class' }),
      invalidAt(undefined, 'class', 2),
    );
    assert.throws(() => parseLabelled('{"text":"a"}', 'x.json'), isInvalidInput);
    assert.throws(() => parseLabelled('[', 'x.json'), isInvalidInput);
  });

  it('missing column, empty file, label outside the mapping', () => {
    assert.throws(() => parseLabelled('sentence\tlabel\na\t1\n', 'x.tsv'), invalidAt(1, 'text'));
    assert.throws(() => parseLabelled('', 'x.tsv'), invalidAt(1));
    assert.throws(() => parseLabelled('\ufeff \n', 'x.csv'), invalidAt(1));
    assert.throws(() => parseLabelled('text\tlabel\na\t-1\n', 'x.tsv'), invalidAt(2, 'label'));
  });

  it('reads files; missing file -> NotFoundError', async () => {
    const file = join(dir, 'r.csv');
    writeFileSync(file, 'text,label\nnice,1\n');
    assert.deepEqual(await readLabelled(file), [{ text: 'nice', label: 1 }]);
    await assert.rejects(readLabelled(join(dir, 'none.csv')), (e: unknown) => isNotFound(e));
  });
});
