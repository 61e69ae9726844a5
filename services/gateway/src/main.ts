import { selectBackend } from '@ch8/backend/select';
import { createLogger } from '@ch8/service-kit/logger';
import { runService, settingsOrExit } from '@ch8/service-kit/run';
import { useTransport } from '@ch8/service-kit/transport';
import { parseGatewayConfig } from './config.ts';
import { serveMetrics } from '@ch8/service-kit/metrics';
import { createGatewayServer } from './server.ts';

const config = settingsOrExit('gateway', () => parseGatewayConfig(process.env));
// TLS, call limits and the health port for the server built below, TLS for the clients it makes.
useTransport(config.transport);
const logger = createLogger({ level: config.logLevel, bindings: { service: 'gateway' } });
await runService({
  logger,
  start: async () => {
    // Every model is loaded on this one backend, chosen before the first load.
    const backend = await selectBackend({ prefer: config.backend, log: (line) => logger.debug(line) });
    logger.info('compute backend', { backend: backend.backend, device: backend.device, fallbacks: backend.fallbacks });
    const gateway = createGatewayServer({ config, logger });
    // Metrics are not worth refusing predictions for: a taken port (another gateway on this machine) is logged.
    const metricsServer = await serveMetrics({
      address: config.metricsAddress,
      metrics: gateway.metrics.service,
      logger,
      field: 'CH8_GATEWAY_METRICS_ADDR',
    });
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
