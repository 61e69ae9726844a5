/**
 * Prometheus metrics of the gateway, on the service kit's registry and endpoint (`@ch8/service-kit/metrics`, served
 * at GET /metrics by main.ts): the gateway's own model and batching metrics; the per-call ones are the kit's,
 * recorded by its server with a `model` label (server.ts). Every name starts with `ch8_gateway_`.
 */
import { createServiceMetrics, type Registry, type ServiceMetrics } from '@ch8/service-kit/metrics';
import type { BatchObserver } from './batcher.ts';

export const METRIC_PREFIX = 'ch8_gateway_';

export interface GatewayMetrics {
  readonly registry: Registry;
  /** The gateway's metrics on the kit's registry (name `gateway`, prefix `ch8_gateway_`); the kit's server records its calls there. */
  readonly service: ServiceMetrics;
  /** Texts answered, by model and version. */
  texts(model: string, version: string, count: number): void;
  observer(model: string): BatchObserver;
  /** Sets the loaded-model gauges from the ready versions per model. */
  setLoaded(loaded: ReadonlyMap<string, readonly number[]>): void;
  loadFailure(model: string): void;
}

export function createGatewayMetrics(
  options: { defaultMetrics?: boolean; metrics?: ServiceMetrics } = {},
): GatewayMetrics {
  const service = options.metrics ?? createServiceMetrics('gateway');
  if (options.defaultMetrics ?? true) service.collectProcessMetrics();
  const queue = service.histogram({
    name: 'queue_seconds',
    help: 'Time a request waited in the batching queue before its texts went into a model call',
    labelNames: ['model'] as const,
    buckets: [0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1],
  });
  const batch = service.histogram({
    name: 'batch_size',
    help: 'Texts per model call (dynamic batching)',
    labelNames: ['model'] as const,
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096],
  });
  const textCount = service.counter({
    name: 'texts_total',
    help: 'Texts answered, by model and version',
    labelNames: ['model', 'version'] as const,
  });
  const models = service.gauge({
    name: 'models_loaded',
    help: 'Models with at least one version loaded and ready',
  });
  const versions = service.gauge({
    name: 'model_versions_loaded',
    help: 'Versions loaded and ready, by model',
    labelNames: ['model'] as const,
  });
  const ready = service.gauge({
    name: 'model_version_ready',
    help: '1 for each model version loaded and ready',
    labelNames: ['model', 'version'] as const,
  });
  // With several serving processes (CH8_GATEWAY_WORKERS) the primary serves the workers' metrics aggregated: summed
  // by default (calls, texts, batches, calls in flight), the largest over the workers for what each worker has loaded
  // (every worker loads every model, and fails to load the same versions: a sum would count each once per worker).
  const failures = service.counter({
    name: 'model_load_failures_total',
    help: 'Versions that failed to load, by model',
    labelNames: ['model'] as const,
  });
  for (const m of [models, versions, ready, failures]) (m as unknown as { aggregator: string }).aggregator = 'max';
  return {
    registry: service.registry,
    service,
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
