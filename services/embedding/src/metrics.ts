/**
 * The embedding service's own Prometheus metrics, beside the service kit's per-call ones on the same registry
 * (`ch8_embedding_`): where LoadTable found its tables, how many are in memory, and the matrix rows streamed.
 */
import type { ServiceMetrics } from '@ch8/service-kit/metrics';

/** Where a LoadTable answer's table came from. */
export type TableSource = 'source' | 'disk_cache' | 'memory';

export interface EmbeddingMetrics {
  tableLoaded(from: TableSource): void;
  rowsSent(rows: number): void;
}

export function createEmbeddingMetrics(service: ServiceMetrics, tablesInMemory: () => number): EmbeddingMetrics {
  const loads = service.counter<'from'>({
    name: 'table_loads_total',
    help: 'LoadTable answers, by where the table came from: source (the vector file read and pruned), disk_cache (the pruned table read from the cache), memory (loaded already, or a load in progress joined)',
    labelNames: ['from'],
  });
  for (const from of ['source', 'disk_cache', 'memory'] as const) loads.inc({ from }, 0);
  service.gauge({
    name: 'tables_loaded',
    help: 'Pruned tables in memory',
    collect: (g) => g.set(tablesInMemory()),
  });
  const rows = service.counter({
    name: 'matrix_rows_sent_total',
    help: 'Embedding matrix rows sent by StreamMatrix',
  });
  return {
    tableLoaded: (from) => loads.inc({ from }),
    rowsSent: (n) => rows.inc(n),
  };
}
