/**
 * Pruned tables cached on disk: built once per (source file identity, word set), loaded near instantly after.
 */
import { createHash } from 'node:crypto';
import { realpath, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { isInvalidInput, isNotFound } from '@ch8/errors';
import { fsError } from './chunks.ts';
import type { VectorFormat } from './format.ts';
import { pruneVectors } from './prune.ts';
import type { Progress } from './prune.ts';
import type { EmbeddingTable } from './table.ts';
import { readTable, writeTable } from './table-file.ts';
import { PAD_TOKEN } from './vocabulary.ts';

export interface LoadOrBuildOptions {
  /** Path of the vector file. */
  source: string;
  /** Skip detection and read as this format. */
  format?: VectorFormat;
  /** Words to keep; null keeps every word. */
  words: Iterable<string> | null;
  /** Folder of the cache files (created when missing). */
  cacheDir: string;
  chunkBytes?: number;
  signal?: AbortSignal;
  onProgress?: (p: Progress) => void;
}

export interface LoadOrBuildResult {
  table: EmbeddingTable;
  /** True when the table came from the cache. */
  cacheHit: boolean;
  /** Identifies (source identity, format, word set): the same inputs give the same key. Usable as a table id. */
  key: string;
  /** The cache file. */
  cachePath: string;
  /** Why an existing cache file was not used (corrupt, truncated, other key), when it was rebuilt. */
  rebuilt?: string;
  /** Wall time of this call. */
  seconds: number;
}

/**
 * The cache key of a source and word set: sha256 over the source's real path, size and modification time, the
 * format asked for, and the sorted distinct words (or "all"). A changed file gets a new key.
 *
 * @throws NotFoundError when the source does not exist.
 */
export async function cacheKey(
  source: string,
  format: VectorFormat | undefined,
  words: Iterable<string> | null,
): Promise<string> {
  let id: { path: string; size: number; mtimeMs: number };
  try {
    const st = await stat(source);
    id = { path: await realpath(source), size: st.size, mtimeMs: st.mtimeMs };
  } catch (e) {
    fsError(source, e);
  }
  let wordsHash = 'all';
  if (words !== null) {
    const sorted = [...new Set(words)].filter((w) => w !== PAD_TOKEN).sort();
    wordsHash = createHash('sha256').update(JSON.stringify(sorted)).digest('hex');
  }
  return createHash('sha256')
    .update(JSON.stringify({ v: 1, ...id, format: format ?? 'detect', words: wordsHash }))
    .digest('hex')
    .slice(0, 32);
}

/**
 * Returns the pruned table of `source` for `words` from `cacheDir`, or builds it (one pass, {@link pruneVectors})
 * and stores it there (atomic write). A cache file that is truncated, corrupt (checksum) or for another key is
 * rebuilt, never served. A hit reads one file into one buffer; the matrix is a view of it.
 *
 * @throws NotFoundError when the source does not exist; InvalidInputError as pruneVectors does.
 */
export async function loadOrBuildTable(opts: LoadOrBuildOptions): Promise<LoadOrBuildResult> {
  const t0 = performance.now();
  const words = opts.words === null ? null : [...opts.words];
  const key = await cacheKey(opts.source, opts.format, words);
  const cachePath = join(opts.cacheDir, `${key}.ch8emb`);
  let rebuilt: string | undefined;
  try {
    const stored = await readTable(cachePath);
    if (stored.extra.key === key) {
      const table = { ...stored.table, source: opts.source };
      return { table, cacheHit: true, key, cachePath, seconds: (performance.now() - t0) / 1000 };
    }
    rebuilt = 'the cache file belongs to another key';
  } catch (e) {
    if (isInvalidInput(e)) rebuilt = e.detail;
    else if (!isNotFound(e)) throw e;
  }
  // One build per cache file at a time within this process: concurrent callers share it.
  const pending = building.get(cachePath);
  if (pending !== undefined) {
    const table = await pending;
    return { table, cacheHit: false, key, cachePath, seconds: (performance.now() - t0) / 1000 };
  }
  const build = buildAndStore(opts, words, cachePath, key);
  building.set(cachePath, build);
  let table: EmbeddingTable;
  try {
    table = await build;
  } finally {
    building.delete(cachePath);
  }
  return {
    table,
    cacheHit: false,
    key,
    cachePath,
    ...(rebuilt !== undefined ? { rebuilt } : {}),
    seconds: (performance.now() - t0) / 1000,
  };
}

const building = new Map<string, Promise<EmbeddingTable>>();

async function buildAndStore(
  opts: LoadOrBuildOptions,
  words: string[] | null,
  cachePath: string,
  key: string,
): Promise<EmbeddingTable> {
  const table = await pruneVectors({
    source: opts.source,
    words,
    ...(opts.format !== undefined ? { format: opts.format } : {}),
    ...(opts.chunkBytes !== undefined ? { chunkBytes: opts.chunkBytes } : {}),
    ...(opts.signal !== undefined ? { signal: opts.signal } : {}),
    ...(opts.onProgress !== undefined ? { onProgress: opts.onProgress } : {}),
  });
  await writeTable(cachePath, table, { key });
  return table;
}
