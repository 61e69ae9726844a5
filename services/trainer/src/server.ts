/**
 * The trainer service (problems 73-79 as a service): StartRun checks the whole run config and the data against the
 * dataset service, then queues the run; each run trains in its own worker thread (runner.ts, execute.ts) off the
 * gRPC event loop; WatchRun / GetRun / ListRuns / CancelRun observe and steer the runs (runs.ts).
 */
import { create } from '@bufbuild/protobuf';
import { DatasetService, type DatasetInfo, type PrepareDatasetRequest } from '@ch8/contracts/dataset';
import { RunConfigSchema, TrainerService } from '@ch8/contracts/trainer';
import { InvalidInputError, NotFoundError, PermissionDeniedError } from '@ch8/errors';
import { createClient, type Client } from '@ch8/service-kit/client';
import type { Logger } from '@ch8/service-kit/logger';
import { createServiceMetrics } from '@ch8/service-kit/metrics';
import { createServer, type CallContext, type Ch8Server } from '@ch8/service-kit/server';
import { dependencyError } from '@ch8/service-kit/status';
import { trainingConfigFromProto, trainingConfigToProto } from '@ch8/training/proto';
import type { TrainingConfig } from '@ch8/training/config';
import type { TrainerConfig } from './config.ts';
import { createTrainerMetrics } from './metrics.ts';
import type { ExportFault } from './protocol.ts';
import { RunManager, type WorkerStarter } from './runs.ts';

export interface TrainerDeps {
  config: TrainerConfig;
  logger: Logger;
  /** The dataset service client StartRun uses; default: one to `config.datasetAddress` (closed by `close`). */
  dataset?: Pick<Client<typeof DatasetService>, 'getDataset' | 'prepareDataset'>;
  /**
   * Test only: make every run's export fail ('after-write': an EIO after the weights file is written;
   * 'before-rename': just before the version directory is renamed into place). The flag crosses to the worker
   * thread, so the real worker path is tested.
   */
  faults?: { export?: ExportFault };
  /** Test only: start run workers differently (default: a worker thread per run). */
  startWorker?: WorkerStarter;
}

export interface TrainerServer {
  server: Ch8Server;
  /** Stops the run workers after their current step (runs stay RUNNING and resume on the next start), ends watchers, flushes records. */
  close: () => Promise<void>;
}

/** Reconnect within a few seconds once a dependency that was down is back (grpc's default backoff grows to 2 minutes). */
export const RECONNECT = { 'grpc.initial_reconnect_backoff_ms': 250, 'grpc.max_reconnect_backoff_ms': 5000 };

function splitOf(info: DatasetInfo, name: string, field: string): void {
  const s = info.splits.find((x) => x.split === name);
  if (s === undefined) {
    throw new InvalidInputError(
      `data set ${info.datasetId} has no split ${JSON.stringify(name)} (splits: ${info.splits.map((x) => x.split).join(', ')})`,
      { field },
    );
  }
  if (s.kept === 0n) {
    throw new InvalidInputError(
      `split ${JSON.stringify(name)} of data set ${info.datasetId} has no examples left after dropping out-of-vocabulary tokens`,
      {
        field,
      },
    );
  }
}

/** Field names of a PrepareDatasetRequest's errors, relative to the run config. */
function asDataError(e: unknown, what: string): Error {
  const err = dependencyError(e, what);
  const options = { cause: e };
  if (err instanceof InvalidInputError) return new InvalidInputError(err.message, { field: 'data' }, options);
  if (err instanceof NotFoundError) return new NotFoundError(err.message, { field: 'data' }, options);
  if (err instanceof PermissionDeniedError) return new PermissionDeniedError(err.message, { field: 'data' }, options);
  return err;
}

