/**
 * Property-based fuzzing of the labelled-data readers: SST-2 TSV (whole text, whole file, streamed) and the generic
 * TSV / CSV / JSON Lines / JSON sources. Generated files (headers in any order, extra and missing columns, bad
 * labels, quotes, CRLF, BOM, blank lines, huge lines, non-UTF-8 bytes) are mutated at the byte level; each reader
 * must return exactly the rows of the independent reference parse below, or throw an InvalidInputError naming the
 * file and the line (or JSON entry) and field where the reference does. Never another error or wrong rows.
 *
 * Seeded and bounded; `CH8_FUZZ_RUNS=<factor>` multiplies the runs, `CH8_FUZZ_SEED` changes the seed.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import fc from 'fast-check';
import { isInvalidInput, isKnownError } from '@ch8/errors';
import { parseLabelled, readLabelled, type LabelledFormat, type LabelledSourceOptions } from './labelled.ts';
import type { LabelledRow } from './rows.ts';
import { parseSst2Tsv, readSst2Tsv, streamSst2Tsv } from './sst2.ts';
import { applyMutations, byteMutationArb, mutationsArb } from '@ch8/fuzz/mutate';

const FACTOR = Number(process.env.CH8_FUZZ_RUNS ?? '1');
const SEED = Number(process.env.CH8_FUZZ_SEED ?? '8071');
const runs = (n: number): number => Math.max(1, Math.round(n * FACTOR));
const params = (numRuns: number): fc.Parameters<unknown> => ({ seed: SEED, numRuns: runs(numRuns), timeout: 10_000 });

const dir = mkdtempSync(join(tmpdir(), 'ch8-datasets-fuzz-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let fileNo = 0;
function fileOf(bytes: Uint8Array, ext: string): string {
  const path = join(dir, `f${fileNo++}.${ext}`);
  writeFileSync(path, bytes);
  return path;
}

// ---------------------------------------------------------------------------------------------------------------
// Outcomes.

type Outcome =
  | { ok: true; rows: LabelledRow[] }
  | { ok: false; line?: number | undefined; entry?: number | undefined; field?: string | undefined; message?: string };

class RefError extends Error {
  constructor(readonly where: { line?: number; entry?: number; field?: string } = {}) {
    super('reference: bad input');
  }
}

function refOutcome(parse: () => LabelledRow[]): Outcome {
  try {
    return { ok: true, rows: parse() };
  } catch (e) {
    if (e instanceof RefError) return { ok: false, ...e.where };
    throw e;
  }
}

async function actualOutcome(file: string, read: () => LabelledRow[] | Promise<LabelledRow[]>): Promise<Outcome> {
  try {
    return { ok: true, rows: await read() };
  } catch (e) {
    assert.ok(isKnownError(e), `not a typed error: ${String((e as Error)?.stack ?? e)}`);
    assert.ok(isInvalidInput(e), `expected InvalidInputError, got ${e.name}: ${e.message}`);
    assert.equal(e.file, file, `the error names the file: ${e.message}`);
    return { ok: false, line: e.line, entry: e.entry, field: e.field, message: e.message };
  }
}

function same(actual: Outcome, expected: Outcome, what: string): void {
  if (expected.ok) {
    assert.ok(actual.ok, `${what}: the reference reads it, the reader refused: ${actual.ok ? '' : actual.message}`);
    assert.deepEqual(actual.rows, expected.rows, what);
    return;
  }
  assert.ok(!actual.ok, `${what}: the reference refuses it, the reader returned ${JSON.stringify(actual)}`);
  assert.equal(actual.line, expected.line, `${what}: line (${actual.message})`);
  assert.equal(actual.entry, expected.entry, `${what}: entry (${actual.message})`);
  if (expected.field !== undefined) assert.equal(actual.field, expected.field, `${what}: field (${actual.message})`);
}

async function collect(it: AsyncIterable<LabelledRow>): Promise<LabelledRow[]> {
  const out: LabelledRow[] = [];
  for await (const r of it) out.push(r);
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Reference parsers, from the documented formats.

/** UTF-8 as the readers decode files: invalid bytes become U+FFFD, a BOM is kept (the parsers strip it). */
const decoder = new TextDecoder('utf-8', { ignoreBOM: true });
const decode = (b: Uint8Array): string => decoder.decode(b);

/** Lines split at \n (a final \n ends the last line, it does not start an empty one), one \r before it dropped. */
function lines(text: string): string[] {
  const out = text.split('\n');
  if (out[out.length - 1] === '') out.pop();
  return out.map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
}

