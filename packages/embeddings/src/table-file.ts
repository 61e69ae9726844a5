/**
 * A compact binary file for one embedding table, loaded with one read and no per-element copy.
 *
 * Layout (all integers little-endian):
 *
 * | offset | size | content                                                                 |
 * |--------|------|-------------------------------------------------------------------------|
 * | 0      | 8    | magic `CH8EMBT1`                                                        |
 * | 8      | 4    | uint32: byte length M of the metadata JSON                              |
 * | 12     | 4    | uint32: 0 (reserved)                                                    |
 * | 16     | 8    | uint64: byte length P of the payload (everything after byte 56)         |
 * | 24     | 32   | sha256 of the payload                                                   |
 * | 56     | M    | metadata JSON (dim, rows, source, format, gzip, stats, vocabHash, extra) |
 * | 56+M   | pad  | zero bytes up to a multiple of 8                                        |
 * | A      | 4*rows*dim | the matrix, float32 LE, row-major                                 |
 * | A+4rd  | rest | JSON array of the tokens in id order                                    |
 *
 * A file whose length, magic or checksum does not match is rejected (InvalidInputError), never served.
 */
import { createHash, randomBytes } from 'node:crypto';
import { endianness } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { mkdir, open, rename, unlink } from 'node:fs/promises';
import { InvalidInputError } from '@ch8/errors';
import { fsError } from './chunks.ts';
import type { VectorFormat } from './format.ts';
import type { EmbeddingTable, PruneStats } from './table.ts';
import { Vocabulary } from './vocabulary.ts';

const MAGIC = Buffer.from('CH8EMBT1', 'latin1');
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

/**
 * Writes `table` to `path` atomically: a temporary file in the same folder, flushed, then renamed over `path`.
 * Readers never see a half-written file; on failure the temporary file is removed.
 */
export async function writeTable(
  path: string,
  table: EmbeddingTable,
  extra: Record<string, unknown> = {},
): Promise<void> {
  const rows = table.vocab.size;
  if (table.matrix.length !== rows * table.dim) {
    throw new InvalidInputError(`matrix has ${table.matrix.length} values, expected ${rows} x ${table.dim}`, {
      field: 'matrix',
    });
  }
  const tokens = Buffer.from(JSON.stringify(table.vocab.tokens), 'utf8');
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
  const parts = [metaBytes, Buffer.alloc(pad), matrixBytes, tokens];
  const hash = createHash('sha256');
  let payload = 0;
  for (const p of parts) {
    hash.update(p);
    payload += p.length;
  }
  const head = Buffer.alloc(FIXED);
  MAGIC.copy(head, 0);
  head.writeUInt32LE(metaBytes.length, 8);
  head.writeBigUInt64LE(BigInt(payload), 16);
  hash.digest().copy(head, 24);

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
  const sum = createHash('sha256').update(buf.subarray(FIXED)).digest();
  if (!sum.equals(buf.subarray(24, FIXED))) bad('checksum mismatch');
  let meta: Meta;
  try {
    meta = JSON.parse(buf.toString('utf8', FIXED, FIXED + metaLen)) as Meta;
  } catch {
    return bad('unreadable metadata');
  }
  const start = FIXED + metaLen + ((8 - ((FIXED + metaLen) % 8)) % 8);
  const n = meta.rows * meta.dim;
  const tokensAt = start + 4 * n;
  if (tokensAt + meta.tokensBytes !== buf.length) bad('sections do not add up to the file length');
  let matrix: Float32Array;
  if (LITTLE_ENDIAN && (buf.byteOffset + start) % 4 === 0) {
    matrix = new Float32Array(buf.buffer, buf.byteOffset + start, n);
  } else {
    matrix = new Float32Array(n);
    for (let i = 0; i < n; i++) matrix[i] = buf.readFloatLE(start + 4 * i);
  }
  const tokens = JSON.parse(buf.toString('utf8', tokensAt, buf.length)) as string[];
  if (tokens.length !== meta.rows) bad(`${tokens.length} tokens for ${meta.rows} rows`);
  const table: EmbeddingTable = {
    vocab: new Vocabulary(tokens, meta.dim),
    dim: meta.dim,
    matrix,
    source: meta.source,
    format: meta.format,
    gzip: meta.gzip,
    stats: meta.stats,
  };
  return { table, extra: meta.extra };
}
