import { TrainerService } from '@ch8/contracts/trainer';
import { createServer, type Ch8Server } from '@ch8/service-kit/server';
import { Code, GrpcError } from '@ch8/service-kit/status';
import type { Logger } from '@ch8/service-kit/logger';
import { NotFoundError } from '@ch8/errors';
import type { TrainerConfig } from './config.ts';

export interface TrainerDeps {
  config: TrainerConfig;
  logger: Logger;
}

const noRun = (req: { runId: string }): never => {
  throw new NotFoundError(`no run ${JSON.stringify(req.runId)}`, { field: 'run_id' });
};

export function createTrainerServer(deps: TrainerDeps): { server: Ch8Server; close: () => Promise<void> } {
  const server = createServer({ name: 'trainer', logger: deps.logger }).add(TrainerService, {
    startRun: () => {
      throw new GrpcError(Code.UNIMPLEMENTED, 'not implemented yet');
    },
    // eslint-disable-next-line require-yield
    async *watchRun(req) {
      noRun(req);
    },
    getRun: noRun,
    listRuns: async () => ({ runs: [] }),
    cancelRun: noRun,
  });
  return { server, close: async () => {} };
}