const noBom = (s: string): string => (s.startsWith('\ufeff') ? s.slice(1) : s);

/**
 * SST-2: first line the header naming `sentence` and `label` among tab-separated columns; each later line exactly
 * that many fields, the label 0 or 1 (white space around it ignored), the sentence kept as written. Empty lines at
 * the end are ignored, an empty line before a row is an error at that empty line.
 */
function refSst2(text: string): LabelledRow[] {
  const ls = lines(text);
  if (ls.length === 0 || noBom(ls[0] as string).trim() === '') throw new RefError({ line: 1 });
  const names = noBom(ls[0] as string)
    .split('\t')
    .map((n) => n.trim());
  const s = names.indexOf('sentence');
  const l = names.indexOf('label');
  if (s < 0) throw new RefError({ line: 1, field: 'sentence' });
  if (l < 0) throw new RefError({ line: 1, field: 'label' });
  const rows: LabelledRow[] = [];
  let firstEmpty = 0;
  for (let i = 1; i < ls.length; i++) {
    const line = ls[i] as string;
    if (line === '') {
      if (firstEmpty === 0) firstEmpty = i + 1;
      continue;
    }
    if (firstEmpty !== 0) throw new RefError({ line: firstEmpty, field: 'label' });
    const fields = line.split('\t');
    if (fields.length !== names.length) throw new RefError({ line: i + 1, field: 'label' });
    const label = (fields[l] as string).trim();
    if (label !== '0' && label !== '1') throw new RefError({ line: i + 1, field: 'label' });
    rows.push({ text: fields[s] as string, label: label === '1' ? 1 : 0 });
  }
  return rows;
}

interface Fields {
  text: string;
  label: string;
  labels: Readonly<Record<string, 0 | 1>>;
}

function label(raw: unknown, f: Fields, where: { line?: number; entry?: number }): 0 | 1 {
  let key: string | undefined;
  if (typeof raw === 'string') key = raw.trim();
  else if (typeof raw === 'number' || typeof raw === 'boolean') key = String(raw);
  if (key === undefined || !Object.prototype.hasOwnProperty.call(f.labels, key)) {
    throw new RefError({ ...where, field: f.label });
  }
  return f.labels[key] as 0 | 1;
}

/**
 * Header row naming the columns, then rows of exactly as many fields; a lone empty field is a blank line. Records
 * are taken in order, so the first problem in the file is the one reported.
 */
function refRecords(records: Iterable<[string[], number]>, f: Fields): LabelledRow[] {
  const it = records[Symbol.iterator]();
  const first = it.next();
  if (first.done === true) throw new RefError({ line: 1 });
  const header = first.value;
  const names = header[0].map((n) => n.trim());
  const t = names.indexOf(f.text);
  const l = names.indexOf(f.label);
  if (t < 0) throw new RefError({ line: 1, field: f.text });
  if (l < 0) throw new RefError({ line: 1, field: f.label });
  const rows: LabelledRow[] = [];
  for (let r = it.next(); r.done !== true; r = it.next()) {
    const [fields, line] = r.value;
    if (fields.length === 1 && fields[0] === '') continue;
    if (fields.length !== names.length) {
      throw new RefError(fields.length < names.length ? { line, field: f.label } : { line });
    }
    rows.push({ text: fields[t] as string, label: label(fields[l], f, { line }) });
  }
  return rows;
}

/** RFC 4180: `,`; `"quoted"` fields with `""` for a quote and line breaks inside; \n or \r\n ends a record. */
function* refCsv(text: string): Generator<[string[], number]> {
  const s = noBom(text);
  let i = 0;
  let line = 1;
  const eol = (k: number): number => (s[k] === '\n' ? 1 : s[k] === '\r' && s[k + 1] === '\n' ? 2 : 0);
  while (i < s.length) {
    const start = line;
    const fields: string[] = [];
    for (;;) {
      let value = '';
      if (s[i] === '"') {
        i++;
        for (;;) {
          if (i >= s.length) throw new RefError({ line: start });
          if (s[i] === '"') {
            if (s[i + 1] === '"') {
              value += '"';
              i += 2;
              continue;
            }
            i++;
            break;
          }
          if (s[i] === '\n') line++;
          value += s[i];
          i++;
        }
        if (i < s.length && s[i] !== ',' && eol(i) === 0) throw new RefError({ line });
      } else {
        while (i < s.length && s[i] !== ',' && eol(i) === 0) value += s[i++];
      }
      fields.push(value);
      if (i >= s.length) break;
      if (s[i] === ',') {
        i++;
        continue;
      }
      i += eol(i);
      line++;
      break;
    }
    yield [fields, start];
  }
}

