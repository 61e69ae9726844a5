/**
 * The one training loop of the code base (problems 73-79): `ch8 train` in-process and the trainer service's run
 * workers both call `train`. Per epoch: the train split's batches from the feed (waits for data measured), one
 * Adam step per batch (or one accumulated step over the whole split when batch_size is 0), dev scored, a checkpoint
 * written, early stopping on dev accuracy with patience and an optional learning-rate decay on a plateau. The best
 * epoch's weights are kept; at the end they are scored on every split (accuracy, precision, recall, F1, confusion).
 * With `wordDropout` > 0 every training batch loses that share of its tokens first (@ch8/batching/augment).
 * With `weightAverage` > 0 an exponential moving average of the weights (average.ts) is what is scored and kept.
 *
 * It runs on whatever tfjs backend is active (the caller selects it) and reads tensors asynchronously only, so it
 * works on webgpu too. With `workers` > 1 (wasm or cpu) every step is data-parallel across worker threads
 * (parallel.ts): the same training up to float summation order.
 */
import { getBackend } from '@tensorflow/tfjs';
import { dropTokens } from '@ch8/batching/augment';
import type { Batch } from '@ch8/batching/collate';
import { CancelledError, FailedPreconditionError, InvalidInputError } from '@ch8/errors';
import { computeSplitMetrics, type EpochRecord, type SplitMetrics } from '@ch8/model-repository/manifest';
import type { ModelConfig } from '@ch8/models/config';
import { createModel, type NamedWeight } from '@ch8/models/model';
import type { TrainingState } from '@ch8/models/checkpoint';
import { mix32, uniform01 } from '@ch8/random';
import { stepsPerEpoch, type TrainingConfig } from './config.ts';
import { checkSplit, type DataFeed, type EpochOptions } from './feed.ts';
import { WeightAverage } from './average.ts';
import { DataParallel, isParallelBackend, type WorkerFault } from './parallel.ts';

export interface StepEvent {
  /** 1-based. */
  epoch: number;
  step: number;
  stepsInEpoch: number;
  /** Mean loss and accuracy over the steps of this epoch so far. */
  loss: number;
  accuracy: number;
  examplesPerSecond: number;
  /** Seconds since the epoch started. */
  seconds: number;
}

export interface EpochEvent extends EpochRecord {
  /** Training wall time of the epoch (steps and waits for data; scoring excluded). */
  trainSeconds: number;
  /** Share of trainSeconds spent waiting for batches. */
  dataWaitShare: number;
  learningRate: number;
}

export interface RunEvents {
  onStep?: (e: StepEvent) => void;
  onEpoch?: (e: EpochEvent) => void;
  onMessage?: (text: string) => void;
}

/** Everything needed to continue a run after its last completed epoch, bit-identically. */
export interface Checkpoint {
  /** Identifies the run's config and data: a checkpoint of another run is refused. */
  key: string;
  /** Epochs completed. */
  epoch: number;
  history: EpochEvent[];
  best: { epoch: number; devAccuracy: number; weights: NamedWeight[] } | null;
  /** The running weight average (config.weightAverage > 0), null before its first fold or when off. */
  average: NamedWeight[] | null;
  /** Epochs since the best one. */
  badEpochs: number;
  learningRate: number;
  state: TrainingState;
}

export interface CheckpointStore {
  /** The newest good checkpoint, or undefined. */
  load(): Promise<Checkpoint | undefined>;
  save(checkpoint: Checkpoint): Promise<void>;
}

export interface TrainOptions {
  signal?: AbortSignal;
  events?: RunEvents;
  checkpoints?: CheckpointStore;
  /** Report a step event every n steps (default: about 20 per epoch). */
  stepEvery?: number;
  /** Batch size for scoring (default 256). */
  evalBatchSize?: number;
  /** Chunk size of a full-batch step (default 4096 examples). */
  fullBatchChunk?: number;
  /** Test only: a fault injected into a data-parallel worker (config.workers > 1). */
  workerFault?: WorkerFault;
}

export type StopReason = 'epochs' | 'early-stopping';

export interface TrainResult {
  config: TrainingConfig;
  model: ModelConfig;
  epochs: EpochEvent[];
  /** 1-based best epoch by dev accuracy (the last epoch without a dev split). */
  bestEpoch: number;
  /** Dev accuracy of the best epoch; null without a dev split. */
  devAccuracy: number | null;
  /** Scores of the exported weights per split (train, dev). */
  splits: Record<string, SplitMetrics>;
  /** The best epoch's weights (what is exported). */
  weights: NamedWeight[];
  dataWaitShare: number;
  trainSeconds: number;
  seconds: number;
  /** Epochs restored from a checkpoint (0 = a fresh run). */
  resumedFromEpoch: number;
  stopReason: StopReason;
  /** Data-parallel replicas the run trained with: config.workers, or 1 on a backend that runs one only. */
  workers: number;
}