export function createTrainerServer(deps: TrainerDeps): TrainerServer {
  const { config, logger } = deps;
  const ownDataset =
    deps.dataset === undefined
      ? createClient(DatasetService, config.datasetAddress, { channelOptions: RECONNECT })
      : undefined;
  const dataset = deps.dataset ?? ownDataset!;
  const metrics = createServiceMetrics('trainer');
  const trainerMetrics = createTrainerMetrics(metrics, () => runs.stats());
  const runs = new RunManager(
    {
      stateDir: config.stateDir,
      modelRepository: config.modelRepository,
      embeddingAddress: config.embeddingAddress,
      datasetAddress: config.datasetAddress,
      defaultBackend: config.backend,
      maxConcurrent: config.maxConcurrentRuns,
      logger,
      onEpoch: (e) => trainerMetrics.epoch(e),
      ...(deps.faults?.export === undefined ? {} : { exportFault: deps.faults.export }),
    },
    deps.startWorker,
  );

  const call = (ctx: CallContext) => ({ timeoutMs: config.datasetTimeoutMs, signal: ctx.signal });

  const lookUp = async (datasetId: string, ctx: CallContext): Promise<DatasetInfo> => {
    let info: DatasetInfo | undefined;
    try {
      info = (await dataset.getDataset({ datasetId }, call(ctx))).dataset;
    } catch (e) {
      const err = dependencyError(e, 'dataset service GetDataset');
      if (err instanceof NotFoundError) {
        throw new NotFoundError(
          `the dataset service has no data set ${JSON.stringify(datasetId)} (prepare it first, or give its source as data)`,
          { field: 'dataset_id' },
          { cause: e },
        );
      }
      throw err;
    }
    if (info === undefined)
      throw new NotFoundError(`no data set ${JSON.stringify(datasetId)}`, { field: 'dataset_id' });
    return info;
  };

  const prepare = async (data: PrepareDatasetRequest, ctx: CallContext): Promise<DatasetInfo> => {
    let info: DatasetInfo | undefined;
    try {
      info = (await dataset.prepareDataset(data, call(ctx))).dataset;
    } catch (e) {
      throw asDataError(e, 'dataset service PrepareDataset');
    }
    if (info === undefined)
      throw new NotFoundError('the dataset service PrepareDataset returned no data set', { field: 'data' });
    return info;
  };

  const server = createServer({ name: 'trainer', logger, metrics }).add(TrainerService, {
    async startRun(req, ctx) {
      const given = req.config;
      if (given === undefined) throw new InvalidInputError('a run needs a config', { field: 'config' });
      const training: TrainingConfig = trainingConfigFromProto(given);
      const hasId = given.datasetId !== '';
      const data = given.data;
      if (hasId && data !== undefined) {
        throw new InvalidInputError(
          'give either dataset_id (a prepared data set) or data (a source to prepare), not both',
          { field: 'data' },
        );
      }
      if (!hasId && data === undefined) {
        throw new InvalidInputError(
          'name the data: dataset_id (a data set the dataset service prepared) or data (a source to prepare)',
          {
            field: 'dataset_id',
          },
        );
      }
      const info = data === undefined ? await lookUp(given.datasetId, ctx) : await prepare(data, ctx);
      splitOf(info, training.trainSplit, 'train_split');
      if (training.devSplit !== null) splitOf(info, training.devSplit, 'dev_split');
      const runConfig = create(RunConfigSchema, {
        ...trainingConfigToProto(training),
        datasetId: given.datasetId,
        ...(data === undefined ? {} : { data }),
      });
      const run = runs.create({ config: runConfig, training, datasetId: info.datasetId });
      return { run };
    },

    watchRun(req, ctx) {
      return runs.watch(req.runId, ctx.signal);
    },

    getRun(req) {
      return { run: runs.get(req.runId) };
    },

    listRuns() {
      return { runs: runs.list() };
    },

    async cancelRun(req) {
      return { run: await runs.cancel(req.runId) };
    },
  });

  let closed: Promise<void> | undefined;
  return {
    server,
    close: () =>
      (closed ??= (async () => {
        await runs.close();
        ownDataset?.close();
      })()),
  };
}
