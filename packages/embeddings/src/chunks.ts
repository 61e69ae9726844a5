/**
 * Internal: a window over a file read in big chunks into one reused buffer, plain or gunzipped.
 * Memory stays constant (the window) whatever the file's size.
 */
import { open, stat } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { createGunzip } from 'node:zlib';
import { InvalidInputError, NotFoundError, PermissionDeniedError } from '@ch8/errors';

/**
 * Default read size: 1 MiB. Measured here on a 3.6 GB file in page cache, 1 MiB reads ran 2-3x faster than 16 MiB
 * ones: the chunk is still in the CPU cache when the parser reads it.
 */
export const DEFAULT_CHUNK_BYTES = 1 << 20;
/** A single entry (word, line, JSON value) may not exceed this. */
export const MAX_WINDOW_BYTES = 256 << 20;

/** gzip's two magic bytes. */
export function isGzipMagic(b: Uint8Array): boolean {
  return b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b;
}

/** Maps an fs error for `path` to a typed error; rethrows anything else. */
export function fsError(path: string, e: unknown): never {
  const code = (e as { code?: unknown } | null)?.code;
  if (code === 'ENOENT' || code === 'ENOTDIR') throw new NotFoundError('no such file', { file: path });
  if (code === 'EACCES' || code === 'EPERM') throw new PermissionDeniedError('cannot read file', { file: path });
  if (code === 'EISDIR') throw new InvalidInputError('is a directory, not a vector file', { file: path });
  throw e;
}

interface ByteSource {
  /** Reads up to `length` bytes into `into` at `offset`; 0 at the end. */
  read(into: Buffer, offset: number, length: number): Promise<number>;
  /** Bytes of the file consumed so far (compressed bytes for gzip). */
  readonly fileBytesRead: number;
  close(): Promise<void>;
}

class PlainSource implements ByteSource {
  fileBytesRead = 0;
  constructor(private readonly fh: FileHandle) {}
  async read(into: Buffer, offset: number, length: number): Promise<number> {
    const { bytesRead } = await this.fh.read(into, offset, length, null);
    this.fileBytesRead += bytesRead;
    return bytesRead;
  }
  close(): Promise<void> {
    return this.fh.close();
  }
}

class GzipSource implements ByteSource {
  readonly #raw: ReturnType<typeof createReadStream>;
  readonly #it: AsyncIterator<Buffer>;
  #pending: Buffer | undefined;
  #done = false;

