import { createLogger } from '@ch8/service-kit/logger';
import { serveMetrics } from '@ch8/service-kit/metrics';
import { runService } from '@ch8/service-kit/run';
import { parseDatasetConfig } from './config.ts';
import { createDatasetServer } from './server.ts';

const config = parseDatasetConfig(process.env);
const logger = createLogger({ level: config.logLevel, bindings: { service: 'dataset' } });
await runService({
  logger,
  start: async () => {
    const { server, close } = createDatasetServer({ config, logger });
    await server.listen(config.address);
    // Metrics are not worth refusing to serve for: an endpoint that cannot start is logged.
    const metricsServer = await serveMetrics({
      address: config.metricsAddress,
      metrics: server.metrics,
      logger,
      field: 'CH8_DATASET_METRICS_ADDR',
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
