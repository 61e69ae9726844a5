/**
 * Property-based fuzzing of the vector readers (word2vec binary, word2vec/fastText text, GloVe text, wink/plain
 * JSON, any of them gzipped): every generated and mutated file either reads back exactly as the independent
 * reference parse below reads the same bytes, or is refused with an InvalidInputError naming the file (and the line
 * or entry, where the reference knows it). Never another error, a hang or wrong vectors.
 *
 * Seeded and bounded; `CH8_FUZZ_RUNS=<factor>` multiplies the runs (the root `pnpm fuzz`), `CH8_FUZZ_SEED` changes
 * the seed.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gunzipSync, gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { isInvalidInput, isKnownError } from '@ch8/errors';
import { detectFormat, MAX_DIM } from './format.ts';
import type { VectorFormat } from './format.ts';
import { pruneVectors, readVectors } from './prune.ts';
import { applyMutations, byteMutationArb, mutationsArb } from '@ch8/fuzz/mutate';

const FACTOR = Number(process.env.CH8_FUZZ_RUNS ?? '1');
const SEED = Number(process.env.CH8_FUZZ_SEED ?? '8070');
const runs = (n: number): number => Math.max(1, Math.round(n * FACTOR));
const params = (numRuns: number): fc.Parameters<unknown> => ({ seed: SEED, numRuns: runs(numRuns), timeout: 10_000 });

let dir = '';
let fileNo = 0;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ch8-emb-fuzz-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function fileOf(bytes: Uint8Array): Promise<string> {
  const path = join(dir, `f${fileNo++}`);
  await writeFile(path, bytes);
  return path;
}

// ---------------------------------------------------------------------------------------------------------------
// Outcomes.

interface Entry {
  word: string;
  /** float32 bits, hex. */
  bits: string;
}

type Outcome =
  | { ok: true; entries: Entry[] }
  | { ok: false; line?: number | undefined; entry?: number | undefined; message?: string };

function hex(v: Float32Array): string {
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex');
}

/** A reference parse found the input bad (with the place, where it is known). */
class RefError extends Error {
  constructor(readonly where: { line?: number; entry?: number } = {}) {
    super('reference: bad input');
  }
}

function outcomeOf(parse: () => Entry[]): Outcome {
  try {
    return { ok: true, entries: parse() };
  } catch (e) {
    if (e instanceof RefError) return { ok: false, ...e.where };
    throw e;
  }
}

/** Runs the reader; any error other than the project's typed ones fails the property. */
async function readOutcome(path: string, opts: Parameters<typeof readVectors>[1]): Promise<Outcome> {
  try {
    const entries: Entry[] = [];
    for await (const e of readVectors(path, opts)) entries.push({ word: e.word, bits: hex(e.vector) });
    return { ok: true, entries };
  } catch (e) {
    assert.ok(isKnownError(e), `not a typed error: ${String((e as Error)?.stack ?? e)}`);
    assert.ok(isInvalidInput(e), `expected InvalidInputError, got ${e.name}: ${e.message}`);
    assert.equal(e.file, path, `the error names the file: ${e.message}`);
    return { ok: false, line: e.line, entry: e.entry, message: e.message };
  }
}

function same(actual: Outcome, expected: Outcome, what: string): void {
  if (expected.ok) {
    assert.ok(actual.ok, `${what}: the reference reads it, the reader refused: ${actual.ok ? '' : actual.message}`);
    assert.deepEqual(actual.entries, expected.entries, what);
    return;
  }
  assert.ok(!actual.ok, `${what}: the reference refuses it, the reader returned ${JSON.stringify(actual)}`);
  if (expected.line !== undefined) assert.equal(actual.line, expected.line, `${what}: line (${actual.message})`);
  if (expected.entry !== undefined) assert.equal(actual.entry, expected.entry, `${what}: entry (${actual.message})`);
}

// ---------------------------------------------------------------------------------------------------------------
// Reference parsers, written from the format descriptions (README, format.ts), independently of scan.ts.

const decoder = new TextDecoder('utf-8'); // invalid UTF-8 becomes U+FFFD, as the readers document
const DECIMAL = /^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$/;

/** A text value: a decimal, to the float32 nearest its double; undefined when not a finite float32. */
function refValue(token: string): number | undefined {
  if (!DECIMAL.test(token)) return undefined;
  const v = Math.fround(Number(token));
  return Number.isFinite(v) ? v : undefined;
}

/** Lone surrogates (from \\uD800-style escapes) become U+FFFD, as UTF-8 encoding them does. */
function wellFormed(s: string): string {
  return s.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
}

function latin1(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');
}

/** `N D` (ASCII digits; spaces or tabs around; D in [1, MAX_DIM]). */
function refHeader(line: string): { count: number; dim: number } | undefined {
  const m = /^[ \t]*(\d+)[ \t]+(\d+)[ \t\r]*$/.exec(line);
  if (m === null) return undefined;
  const count = Number(m[1]);
  const dim = Number(m[2]);
  if (!Number.isSafeInteger(count) || !Number.isSafeInteger(dim) || dim < 1 || dim > MAX_DIM) return undefined;
  return { count, dim };
}

function float32Hex(values: number[]): string {
  return hex(Float32Array.from(values));
}

/**
 * word2vec/fastText text (header) and GloVe text (no header): lines split at \n (a final \n ends the last line),
 * one \r before it dropped; empty lines skipped; the word is everything before the first space; the values are
 * separated by spaces, tabs or \r. `wanted`: entries of other words are not checked past their word.
 */
