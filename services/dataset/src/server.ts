import { DatasetService } from '@ch8/contracts/dataset';
import { createServer, type Ch8Server } from '@ch8/service-kit/server';
import { Code, GrpcError } from '@ch8/service-kit/status';
import type { Logger } from '@ch8/service-kit/logger';
import { NotFoundError } from '@ch8/errors';
import type { DatasetConfig } from './config.ts';

export interface DatasetDeps {
  config: DatasetConfig;
  logger: Logger;
}

const notYet = (): never => {
  throw new GrpcError(Code.UNIMPLEMENTED, 'not implemented yet');
};

export function createDatasetServer(deps: DatasetDeps): { server: Ch8Server; close: () => Promise<void> } {
  const server = createServer({ name: 'dataset', logger: deps.logger, maxBufferedResponses: deps.config.maxBufferedBatches }).add(
    DatasetService,
    {
      prepareDataset: notYet,
      // eslint-disable-next-line require-yield
      async *streamBatches(req) {
        throw new NotFoundError(`no data set ${JSON.stringify(req.datasetId)}`, { field: 'dataset_id' });
      },
      getExamples: notYet,
      getDataset: (req) => {
        throw new NotFoundError(`no data set ${JSON.stringify(req.datasetId)}`, { field: 'dataset_id' });
      },
      listDatasets: async () => ({ datasets: [] }),
    },
  );
  return { server, close: async () => {} };
}