function fromJson(value: unknown, f: Fields, where: { line?: number; entry?: number }): LabelledRow {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new RefError(where);
  const obj = value as Record<string, unknown>;
  const text = Object.prototype.hasOwnProperty.call(obj, f.text) ? obj[f.text] : undefined;
  if (typeof text !== 'string') throw new RefError({ ...where, field: f.text });
  const raw = Object.prototype.hasOwnProperty.call(obj, f.label) ? obj[f.label] : undefined;
  return { text, label: label(raw, f, where) };
}

function refLabelled(text: string, format: LabelledFormat, f: Fields): LabelledRow[] {
  if (noBom(text).trim() === '') throw new RefError({ line: 1 });
  switch (format) {
    case 'tsv':
      return refRecords(
        lines(noBom(text)).map((l, k) => [l.split('\t'), k + 1]),
        f,
      );
    case 'csv':
      return refRecords(refCsv(text), f);
    case 'jsonl': {
      const rows: LabelledRow[] = [];
      lines(noBom(text)).forEach((l, k) => {
        if (l.trim() === '') return;
        let v: unknown;
        try {
          v = JSON.parse(l);
        } catch {
          throw new RefError({ line: k + 1 });
        }
        rows.push(fromJson(v, f, { line: k + 1 }));
      });
      return rows;
    }
    case 'json': {
      let v: unknown;
      try {
        v = JSON.parse(noBom(text));
      } catch {
        throw new RefError();
      }
      if (!Array.isArray(v)) throw new RefError();
      return v.map((x, k) => fromJson(x, f, { entry: k + 1 }));
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Generators.

const sentenceArb: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 20,
    arbitrary: fc.string({
      unit: fc.oneof(
        { weight: 30, arbitrary: fc.constantFrom(..."the movie is not good , . 's n't é 日 ! ?") },
        { weight: 2, arbitrary: fc.constantFrom('"', ',', '\\', '{', '}', '[', ':') },
      ),
      maxLength: 40,
    }),
  },
  // Now and then a line break, tab, BOM or separator of another kind inside, or any Unicode.
  {
    weight: 1,
    arbitrary: fc.string({
      unit: fc.oneof(
        { weight: 5, arbitrary: fc.constantFrom(...'ab ,"') },
        { weight: 1, arbitrary: fc.constantFrom('\t', '\r', '\n', '\r\n', '\ufeff', '\u00a0', '\u2028') },
      ),
      maxLength: 12,
    }),
  },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 12 }) },
);

const labelArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 60, arbitrary: fc.constantFrom('0', '1') },
  { weight: 1, arbitrary: fc.constantFrom(' 1', '0 ', '2', '', 'true', '01', '1.0', 'pos', '\u00a01', '-0') },
);

interface Table {
  /** Column names in file order (the text and label columns among them, or not). */
  columns: readonly string[];
  rows: Array<Record<string, string>>;
  eol: string;
  bom: boolean;
  finalEol: boolean;
  /** Positions where an empty line goes (past the end: trailing). */
  blanks: number[];
}

function tableArb(text: string, labelCol: string): fc.Arbitrary<Table> {
  return fc.record({
    columns: fc.oneof(
      { weight: 24, arbitrary: fc.constant([text, labelCol]) },
      fc.constantFrom(
        [labelCol, text],
        [text, labelCol, 'idx'],
        ['idx', ` ${labelCol}`, `${text} `],
        [text],
        ['other', labelCol],
        [text, text, labelCol],
      ),
    ),
    rows: fc.array(
      fc.record({ [text]: sentenceArb, [labelCol]: labelArb, idx: fc.constantFrom('1', '', 'x,y', '"q"') }),
      { maxLength: 8 },
    ),
    eol: fc.constantFrom('\n', '\n', '\r\n'),
    bom: fc.oneof({ weight: 5, arbitrary: fc.constant(false) }, fc.constant(true)),
    finalEol: fc.boolean(),
    blanks: fc.oneof(
      { weight: 3, arbitrary: fc.constant([] as number[]) },
      fc.array(fc.nat(10), { minLength: 1, maxLength: 2 }),
    ),
  });
}