function refText(bytes: Uint8Array, header: boolean, wanted: ReadonlySet<string> | null = null): Entry[] {
  const lines: Uint8Array[] = [];
  let s = 0;
  for (let k = 0; k < bytes.length; k++) {
    if (bytes[k] === 0x0a) {
      lines.push(bytes.subarray(s, k));
      s = k + 1;
    }
  }
  if (s < bytes.length) lines.push(bytes.subarray(s));
  let count: number | undefined;
  let dim = 0;
  let first = 0;
  if (header) {
    const h0 = lines[0] ?? new Uint8Array(0);
    const h = h0.length <= 200 ? refHeader(latin1(h0)) : undefined;
    if (h === undefined) throw new RefError({ line: 1 });
    count = h.count;
    dim = h.dim;
    first = 1;
  }
  const out: Entry[] = [];
  let n = 0;
  for (let i = first; i < lines.length; i++) {
    const line = i + 1;
    let l = lines[i] as Uint8Array;
    if (l.length > 0 && l[l.length - 1] === 0x0d) l = l.subarray(0, l.length - 1);
    if (l.length === 0) continue;
    n++;
    if (count !== undefined && n > count) throw new RefError({ line });
    let sp = l.indexOf(0x20);
    if (sp < 0) sp = l.length;
    if (sp === 0) throw new RefError({ line });
    const tokens = latin1(l.subarray(Math.min(sp + 1, l.length)))
      .split(/[ \t\r]+/)
      .filter((t) => t.length > 0);
    if (dim === 0) {
      dim = tokens.length;
      if (dim === 0) throw new RefError({ line });
    }
    const word = decoder.decode(l.subarray(0, sp));
    if (wanted !== null && !wanted.has(word)) continue;
    if (tokens.length !== dim) throw new RefError({ line });
    const values = tokens.map(refValue);
    if (values.some((v) => v === undefined)) throw new RefError({ line });
    out.push({ word, bits: float32Hex(values as number[]) });
  }
  if (count !== undefined && n < count) throw new RefError({ line: lines.length });
  if (dim === 0) throw new RefError();
  return out;
}

/**
 * word2vec binary: header line `N D`; then N times: any `\n`s, the word up to a space, 4*D bytes of little-endian
 * float32 (finite); then only white space.
 */
function refBinary(bytes: Uint8Array, wanted: ReadonlySet<string> | null = null): Entry[] {
  const nl = bytes.indexOf(0x0a);
  const headerEnd = nl < 0 ? bytes.length : nl;
  const h = headerEnd <= 200 ? refHeader(latin1(bytes.subarray(0, headerEnd))) : undefined;
  if (h === undefined) throw new RefError({ line: 1 });
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = Math.min(headerEnd + 1, bytes.length);
  const out: Entry[] = [];
  for (let i = 0; i < h.count; i++) {
    while (pos < bytes.length && bytes[pos] === 0x0a) pos++;
    const sp = bytes.indexOf(0x20, pos);
    if (sp < 0 || sp + 1 + 4 * h.dim > bytes.length || sp === pos) throw new RefError({ entry: i + 1 });
    const word = decoder.decode(bytes.subarray(pos, sp));
    if (wanted === null || wanted.has(word)) {
      const values: number[] = [];
      for (let k = 0; k < h.dim; k++) values.push(view.getFloat32(sp + 1 + 4 * k, true));
      if (values.some((v) => !Number.isFinite(v))) throw new RefError({ entry: i + 1 });
      out.push({
        word,
        bits: hex(new Float32Array(new Uint8Array(bytes.subarray(sp + 1, sp + 1 + 4 * h.dim)).buffer)),
      });
    }
    pos = sp + 1 + 4 * h.dim;
  }
  for (; pos < bytes.length; pos++) {
    const b = bytes[pos];
    if (b !== 0x0a && b !== 0x0d && b !== 0x20 && b !== 0x09) throw new RefError({ entry: h.count + 1 });
  }
  return out;
}

/**
 * wink JSON (`{..., "dimensions": D, "l2NormIndex": D, "wordIndex": D+1, "vectors": {word: [v1..vD, l2norm,
 * index]}}`) or a plain `{word: [v1..vD]}` object. A JSON object, strictly (RFC 8259), except: keys may hold raw
 * control characters and invalid UTF-8 (decoded with U+FFFD) as words of the text formats may; vector values are
 * the text formats' decimals (finite float32), a trailing comma allowed. Layout: the first of a `"vectors"` object
 * and a top-level array whose first element starts like a number decides; integer top-level numbers are metadata,
 * which must precede the first vector (the final values must give the same layout). An unwanted word's vector is
 * skipped up to the first `]`.
 */
