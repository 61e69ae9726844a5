/**
 * Internal: a window over a file read in big chunks into one reused buffer, plain or gunzipped.
 * Memory stays constant (the window) whatever the file's size.
 */
import { open, stat } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { createGunzip } from 'node:zlib';
import { InvalidInputError, NotFoundError, PermissionDeniedError } from '@ch8/errors';

/** Default window: 16 MiB. */
export const DEFAULT_CHUNK_BYTES = 16 << 20;
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

  constructor(private readonly path: string, fd: FileHandle) {
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
        if (this.#done || n > 0) break;
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

/**
 * A window `buf[pos, end)` of unread bytes. `refill()` moves the unread tail to the front and reads more after it;
 * the window grows (up to MAX_WINDOW_BYTES) only when it is full of unread bytes.
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

  private constructor(path: string, private readonly src: ByteSource, fileSize: number, gzip: boolean, chunk: number) {
    this.path = path;
    this.fileSize = fileSize;
    this.gzip = gzip;
    this.buf = Buffer.allocUnsafe(chunk);
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
    return new ChunkReader(path, src, size, gzip, chunkBytes);
  }

  /** Bytes of the file read so far (compressed bytes for gzip). */
  get fileBytesRead(): number {
    return this.src.fileBytesRead;
  }

  /** Offset (in decompressed bytes) of buf[i]. */
  offsetOf(i: number): number {
    return this.base + i;
  }

  /** Reads more bytes after the unread ones. Returns false when nothing more could be read (end of file). */
  async refill(): Promise<boolean> {
    if (this.eof) return false;
    if (this.pos > 0) {
      if (this.end > this.pos) this.buf.copyWithin(0, this.pos, this.end);
      this.base += this.pos;
      this.end -= this.pos;
      this.pos = 0;
    }
    if (this.end === this.buf.length) {
      if (this.buf.length >= MAX_WINDOW_BYTES) {
        throw new InvalidInputError(`an entry is longer than ${MAX_WINDOW_BYTES} bytes`, { file: this.path });
      }
      const bigger = Buffer.allocUnsafe(Math.min(this.buf.length * 2, MAX_WINDOW_BYTES));
      this.buf.copy(bigger, 0, 0, this.end);
      this.buf = bigger;
    }
    const n = await this.src.read(this.buf, this.end, this.buf.length - this.end);
    if (n === 0) {
      this.eof = true;
      return false;
    }
    this.end += n;
    return true;
  }

  close(): Promise<void> {
    return this.src.close();
  }
}
