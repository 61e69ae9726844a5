import { createLogger } from '@ch8/service-kit/logger';
import { serveMetrics } from '@ch8/service-kit/metrics';
import { runService } from '@ch8/service-kit/run';
import { parseEmbeddingConfig } from './config.ts';
import { createEmbeddingServer } from './server.ts';

const config = parseEmbeddingConfig(process.env);
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
