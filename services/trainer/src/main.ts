import { createLogger } from '@ch8/service-kit/logger';
import { runService } from '@ch8/service-kit/run';
import { parseTrainerConfig } from './config.ts';
import { createTrainerServer } from './server.ts';

const config = parseTrainerConfig(process.env);
const logger = createLogger({ level: config.logLevel, bindings: { service: 'trainer' } });
await runService({
  logger,
  start: async () => {
    const { server, close } = createTrainerServer({ config, logger });
    await server.listen(config.address);
    server.ready();
    return { server, close };
  },
});