function csvField(v: string, quote: boolean): string {
  return quote || /[",\r\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
}

function serialize(t: Table, format: 'tsv' | 'csv', quoteAll: boolean): string {
  const cell = (c: string, row: Record<string, string>): string => {
    const v = row[c.trim()] ?? '';
    return format === 'csv' ? csvField(v, quoteAll) : v;
  };
  const sep = format === 'csv' ? ',' : '\t';
  const header = t.columns.map((c) => (format === 'csv' ? csvField(c, quoteAll) : c)).join(sep);
  const ls = [header, ...t.rows.map((r) => t.columns.map((c) => cell(c, r)).join(sep))];
  for (const at of t.blanks) ls.splice(1 + (at % ls.length), 0, '');
  return (t.bom ? '\ufeff' : '') + ls.join(t.eol) + (t.finalEol ? t.eol : '');
}

const INTERESTING = [
  0x09, 0x0a, 0x0d, 0x20, 0x22, 0x2c, 0x30, 0x31, 0x5c, 0x7b, 0x7d, 0x5b, 0x5d, 0x3a, 0xef, 0xff, 0x00,
];
/** One to three byte mutations, or none (the file as written) about a third of the time. */
const MUTATIONS = mutationsArb(byteMutationArb({ interesting: INTERESTING }));

const utf8 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'utf8'));

// ---------------------------------------------------------------------------------------------------------------
// Properties.

describe('SST-2 TSV: parse, read and stream agree with the reference on mutated files', () => {
  test('mutated SST-2 files', async () => {
    await fc.assert(
      fc.asyncProperty(tableArb('sentence', 'label'), MUTATIONS, async (t, mutations) => {
        const bytes = applyMutations(utf8(serialize(t, 'tsv', false)), mutations);
        const file = fileOf(bytes, 'tsv');
        const expected = refOutcome(() => refSst2(decode(bytes)));
        same(await actualOutcome(file, () => parseSst2Tsv(decode(bytes), file)), expected, 'parseSst2Tsv');
        same(await actualOutcome(file, () => readSst2Tsv(file)), expected, 'readSst2Tsv');
        same(await actualOutcome(file, () => collect(streamSst2Tsv(file))), expected, 'streamSst2Tsv');
      }),
      params(250),
    );
  });

  test("huge lines and non-UTF-8 bytes across the stream reader's 64 KiB chunks", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 65536 - 40, max: 65536 + 40 }),
        fc.uint8Array({ minLength: 1, maxLength: 4, min: 0x80, max: 0xff }),
        fc.constantFrom('\n', '\r\n'),
        fc.constantFrom('0', '1', '2'),
        async (at, junk, eol, lab) => {
          // A first row long enough that the chunk boundary falls inside it, with raw high bytes around the boundary.
          const head = Buffer.from(`sentence\tlabel${eol}`);
          const pad = Buffer.alloc(Math.max(0, at - head.length), 0x61);
          const bytes = new Uint8Array(
            Buffer.concat([head, pad, Buffer.from(junk), Buffer.from(`é\t${lab}${eol}short\t1${eol}`)]),
          );
          const file = fileOf(bytes, 'tsv');
          const expected = refOutcome(() => refSst2(decode(bytes)));
          same(await actualOutcome(file, () => readSst2Tsv(file)), expected, 'readSst2Tsv');
          same(await actualOutcome(file, () => collect(streamSst2Tsv(file))), expected, 'streamSst2Tsv');
        },
      ),
      params(25),
    );
  });
});

const FIELDS: Array<{ options: LabelledSourceOptions; fields: Fields }> = [
  { options: {}, fields: { text: 'text', label: 'label', labels: { '0': 0, '1': 1 } } },
  {
    options: {
      textField: 'sentence',
      labelField: 'polarity',
      labels: { pos: 1, neg: 0, '1': 1, '0': 0, true: 1, '-0': 0 },
    },
    fields: { text: 'sentence', label: 'polarity', labels: { pos: 1, neg: 0, '1': 1, '0': 0, true: 1, '-0': 0 } },
  },
];

