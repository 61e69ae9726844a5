/**
 * A compact binary file for one embedding table, loaded with one read and no per-element copy.
 *
 * Layout (all integers little-endian):
 *
 * | offset | size | content                                                                 |
 * |--------|------|-------------------------------------------------------------------------|
 * | 0      | 8    | magic `CH8EMBT2`                                                        |
 * | 8      | 4    | uint32: byte length M of the metadata JSON                              |
 * | 12     | 4    | uint32: checksum kind, 1 = crc32 (zlib), 2 = sha256                     |
 * | 16     | 8    | uint64: byte length P of the payload (everything after byte 56)         |
 * | 24     | 32   | checksum of the payload (crc32: uint32 LE in the first 4 bytes, rest 0) |
 * | 56     | M    | metadata JSON (dim, rows, source, format, gzip, stats, vocabHash, extra) |
 * | 56+M   | pad  | zero bytes up to a multiple of 8                                        |
 * | A      | 4*rows*dim | the matrix, float32 LE, row-major                                 |
 * | B      | 4*rows | uint32: length of each token in UTF-16 code units, in id order        |
 * | B+4r   | rest | the tokens' UTF-8 bytes, concatenated                                   |
 *
 * A file whose length, magic or checksum does not match is rejected (InvalidInputError), never served. crc32 (fast:
 * a cache hit must take well under 100 ms for 20,000 x 300) is used where Node has `zlib.crc32` (20.15+), else sha256.
 * The tokens are decoded with one UTF-8 decode and sliced by their lengths, no per-token decoding.
 */
import { createHash, randomBytes } from 'node:crypto';
import { endianness } from 'node:os';
import * as zlib from 'node:zlib';
import { basename, dirname, join } from 'node:path';
import { mkdir, open, rename, unlink } from 'node:fs/promises';
import { InvalidInputError } from '@ch8/errors';
import { fsError } from './chunks.ts';
import type { VectorFormat } from './format.ts';
import type { EmbeddingTable, PruneStats } from './table.ts';
import { Vocabulary } from './vocabulary.ts';

