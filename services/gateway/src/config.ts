import { isAbsolute, join, resolve } from 'node:path';
import { InvalidInputError } from '@ch8/errors';
import { checkModelName } from '@ch8/model-repository/names';
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

export const gatewayConfigSpec = {
  address: { env: 'CH8_GATEWAY_ADDR', kind: 'string', default: '127.0.0.1:50054', doc: 'address to listen on' },
  modelRepository: {
    env: 'CH8_MODEL_REPOSITORY',
    kind: 'string',
    default: '',
    doc: 'directory of exported, versioned models <root>/<name>/<version>/ (default <CH8_HOME>/models)',
  },
  defaultModel: {
    env: 'CH8_GATEWAY_DEFAULT_MODEL',
    kind: 'string',
    default: '',
    doc: 'model answering requests that name none (default: the only model, when there is exactly one)',
  },
  pollIntervalMs: {
    env: 'CH8_GATEWAY_POLL_MS',
    kind: 'int',
    min: 0,
    max: 86_400_000,
    default: 2000,
    doc: 'how often the model repository is scanned for new versions, ms (0: only at start and on ReloadModels)',
  },
  keepVersions: {
    env: 'CH8_GATEWAY_KEEP_VERSIONS',
    kind: 'int',
    min: 1,
    max: 64,
    default: 1,
    doc: 'default policy: serve the newest N versions of each model that load',
  },
  versionPolicy: {
    env: 'CH8_GATEWAY_VERSION_POLICY',
    kind: 'string',
    default: '',
    doc: 'per-model policies, comma-separated: NAME=VERSION pins a version, NAME=latest:N keeps the newest N',
  },
  maxBatch: {
    env: 'CH8_GATEWAY_MAX_BATCH',
    kind: 'int',
    min: 1,
    max: 4096,
    default: 256,
    doc: 'texts per batched model call',
  },
  maxDelayMs: {
    env: 'CH8_GATEWAY_MAX_DELAY_MS',
    kind: 'number',
    min: 0,
    max: 10_000,
    default: 0,
    doc: 'longest a text waits for others to fill a batch, ms (0: a call takes what is queued when the model is free)',
  },
  maxQueue: {
    env: 'CH8_GATEWAY_MAX_QUEUE',
    kind: 'int',
    min: 1,
    default: 10_000,
    doc: 'texts waiting per model version before calls are refused with RESOURCE_EXHAUSTED',
  },
  maxTextsPerCall: {
    env: 'CH8_GATEWAY_MAX_TEXTS',
    kind: 'int',
    min: 1,
    default: 4096,
    doc: 'texts one call may carry (INVALID_ARGUMENT beyond)',
  },
  maxTextBytes: {
    env: 'CH8_GATEWAY_MAX_TEXT_BYTES',
    kind: 'int',
    min: 1,
    default: 16_384,
    doc: 'UTF-8 bytes one text may have (INVALID_ARGUMENT beyond)',
  },
  drainTimeoutMs: {
    env: 'CH8_GATEWAY_DRAIN_MS',
    kind: 'int',
    min: 0,
    default: 30_000,
    doc: 'longest an unloaded version waits for its in-flight requests before it is disposed, ms',
  },
  workers: {
    env: 'CH8_GATEWAY_WORKERS',
    kind: 'int',
    min: 1,
    max: 64,
    default: 1,
    doc: 'serving processes sharing the port (node:cluster; each loads every model, the limits apply per process)',
  },
  backend: {
    env: 'CH8_BACKEND',
    kind: 'enum',
    values: ['auto', 'tfjs-node-gpu', 'tfjs-node', 'webgpu', 'wasm', 'cpu'] as const,
    default: 'auto',
    doc: 'compute backend the models run on, chosen once at start',
  },
  ...metricsAddressSpec('CH8_GATEWAY', '127.0.0.1:9464'),
  ...tlsConfigSpec,
  ...healthAddressSpec('CH8_GATEWAY'),
  // Requests in flight hold at most MAX_CONCURRENT_CALLS x MAX_MESSAGE_BYTES (256 MiB by default; the process grows by
  // about 1.6 times that with the decoded texts, measured by bench/gateway-flood.ts), under the pod's 1 GiB: a call
  // beyond the limit is refused before its request is read. 2 MiB holds 4096 texts of 500 bytes.
  ...limitsConfigSpec('CH8_GATEWAY', {
    maxMessageBytes: 2 * 1024 * 1024,
    maxConcurrentCalls: 128,
    defaultDeadlineMs: 30_000,
    maxDeadlineMs: 300_000,
  }),
  ...logLevelSpec,
} satisfies Record<string, FieldSpec>;

/** Which versions of a model serve: one pinned version, or the newest N that load. */
export type VersionPolicy = { kind: 'pinned'; version: number } | { kind: 'latest'; count: number };

export type GatewayConfig = ReturnType<typeof parseGatewayConfig>;

/** Parses CH8_GATEWAY_VERSION_POLICY: `name=3,other=latest:2`. */
export function parseVersionPolicies(text: string): Map<string, VersionPolicy> {
  const out = new Map<string, VersionPolicy>();
  const field = 'CH8_GATEWAY_VERSION_POLICY';
  for (const part of text.split(',')) {
    const item = part.trim();
    if (item === '') continue;
    const eq = item.indexOf('=');
    if (eq <= 0)
      throw new InvalidInputError(`expected NAME=VERSION or NAME=latest:N, got ${JSON.stringify(item)}`, { field });
    const name = item.slice(0, eq).trim();
    const value = item.slice(eq + 1).trim();
    checkModelName(name, field);
    const latest = /^latest:(\d+)$/.exec(value);
    if (latest !== null) {
      const count = Number(latest[1]);
      if (count < 1) throw new InvalidInputError(`latest:N needs N >= 1, got ${JSON.stringify(item)}`, { field });
      out.set(name, { kind: 'latest', count });
    } else if (/^[1-9]\d*$/.test(value)) {
      out.set(name, { kind: 'pinned', version: Number(value) });
    } else {
      throw new InvalidInputError(`expected NAME=VERSION or NAME=latest:N, got ${JSON.stringify(item)}`, { field });
    }
  }
  return out;
}

/**
 * Parses the gateway's settings from `env`. The model repository resolves against `cwd` and defaults to
 * `<CH8_HOME>/models`, where the trainer exports.
 */
export function parseGatewayConfig(env: Record<string, string | undefined>, cwd: string = process.cwd()) {
  const c = parseConfig(gatewayConfigSpec, env);
  const given = c.modelRepository;
  const modelRepository =
    given === '' ? join(ch8Home(env, cwd), 'models') : isAbsolute(given) ? given : resolve(cwd, given);
  if (c.defaultModel !== '') checkModelName(c.defaultModel, 'CH8_GATEWAY_DEFAULT_MODEL');
  if (c.maxTextsPerCall > c.maxQueue) {
    throw new InvalidInputError(
      `CH8_GATEWAY_MAX_TEXTS (${c.maxTextsPerCall}) must not exceed CH8_GATEWAY_MAX_QUEUE (${c.maxQueue}): such a call could never be queued`,
      { field: 'CH8_GATEWAY_MAX_TEXTS' },
    );
  }
  return {
    ...c,
    modelRepository,
    versionPolicies: parseVersionPolicies(c.versionPolicy),
    metricsAddress: parseMetricsAddress(c.metricsAddress, 'CH8_GATEWAY_METRICS_ADDR'),
    transport: transportFromConfig(c, 'CH8_GATEWAY'),
  };
}
