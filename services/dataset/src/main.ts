import { createLogger } from '@ch8/service-kit/logger';
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
    server.ready();
    return { server, close };
  },
});
