/**
 * What a service's servers and clients run with besides their handlers: TLS (tls.ts), call limits, and a plaintext
 * health-only port. A service declares the settings in its config.ts (`limitsConfigSpec`, `healthAddressSpec`,
 * `tlsConfigSpec`), parses them into a `Transport` (`transportFromConfig`) and hands that to `useTransport` in its
 * main.ts before it builds its server: every server and client the process creates from then on follows it.
 */
import { InvalidInputError } from '@ch8/errors';
import type { FieldSpec } from './config.ts';
import { parseMetricsAddress } from './metrics.ts';
import { tlsFromConfig, useClientTls, type Tls } from './tls.ts';

/** Per-call limits of a server. 0 means no limit where a field says so. */
export interface CallLimits {
  /** Largest message received or sent, bytes; a larger one is RESOURCE_EXHAUSTED (grpc-js words it). */
  maxMessageBytes: number;
  /**
   * Calls (unary and streams alike; health and reflection not counted) handled at once; one more is refused with
   * RESOURCE_EXHAUSTED before its request is read. 0: no limit.
   */
  maxConcurrentCalls: number;
  /** Deadline given to a call that has none, ms. 0: none. */
  defaultDeadlineMs: number;
  /** Longest deadline a call may have, ms: a longer one (or none) is cut to it. 0: no cap. */
  maxDeadlineMs: number;
  /** Methods (by RPC name, e.g. `WatchRun`) with deadlines of their own: long streams. */
  methods?: Readonly<Record<string, { defaultDeadlineMs: number; maxDeadlineMs: number }>>;
  /** The settings' common prefix (e.g. `CH8_GATEWAY`): refusals name `<prefix>_MAX_CONCURRENT_CALLS` and so on. */
  settings?: string;
}

export const DEFAULT_LIMITS: CallLimits = {
  maxMessageBytes: 64 * 1024 * 1024,
  maxConcurrentCalls: 0,
  defaultDeadlineMs: 0,
  maxDeadlineMs: 0,
};

export interface Transport {
  /** Serve (and dial) with TLS; undefined: plaintext. */
  tls?: Tls | undefined;
  limits?: Partial<CallLimits>;
  /** HOST:PORT of a plaintext server answering grpc.health.v1 only (for probes that cannot speak TLS); '' none. */
  healthAddress?: string;
}

let current: Transport = {};

/**
 * The process's transport: servers created from now on take their TLS, limits and health port from it (unless
 * their options say otherwise), clients and probes dial with its TLS (worker threads started afterwards too).
 */
export function useTransport(transport: Transport): void {
  current = transport;
  useClientTls(transport.tls);
}

/** What `useTransport` set (empty until then). */
export function currentTransport(): Transport {
  return current;
}

export interface LimitDefaults {
  maxMessageBytes: number;
  maxConcurrentCalls: number;
  defaultDeadlineMs: number;
  maxDeadlineMs: number;
}

/** The four limit settings of a service, `<prefix>_MAX_MESSAGE_BYTES` and so on, with its defaults. */
export function limitsConfigSpec(prefix: string, d: LimitDefaults) {
  return {
    maxMessageBytes: {
      env: `${prefix}_MAX_MESSAGE_BYTES`,
      kind: 'int',
      min: 1024,
      max: 2 ** 31 - 1,
      default: d.maxMessageBytes,
      doc: 'largest gRPC message received or sent, bytes (RESOURCE_EXHAUSTED beyond)',
    },
    maxConcurrentCalls: {
      env: `${prefix}_MAX_CONCURRENT_CALLS`,
      kind: 'int',
      min: 0,
      default: d.maxConcurrentCalls,
      doc: 'calls and streams handled at once; more are refused with RESOURCE_EXHAUSTED before their request is read (0: no limit)',
    },
    defaultDeadlineMs: {
      env: `${prefix}_DEFAULT_DEADLINE_MS`,
      kind: 'int',
      min: 0,
      default: d.defaultDeadlineMs,
      doc: 'deadline of a call that sets none, ms (0: none)',
    },
    maxDeadlineMs: {
      env: `${prefix}_MAX_DEADLINE_MS`,
      kind: 'int',
      min: 0,
      default: d.maxDeadlineMs,
      doc: 'longest deadline a call may have, ms: a longer one is cut to it (0: no cap)',
    },
  } satisfies Record<string, FieldSpec>;
}

/** The `<PREFIX>_METRICS_ADDR` setting (checked with `parseMetricsAddress`); each service has its own default port. */
export function metricsAddressSpec(prefix: string, defaultAddress: string) {
  return {
    metricsAddress: {
      env: `${prefix}_METRICS_ADDR`,
      kind: 'string',
      default: defaultAddress,
      doc: 'HOST:PORT of the Prometheus metrics endpoint (GET /metrics; port 0 picks a free one, logged); "off" to disable',
    },
  } satisfies Record<string, FieldSpec>;
}

/** `<prefix>_HEALTH_ADDR`: the plaintext health-only port, off by default. */
export function healthAddressSpec(prefix: string) {
  return {
    healthAddress: {
      env: `${prefix}_HEALTH_ADDR`,
      kind: 'string',
      default: 'off',
      doc: 'HOST:PORT of a plaintext server answering only grpc.health.v1 (Kubernetes gRPC probes under TLS); "off" for none',
    },
  } satisfies Record<string, FieldSpec>;
}

/** `CH8_LOG_LEVEL`, the same setting in every service. */
export const logLevelSpec = {
  logLevel: {
    env: 'CH8_LOG_LEVEL',
    kind: 'enum',
    values: ['debug', 'info', 'warn', 'error'] as const,
    default: 'info',
    doc: 'log level',
  },
} satisfies Record<string, FieldSpec>;

/** Checks the parsed limit settings (a default deadline may not exceed the cap) and names them. */
export function callLimitsFromConfig(c: LimitDefaults, prefix: string, methods?: CallLimits['methods']): CallLimits {
  if (c.maxDeadlineMs > 0 && c.defaultDeadlineMs > c.maxDeadlineMs)
    throw new InvalidInputError(
      `${prefix}_DEFAULT_DEADLINE_MS (${c.defaultDeadlineMs}) must not exceed ${prefix}_MAX_DEADLINE_MS (${c.maxDeadlineMs})`,
      { field: `${prefix}_DEFAULT_DEADLINE_MS` },
    );
  return {
    maxMessageBytes: c.maxMessageBytes,
    maxConcurrentCalls: c.maxConcurrentCalls,
    defaultDeadlineMs: c.defaultDeadlineMs,
    maxDeadlineMs: c.maxDeadlineMs,
    ...(methods ? { methods } : {}),
    settings: prefix,
  };
}

/** A service's transport from its parsed settings (TLS files read and checked here). */
export function transportFromConfig(
  c: LimitDefaults & {
    healthAddress: string;
    tlsCa: string;
    tlsCert: string;
    tlsKey: string;
    tlsClientAuth: 'none' | 'require';
  },
  prefix: string,
  methods?: CallLimits['methods'],
): Transport & { limits: CallLimits; healthAddress: string } {
  const health = parseMetricsAddress(c.healthAddress.trim(), `${prefix}_HEALTH_ADDR`);
  return {
    tls: tlsFromConfig(c),
    limits: callLimitsFromConfig(c, prefix, methods),
    healthAddress: health === 'off' ? '' : health,
  };
}