describe('labelled sources: TSV, CSV, JSON Lines, JSON agree with the reference on mutated files', () => {
  for (const format of ['tsv', 'csv'] as const) {
    test(`${format}`, async () => {
      await fc.assert(
        fc.asyncProperty(
          fc
            .constantFrom(...FIELDS)
            .chain((f) =>
              fc.tuple(fc.constant(f), tableArb(f.fields.text, f.fields.label), fc.boolean(), fc.boolean()),
            ),
          MUTATIONS,
          async ([{ options, fields }, t, quoteAll, named], mutations) => {
            const bytes = applyMutations(utf8(serialize(t, format, quoteAll)), mutations);
            const file = fileOf(bytes, named ? 'txt' : format);
            const opts = named ? { ...options, format } : options;
            const expected = refOutcome(() => refLabelled(decode(bytes), format, fields));
            same(await actualOutcome(file, () => parseLabelled(decode(bytes), file, opts)), expected, 'parse');
            same(await actualOutcome(file, () => readLabelled(file, opts)), expected, 'read');
          },
        ),
        params(200),
      );
    });
  }

  /** JSON text written as is. */
  class Raw {
    constructor(readonly text: string) {}
    toString(): string {
      return `Raw(${this.text.length} chars)`;
    }
  }
  const jsonText = (v: unknown): string => (v instanceof Raw ? v.text : JSON.stringify(v));

  /** A JSON value as the generator writes it: mostly the row objects, sometimes anything. */
  const jsonValueArb = (f: Fields): fc.Arbitrary<unknown> =>
    fc.oneof(
      {
        weight: 40,
        arbitrary: fc.record(
          {
            [f.text]: fc.oneof({ weight: 30, arbitrary: sentenceArb }, fc.jsonValue({ maxDepth: 2 })),
            [f.label]: fc.oneof(
              { weight: 30, arbitrary: labelArb },
              fc.constantFrom(0, 1, 1.0, -0, true, false, null, 2, [1], { v: 1 }),
            ),
            other: fc.jsonValue({ maxDepth: 1 }),
          },
          { requiredKeys: [f.text, f.label] },
        ),
      },
      { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
      // Deep nesting (written as raw text): a reader must not overflow its stack describing it.
      {
        weight: 1,
        arbitrary: fc
          .tuple(fc.integer({ min: 2000, max: 20000 }), fc.boolean())
          .map(([d, inLabel]) => new Raw(`{"${inLabel ? f.label : f.text}":${'['.repeat(d)}${']'.repeat(d)}}`)),
      },
    );

  for (const format of ['jsonl', 'json'] as const) {
    test(`${format}`, async () => {
      await fc.assert(
        fc.asyncProperty(
          fc
            .constantFrom(...FIELDS)
            .chain((f) =>
              fc.tuple(
                fc.constant(f),
                fc.array(jsonValueArb(f.fields), { maxLength: 6 }),
                fc.constantFrom('\n', '\r\n'),
                fc.boolean(),
                fc.boolean(),
              ),
            ),
          MUTATIONS,
          async ([{ options, fields }, values, eol, bom, spaced], mutations) => {
            const text =
              (bom ? '\ufeff' : '') +
              (format === 'jsonl'
                ? values.map(jsonText).join(eol) + eol
                : `[${values.map(jsonText).join(spaced ? `,${eol} ` : ',')}]`);
            const bytes = applyMutations(utf8(text), mutations);
            const file = fileOf(bytes, format);
            const expected = refOutcome(() => refLabelled(decode(bytes), format, fields));
            same(await actualOutcome(file, () => parseLabelled(decode(bytes), file, options)), expected, 'parse');
            same(await actualOutcome(file, () => readLabelled(file, options)), expected, 'read');
          },
        ),
        params(150),
      );
    });
  }
});

describe('regressions: counterexamples the fuzzing found, kept as plain tests', () => {
  test('JSON Lines / JSON: a deeply nested text or label is an InvalidInputError (was a RangeError from the message)', () => {
    const deep = '['.repeat(5000) + ']'.repeat(5000);
    for (const [text, format, where] of [
      [`{"text":${deep},"label":1}\n`, 'jsonl', { line: 1, field: 'text' }],
      [`{"text":"ok","label":${deep}}\n`, 'jsonl', { line: 1, field: 'label' }],
      [`[{"text":${deep},"label":0}]`, 'json', { entry: 1, field: 'text' }],
    ] as const) {
      assert.throws(
        () => parseLabelled(text, `x.${format}`),
        (e: unknown) => {
          assert.ok(isInvalidInput(e), String(e));
          assert.match(e.message, /(got|label) a list/);
          assert.equal(e.line, 'line' in where ? where.line : undefined);
          assert.equal(e.entry, 'entry' in where ? where.entry : undefined);
          assert.equal(e.field, where.field);
          return true;
        },
      );
    }
  });

  test('a huge label value is named in at most 40 characters', () => {
    assert.throws(
      () => parseLabelled(`{"text":"a","label":"${'x'.repeat(100_000)}"}`, 'x.jsonl'),
      (e: unknown) => isInvalidInput(e) && e.message.length < 200 && /label "x{39}\.\.\. is not one of/.test(e.message),
    );
  });
});