function refJson(bytes: Uint8Array, wanted: ReadonlySet<string> | null = null): Entry[] {
  const b = bytes;
  let i = 0;
  const fail = (): never => {
    throw new RefError();
  };
  const ws = (): void => {
    while (i < b.length && (b[i] === 0x20 || b[i] === 0x0a || b[i] === 0x0d || b[i] === 0x09)) i++;
  };
  const peek = (): number => {
    ws();
    return i < b.length ? (b[i] as number) : -1;
  };
  const expect = (c: number): void => {
    if (peek() !== c) fail();
    i++;
  };
  /** A string at i (after white space); `strict`: no raw control characters (JSON), else allowed (keys). */
  const string = (strict: boolean): string => {
    expect(0x22);
    let out = '';
    let run = i;
    for (;;) {
      if (i >= b.length) fail();
      const c = b[i] as number;
      if (c === 0x22) {
        out += decoder.decode(b.subarray(run, i));
        i++;
        return wellFormed(out);
      }
      if (strict && c < 0x20) fail();
      if (c === 0x5c) {
        out += decoder.decode(b.subarray(run, i));
        const e = b[i + 1];
        const simple: Record<number, string> = {
          0x22: '"',
          0x5c: '\\',
          0x2f: '/',
          0x62: '\b',
          0x66: '\f',
          0x6e: '\n',
          0x72: '\r',
          0x74: '\t',
        };
        if (e !== undefined && simple[e] !== undefined) {
          out += simple[e];
          i += 2;
        } else if (e === 0x75) {
          const h = latin1(b.subarray(i + 2, i + 6));
          if (!/^[0-9a-fA-F]{4}$/.test(h)) fail();
          out += String.fromCharCode(parseInt(h, 16));
          i += 6;
        } else fail();
        run = i;
        continue;
      }
      i++;
    }
  };
  const JSON_NUMBER = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?$/;
  const number = (): number => {
    ws();
    const s = i;
    while (i < b.length && /[-+.eE0-9]/.test(String.fromCharCode(b[i] as number))) i++;
    const text = latin1(b.subarray(s, i));
    if (!JSON_NUMBER.test(text)) fail();
    return Number(text);
  };
  const literal = (): void => {
    for (const word of ['true', 'false', 'null']) {
      if (latin1(b.subarray(i, i + word.length)) === word) {
        i += word.length;
        return;
      }
    }
    fail();
  };
  /** Any JSON value, strictly; nothing kept. */
  const value = (): void => {
    const c = peek();
    if (c === 0x7b || c === 0x5b) {
      const close = c === 0x7b ? 0x7d : 0x5d;
      i++;
      if (peek() === close) {
        i++;
        return;
      }
      for (;;) {
        if (c === 0x7b) {
          string(true);
          expect(0x3a);
        }
        value();
        const sep = peek();
        i++;
        if (sep === close) return;
        if (sep !== 0x2c) fail();
      }
    }
    if (c === 0x22) string(true);
    else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) number();
    else literal();
  };
  /** The values of a vector `[...]` (up to the first `]`). */
  const vectorValues = (): string[] => {
    expect(0x5b);
    const close = b.indexOf(0x5d, i);
    if (close < 0) fail();
    const text = latin1(b.subarray(i, close));
    i = close + 1;
    const isWs = /^[ \t\r\n]*$/;
    if (isWs.test(text)) return [];
    const pieces = text.split(',');
    if (pieces.length > 1 && isWs.test(pieces[pieces.length - 1] as string)) pieces.pop();
    return pieces.map((p) => p.replace(/^[ \t\r\n]+|[ \t\r\n]+$/g, ''));
  };

  const meta = new Map<string, number>();
  let layout: { dim: number; expected: number } | undefined;
  let firstCount = 0;
  let wink = false;
  let sawVectors = false;
  let plain = false;
  const layoutOf = (n: number): { dim: number; expected: number } => {
    if (!wink) {
      if (n < 1) fail();
      return { dim: n, expected: n };
    }
    const extras = ['l2NormIndex', 'wordIndex'].flatMap((k) => (meta.has(k) ? [meta.get(k) as number] : []));
    const dim = meta.get('dimensions') ?? (extras.length > 0 ? Math.min(...extras) : n);
    if (dim < 1 || dim > MAX_DIM) fail();
    const expected = dim + extras.length;
    if (extras.some((x) => x < dim || x >= expected) || (extras.length === 2 && extras[0] === extras[1])) fail();
    return { dim, expected };
  };
  const out: Entry[] = [];
  const entry = (word: string): void => {
    const values = vectorValues();
    if (layout === undefined) {
      firstCount = values.length;
      layout = layoutOf(values.length);
    }
    if (wanted !== null && !wanted.has(word)) return;
    if (values.length !== layout.expected) fail();
    const parsed = values.map(refValue);
    if (parsed.some((v) => v === undefined)) fail();
    out.push({ word, bits: float32Hex(parsed.slice(0, layout.dim) as number[]) });
  };

  expect(0x7b);
  if (peek() === 0x7d) i++;
  else {
    for (;;) {
      const key = string(false);
      expect(0x3a);
      const v = peek();
      if (key === 'vectors' && v === 0x7b && !plain) {
        sawVectors = true;
        wink = true;
        i++;
        if (peek() === 0x7d) i++;
        else {
          for (;;) {
            const word = string(false);
            expect(0x3a);
            entry(word);
            const sep = peek();
            i++;
            if (sep === 0x7d) break;
            if (sep !== 0x2c) fail();
          }
        }
      } else if (v === 0x5b && !sawVectors && /^[-+.\d]/.test(String.fromCharCode(peekAfterBracket()))) {
        plain = true;
        entry(key);
      } else if (v === 0x2d || (v >= 0x30 && v <= 0x39)) {
        const n = number();
        if (Number.isInteger(n)) meta.set(key, n);
      } else value();
      const sep = peek();
      i++;
      if (sep === 0x7d) break;
      if (sep !== 0x2c) fail();
    }
  }
  if (peek() >= 0) fail();
  if (layout === undefined) {
    const d = meta.get('dimensions');
    if (d === undefined || d < 1 || d > MAX_DIM) fail();
  } else {
    const final = layoutOf(firstCount);
    if (final.dim !== layout.dim || final.expected !== layout.expected) fail();
  }
  return out;

  function peekAfterBracket(): number {
    let k = i + 1;
    while (k < b.length && (b[k] === 0x20 || b[k] === 0x0a || b[k] === 0x0d || b[k] === 0x09)) k++;
    return k < b.length ? (b[k] as number) : 0;
  }
}

function reference(format: VectorFormat, file: Uint8Array, wanted: ReadonlySet<string> | null = null): Outcome {
  // A UTF-8 byte order mark in front is not content.
  const bytes = file[0] === 0xef && file[1] === 0xbb && file[2] === 0xbf ? file.subarray(3) : file;
  switch (format) {
    case 'word2vec-binary':
      return outcomeOf(() => refBinary(bytes, wanted));
    case 'word2vec-text':
    case 'fasttext-vec':
      return outcomeOf(() => refText(bytes, true, wanted));
    case 'glove-text':
      return outcomeOf(() => refText(bytes, false, wanted));
    case 'wink-json':
      return outcomeOf(() => refJson(bytes, wanted));
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Generators: well-formed files of every format with the variations real files have, then mutations.

const utf8 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'utf8'));

/** Words as bytes: common words, short random ones (duplicates likely), any Unicode, raw (maybe invalid UTF-8). */
const wordArb: fc.Arbitrary<Uint8Array> = fc
  .oneof(
    { weight: 4, arbitrary: fc.constantFrom('the', 'movie', 'café', 'naïve', '日本', '<pad>', 'end.', 'vectors', '1') },
    { weight: 4, arbitrary: fc.string({ unit: fc.constantFrom(...'abé,.:-_0"\\'), minLength: 1, maxLength: 4 }) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 4 }) },
    { weight: 1, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 4, min: 0x21, max: 0xff }) },
  )
  .map((w) => (typeof w === 'string' ? utf8(w) : w));