const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** The checkpoint key of a run: the resolved config (minus what does not change the trajectory) and the data. */
export function checkpointKey(config: TrainingConfig, vocabHash: string): string {
  // Neither changes the trajectory (workers only up to float summation order): a run may resume with others.
  const { exportName: _name, backend: _backend, workers: _workers, ...rest } = config;
  return JSON.stringify({ ...rest, vocabHash });
}

function cancelled(signal: AbortSignal): CancelledError {
  return new CancelledError('training cancelled', {}, { cause: signal.reason });
}

/** Reads an async batch stream, timing how long each batch took to arrive. */
async function* timed(source: AsyncIterable<Batch>, wait: { seconds: number }): AsyncGenerator<Batch> {
  const it = source[Symbol.asyncIterator]();
  try {
    for (;;) {
      const t0 = performance.now();
      const r = await it.next();
      wait.seconds += (performance.now() - t0) / 1000;
      if (r.done) return;
      yield r.value;
    }
  } finally {
    await it.return?.();
  }
}

/**
 * One epoch's training batches asked for ahead of the loop that reads them: the first batch is requested when the
 * epoch is opened, so the producer (the dataset service over gRPC, or the planner in this thread) plans the epoch
 * and sends its first batches while the loop is still busy (fetching dev batches, scoring the previous epoch).
 * Iterated once (through `timed`), it hands out that first batch, then the stream's next ones; `close` (also what
 * ending the iteration does) stops an epoch that will not be read (early stopping, failure).
 */
class OpenedEpoch implements AsyncIterable<Batch> {
  readonly #stop = new AbortController();
  readonly #iterator: AsyncIterator<Batch>;
  #first: Promise<IteratorResult<Batch>> | undefined;

  constructor(open: (signal: AbortSignal) => AsyncIterable<Batch>, signal: AbortSignal | undefined) {
    this.#iterator = open(signal === undefined ? this.#stop.signal : AbortSignal.any([signal, this.#stop.signal]))[
      Symbol.asyncIterator
    ]();
    this.#first = this.#iterator.next();
    // A failure of the early request surfaces when the loop reads it, or is dropped with an epoch never read.
    this.#first.catch(() => {});
  }

  [Symbol.asyncIterator](): AsyncIterator<Batch> {
    return {
      next: () => {
        const pending = this.#first ?? this.#iterator.next();
        this.#first = undefined;
        return pending;
      },
      return: async () => {
        await this.close();
        return { done: true, value: undefined };
      },
    };
  }

  async close(): Promise<void> {
    this.#stop.abort();
    this.#first = undefined;
    try {
      await this.#iterator.return?.();
    } catch {
      // The stream failed after it was given up: nothing reads it any more.
    }
  }
}

async function collect(source: AsyncIterable<Batch>): Promise<Batch[]> {
  const out: Batch[] = [];
  for await (const b of source) out.push(b);
  return out;
}