  constructor(
    private readonly path: string,
    fd: FileHandle,
  ) {
    this.#raw = createReadStream('', { fd, highWaterMark: 4 << 20, autoClose: true });
    const gunzip = createGunzip({ chunkSize: 1 << 20 });
    this.#raw.on('error', (e) => gunzip.destroy(e));
    this.#raw.pipe(gunzip);
    this.#it = gunzip[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  }

  get fileBytesRead(): number {
    return this.#raw.bytesRead;
  }

  async read(into: Buffer, offset: number, length: number): Promise<number> {
    let n = 0;
    while (n < length) {
      if (this.#pending === undefined || this.#pending.length === 0) {
        if (this.#done) break;
        let r: IteratorResult<Buffer>;
        try {
          r = await this.#it.next();
        } catch (e) {
          const msg = e instanceof Error ? e.message : String(e);
          throw new InvalidInputError(`corrupt gzip stream: ${msg}`, { file: this.path }, { cause: e });
        }
        if (r.done === true) {
          this.#done = true;
          break;
        }
        this.#pending = r.value;
        continue;
      }
      const take = Math.min(length - n, this.#pending.length);
      this.#pending.copy(into, offset + n, 0, take);
      this.#pending = this.#pending.subarray(take);
      n += take;
    }
    return n;
  }

  async close(): Promise<void> {
    this.#done = true;
    await this.#it.return?.();
    this.#raw.destroy();
  }
}

/** Bytes kept in front of each chunk so the unread tail of the previous chunk can be put before it, uncopied. */
const HEADROOM = 1 << 20;

/**
 * A window `buf[pos, end)` of unread bytes. `refill()` puts the unread tail in front of the next chunk. The next
 * chunk is read ahead into a second buffer while the caller parses the current one, so reading and parsing overlap
 * (the read runs on libuv's thread pool). The window grows (up to MAX_WINDOW_BYTES) only for an entry longer than
 * the headroom.
 */
export class ChunkReader {
  buf: Buffer;
  pos = 0;
  end = 0;
  /** True once the source returned 0 bytes. */
  eof = false;
  /** Decompressed (or plain) bytes consumed before buf[0]. */
  base = 0;
  readonly fileSize: number;
  readonly gzip: boolean;
  readonly path: string;
  readonly #chunk: number;
  #spare: Buffer;
  #ahead: Promise<number> | undefined;

  private constructor(
    path: string,
    private readonly src: ByteSource,
    fileSize: number,
    gzip: boolean,
    chunk: number,
  ) {
    this.path = path;
    this.fileSize = fileSize;
    this.gzip = gzip;
    this.#chunk = chunk;
    const headroom = Math.min(HEADROOM, chunk);
    this.buf = Buffer.allocUnsafe(headroom + chunk);
    this.#spare = Buffer.allocUnsafe(headroom + chunk);
    this.pos = this.end = headroom;
    this.base = -headroom;
  }

  /** Opens `path`; detects gzip from the magic bytes. Missing file -> NotFoundError. */
  static async open(path: string, chunkBytes = DEFAULT_CHUNK_BYTES): Promise<ChunkReader> {
    let fh: FileHandle;
    let size: number;
    try {
      const st = await stat(path);
      if (st.isDirectory()) throw Object.assign(new Error('directory'), { code: 'EISDIR' });
      size = st.size;
      fh = await open(path, 'r');
    } catch (e) {
      fsError(path, e);
    }
    const magic = Buffer.alloc(2);
    const { bytesRead } = await fh.read(magic, 0, 2, 0);
    const gzip = isGzipMagic(magic.subarray(0, bytesRead));
    const src = gzip ? new GzipSource(path, fh) : new PlainSource(fh);
    // A small plain file needs no 16 MiB window.
    const chunk = gzip ? chunkBytes : Math.min(chunkBytes, Math.max(size, 4096));
    return new ChunkReader(path, src, size, gzip, chunk);
  }

  /** Bytes of the file read so far (compressed bytes for gzip). */
  get fileBytesRead(): number {
    return this.src.fileBytesRead;
  }

  /** Offset (in decompressed bytes) of buf[i]. */
  offsetOf(i: number): number {
    return this.base + i;
  }

  #readAhead(): Promise<number> {
    const headroom = this.#spare.length - this.#chunk;
    const p = this.src.read(this.#spare, headroom, this.#chunk);
    p.catch(() => undefined); // surfaced by the refill() that awaits it
    return p;
  }

  /** Reads more bytes after the unread ones. Returns false when nothing more could be read (end of file). */
  async refill(): Promise<boolean> {
    if (this.eof) return false;
    const n = await (this.#ahead ?? this.#readAhead());
    this.#ahead = undefined;
    if (n === 0) {
      this.eof = true;
      return false;
    }
    const cur = this.buf;
    const next = this.#spare;
    const headroom = next.length - this.#chunk;
    const tail = this.end - this.pos;
    const chunkOffset = this.base + this.end; // file offset of next[headroom]
    if (tail <= headroom) {
      cur.copy(next, headroom - tail, this.pos, this.end);
      this.buf = next;
      this.#spare = cur;
      this.pos = headroom - tail;
      this.end = headroom + n;
      this.base = chunkOffset - headroom;
    } else {
      // An entry longer than the headroom: one bigger window holding the tail and the new bytes.
      if (tail + n > MAX_WINDOW_BYTES) {
        throw new InvalidInputError(`an entry is longer than ${MAX_WINDOW_BYTES} bytes`, { file: this.path });
      }
      const big = Buffer.allocUnsafe(Math.max(tail + n, cur.length));
      cur.copy(big, 0, this.pos, this.end);
      next.copy(big, tail, headroom, headroom + n);
      this.buf = big;
      this.base = chunkOffset - tail;
      this.pos = 0;
      this.end = tail + n;
    }
    this.#ahead = this.#readAhead();
    return true;
  }

  async close(): Promise<void> {
    await this.#ahead?.catch(() => undefined);
    this.#ahead = undefined;
    await this.src.close();
  }
}