/** Bytes that cannot be in a word of a line-oriented or binary file (space, control) become `_`. */
function plainWord(w: Uint8Array): Uint8Array {
  return w.map((c) => (c <= 0x20 ? 0x5f : c));
}

/** A decimal as text files write it (shortest, exponent, long random digits), and rarely something that is not. */
const tokenArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 60, arbitrary: fc.float({ noNaN: true, noDefaultInfinity: true }).map((v) => String(v)) },
  { weight: 20, arbitrary: fc.float({ noNaN: true, noDefaultInfinity: true }).map((v) => v.toExponential(4)) },
  {
    weight: 30,
    arbitrary: fc
      .tuple(
        fc.constantFrom('', '-', '+'),
        fc.string({ unit: fc.constantFrom(...'0123456789'), minLength: 1, maxLength: 8 }),
        fc.option(fc.string({ unit: fc.constantFrom(...'0123456789'), maxLength: 24 })),
        fc.option(
          fc.tuple(fc.constantFrom('e', 'E'), fc.constantFrom('', '-', '-', '+'), fc.integer({ min: 0, max: 30 })),
        ),
      )
      .map(([s, a, f, e]) => `${s}${a}${f === null ? '' : `.${f}`}${e === null ? '' : `${e[0]}${e[1]}${e[2]}`}`),
  },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      'NaN',
      'nan',
      'Infinity',
      '-Infinity',
      'inf',
      '0x10',
      '0b1',
      '1e999',
      '-1e39',
      '3.5e38',
      '1e-50',
      '1_0',
      '١',
      '.',
      '+.5',
      '5.',
      '1e',
      '--1',
      '\u00a01',
      '\f2',
    ),
  },
);

/** float32 values for binary files, with NaN and infinities now and then. */
const binaryValueArb: fc.Arbitrary<number> = fc.oneof(
  { weight: 100, arbitrary: fc.float({ noNaN: true, noDefaultInfinity: true }) },
  { weight: 1, arbitrary: fc.constantFrom(NaN, Infinity, -Infinity) },
);

const INTERESTING = [
  0x20, 0x0a, 0x0d, 0x09, 0x00, 0xff, 0x22, 0x2c, 0x5b, 0x5d, 0x7b, 0x7d, 0x5c, 0x2e, 0x2d, 0x65, 0x3a,
];
const ONE_MUTATION = byteMutationArb({ interesting: INTERESTING });
/** No mutation (well-formed files must read back) about a third of the time. */
const MUTATIONS = mutationsArb(ONE_MUTATION);

/** Read window sizes: tiny ones put entries across chunk boundaries; undefined = the default 1 MiB. */
const chunkArb = fc.constantFrom(undefined, 7, 16, 61, 4096);

/** A UTF-8 byte order mark in front, now and then (as Windows editors save text). */
const bomArb = fc.oneof({ weight: 12, arbitrary: fc.constant(false) }, fc.constant(true));

function withBom(bom: boolean, bytes: Buffer): Uint8Array {
  return new Uint8Array(bom ? Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), bytes]) : bytes);
}

interface TextFile {
  dim: number;
  entries: Array<{ word: Uint8Array; tokens: string[] }>;
  eol: string;
  sep: string;
  trailing: string;
  finalEol: boolean;
  blanks: number[];
  countDelta: number;
  dimDelta: number;
  bom: boolean;
}

const textFileArb: fc.Arbitrary<TextFile> = fc.integer({ min: 1, max: 5 }).chain((dim) =>
  fc.record({
    dim: fc.constant(dim),
    entries: fc.array(
      fc.record({ word: wordArb.map(plainWord), tokens: fc.array(tokenArb, { minLength: dim, maxLength: dim }) }),
      { maxLength: 7 },
    ),
    eol: fc.constantFrom('\n', '\n', '\r\n'),
    sep: fc.constantFrom(' ', ' ', ' ', '  ', '\t', ' \t'),
    trailing: fc.constantFrom('', '', ' ', '\t'),
    finalEol: fc.boolean(),
    blanks: fc.array(fc.nat(8), { maxLength: 2 }),
    countDelta: fc.oneof({ weight: 12, arbitrary: fc.constant(0) }, fc.constantFrom(-1, 1, 1_000_000)),
    dimDelta: fc.oneof({ weight: 15, arbitrary: fc.constant(0) }, fc.constantFrom(-1, 1)),
    bom: bomArb,
  }),
);

function textBytes(f: TextFile, header: boolean): Uint8Array {
  const lines: Uint8Array[] = f.entries.map((e) =>
    Buffer.concat([Buffer.from(e.word), Buffer.from(` ${e.tokens.join(f.sep)}${f.trailing}`, 'latin1')]),
  );
  for (const at of f.blanks) lines.splice(at % (lines.length + 1), 0, new Uint8Array(0));
  if (header) {
    lines.unshift(Buffer.from(`${Math.max(0, f.entries.length + f.countDelta)} ${f.dim + f.dimDelta}`));
  }
  const eol = Buffer.from(f.eol);
  const parts: Uint8Array[] = [];
  lines.forEach((l, k) => {
    parts.push(l);
    if (k < lines.length - 1 || f.finalEol) parts.push(eol);
  });
  return withBom(f.bom, Buffer.concat(parts));
}

interface BinaryFile {
  dim: number;
  entries: Array<{ word: Uint8Array; values: number[] }>;
  newline: boolean;
  countDelta: number;
  dimDelta: number;
  tail: string;
  bom: boolean;
}

const binaryFileArb: fc.Arbitrary<BinaryFile> = fc.integer({ min: 1, max: 5 }).chain((dim) =>
  fc.record({
    dim: fc.constant(dim),
    entries: fc.array(
      fc.record({
        word: wordArb.map(plainWord),
        values: fc.array(binaryValueArb, { minLength: dim, maxLength: dim }),
      }),
      { maxLength: 7 },
    ),
    newline: fc.boolean(),
    countDelta: fc.oneof({ weight: 12, arbitrary: fc.constant(0) }, fc.constantFrom(-1, 1, 9_000_000_000_000)),
    dimDelta: fc.oneof({ weight: 15, arbitrary: fc.constant(0) }, fc.constantFrom(-1, 1)),
    tail: fc.constantFrom('', '', '\n', ' \r\n'),
    bom: bomArb,
  }),
);

