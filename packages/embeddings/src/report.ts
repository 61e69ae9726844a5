/**
 * Pure builders of the JSON documents the CLI prints for `vectors prune` and `vectors lookup`.
 */
import type { EmbeddingTable } from './table.ts';

/** The JSON printed by `vectors prune`. */
export interface PruneReport {
  source: string;
  format: string;
  requested: number | null;
  found: number;
  missing: number;
  missing_sample: string[];
  duplicates: number;
  invalid_utf8: number;
  dim: number;
  /** Rows including `<pad>`. */
  vocab_size: number;
  vocab_hash: string;
  seconds: number;
  bytes_read: number;
  peak_rss_bytes: number;
  cache_hit: boolean;
}

/**
 * @param run seconds of the whole command, peak RSS (e.g. `process.resourceUsage().maxRSS * 1024`), cache hit.
 */
export function pruneReport(
  table: EmbeddingTable,
  run: { seconds: number; peakRssBytes: number; cacheHit?: boolean },
): PruneReport {
  const s = table.stats;
  return {
    source: table.source,
    format: table.gzip ? `${table.format}+gzip` : table.format,
    requested: s.requested,
    found: s.found,
    missing: s.missing,
    missing_sample: [...s.missingSample],
    duplicates: s.duplicates,
    invalid_utf8: s.invalidUtf8,
    dim: table.dim,
    vocab_size: table.vocab.size,
    vocab_hash: table.vocab.hash,
    seconds: run.seconds,
    bytes_read: s.bytesRead,
    peak_rss_bytes: run.peakRssBytes,
    cache_hit: run.cacheHit ?? false,
  };
}

/** One token of `vectors lookup`: id and vector null when the vocabulary lacks the token. */
export interface LookupEntry {
  token: string;
  id: number | null;
  /** The float32 values as exact JS numbers (JSON prints them so they parse back to the same float32). */
  vector: number[] | null;
}

/** The JSON printed by `vectors lookup`: `{"tokens": [{token, id, vector}]}`, in the order asked. */
export function lookupReport(table: EmbeddingTable, tokens: readonly string[]): { tokens: LookupEntry[] } {
  return {
    tokens: tokens.map((token) => {
      const id = table.vocab.idOf(token);
      if (id === undefined) return { token, id: null, vector: null };
      return { token, id, vector: Array.from(table.matrix.subarray(id * table.dim, (id + 1) * table.dim)) };
    }),
  };
}