const MAGIC = Buffer.from('CH8EMBT2', 'latin1');
const CRC32 = 1;
const SHA256 = 2;
const zlibCrc32 = (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;

/** The checksum of the payload parts (32 bytes) with the given kind. */
function checksum(kind: number, parts: readonly Uint8Array[]): Buffer {
  const out = Buffer.alloc(32);
  if (kind === CRC32 && zlibCrc32 !== undefined) {
    let c = 0;
    for (const p of parts) c = zlibCrc32(p, c);
    out.writeUInt32LE(c >>> 0, 0);
    return out;
  }
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  h.digest().copy(out, 0);
  return out;
}
const FIXED = 56;
const LITTLE_ENDIAN = endianness() === 'LE';

interface Meta {
  dim: number;
  rows: number;
  source: string;
  format: VectorFormat | 'memory';
  gzip: boolean;
  stats: PruneStats;
  vocabHash: string;
  tokensBytes: number;
  /** Caller data stored with the table (the cache keeps its key here). */
  extra: Record<string, unknown>;
}

/** A table read back from a file, with the caller data stored beside it. */
export interface StoredTable {
  table: EmbeddingTable;
  extra: Record<string, unknown>;
}

export interface WriteTableOptions {
  /** Checksum of the payload: crc32 (default where Node has zlib.crc32; fast) or sha256. */
  checksum?: 'crc32' | 'sha256';
}

/**
 * Writes `table` to `path` atomically: a temporary file in the same folder, flushed, then renamed over `path`.
 * Readers never see a half-written file; on failure the temporary file is removed. `extra` is stored beside it.
 */
export async function writeTable(
  path: string,
  table: EmbeddingTable,
  extra: Record<string, unknown> = {},
  options: WriteTableOptions = {},
): Promise<void> {
  const rows = table.vocab.size;
  if (table.matrix.length !== rows * table.dim) {
    throw new InvalidInputError(`matrix has ${table.matrix.length} values, expected ${rows} x ${table.dim}`, {
      field: 'matrix',
    });
  }
  const tokenLengths = Buffer.allocUnsafe(4 * rows);
  table.vocab.tokens.forEach((t, i) => tokenLengths.writeUInt32LE(t.length, 4 * i));
  const tokens = Buffer.from(table.vocab.tokens.join(''), 'utf8');
  const meta: Meta = {
    dim: table.dim,
    rows,
    source: table.source,
    format: table.format,
    gzip: table.gzip,
    stats: table.stats,
    vocabHash: table.vocab.hash,
    tokensBytes: tokens.length,
    extra,
  };
  const metaBytes = Buffer.from(JSON.stringify(meta), 'utf8');
  const pad = (8 - ((FIXED + metaBytes.length) % 8)) % 8;
  let matrixBytes: Buffer;
  if (LITTLE_ENDIAN) {
    matrixBytes = Buffer.from(table.matrix.buffer, table.matrix.byteOffset, table.matrix.byteLength);
  } else {
    matrixBytes = Buffer.allocUnsafe(table.matrix.byteLength);
    table.matrix.forEach((v, i) => matrixBytes.writeFloatLE(v, 4 * i));
  }
  const parts = [metaBytes, Buffer.alloc(pad), matrixBytes, tokenLengths, tokens];
  const kind = zlibCrc32 !== undefined && options.checksum !== 'sha256' ? CRC32 : SHA256;
  const payload = parts.reduce((n, p) => n + p.length, 0);
  const head = Buffer.alloc(FIXED);
  MAGIC.copy(head, 0);
  head.writeUInt32LE(metaBytes.length, 8);
  head.writeUInt32LE(kind, 12);
  head.writeBigUInt64LE(BigInt(payload), 16);
  checksum(kind, parts).copy(head, 24);

  await mkdir(dirname(path), { recursive: true });
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(tmp, 'w');
  try {
    try {
      await fh.writev([head, ...parts]);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
}

/** The whole file in one buffer, read with as few calls as the OS allows (fs.readFile reads 512 KiB per call). */
async function readWhole(path: string): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    const buf = Buffer.allocUnsafeSlow(size);
    let got = 0;
    while (got < size) {
      const { bytesRead } = await fh.read(buf, got, size - got, got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return got === size ? buf : buf.subarray(0, got);
  } finally {
    await fh.close();
  }
}

/**
 * Reads a table written by {@link writeTable}: one read into one buffer, the matrix a Float32Array view of it.
 *
 * @throws NotFoundError when the file does not exist.
 * @throws InvalidInputError when the file is truncated, not a table file, or fails its checksum.
 */
export async function readTable(path: string): Promise<StoredTable> {
  let buf: Buffer;
  try {
    buf = await readWhole(path);
  } catch (e) {
    fsError(path, e);
  }
  const bad = (why: string): never => {
    throw new InvalidInputError(`not a valid table file: ${why}`, { file: path });
  };
  if (buf.length < FIXED) bad(`only ${buf.length} bytes`);
  if (!buf.subarray(0, 8).equals(MAGIC)) bad('wrong magic bytes');
  const metaLen = buf.readUInt32LE(8);
  const payload = Number(buf.readBigUInt64LE(16));
  if (buf.length !== FIXED + payload) bad(`payload is ${buf.length - FIXED} bytes, the header says ${payload}`);
  const kind = buf.readUInt32LE(12);
  if (kind !== SHA256 && (kind !== CRC32 || zlibCrc32 === undefined)) bad(`unknown checksum kind ${kind}`);
  if (!checksum(kind, [buf.subarray(FIXED)]).equals(buf.subarray(24, FIXED))) bad('checksum mismatch');
  let meta: Meta;
  try {
    meta = JSON.parse(buf.toString('utf8', FIXED, FIXED + metaLen)) as Meta;
  } catch {
    return bad('unreadable metadata');
  }
  const start = FIXED + metaLen + ((8 - ((FIXED + metaLen) % 8)) % 8);
  const n = meta.rows * meta.dim;
  const lengthsAt = start + 4 * n;
  const tokensAt = lengthsAt + 4 * meta.rows;
  if (tokensAt + meta.tokensBytes !== buf.length) bad('sections do not add up to the file length');
  let matrix: Float32Array;
  if (LITTLE_ENDIAN && (buf.byteOffset + start) % 4 === 0) {
    matrix = new Float32Array(buf.buffer, buf.byteOffset + start, n);
  } else {
    matrix = new Float32Array(n);
    for (let i = 0; i < n; i++) matrix[i] = buf.readFloatLE(start + 4 * i);
  }
  const all = buf.toString('utf8', tokensAt, buf.length);
  const tokens = new Array<string>(meta.rows);
  let at = 0;
  for (let i = 0; i < meta.rows; i++) {
    const len = buf.readUInt32LE(lengthsAt + 4 * i);
    tokens[i] = all.slice(at, at + len);
    at += len;
  }
  if (at !== all.length) bad('token lengths do not match the tokens');
  const table: EmbeddingTable = {
    vocab: Vocabulary.trusted(tokens, meta.dim),
    dim: meta.dim,
    matrix,
    source: meta.source,
    format: meta.format,
    gzip: meta.gzip,
    stats: meta.stats,
  };
  return { table, extra: meta.extra };
}