function binaryBytes(f: BinaryFile): Uint8Array {
  const parts: Buffer[] = [Buffer.from(`${Math.max(0, f.entries.length + f.countDelta)} ${f.dim + f.dimDelta}\n`)];
  for (const e of f.entries) {
    const v = Buffer.alloc(4 * f.dim);
    e.values.forEach((x, k) => v.writeFloatLE(x, 4 * k));
    parts.push(Buffer.from(e.word), Buffer.from(' '), v);
    if (f.newline) parts.push(Buffer.from('\n'));
  }
  parts.push(Buffer.from(f.tail));
  return withBom(f.bom, Buffer.concat(parts));
}

interface JsonFile {
  dim: number;
  layout: 'wink' | 'plain';
  entries: Array<{ word: Uint8Array; tokens: string[]; escape: boolean }>;
  meta: 'before' | 'after' | 'none';
  dimensions: number;
  spaced: boolean;
  trailingComma: boolean;
  bom: boolean;
}

const jsonFileArb: fc.Arbitrary<JsonFile> = fc.integer({ min: 1, max: 5 }).chain((dim) =>
  fc.record({
    dim: fc.constant(dim),
    layout: fc.constantFrom('wink' as const, 'wink' as const, 'plain' as const),
    entries: fc.array(
      fc.record({
        word: wordArb,
        tokens: fc.array(tokenArb, { minLength: dim, maxLength: dim }),
        escape: fc.boolean(),
      }),
      { maxLength: 6 },
    ),
    meta: fc.oneof(
      { weight: 8, arbitrary: fc.constant('before' as const) },
      fc.constantFrom('after' as const, 'none' as const),
    ),
    dimensions: fc.oneof({ weight: 15, arbitrary: fc.constant(dim) }, fc.constantFrom(dim + 1, dim - 1, 1e300)),
    spaced: fc.boolean(),
    trailingComma: fc.oneof({ weight: 5, arbitrary: fc.constant(false) }, fc.constant(true)),
    bom: bomArb,
  }),
);

