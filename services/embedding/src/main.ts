import { createLogger } from '@ch8/service-kit/logger';
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
    server.ready();
    return { server, close };
  },
});
