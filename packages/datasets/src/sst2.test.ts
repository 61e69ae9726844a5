import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { isInvalidInput, isNotFound } from '@ch8/errors';
import { parseSst2Tsv, readSst2Dir, readSst2Tsv, streamSst2Tsv, type LabelledRow } from './sst2.ts';

const dir = mkdtempSync(join(tmpdir(), 'ch8-sst2-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, content: string): string {
  const file = join(dir, name);
  writeFileSync(file, content);
  return file;
}

async function collect(it: AsyncIterable<LabelledRow>): Promise<LabelledRow[]> {
  const out: LabelledRow[] = [];
  for await (const r of it) out.push(r);
  return out;
}

const GOOD = "sentence\tlabel\nhide new secretions from the parental units \t0\nit 's charming . \t1\n";
const EXPECTED: LabelledRow[] = [
  { text: 'hide new secretions from the parental units ', label: 0 },
  { text: "it 's charming . ", label: 1 },
];

/** Asserts both readers reject `content` with an InvalidInputError at `line` / `field`. */
async function rejects(content: string, line: number, field?: string): Promise<void> {
  const file = write(`bad-${line}-${field ?? 'none'}.tsv`, content);
  const check = (e: unknown): boolean =>
    isInvalidInput(e) && e.file === file && e.line === line && e.field === field && e.message.startsWith(file);
  assert.throws(() => parseSst2Tsv(content, file), check);
  await assert.rejects(readSst2Tsv(file), check);
  await assert.rejects(collect(streamSst2Tsv(file)), check);
}

describe('SST-2 TSV reader', () => {
  it('reads rows, keeping the sentence as written', async () => {
    const file = write('train.tsv', GOOD);
    assert.deepEqual(await readSst2Tsv(file), EXPECTED);
    assert.deepEqual(await collect(streamSst2Tsv(file)), EXPECTED);
    assert.deepEqual(parseSst2Tsv(GOOD), EXPECTED);
  });

  it('accepts CRLF line ends and a UTF-8 BOM, and a missing final newline', async () => {
    const content = '\ufeff' + GOOD.replace(/\n/g, '\r\n').replace(/\r\n$/, '');
    const file = write('crlf.tsv', content);
    assert.deepEqual(await readSst2Tsv(file), EXPECTED);
    assert.deepEqual(await collect(streamSst2Tsv(file)), EXPECTED);
  });

  it('accepts the columns in the other order and trailing empty lines', () => {
    assert.deepEqual(parseSst2Tsv('label\tsentence\n1\tgood\n0\tbad\n\n\n'), [
      { text: 'good', label: 1 },
      { text: 'bad', label: 0 },
    ]);
    assert.deepEqual(parseSst2Tsv('sentence\tlabel\n'), []);
  });

  it('streams a file larger than one read chunk, line numbers intact', async () => {
    const lines = ['sentence\tlabel'];
    for (let i = 0; i < 5000; i++) lines.push(`sentence number ${i} with some padding text to make it long\t${i % 2}`);
    lines.push('the last one\t2');
    const file = write('big.tsv', lines.join('\r\n'));
    const seen: LabelledRow[] = [];
    await assert.rejects(
      (async () => {
        for await (const r of streamSst2Tsv(file)) seen.push(r);
      })(),
      (e: unknown) => isInvalidInput(e) && e.line === 5002 && e.field === 'label',
    );
    assert.equal(seen.length, 5000);
    assert.deepEqual(seen[4999], { text: 'sentence number 4999 with some padding text to make it long', label: 1 });
  });

  it('rejects an empty file', async () => {
    await rejects('', 1);
    await rejects('\ufeff', 1);
    await rejects('\n\n', 1);
  });

  it('rejects a missing or wrong header', async () => {
    await rejects('hide new secretions\t0\n', 1, 'sentence');
    await rejects('sentence\tpolarity\ngood\t1\n', 1, 'label');
    await rejects('\ngood\t1\n', 1, 'sentence');
  });

  it('rejects a row without a tab, or with too many', async () => {
    await rejects('sentence\tlabel\ngood\t1\nno tab here 0\n', 3, 'label');
    await rejects('sentence\tlabel\ngood\t1\tx\n', 2, 'label');
    await rejects('sentence\tlabel\ngood\t1\n\nbad\t0\n', 3, 'label'); // empty line inside
  });

  it('rejects a label other than 0/1', async () => {
    await rejects('sentence\tlabel\ngood\t1\nbad\t2\n', 3, 'label');
    await rejects('sentence\tlabel\ngood\tpositive\n', 2, 'label');
    await rejects('sentence\tlabel\ngood\t\n', 2, 'label');
  });

  it('missing file -> NotFoundError naming it', async () => {
    const file = join(dir, 'nope.tsv');
    await assert.rejects(readSst2Tsv(file), (e: unknown) => isNotFound(e) && e.file === file);
    await assert.rejects(collect(streamSst2Tsv(file)), (e: unknown) => isNotFound(e) && e.file === file);
    await assert.rejects(readSst2Dir(join(dir, 'absent')), isNotFound);
  });

  it('reads a GLUE directory', async () => {
    const d = mkdtempSync(join(dir, 'glue-'));
    writeFileSync(join(d, 'train.tsv'), GOOD);
    writeFileSync(join(d, 'dev.tsv'), 'sentence\tlabel\nfine\t1\n');
    assert.deepEqual(await readSst2Dir(d), { train: EXPECTED, dev: [{ text: 'fine', label: 1 }] });
  });
});