/** A JSON string of raw word bytes: `"` and `\` escaped, control bytes as \u00XX; `escape` also escapes non-ASCII. */
function jsonKey(word: Uint8Array, escape: boolean): Buffer {
  const text = decoder.decode(word);
  if (escape && Buffer.from(text, 'utf8').equals(word)) {
    const ascii = JSON.stringify(text).replace(
      /[\u0080-\uffff]/g,
      (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
    );
    return Buffer.from(ascii);
  }
  const out: number[] = [0x22];
  for (const c of word) {
    if (c === 0x22 || c === 0x5c) out.push(0x5c, c);
    else if (c < 0x20) out.push(...Buffer.from(`\\u00${c.toString(16).padStart(2, '0')}`));
    else out.push(c);
  }
  out.push(0x22);
  return Buffer.from(out);
}

function jsonBytes(f: JsonFile): Uint8Array {
  const sp = f.spaced ? ' ' : '';
  const metaText =
    `"precision":8,${sp}"l2NormIndex":${f.dimensions},${sp}"wordIndex":${f.dimensions + 1},${sp}` +
    `"size":${f.entries.length},${sp}"dimensions":${f.dimensions},${sp}"words":["a","b\\n"]`;
  const vector = (e: JsonFile['entries'][number], i: number): string => {
    const values = f.layout === 'wink' ? [...e.tokens, '1.5', String(i)] : e.tokens;
    return `[${values.join(`,${sp}`)}${f.trailingComma ? ',' : ''}]`;
  };
  const parts: Buffer[] = [Buffer.from('{')];
  if (f.layout === 'wink') {
    if (f.meta === 'before') parts.push(Buffer.from(`${metaText},${sp}`));
    parts.push(Buffer.from(`"vectors":${sp}{`));
    f.entries.forEach((e, i) => {
      parts.push(Buffer.from(i > 0 ? `,${sp}` : ''), jsonKey(e.word, e.escape), Buffer.from(`:${sp}${vector(e, i)}`));
    });
    parts.push(Buffer.from('}'));
    if (f.meta === 'after') parts.push(Buffer.from(`,${sp}${metaText}`));
    parts.push(Buffer.from(`,"unkVector":[0,-1]}`));
  } else {
    f.entries.forEach((e, i) => {
      parts.push(Buffer.from(i > 0 ? `,${sp}` : ''), jsonKey(e.word, e.escape), Buffer.from(`:${sp}${vector(e, i)}`));
    });
    parts.push(Buffer.from('}'));
  }
  return withBom(f.bom, Buffer.concat(parts));
}

// ---------------------------------------------------------------------------------------------------------------
// Properties.

const FORMATS: Array<{ format: VectorFormat; file: fc.Arbitrary<Uint8Array> }> = [
  { format: 'word2vec-binary', file: binaryFileArb.map(binaryBytes) },
  { format: 'word2vec-text', file: textFileArb.map((f) => textBytes(f, true)) },
  { format: 'fasttext-vec', file: textFileArb.map((f) => textBytes({ ...f, trailing: ' ' }, true)) },
  { format: 'glove-text', file: textFileArb.map((f) => textBytes(f, false)) },
  { format: 'wink-json', file: jsonFileArb.map(jsonBytes) },
];

describe('vector readers: mutated files read as the reference parse, or fail typed', () => {
  for (const { format, file } of FORMATS) {
    test(`${format}: readVectors`, async () => {
      await fc.assert(
        fc.asyncProperty(file, MUTATIONS, chunkArb, fc.boolean(), async (clean, mutations, chunkBytes, gz) => {
          const bytes = applyMutations(clean, mutations);
          const path = await fileOf(gz ? gzipSync(bytes) : bytes);
          const opts = chunkBytes === undefined ? { format } : { format, chunkBytes };
          same(
            await readOutcome(path, opts),
            reference(format, bytes),
            `${format} ${Buffer.from(bytes).toString('hex')}`,
          );
        }),
        params(150),
      );
    });

    test(`${format}: pruneVectors keeps the requested words' first occurrences`, async () => {
      await fc.assert(
        fc.asyncProperty(
          file,
          MUTATIONS,
          chunkArb,
          fc.option(fc.array(wordArb, { minLength: 1, maxLength: 4 }), { freq: 3 }),
          async (clean, mutations, chunkBytes, extra) => {
            const bytes = applyMutations(clean, mutations);
            const path = await fileOf(bytes);
            const all = reference(format, bytes);
            // Request half of the words the file has (by the reference) plus some it lacks, or all (null).
            const present = all.ok ? [...new Set(all.entries.map((e) => e.word))].filter((_, k) => k % 2 === 0) : [];
            const words = extra === null ? null : [...present, ...extra.map((w) => decoder.decode(w))];
            const requested = words === null ? null : words.filter((w) => w !== '<pad>');
            if (requested !== null && requested.length === 0) return;
            const wanted = requested === null ? null : new Set(requested);
            const expected = reference(format, bytes, wanted);
            let actual: Outcome;
            let table: Awaited<ReturnType<typeof pruneVectors>> | undefined;
            try {
              const opts = chunkBytes === undefined ? {} : { chunkBytes };
              table = await pruneVectors({ source: path, words, format, ...opts });
              actual = { ok: true, entries: [] };
            } catch (e) {
              assert.ok(isInvalidInput(e), `not an InvalidInputError: ${String((e as Error)?.stack ?? e)}`);
              assert.equal(e.file, path);
              actual = { ok: false, line: e.line, entry: e.entry, message: e.message };
            }
            if (!expected.ok || table === undefined) {
              same(actual, expected, `${format} prune ${Buffer.from(bytes).toString('hex')}`);
              return;
            }
            // First occurrence wins; <pad> is id 0 with a zero row.
            const tokens = ['<pad>'];
            const rows = [hex(new Float32Array(table.dim))];
            let duplicates = 0;
            for (const e of expected.entries) {
              if (tokens.includes(e.word)) duplicates++;
              else {
                tokens.push(e.word);
                rows.push(e.bits);
              }
            }
            assert.deepEqual(table.vocab.tokens, tokens);
            assert.equal(hex(table.matrix), rows.join(''));
            assert.equal(table.stats.duplicates, duplicates);
            assert.equal(table.stats.found, tokens.length - 1);
            if (requested !== null) {
              assert.equal(table.stats.missing, new Set(requested).size - (tokens.length - 1));
            }
          },
        ),
        params(60),
      );
    });
  }

  test('detected format: an unmutated file is detected as written; any file reads as its detected format', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...FORMATS).chain(({ format, file }) => fc.tuple(fc.constant(format), file)),
        MUTATIONS,
        fc.boolean(),
        async ([format, clean], mutations, gz) => {
          const bytes = applyMutations(clean, mutations);
          const path = await fileOf(gz ? gzipSync(bytes) : bytes);
          let detected: VectorFormat | undefined;
          try {
            detected = (await detectFormat(path)).format;
          } catch (e) {
            assert.ok(isInvalidInput(e), `not an InvalidInputError: ${String((e as Error)?.stack ?? e)}`);
            assert.equal(e.file, path);
          }
          const sound = reference(format, bytes);
          if (mutations.length === 0 && sound.ok) {
            const written = format === 'fasttext-vec' ? 'word2vec-text' : format;
            // A headerless GloVe file whose first line reads as `N D`, or a binary file holding no entry, is
            // legitimately another format; otherwise detection must find the format written.
            const firstLine = latin1(bytes.subarray(0, Math.max(0, bytes.indexOf(0x0a)))).replace(
              /^\ufeff|^\xef\xbb\xbf/,
              '',
            );
            const fields = firstLine.split(/[ \t\r]+/).filter((f) => f.length > 0);
            const ambiguous =
              (format === 'glove-text' && refHeader(firstLine) !== undefined) ||
              // "12 0.5": a numeric word with one value reads as a garbled "N D" header.
              (format === 'glove-text' && fields.length === 2 && /^\d+$/.test(fields[0] as string)) ||
              (format === 'word2vec-binary' && sound.entries.length === 0);
            if (!ambiguous) assert.equal(detected, written, 'a well-formed file is detected as the format written');
          }
          if (detected === undefined) return;
          same(await readOutcome(path, {}), reference(detected, bytes), `detected ${detected}`);
        },
      ),
      params(120),
    );
  });

  test('a gzipped file cut anywhere or corrupted is refused (or, if gunzip still accepts it, read as the reference)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...FORMATS).chain(({ format, file }) => fc.tuple(fc.constant(format), file)),
        fc.array(ONE_MUTATION, { minLength: 1, maxLength: 2 }),
        async ([format, clean], mutations) => {
          const gz = applyMutations(gzipSync(clean), mutations);
          const path = await fileOf(gz);
          let inner: Uint8Array | undefined;
          try {
            inner = gunzipSync(gz);
          } catch {
            inner = undefined;
          }
          const actual = await readOutcome(path, { format });
          // A stream that is no longer gzip (magic bytes hit) is read as plain bytes.
          const plain = !(gz[0] === 0x1f && gz[1] === 0x8b);
          if (plain) same(actual, reference(format, gz), `${format} plain`);
          else if (inner === undefined) assert.ok(!actual.ok, `${format}: a corrupt gzip stream was read`);
          else same(actual, reference(format, inner), `${format} gunzipped`);
        },
      ),
      params(80),
    );
  });
});

