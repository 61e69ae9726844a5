/**
 * One serving process of the gateway: the whole gateway, or one worker of several (cluster.ts). main.ts wires it.
 */
import cluster from 'node:cluster';
import { selectBackend } from '@ch8/backend/select';
import { createLogger } from '@ch8/service-kit/logger';
import { serveMetrics } from '@ch8/service-kit/metrics';
import { runService } from '@ch8/service-kit/run';
import { useTransport } from '@ch8/service-kit/transport';
import { workerLink } from './cluster.ts';
import type { GatewayConfig } from './config.ts';
import { createGatewayServer } from './server.ts';

export async function serveGateway(config: GatewayConfig): Promise<void> {
  // TLS, call limits and the health port for the server built below, TLS for the clients it makes.
  useTransport(config.transport);
  const worker = cluster.isWorker ? cluster.worker?.id : undefined;
  const logger = createLogger({
    level: config.logLevel,
    bindings: worker === undefined ? { service: 'gateway' } : { service: 'gateway', worker },
  });
  const link = workerLink(logger);
  await runService({
    logger,
    start: async () => {
      // Every model is loaded on this one backend, chosen before the first load.
      const backend = await selectBackend({ prefer: config.backend, log: (line) => logger.debug(line) });
      logger.info('compute backend', {
        backend: backend.backend,
        device: backend.device,
        fallbacks: backend.fallbacks,
      });
      const gateway = createGatewayServer({ config, logger, ...(link !== undefined ? { peers: link } : {}) });
      let metricsServer: Awaited<ReturnType<typeof serveMetrics>>;
      if (link !== undefined) {
        // A worker: the primary serves the metrics of all; this one listens once every worker has its models.
        link.shareMetrics(gateway.metrics.registry);
        link.onApply((op) => gateway.apply(op));
        await gateway.loaded;
        for (const [name, policy] of link.overrides) {
          await gateway.store
            .setPolicy(name, policy)
            .catch((e: unknown) =>
              logger.warn('a version policy set before this worker started cannot be applied', { model: name, err: e }),
            );
        }
        await link.loaded();
      } else {
        // Metrics are not worth refusing predictions for: a taken port (another gateway on this machine) is logged.
        metricsServer = await serveMetrics({
          address: config.metricsAddress,
          metrics: gateway.metrics.service,
          logger,
          field: 'CH8_GATEWAY_METRICS_ADDR',
        });
      }
      try {
        await gateway.server.listen(config.address);
      } catch (e) {
        await metricsServer?.close();
        await gateway.close();
        throw e;
      }
      // "" is SERVING from now on; the GatewayService and inference entries follow the models (at least one ready).
      gateway.server.ready();
      void gateway.loaded.then(() =>
        logger.info('gateway ready', {
          model_repository: config.modelRepository,
          models: gateway.store.readyModelNames(),
          poll_ms: config.pollIntervalMs,
          max_batch: config.maxBatch,
          max_delay_ms: config.maxDelayMs,
        }),
      );
      return {
        server: gateway.server,
        close: async () => {
          await metricsServer?.close();
          await gateway.close();
        },
      };
    },
  });
}
