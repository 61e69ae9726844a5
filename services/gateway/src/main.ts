import { createLogger } from '@ch8/service-kit/logger';
import { runService } from '@ch8/service-kit/run';
import { parseGatewayConfig } from './config.ts';
import { createGatewayServer } from './server.ts';

const config = parseGatewayConfig(process.env);
const logger = createLogger({ level: config.logLevel, bindings: { service: 'gateway' } });
await runService({
  logger,
  start: async () => {
    const { server, close } = createGatewayServer({ config, logger });
    await server.listen(config.address);
    // inference.GRPCInferenceService reports SERVING only once a model is loaded.
    server.ready(['inference.GRPCInferenceService']);
    return { server, close };
  },
});
