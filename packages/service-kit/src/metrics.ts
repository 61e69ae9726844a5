/**
 * Prometheus metrics for every service, one way (prom-client, one registry per server, every name prefixed
 * `ch8_<service>_`): the per-call metrics the server records for each handler (`createRpcMetrics`), the service's
 * own counters, gauges and histograms (`ServiceMetrics`), process metrics, and the HTTP endpoint (`GET /metrics`)
 * that serves them (`startMetricsServer`, or `serveMetrics` for a main.ts: `off`, logging, a taken port logged).
 */
import { createServer, type Server } from 'node:http';
import { once } from 'node:events';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { InvalidInputError } from '@ch8/errors';
import type { Logger } from './logger.ts';

export type { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Latency buckets, seconds: sub-millisecond unary calls up to streams that last a training run. */
export const LATENCY_BUCKETS: readonly number[] = [
  0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800,
];

interface MetricSpec<L extends string> {
  /** Without the service prefix, e.g. `tables_total`. */
  name: string;
  help: string;
  labelNames?: readonly L[];
}

export interface GaugeSpec<L extends string> extends MetricSpec<L> {
  /** Called at each scrape before the value is read: set the gauge from the state it reports. */
  collect?: (gauge: Gauge<L>) => void | Promise<void>;
}

export interface HistogramSpec<L extends string> extends MetricSpec<L> {
  buckets: readonly number[];
}

/** A service's metrics: its registry and factories for metrics named `ch8_<service>_<name>`. */
export interface ServiceMetrics {
  /** e.g. `trainer` */
  readonly service: string;
  /** e.g. `ch8_trainer_` */
  readonly prefix: string;
  readonly registry: Registry;
  counter<L extends string = never>(spec: MetricSpec<L>): Counter<L>;
  gauge<L extends string = never>(spec: GaugeSpec<L>): Gauge<L>;
  histogram<L extends string = never>(spec: HistogramSpec<L>): Histogram<L>;
  /** Adds the process metrics (CPU, memory, heap, event loop lag, GC), prefixed; a second call does nothing. */
  collectProcessMetrics(): void;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

/** `ch8_<service>_` with anything but letters, digits and `_` in the service name turned into `_`. */
export function metricPrefix(service: string): string {
  return `ch8_${service.replace(/[^a-zA-Z0-9_]/g, '_')}_`;
}

export function createServiceMetrics(service: string, options: { registry?: Registry } = {}): ServiceMetrics {
  const registry = options.registry ?? new Registry();
  const prefix = metricPrefix(service);
  const full = (name: string) => {
    const n = `${prefix}${name}`;
    if (!NAME.test(n)) throw new Error(`not a Prometheus metric name: ${JSON.stringify(n)}`);
    return n;
  };
  let processMetrics = false;
  return {
    service,
    prefix,
    registry,
    counter: <L extends string>(spec: MetricSpec<L>) =>
      new Counter<L>({
        name: full(spec.name),
        help: spec.help,
        labelNames: spec.labelNames ?? [],
        registers: [registry],
      }),
    gauge: <L extends string>(spec: GaugeSpec<L>) => {
      const collect = spec.collect;
      return new Gauge<L>({
        name: full(spec.name),
        help: spec.help,
        labelNames: spec.labelNames ?? [],
        registers: [registry],
        ...(collect === undefined
          ? {}
          : {
              collect(this: Gauge<L>) {
                return collect(this);
              },
            }),
      });
    },
    histogram: <L extends string>(spec: HistogramSpec<L>) =>
      new Histogram<L>({
        name: full(spec.name),
        help: spec.help,
        labelNames: spec.labelNames ?? [],
        buckets: [...spec.buckets],
        registers: [registry],
      }),
    collectProcessMetrics() {
      if (processMetrics) return;
      processMetrics = true;
      collectDefaultMetrics({ register: registry, prefix });
    },
  };
}

/** Labels of one finished call: method (the RPC's name, e.g. `Predict`), status code name, and any extra ones. */
export type RpcLabels<X extends string = never> = { method: string; code: string } & Record<X, string>;

/**
 * Per-call metrics, recorded by the kit's server for every handler (health and reflection excepted):
 *
 * - `requests_total{method,code,...}`, `request_errors_total{method,code,...}` (code not OK),
 * - `request_duration_seconds{method,...}` (histogram, from the call reaching the handler to its final status),
 * - `requests_in_flight{method}`,
 * - `stream_messages_sent_total{method}`, `stream_messages_received_total{method}` (streaming calls).
 *
 * `extraLabels` (e.g. the gateway's `model`) join method and code on the first three.
 */
export interface RpcMetrics<X extends string = never> {
  readonly metrics: ServiceMetrics;
  readonly extraLabels: readonly X[];
  /** A call reached its handler (in flight). */
  started(method: string): void;
  /** A started call has its final status: counted, timed, no longer in flight. */
  finished(labels: RpcLabels<X>, seconds: number): void;
  /** Counts and times a call without the in-flight gauge (for a wrapper that times calls itself). */
  observe(labels: RpcLabels<X>, seconds: number): void;
  sent(method: string, count?: number): void;
  received(method: string, count?: number): void;
}

export function createRpcMetrics<X extends string = never>(
  metrics: ServiceMetrics,
  extraLabels: readonly X[] = [],
): RpcMetrics<X> {
  type L = 'method' | 'code' | X;
  const requests = metrics.counter<L>({
    name: 'requests_total',
    help: 'RPCs answered, by method and status code',
    labelNames: ['method', 'code', ...extraLabels],
  });
  const errors = metrics.counter<L>({
    name: 'request_errors_total',
    help: 'RPCs answered with a status other than OK, by method and status code',
    labelNames: ['method', 'code', ...extraLabels],
  });
  const latency = metrics.histogram<'method' | X>({
    name: 'request_duration_seconds',
    help: 'RPC time, from the call reaching the handler to its final status (streams: to their end)',
    labelNames: ['method', ...extraLabels],
    buckets: LATENCY_BUCKETS,
  });
  const inFlight = metrics.gauge<'method'>({
    name: 'requests_in_flight',
    help: 'RPCs being handled now, by method',
    labelNames: ['method'],
  });
  const sent = metrics.counter<'method'>({
    name: 'stream_messages_sent_total',
    help: 'Messages sent on server and bidi streams, by method',
    labelNames: ['method'],
  });
  const received = metrics.counter<'method'>({
    name: 'stream_messages_received_total',
    help: 'Messages received on client and bidi streams, by method',
    labelNames: ['method'],
  });
  const observe = (labels: RpcLabels<X>, seconds: number): void => {
    const { code, ...rest } = labels as RpcLabels;
    requests.inc(labels as never);
    if (code !== 'OK') errors.inc(labels as never);
    latency.observe(rest as never, seconds);
  };
  return {
    metrics,
    extraLabels,
    started(method) {
      inFlight.inc({ method });
    },
    finished(labels, seconds) {
      observe(labels, seconds);
      inFlight.dec({ method: labels.method });
    },
    observe,
    sent(method, count = 1) {
      sent.inc({ method }, count);
    },
    received(method, count = 1) {
      received.inc({ method }, count);
    },
  };
}

/** The value of a `CH8_<SERVICE>_METRICS_ADDR` setting checked: `off`, or HOST:PORT (port 0 picks a free one). */
export function parseMetricsAddress(raw: string, field: string): string {
  if (raw === 'off') return raw;
  const m = /^(.+):(\d+)$/.exec(raw);
  if (m === null || Number(m[2]) > 65535) {
    throw new InvalidInputError(`expected HOST:PORT or off, got ${JSON.stringify(raw)}`, { field });
  }
  return raw;
}

export interface MetricsServer {
  /** http://HOST:PORT/metrics */
  readonly url: string;
  /** HOST:PORT as bound (the real port when 0 was asked for). */
  readonly address: string;
  close(): Promise<void>;
}

/** Serves `registry` at GET /metrics on `address` (HOST:PORT; port 0 picks a free one). */
export async function startMetricsServer(
  address: string,
  registry: Registry,
  options: { field?: string } = {},
): Promise<MetricsServer> {
  const m = /^(.+):(\d+)$/.exec(address);
  if (m === null) {
    throw new InvalidInputError(`expected HOST:PORT, got ${JSON.stringify(address)}`, {
      field: options.field ?? 'metrics address',
    });
  }
  const host = m[1]!.replace(/^\[(.*)\]$/, '$1');
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' || path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: GET /metrics\n');
      return;
    }
    registry
      .metrics()
      .then((body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body))
      .catch((e: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${String(e)}\n`));
  });
  server.listen(Number(m[2]), host);
  await Promise.race([
    once(server, 'listening'),
    once(server, 'error').then(([e]) => {
      throw e;
    }),
  ]);
  const port = (server.address() as { port: number }).port;
  const shown = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  return {
    url: `http://${shown}/metrics`,
    address: shown,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export interface ServeMetricsOptions {
  /** HOST:PORT, or `off` (nothing started). */
  address: string;
  metrics: ServiceMetrics;
  logger: Logger;
  /** The setting's name, for messages (e.g. `CH8_TRAINER_METRICS_ADDR`). */
  field: string;
  /** Add the process metrics to the registry; default true. */
  processMetrics?: boolean;
}

/**
 * For a service's main.ts: starts the endpoint unless `off` and logs where it listens. Metrics are not worth
 * refusing to serve for: an endpoint that cannot start (a port taken by another process) is logged as an error and
 * the service runs without it (undefined).
 */
export async function serveMetrics(options: ServeMetricsOptions): Promise<MetricsServer | undefined> {
  const { address, metrics, logger, field } = options;
  if (address === 'off') {
    logger.info('metrics endpoint off', { setting: field });
    return undefined;
  }
  if (options.processMetrics ?? true) metrics.collectProcessMetrics();
  try {
    const server = await startMetricsServer(address, metrics.registry, { field });
    logger.info('metrics listening', { address: server.address, url: server.url });
    return server;
  } catch (e) {
    logger.error('metrics endpoint could not start; serving without metrics', { address, setting: field, err: e });
    return undefined;
  }
}
