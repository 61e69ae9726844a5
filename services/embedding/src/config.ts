import { isAbsolute, join, resolve } from 'node:path';
import { ch8Home, parseConfig, type FieldSpec } from '@ch8/service-kit/config';
import { parseMetricsAddress } from '@ch8/service-kit/metrics';
import { tlsConfigSpec } from '@ch8/service-kit/tls';
import {
  healthAddressSpec,
  limitsConfigSpec,
  logLevelSpec,
  metricsAddressSpec,
  transportFromConfig,
} from '@ch8/service-kit/transport';

export const embeddingConfigSpec = {
  address: { env: 'CH8_EMBEDDING_ADDR', kind: 'string', default: '127.0.0.1:50051', doc: 'address to listen on' },
  dataRoots: {
    env: 'CH8_DATA_ROOTS',
    kind: 'list',
    default: [],
    doc: 'directories vector sources may be read from over gRPC (comma-separated); the default source is always allowed',
  },
  cacheDir: {
    env: 'CH8_CACHE_DIR',
    kind: 'string',
    default: '',
    doc: 'pruned-table cache directory (default <CH8_HOME>/embeddings)',
  },
  readChunkBytes: {
    env: 'CH8_EMBEDDING_READ_CHUNK_BYTES',
    kind: 'int',
    min: 64 * 1024,
    default: 1024 * 1024,
    doc: 'read window when loading a source; smaller windows stall other calls less (each window is parsed in one go)',
  },
  ...metricsAddressSpec('CH8_EMBEDDING', '127.0.0.1:9461'),
  ...tlsConfigSpec,
  ...healthAddressSpec('CH8_EMBEDDING'),
  // Loading a large vector source (GoogleNews) takes minutes: the dataset service allows 15 (CH8_EMBEDDING_TIMEOUT_MS).
  ...limitsConfigSpec('CH8_EMBEDDING', {
    maxMessageBytes: 64 * 1024 * 1024,
    maxConcurrentCalls: 256,
    defaultDeadlineMs: 900_000,
    maxDeadlineMs: 3_600_000,
  }),
  ...logLevelSpec,
} satisfies Record<string, FieldSpec>;

export type EmbeddingConfig = ReturnType<typeof parseEmbeddingConfig>;

/** Parses the settings from `env`; the cache defaults to `<CH8_HOME>/embeddings`, never to the package folder. */
export function parseEmbeddingConfig(env: Record<string, string | undefined>, cwd: string = process.cwd()) {
  const c = parseConfig(embeddingConfigSpec, env);
  const cacheDir =
    c.cacheDir === ''
      ? join(ch8Home(env, cwd), 'embeddings')
      : isAbsolute(c.cacheDir)
        ? c.cacheDir
        : resolve(cwd, c.cacheDir);
  return {
    ...c,
    cacheDir,
    metricsAddress: parseMetricsAddress(c.metricsAddress, 'CH8_EMBEDDING_METRICS_ADDR'),
    transport: transportFromConfig(c, 'CH8_EMBEDDING'),
  };
}
