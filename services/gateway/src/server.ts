import { GatewayService } from '@ch8/contracts/gateway';
import { GRPCInferenceService } from '@ch8/contracts/inference';
import { createServer, type Ch8Server } from '@ch8/service-kit/server';
import type { Logger } from '@ch8/service-kit/logger';
import { NotFoundError } from '@ch8/errors';
import type { GatewayConfig } from './config.ts';

export interface GatewayDeps {
  config: GatewayConfig;
  logger: Logger;
}

export const SERVER_NAME = 'ch8-gateway';
export const SERVER_VERSION = '0.1.0';

const unknownModel = (name: string): never => {
  throw new NotFoundError(`no model ${JSON.stringify(name)} is loaded`, { field: 'model_name' });
};

export function createGatewayServer(deps: GatewayDeps): { server: Ch8Server; close: () => Promise<void> } {
  const server = createServer({ name: 'gateway', logger: deps.logger })
    .add(GatewayService, {
      predict: (req) => unknownModel(req.modelName),
      listModels: async () => ({ models: [] }),
      reloadModels: async () => ({ models: [] }),
    })
    .add(GRPCInferenceService, {
      serverLive: async () => ({ live: true }),
      serverReady: async () => ({ ready: false }),
      modelReady: async () => ({ ready: false }),
      serverMetadata: async () => ({ name: SERVER_NAME, version: SERVER_VERSION, extensions: [] }),
      modelMetadata: (req) => unknownModel(req.name),
      modelInfer: (req) => unknownModel(req.modelName),
    });
  return { server, close: async () => {} };
}
