/**
 * The embedding service (problem 70): loads a vector source once, pruned to the words a data set needs, keeps the
 * table in memory under its table_id (the library's cache key) and serves its vocabulary, lookups and matrix.
 */
import { endianness } from 'node:os';
import { resolve } from 'node:path';
import {
  EmbeddingService,
  type Coverage,
  type LoadTableRequest,
  type StreamMatrixResponse,
  type TableInfo,
} from '@ch8/contracts/embedding';
import { CancelledError, InvalidInputError, NotFoundError } from '@ch8/errors';
import { cacheKey, loadOrBuildTable } from '@ch8/embeddings/cache';
import { detectFormat } from '@ch8/embeddings/format';
import { defaultVectorsPath } from '@ch8/embeddings/prune';
import type { EmbeddingTable } from '@ch8/embeddings/table';
import { createServiceMetrics } from '@ch8/service-kit/metrics';
import { createServer, type CallContext, type Ch8Server } from '@ch8/service-kit/server';
import type { Logger } from '@ch8/service-kit/logger';
import type { EmbeddingConfig } from './config.ts';
import { libraryFormat, protoFormat } from './formats.ts';
import { createEmbeddingMetrics } from './metrics.ts';
import { dataRoots } from './roots.ts';

export interface EmbeddingDeps {
  config: EmbeddingConfig;
  logger: Logger;
  /** The source an empty `source` loads (always allowed). Default: the wink GloVe JSON, defaultVectorsPath(). */
  defaultSource?: string;
  /** Relative data roots and cache dir resolve against it. Default: process.cwd(). */
  cwd?: string;
}

/** StreamMatrix chunk size when the request says 0. */
export const DEFAULT_CHUNK_BYTES = 1 << 20;
/** Largest chunk served whatever the request asks: well under the 64 MiB message limit. */
export const MAX_CHUNK_BYTES = 16 << 20;

type Plain<T> = Omit<T, '$typeName' | '$unknown'>;
type TableInfoInit = Omit<Plain<TableInfo>, 'coverage'> & { coverage: Plain<Coverage> };
type Chunk = Omit<Plain<StreamMatrixResponse>, 'vocabSize' | 'vocabHash'> & { vocabSize?: number; vocabHash?: string };

interface Loaded {
  table: EmbeddingTable;
  info: TableInfoInit;
}

const LITTLE_ENDIAN = endianness() === 'LE';

function infoOf(key: string, source: string, table: EmbeddingTable, cacheHit: boolean, seconds: number): TableInfoInit {
  const s = table.stats;
  return {
    tableId: key,
    source,
    format: protoFormat(table.format),
    vocabSize: table.vocab.size,
    dim: table.dim,
    vocabHash: table.vocab.hash,
    coverage: {
      // Keeping every word: every word of the source was asked for and found.
      requested: BigInt(s.requested ?? s.found),
      found: BigInt(s.found),
      missing: BigInt(s.missing),
      missingSample: [...s.missingSample],
      duplicates: BigInt(s.duplicates),
      invalidUtf8: BigInt(s.invalidUtf8),
    },
    cacheHit,
    bytesRead: BigInt(s.bytesRead),
    loadSeconds: seconds,
  };
}

/** Resolves with `work`, or rejects as soon as `signal` aborts (the work itself goes on for other waiters). */
function raceAbort<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new CancelledError('the call was cancelled'));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new CancelledError('the call was cancelled'));
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

/** The matrix rows [start, start + count) as little-endian bytes (a view when the machine is little-endian). */
function rowBytes(table: EmbeddingTable, start: number, count: number): Uint8Array {
  const values = table.matrix.subarray(start * table.dim, (start + count) * table.dim);
  if (LITTLE_ENDIAN) return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const out = new Uint8Array(values.byteLength);
  const view = new DataView(out.buffer);
  values.forEach((v, i) => view.setFloat32(4 * i, v, true));
  return out;
}

