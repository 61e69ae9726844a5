import { parseConfig, type FieldSpec } from '@ch8/service-kit/config';
import { parseMetricsAddress } from '@ch8/service-kit/metrics';

export const datasetConfigSpec = {
  address: { env: 'CH8_DATASET_ADDR', kind: 'string', default: '127.0.0.1:50052', doc: 'address to listen on' },
  embeddingAddress: {
    env: 'CH8_EMBEDDING_ADDR',
    kind: 'string',
    default: '127.0.0.1:50051',
    doc: 'embedding service address',
  },
  embeddingTimeoutMs: {
    env: 'CH8_EMBEDDING_TIMEOUT_MS',
    kind: 'int',
    min: 100,
    max: 3_600_000,
    default: 900_000,
    doc: 'deadline of each embedding-service call in ms (the first prune of a large vector source takes minutes)',
  },
  dataRoots: {
    env: 'CH8_DATA_ROOTS',
    kind: 'list',
    default: [],
    doc: 'directories data sets may be read from over gRPC (comma-separated)',
  },
  maxBufferedBatches: {
    env: 'CH8_MAX_BUFFERED_BATCHES',
    kind: 'int',
    min: 1,
    max: 1024,
    default: 8,
    doc: 'batches a slow stream consumer may leave queued',
  },
  metricsAddress: {
    env: 'CH8_DATASET_METRICS_ADDR',
    kind: 'string',
    default: '127.0.0.1:9462',
    doc: 'HOST:PORT of the Prometheus metrics endpoint (GET /metrics; port 0 picks a free one, logged); "off" to disable',
  },
  logLevel: {
    env: 'CH8_LOG_LEVEL',
    kind: 'enum',
    values: ['debug', 'info', 'warn', 'error'] as const,
    default: 'info',
    doc: 'log level',
  },
} satisfies Record<string, FieldSpec>;

export type DatasetConfig = ReturnType<typeof parseDatasetConfig>;

export function parseDatasetConfig(env: Record<string, string | undefined>) {
  const c = parseConfig(datasetConfigSpec, env);
  return { ...c, metricsAddress: parseMetricsAddress(c.metricsAddress, 'CH8_DATASET_METRICS_ADDR') };
}
