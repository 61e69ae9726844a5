/**
 * Prometheus metrics of the gateway (prom-client, one registry per server), served over HTTP at GET /metrics.
 * Every name starts with `ch8_gateway_`.
 */
import { createServer, type Server } from 'node:http';
import { once } from 'node:events';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { InvalidInputError } from '@ch8/errors';
import type { BatchObserver } from './batcher.ts';

export const METRIC_PREFIX = 'ch8_gateway_';

export interface GatewayMetrics {
  readonly registry: Registry;
  /** One finished RPC: its method, the model it was for ('' when none could be resolved) and its status code. */
  request(method: string, model: string, code: string, seconds: number): void;
  /** Texts answered, by model and version. */
  texts(model: string, version: string, count: number): void;
  observer(model: string): BatchObserver;
  /** Sets the loaded-model gauges from the ready versions per model. */
  setLoaded(loaded: ReadonlyMap<string, readonly number[]>): void;
  loadFailure(model: string): void;
}

export function createGatewayMetrics(options: { defaultMetrics?: boolean } = {}): GatewayMetrics {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: METRIC_PREFIX });
  const registers = [registry];
  const requests = new Counter({
    name: `${METRIC_PREFIX}requests_total`,
    help: 'RPCs answered, by method, model and status code',
    labelNames: ['method', 'model', 'code'] as const,
    registers,
  });
  const errors = new Counter({
    name: `${METRIC_PREFIX}request_errors_total`,
    help: 'RPCs answered with a status other than OK, by method, model and status code',
    labelNames: ['method', 'model', 'code'] as const,
    registers,
  });
  const latency = new Histogram({
    name: `${METRIC_PREFIX}request_duration_seconds`,
    help: 'RPC handling time, from the call reaching the handler to its answer',
    labelNames: ['method', 'model'] as const,
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers,
  });
  const queue = new Histogram({
    name: `${METRIC_PREFIX}queue_seconds`,
    help: 'Time a request waited in the batching queue before its texts went into a model call',
    labelNames: ['model'] as const,
    buckets: [0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1],
    registers,
  });
  const batch = new Histogram({
    name: `${METRIC_PREFIX}batch_size`,
    help: 'Texts per model call (dynamic batching)',
    labelNames: ['model'] as const,
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096],
    registers,
  });
  const textCount = new Counter({
    name: `${METRIC_PREFIX}texts_total`,
    help: 'Texts answered, by model and version',
    labelNames: ['model', 'version'] as const,
    registers,
  });
  const models = new Gauge({
    name: `${METRIC_PREFIX}models_loaded`,
    help: 'Models with at least one version loaded and ready',
    registers,
  });
  const versions = new Gauge({
    name: `${METRIC_PREFIX}model_versions_loaded`,
    help: 'Versions loaded and ready, by model',
    labelNames: ['model'] as const,
    registers,
  });
  const ready = new Gauge({
    name: `${METRIC_PREFIX}model_version_ready`,
    help: '1 for each model version loaded and ready',
    labelNames: ['model', 'version'] as const,
    registers,
  });
  const failures = new Counter({
    name: `${METRIC_PREFIX}model_load_failures_total`,
    help: 'Versions that failed to load, by model',
    labelNames: ['model'] as const,
    registers,
  });
  return {
    registry,
    request(method, model, code, seconds) {
      requests.inc({ method, model, code });
      if (code !== 'OK') errors.inc({ method, model, code });
      latency.observe({ method, model }, seconds);
    },
    texts(model, version, count) {
      textCount.inc({ model, version }, count);
    },
    observer(model) {
      return {
        queued: (seconds) => queue.observe({ model }, seconds),
        batch: (size) => batch.observe({ model }, size),
      };
    },
    setLoaded(loaded) {
      versions.reset();
      ready.reset();
      let n = 0;
      for (const [model, vs] of loaded) {
        versions.set({ model }, vs.length);
        for (const v of vs) ready.set({ model, version: String(v) }, 1);
        if (vs.length > 0) n++;
      }
      models.set(n);
    },
    loadFailure(model) {
      failures.inc({ model });
    },
  };
}

export interface MetricsServer {
  /** http://HOST:PORT/metrics */
  readonly url: string;
  readonly address: string;
  close(): Promise<void>;
}

/** Serves `registry` at GET /metrics on `address` (HOST:PORT; port 0 picks a free one). */
export async function startMetricsServer(address: string, registry: Registry): Promise<MetricsServer> {
  const m = /^(.*):(\d+)$/.exec(address);
  if (m === null) {
    throw new InvalidInputError(`expected HOST:PORT, got ${JSON.stringify(address)}`, {
      field: 'CH8_GATEWAY_METRICS_ADDR',
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