describe('vector readers: truncation at every byte', () => {
  const dim = 3;
  const words = ['the', 'café', 'x', 'the', '日本'].map(utf8);
  const tokens = ['0.25', '-1e-3', '3.5', '7', '.5', '-0', '1e2', '2.', '0.1', '4', '5', '-6', '1', '2', '3'];
  const cases: Array<{ format: VectorFormat; bytes: Uint8Array }> = [
    {
      format: 'word2vec-binary',
      bytes: binaryBytes({
        dim,
        entries: words.map((word, k) => ({
          word,
          values: tokens.slice(3 * k, 3 * k + 3).map((t) => Math.fround(Number(t))),
        })),
        newline: true,
        countDelta: 0,
        dimDelta: 0,
        tail: '',
        bom: false,
      }),
    },
    ...(['word2vec-text', 'glove-text'] as const).map((format) => ({
      format,
      bytes: textBytes(
        {
          dim,
          entries: words.map((word, k) => ({ word, tokens: tokens.slice(3 * k, 3 * k + 3) })),
          eol: '\r\n',
          sep: ' ',
          trailing: '',
          finalEol: true,
          blanks: [2],
          countDelta: 0,
          dimDelta: 0,
          bom: format === 'glove-text',
        },
        format === 'word2vec-text',
      ),
    })),
    ...(['wink', 'plain'] as const).map((layout) => ({
      format: 'wink-json' as const,
      bytes: jsonBytes({
        dim,
        layout,
        entries: words.map((word, k) => ({ word, tokens: tokens.slice(3 * k, 3 * k + 3), escape: k === 1 })),
        meta: 'before',
        dimensions: dim,
        spaced: true,
        trailingComma: false,
        bom: false,
      }),
    })),
  ];
  for (const { format, bytes } of cases) {
    test(`${format} (${bytes.length} bytes): every prefix, plain and gzipped`, async () => {
      assert.ok(reference(format, bytes).ok, 'the whole file is well formed');
      for (let cut = 0; cut <= bytes.length; cut++) {
        const prefix = bytes.subarray(0, cut);
        const expected = reference(format, prefix);
        same(await readOutcome(await fileOf(prefix), { format }), expected, `${format} cut at ${cut}`);
        if (cut % 7 === 0) {
          same(
            await readOutcome(await fileOf(gzipSync(prefix)), { format, chunkBytes: 16 }),
            expected,
            `gz cut ${cut}`,
          );
        }
      }
    });
  }
});