/** Trains `config` on `feed`; resumes from `options.checkpoints` when it holds a checkpoint of this run. */
export async function train(config: TrainingConfig, feed: DataFeed, options: TrainOptions = {}): Promise<TrainResult> {
  const started = performance.now();
  const { signal, events = {} } = options;
  const info = feed.info;
  const trainInfo = checkSplit(info, config.trainSplit, 'train_split');
  if (trainInfo.examples === 0) {
    throw new InvalidInputError(
      `split ${JSON.stringify(config.trainSplit)} has no examples left after dropping OOV tokens and empty examples`,
      {
        field: 'train_split',
      },
    );
  }
  const devInfo = config.devSplit === null ? undefined : checkSplit(info, config.devSplit, 'dev_split');
  if (devInfo !== undefined && devInfo.examples === 0) {
    throw new InvalidInputError(`split ${JSON.stringify(config.devSplit)} has no examples left`, {
      field: 'dev_split',
    });
  }
  const evalBatchSize = options.evalBatchSize ?? 256;
  const scoring: EpochOptions = { batchSize: evalBatchSize, seed: 0, epoch: 0, shuffle: false, bucketing: 'global' };

  const matrix = await feed.matrix();
  if (matrix.length !== info.tokens.length * info.dim) {
    throw new FailedPreconditionError(
      `the matrix has ${matrix.length} values, the vocabulary needs ${info.tokens.length} x ${info.dim}`,
      { field: 'matrix' },
    );
  }
  const modelConfig = {
    kind: config.model,
    vocabSize: info.tokens.length,
    dim: info.dim,
    finetune: config.finetune,
    seed: config.seed,
    ...(config.learningRate === null ? {} : { learningRate: config.learningRate }),
    ...(config.dropout === null ? {} : { dropout: config.dropout }),
  };
  let workers = config.workers;
  const tfBackend = getBackend();
  if (workers > 1 && !isParallelBackend(tfBackend)) {
    events.onMessage?.(
      `workers: ${workers} asked, 1 used: data-parallel workers run on wasm or cpu, this run is on ${tfBackend}`,
    );
    workers = 1;
  }
  const parallel =
    workers > 1 && isParallelBackend(tfBackend)
      ? await DataParallel.start(modelConfig, matrix, {
          workers,
          backend: tfBackend,
          ...(options.workerFault === undefined ? {} : { fault: options.workerFault }),
        })
      : undefined;
  if (parallel !== undefined)
    events.onMessage?.(`data-parallel: ${workers} replicas (this thread and ${workers - 1} worker threads)`);
  const model = parallel?.model ?? createModel(modelConfig, { embeddings: matrix });
  /** The next epoch's batches, asked for ahead (see OpenedEpoch). */
  let opened: OpenedEpoch | undefined;
  try {
    const key = checkpointKey(config, info.vocabHash);
    let history: EpochEvent[] = [];
    let best: Checkpoint['best'] = null;
    let badEpochs = 0;
    let learningRate = model.config.learningRate;
    let resumedFromEpoch = 0;
    let average = config.weightAverage > 0 ? new WeightAverage(config.weightAverage) : undefined;
    const restored = await options.checkpoints?.load();
    if (restored !== undefined) {
      if (restored.key !== key) {
        throw new FailedPreconditionError('the checkpoint belongs to another run configuration or vocabulary', {
          field: 'checkpoint',
        });
      }
      model.setTrainingState(restored.state);
      history = restored.history;
      best = restored.best;
      badEpochs = restored.badEpochs;
      learningRate = restored.learningRate;
      resumedFromEpoch = restored.epoch;
      if (average !== undefined) average = new WeightAverage(config.weightAverage, restored.average);
      if (learningRate !== model.config.learningRate) model.setLearningRate(learningRate);
      events.onMessage?.(`resumed after epoch ${restored.epoch} from a checkpoint`);
    }

    const fullBatch = config.batchSize === 0;
    const epochOptions = (epoch: number): EpochOptions => ({
      batchSize: config.batchSize,
      seed: config.seed,
      epoch,
      shuffle: true,
      bucketing: config.bucketing,
    });
    const openEpoch = (epoch: number): OpenedEpoch | undefined =>
      fullBatch || epoch >= config.epochs
        ? undefined
        : new OpenedEpoch((s) => feed.batches(config.trainSplit, epochOptions(epoch), s), signal);
    let stopReason: StopReason = 'epochs';
    if (config.patience > 0 && badEpochs >= config.patience) stopReason = 'early-stopping';
    // The first epoch's batches are asked for now, so they come while the dev batches are fetched.
    if (stopReason === 'epochs') opened = openEpoch(history.length);
    // Dev batches are the same every epoch: fetched once.
    const devBatches = devInfo === undefined ? undefined : await collect(feed.batches(devInfo.name, scoring, signal));
    const stepsInEpoch = stepsPerEpoch(config, trainInfo.examples);
    const every = options.stepEvery ?? Math.max(1, Math.floor(stepsInEpoch / 20));

    for (let epoch = history.length; epoch < config.epochs && stopReason === 'epochs'; epoch++) {
      if (signal?.aborted) throw cancelled(signal);
      const wait = { seconds: 0 };
      const epochStart = performance.now();
      let loss = 0;
      let correct = 0;
      let examples = 0;
      let step = 0;
      if (fullBatch) {
        const chunks = timed(
          feed.batches(
            config.trainSplit,
            {
              batchSize: options.fullBatchChunk ?? 4096,
              seed: config.seed,
              epoch,
              shuffle: false,
              bucketing: 'global',
            },
            signal,
          ),
          wait,
        );
        const r = await (parallel?.stepAccumulated(chunks) ?? model.trainStepAccumulatedAsync(chunks));
        if (average?.due(model.steps)) await average.fold(model);
        loss = r.loss * r.examples;
        correct = r.correct;
        examples = r.examples;
        step = 1;
      } else {
        const current = opened ?? openEpoch(epoch)!;
        opened = undefined;
        for await (const batch of timed(current, wait)) {
          if (signal?.aborted) throw cancelled(signal);
          // Word dropout draws from the run's seed and the global step, so a resumed run drops the same tokens.
          const input =
            config.wordDropout > 0
              ? dropTokens(batch, config.wordDropout, uniform01(mix32(mix32(config.seed) + model.steps)))
              : batch;
          const r = await (parallel?.step(input) ?? model.trainStepAsync(input));
          if (average?.due(model.steps)) await average.fold(model);
          loss += r.loss * r.examples;
          correct += r.correct;
          examples += r.examples;
          step++;
          if (events.onStep !== undefined && step % every === 0) {
            const seconds = (performance.now() - epochStart) / 1000;
            events.onStep({
              epoch: epoch + 1,
              step,
              stepsInEpoch,
              loss: loss / examples,
              accuracy: correct / examples,
              examplesPerSecond: examples / seconds,
              seconds,
            });
          }
          if (step % 8 === 0) await yieldToEventLoop();
          if (step >= stepsInEpoch) break;
        }
      }
      if (signal?.aborted) throw cancelled(signal);
      if (examples === 0) throw new InvalidInputError(`epoch ${epoch + 1} had no batches`, { field: 'train_split' });
      const trainSeconds = (performance.now() - epochStart) / 1000;
      // The next epoch's batches are asked for before this one is scored (closed below if the run stops here).
      opened = openEpoch(epoch + 1);
      const record: EpochEvent = {
        epoch: epoch + 1,
        trainLoss: loss / examples,
        trainAccuracy: correct / examples,
        trainExamplesPerSecond: examples / trainSeconds,
        trainSeconds,
        seconds: 0,
        dataWaitShare: trainSeconds > 0 ? wait.seconds / trainSeconds : 0,
        learningRate,
      };
      if (devBatches !== undefined) {
        const dev = await (average?.withAverage(model, () => model.evaluateAsync(devBatches)) ??
          model.evaluateAsync(devBatches));
        record.devLoss = dev.loss;
        record.devAccuracy = dev.accuracy;
      }
      record.seconds = (performance.now() - epochStart) / 1000;
      history.push(record);

      const improved = record.devAccuracy === undefined || best === null || record.devAccuracy > best.devAccuracy;
      if (improved) {
        best = {
          epoch: record.epoch,
          devAccuracy: record.devAccuracy ?? Number.NaN,
          weights: average?.snapshot() ?? (await model.getWeightsAsync()),
        };
        badEpochs = 0;
      } else {
        badEpochs++;
        if (config.lrDecay < 1) {
          learningRate *= config.lrDecay;
          model.setLearningRate(learningRate);
        }
      }
      if (config.patience > 0 && badEpochs >= config.patience) stopReason = 'early-stopping';
      events.onEpoch?.(record);
      if (options.checkpoints !== undefined) {
        await options.checkpoints.save({
          key,
          epoch: record.epoch,
          history,
          best,
          average: average?.snapshot() ?? null,
          badEpochs,
          learningRate,
          state: await model.getTrainingState(),
        });
      }
    }
    // An epoch asked for ahead and not trained (early stopping) is stopped before the final scoring.
    await opened?.close();
    opened = undefined;
    if (stopReason === 'early-stopping')
      events.onMessage?.(
        `early stopping: no better dev accuracy in ${config.patience} epochs (best epoch ${best?.epoch})`,
      );
    if (best === null) throw new InvalidInputError('no epoch was trained', { field: 'epochs' });

    // Score the exported (best) weights on every split the run used.
    model.setWeights(best.weights);
    const splits: Record<string, SplitMetrics> = {};
    for (const s of [trainInfo, ...(devInfo === undefined ? [] : [devInfo])]) {
      if (signal?.aborted) throw cancelled(signal);
      const batches =
        s === devInfo && devBatches !== undefined ? devBatches : await collect(feed.batches(s.name, scoring, signal));
      const r = await model.evaluateAsync(batches);
      splits[s.name] = computeSplitMetrics(r.confusion, r.loss, s.dropped);
    }
    const trainSeconds = history.reduce((a, e) => a + e.trainSeconds, 0);
    const waitSeconds = history.reduce((a, e) => a + e.dataWaitShare * e.trainSeconds, 0);
    return {
      config,
      model: model.config,
      epochs: history,
      bestEpoch: best.epoch,
      devAccuracy: devInfo === undefined ? null : best.devAccuracy,
      splits,
      weights: best.weights,
      dataWaitShare: trainSeconds > 0 ? waitSeconds / trainSeconds : 0,
      trainSeconds,
      seconds: (performance.now() - started) / 1000,
      resumedFromEpoch,
      stopReason,
      workers,
    };
  } finally {
    await opened?.close();
    await parallel?.close();
    model.dispose();
  }
}
