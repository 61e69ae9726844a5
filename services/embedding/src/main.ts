import { createLogger } from '@ch8/service-kit/logger';
import { serveMetrics } from '@ch8/service-kit/metrics';
import { runService, settingsOrExit } from '@ch8/service-kit/run';
import { useTransport } from '@ch8/service-kit/transport';
import { parseEmbeddingConfig } from './config.ts';
import { createEmbeddingServer } from './server.ts';

const config = settingsOrExit('embedding', () => parseEmbeddingConfig(process.env));
// TLS, call limits and the health port for the server built below, TLS for the clients it makes.
useTransport(config.transport);
const logger = createLogger({ level: config.logLevel, bindings: { service: 'embedding' } });
await runService({
  logger,
  start: async () => {
    const { server, close } = createEmbeddingServer({ config, logger });
    await server.listen(config.address);
    // Metrics are not worth refusing to serve for: an endpoint that cannot start is logged.
    const metricsServer = await serveMetrics({
      address: config.metricsAddress,
      metrics: server.metrics,
      logger,
      field: 'CH8_EMBEDDING_METRICS_ADDR',
    });
    server.ready();
    return {
      server,
      close: async () => {
        await metricsServer?.close();
        await close();
      },
    };
  },
});