describe('regressions: counterexamples the fuzzing found, kept as plain tests', () => {
  const f32 = (...v: number[]): Buffer => Buffer.from(Float32Array.from(v).buffer);
  const cases: Array<{
    name: string;
    format: VectorFormat;
    bytes: Uint8Array;
    /** Words and values read, or the error (message, and line or entry). */
    expect: Array<[string, number[]]> | { error: RegExp; line?: number; entry?: number };
  }> = [
    {
      name: 'binary: a NaN value is refused (was copied through)',
      format: 'word2vec-binary',
      bytes: Buffer.concat([Buffer.from('1 3\nthe '), f32(0, NaN, 0)]),
      expect: { error: /value 2 is not a finite float32/, entry: 1 },
    },
    {
      name: 'binary: an infinity in a dropped duplicate is refused too',
      format: 'word2vec-binary',
      bytes: Buffer.concat([Buffer.from('2 1\na '), f32(1), Buffer.from('\na '), f32(-Infinity)]),
      expect: { error: /value 1 is not a finite float32/, entry: 2 },
    },
    {
      name: 'text: a decimal beyond float32 is refused (was read as Infinity)',
      format: 'word2vec-text',
      bytes: Buffer.from('1 1\na 3.5e38'),
      expect: { error: /value 1 is not a finite float32: "3.5e38"/, line: 2 },
    },
    {
      name: 'GloVe: "Infinity" is refused (was Infinity)',
      format: 'glove-text',
      bytes: Buffer.from('a 0 Infinity 0\n'),
      expect: { error: /value 2 is not a number: "Infinity"/, line: 1 },
    },
    {
      name: 'GloVe: hexadecimal "0x10" is refused (was 16)',
      format: 'glove-text',
      bytes: Buffer.from('a 0x10 0'),
      expect: { error: /value 1 is not a number: "0x10"/, line: 1 },
    },
    {
      name: 'word2vec text: a value with a no-break space (latin1 0xA0) is refused (was trimmed by Number())',
      format: 'word2vec-text',
      bytes: Buffer.from('1 2\nthe \xa01 0\n', 'latin1'),
      expect: { error: /value 1 is not a number/, line: 2 },
    },
    {
      name: 'GloVe: a line ending " \\r\\r\\n" has the width of its values (the first line counted \\r as a value)',
      format: 'glove-text',
      bytes: Buffer.from('a 1 2 \r\r\nb 3 4\n'),
      expect: [
        ['a', [1, 2]],
        ['b', [3, 4]],
      ],
    },
    {
      name: 'header: a no-break space after "N D" is a garbled header (\\s took it)',
      format: 'word2vec-text',
      bytes: Buffer.from('1 2\xa0\na 1 2\n', 'latin1'),
      expect: { error: /garbled header/, line: 1 },
    },
    {
      name: 'wink: "dimensions" 1e300 is refused (was a RangeError from new Float32Array)',
      format: 'wink-json',
      bytes: Buffer.from('{"dimensions":1e+300,"vectors":{"a":[1,2]}}'),
      expect: { error: /"dimensions" 1e\+300 is outside/ },
    },
    {
      name: 'wink: a malformed metadata value is refused (was skipped unchecked)',
      format: 'wink-json',
      bytes: Buffer.from('{"dimensions":2,"vectors":{"a":[1,2]},"unkVector":[\x000,-1]}'),
      expect: { error: /malformed JSON value/ },
    },
    {
      name: 'wink: a malformed metadata number is refused (was ignored)',
      format: 'wink-json',
      bytes: Buffer.from('{"precision":8x,"dimensions":2,"vectors":{"a":[1,2]}}'),
      expect: { error: /not a JSON number: "8x"/ },
    },
    {
      name: 'wink: "dimensions" that disagrees with l2NormIndex/wordIndex is refused (vectors were cut to 1 value)',
      format: 'wink-json',
      bytes: Buffer.from('{"l2NormIndex":2,"wordIndex":3,"dimensions":1,"vectors":{"a":[1,2,2.2,0]}}'),
      expect: { error: /must be the positions after the 1 dimensions/ },
    },
    {
      name: 'wink: metadata after the vectors that changes their layout is refused (l2norm and index were values)',
      format: 'wink-json',
      bytes: Buffer.from('{"vectors":{"a":[1,2,2.2,0]},"dimensions":2,"l2NormIndex":2,"wordIndex":3}'),
      expect: { error: /after the first vector disagree/ },
    },
    {
      name: 'wink: values after the vector (l2norm, index) must be numbers too',
      format: 'wink-json',
      bytes: Buffer.from('{"dimensions":1,"l2NormIndex":1,"wordIndex":2,"vectors":{"a":[1,x,y]}}'),
      expect: { error: /value 2 is not a number: "x"/, entry: 1 },
    },
    {
      name: 'plain JSON: two values without a comma are refused (were read as two)',
      format: 'wink-json',
      bytes: Buffer.from('{"a":[1 2]}'),
      expect: { error: /no "," after value 1/, entry: 1 },
    },
    {
      name: 'plain JSON: a trailing comma in the first vector does not count as a value (it was refused)',
      format: 'wink-json',
      bytes: Buffer.from('{"a":[1,2,],"b":[3,4]}'),
      expect: [
        ['a', [1, 2]],
        ['b', [3, 4]],
      ],
    },
    {
      name: 'JSON: an escaped word with a raw control byte reads like an unescaped one (it was "bad escape")',
      format: 'wink-json',
      bytes: Buffer.from('{"a\\n\x01":[1],"b\x01":[2]}'),
      expect: [
        ['a\n\x01', [1]],
        ['b\x01', [2]],
      ],
    },
    {
      name: 'GloVe: a UTF-8 byte order mark is not part of the first word (it was "\\ufeffthe")',
      format: 'glove-text',
      bytes: Buffer.from('\ufeffthe 1 2\na 3 4\n'),
      expect: [
        ['the', [1, 2]],
        ['a', [3, 4]],
      ],
    },
    {
      name: 'word2vec text: a byte order mark before "N D" (the header was garbled)',
      format: 'word2vec-text',
      bytes: Buffer.from('\ufeff1 2\nthe 1 2\n'),
      expect: [['the', [1, 2]]],
    },
    {
      name: 'JSON: a backslash before a raw control byte is a bad escape (it read as an escaped backslash)',
      format: 'wink-json',
      bytes: Buffer.from('{"aaa\\\x02":[1]}', 'latin1'),
      expect: { error: /bad escape in a string/ },
    },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const path = await fileOf(c.bytes);
      const got = await readOutcome(path, { format: c.format });
      same(got, reference(c.format, c.bytes), 'the reference parse agrees');
      if (Array.isArray(c.expect)) {
        assert.ok(got.ok, got.ok ? '' : got.message);
        assert.deepEqual(
          got.entries,
          c.expect.map(([word, v]) => ({ word, bits: hex(Float32Array.from(v)) })),
        );
      } else {
        assert.ok(!got.ok);
        assert.match(got.message ?? '', c.expect.error);
        if (c.expect.line !== undefined) assert.equal(got.line, c.expect.line);
        if (c.expect.entry !== undefined) assert.equal(got.entry, c.expect.entry);
      }
    });
  }

  test('a byte order mark does not hide the format from detection (a word2vec text file was taken for GloVe)', async () => {
    const path = await fileOf(Buffer.from('\ufeff2 3\nthe 1 2 3\na 4 5 6\n'));
    assert.deepEqual(await detectFormat(path), { format: 'word2vec-text', gzip: false, count: 2, dim: 3 });
  });

  test('a binary file whose float32 bytes happen to be printable is detected as binary (it was taken for text)', async () => {
    const bytes = Buffer.from([0x31, 0x20, 0x31, 0x0a, 0x74, 0x68, 0x65, 0x20, 0x0d, 0x46, 0x2a, 0x4e]); // "1 1\nthe \rF*N"
    const path = await fileOf(bytes);
    assert.equal((await detectFormat(path)).format, 'word2vec-binary');
    same(await readOutcome(path, {}), reference('word2vec-binary', bytes), 'detected and read');
  });

  test('detection: GloVe with CRLF line ends, or starting with an empty line, is GloVe (both were "unknown format")', async () => {
    for (const text of ['the 1 2\r\na 3 4\r\n', '\r\n\nthe 1 2\na 3 4\n']) {
      const path = await fileOf(Buffer.from(text));
      assert.deepEqual(await detectFormat(path), { format: 'glove-text', gzip: false, dim: 2 }, JSON.stringify(text));
    }
    // fastText's "value, space, CRLF": the \r is not a value (the file was taken for binary).
    const path = await fileOf(Buffer.from('1 1\r\nthe 0 \r\n'));
    assert.equal((await detectFormat(path)).format, 'word2vec-text');
  });

  test('a header that lies by far does not make pruneVectors allocate for it (was a RangeError)', async () => {
    // 1M rows of 65536 floats announced, one entry there: the reader must report the truncation.
    const path = await fileOf(Buffer.concat([Buffer.from('1000000 65536\nthe '), Buffer.alloc(4 * 65536)]));
    await assert.rejects(pruneVectors({ source: path, words: null }), (e: unknown) => {
      assert.ok(isInvalidInput(e), String(e));
      assert.match(e.message, /truncated: the header announces 1000000 entries/);
      assert.equal(e.entry, 2);
      return true;
    });
  });

  test('a negative wink "size" is only a bad hint (was a RangeError)', async () => {
    const path = await fileOf(Buffer.from('{"size":-5,"dimensions":2,"vectors":{"a":[1,2]}}'));
    const table = await pruneVectors({ source: path, words: null });
    assert.deepEqual(table.vocab.tokens, ['<pad>', 'a']);
    assert.deepEqual(Array.from(table.matrix), [0, 0, 1, 2]);
  });
});