/** The embedding service, not yet listening: `server.listen` (port 0 in tests), then `server.ready()`. */
export function createEmbeddingServer(deps: EmbeddingDeps): { server: Ch8Server; close: () => Promise<void> } {
  const cwd = deps.cwd ?? process.cwd();
  const roots = dataRoots(deps.config.dataRoots, cwd);
  const cacheDir = resolve(cwd, deps.config.cacheDir);
  const tables = new Map<string, Loaded>();
  /** Builds in progress by key: concurrent LoadTable calls for the same key share one. */
  const building = new Map<string, Promise<Loaded>>();
  const metrics = createServiceMetrics('embedding');
  const recorded = createEmbeddingMetrics(metrics, () => new Set(tables.values()).size);

  const tableOf = (tableId: string): Loaded => {
    if (tableId === '') throw new InvalidInputError('table_id is required', { field: 'table_id' });
    const t = tables.get(tableId);
    if (t === undefined)
      throw new NotFoundError(`no table "${tableId}" is loaded (call LoadTable first)`, { field: 'table_id' });
    return t;
  };

  const build = async (
    key: string,
    path: string,
    source: string,
    req: LoadTableRequest,
    format: ReturnType<typeof libraryFormat>,
    logger: Logger,
  ) => {
    let lastLog = 0;
    const result = await loadOrBuildTable({
      source: path,
      ...(format !== undefined ? { format } : {}),
      words: req.keepAll ? null : req.words,
      cacheDir,
      chunkBytes: deps.config.readChunkBytes,
      onProgress: (p) => {
        const now = performance.now();
        if (now - lastLog < 1000) return;
        lastLog = now;
        logger.info('loading', { bytes_read: p.bytesRead, file_bytes: p.fileBytes, entries: p.entries });
      },
    });
    if (result.rebuilt !== undefined) logger.warn('cache file rebuilt', { why: result.rebuilt });
    // The key the library computed; it differs from `key` only when the file changed in between.
    const loaded: Loaded = {
      table: result.table,
      info: infoOf(result.key, source, result.table, result.cacheHit, result.seconds),
    };
    tables.set(result.key, loaded);
    if (result.key !== key) tables.set(key, loaded);
    logger.info('table loaded', {
      table_id: result.key,
      vocab_size: result.table.vocab.size,
      dim: result.table.dim,
      cache_hit: result.cacheHit,
      seconds: result.seconds,
    });
    return loaded;
  };

  const loadTable = async (req: LoadTableRequest, ctx: CallContext): Promise<{ table: TableInfoInit }> => {
    const t0 = performance.now();
    let format = libraryFormat(req.format);
    if (!req.keepAll && req.words.length === 0) {
      throw new InvalidInputError('the word list is empty: send words or set keep_all', { field: 'words' });
    }
    const path = req.source === '' ? (deps.defaultSource ?? defaultVectorsPath()) : await roots.resolve(req.source);
    const source = req.source === '' ? path : req.source;
    // Detected formats are named explicitly, so "detect" and the format it finds give the same table_id.
    format ??= (await detectFormat(path)).format;
    const key = await cacheKey(path, format, req.keepAll ? null : req.words);
    const ready = tables.get(key);
    if (ready !== undefined) {
      recorded.tableLoaded('memory');
      return { table: { ...ready.info, cacheHit: true, loadSeconds: (performance.now() - t0) / 1000 } };
    }
    let pending = building.get(key);
    const shared = pending !== undefined;
    if (pending === undefined) {
      pending = build(key, path, source, req, format, ctx.logger).finally(() => building.delete(key));
      building.set(key, pending);
    }
    const loaded = await raceAbort(pending, ctx.signal);
    recorded.tableLoaded(shared ? 'memory' : loaded.info.cacheHit ? 'disk_cache' : 'source');
    return {
      table: shared ? { ...loaded.info, cacheHit: true, loadSeconds: (performance.now() - t0) / 1000 } : loaded.info,
    };
  };

  const server = createServer({ name: 'embedding', logger: deps.logger, metrics }).add(EmbeddingService, {
    loadTable,

    getVocabulary(req) {
      const { table } = tableOf(req.tableId);
      return { tokens: [...table.vocab.tokens], vocabHash: table.vocab.hash, dim: table.dim };
    },

    lookup(req) {
      const { table } = tableOf(req.tableId);
      return {
        entries: req.tokens.map((token) => {
          const id = table.vocab.idOf(token);
          if (id === undefined) return { token };
          const vector = req.includeVectors
            ? Array.from(table.matrix.subarray(id * table.dim, (id + 1) * table.dim))
            : [];
          return { token, id, vector };
        }),
      };
    },

    async *streamMatrix(req, ctx) {
      const { table } = tableOf(req.tableId);
      const maxBytes = Math.min(req.maxChunkBytes === 0 ? DEFAULT_CHUNK_BYTES : req.maxChunkBytes, MAX_CHUNK_BYTES);
      const rowBytesN = 4 * table.dim;
      const rowsPerChunk = Math.floor(maxBytes / rowBytesN);
      if (rowsPerChunk < 1) {
        throw new InvalidInputError(
          `max_chunk_bytes ${req.maxChunkBytes} is smaller than one row (${rowBytesN} bytes)`,
          {
            field: 'max_chunk_bytes',
          },
        );
      }
      const rows = table.vocab.size;
      for (let start = 0; start < rows; start += rowsPerChunk) {
        if (ctx.signal.aborted) return;
        const count = Math.min(rowsPerChunk, rows - start);
        const chunk: Chunk = {
          rowStart: start,
          rowCount: count,
          dim: table.dim,
          data: rowBytes(table, start, count),
        };
        if (start === 0) {
          chunk.vocabSize = rows;
          chunk.vocabHash = table.vocab.hash;
        }
        yield chunk;
        recorded.rowsSent(count);
      }
    },

    listTables() {
      const seen = new Set<Loaded>();
      const out: TableInfoInit[] = [];
      for (const t of tables.values()) {
        if (seen.has(t)) continue;
        seen.add(t);
        out.push(t.info);
      }
      return { tables: out };
    },
  });
  return {
    server,
    close: async () => {
      await Promise.allSettled([...building.values()]);
      tables.clear();
    },
  };
}
