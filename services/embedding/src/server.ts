import { EmbeddingService } from '@ch8/contracts/embedding';
import { createServer, type Ch8Server } from '@ch8/service-kit/server';
import { Code, GrpcError } from '@ch8/service-kit/status';
import type { Logger } from '@ch8/service-kit/logger';
import type { EmbeddingConfig } from './config.ts';

export interface EmbeddingDeps {
  config: EmbeddingConfig;
  logger: Logger;
}

const notYet = (): never => {
  throw new GrpcError(Code.UNIMPLEMENTED, 'not implemented yet');
};

/** The embedding service, not yet listening: `server.listen` (port 0 in tests), then `server.ready()`. */
export function createEmbeddingServer(deps: EmbeddingDeps): { server: Ch8Server; close: () => Promise<void> } {
  const server = createServer({ name: 'embedding', logger: deps.logger }).add(EmbeddingService, {
    loadTable: notYet,
    getVocabulary: notYet,
    lookup: notYet,
    // eslint-disable-next-line require-yield
    async *streamMatrix() {
      notYet();
    },
    listTables: async () => ({ tables: [] }),
  });
  return { server, close: async () => {} };
}
