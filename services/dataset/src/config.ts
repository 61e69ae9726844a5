import { parseConfig, type FieldSpec } from '@ch8/service-kit/config';
import { parseMetricsAddress } from '@ch8/service-kit/metrics';
import { tlsConfigSpec } from '@ch8/service-kit/tls';
import {
  healthAddressSpec,
  limitsConfigSpec,
  logLevelSpec,
  metricsAddressSpec,
  transportFromConfig,
} from '@ch8/service-kit/transport';

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
  ...metricsAddressSpec('CH8_DATASET', '127.0.0.1:9462'),
  ...tlsConfigSpec,
  ...healthAddressSpec('CH8_DATASET'),
  // PrepareDataset against a large vector source takes minutes; StreamBatches lasts a whole pass over the data: it
  // has no default and no longest deadline (STREAM_DEADLINES).
  ...limitsConfigSpec('CH8_DATASET', {
    maxMessageBytes: 64 * 1024 * 1024,
    maxConcurrentCalls: 256,
    defaultDeadlineMs: 900_000,
    maxDeadlineMs: 3_600_000,
  }),
  ...logLevelSpec,
} satisfies Record<string, FieldSpec>;

/** StreamBatches feeds a training run for as long as the run reads: no deadline unless its caller sets one. */
export const STREAM_DEADLINES = { StreamBatches: { defaultDeadlineMs: 0, maxDeadlineMs: 0 } } as const;

export type DatasetConfig = ReturnType<typeof parseDatasetConfig>;

export function parseDatasetConfig(env: Record<string, string | undefined>) {
  const c = parseConfig(datasetConfigSpec, env);
  return {
    ...c,
    metricsAddress: parseMetricsAddress(c.metricsAddress, 'CH8_DATASET_METRICS_ADDR'),
    transport: transportFromConfig(c, 'CH8_DATASET', STREAM_DEADLINES),
  };
}
