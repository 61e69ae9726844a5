/**
 * `ch8 train` (problems 72-74, 76-79): trains one model of the zoo with @ch8/training's pipeline, in-process by
 * default or through a running trainer service with --addr. Either way it shows progress while it trains (a live
 * line on a terminal), scores dev after every epoch, stops early on a dev plateau with --patience, and exports the
 * best epoch's weights as the next version of `--name` in the model repository (`--models`, default
 * `$CH8_HOME/models` or `.cache/models` in the workspace). Ctrl-C cancels: nothing is exported.
 *
 * In-process, --train/--dev are local files; with --addr they are paths on the services' data roots (default: the
 * builtin review sets), and the trainer reaches the embedding and dataset services through its own configuration.
 */
import { resolve } from 'node:path';
import process from 'node:process';
import { selectBackend, type BackendInfo } from '@ch8/backend/select';
import { RunState, TrainerService, type Run } from '@ch8/contracts/trainer';
import { InvalidInputError, CancelledError } from '@ch8/errors';
import { MODEL_KINDS, isModelKind, type ModelKind } from '@ch8/models/config';
import { createClient } from '@ch8/service-kit/client';
import { ch8Home } from '@ch8/service-kit/config';
import { resolveTrainingConfig, type TrainingConfig, type TrainingConfigInput } from '@ch8/training/config';
import type { SplitMetrics } from '@ch8/model-repository/manifest';
import { exportRun } from '@ch8/training/export';
import { localFeed } from '@ch8/training/feed';
import { trainingConfigToProto } from '@ch8/training/proto';
import { train, type EpochEvent } from '@ch8/training/run';
import { bool, int, str, type Parsed } from '../args.ts';
import type { Command, CommandIO } from '../command.ts';
import { createProgress, type Progress } from '../progress.ts';
import { runView, showRunEvents, stateName, type RunView } from '../runs.ts';
import { DATA_FLAGS, describePrepared, prepareLocal, prepareRequest } from './data.ts';

export interface EpochReport {
  epoch: number;
  train_loss: number;
  train_accuracy: number;
  dev_loss?: number;
  dev_accuracy?: number;
  train_examples_per_second: number;
  seconds: number;
  data_wait_share: number;
  learning_rate: number;
}

export interface TrainReport {
  /** "local" or the trainer's address. */
  via: string;
  run_id: string | null;
  model: string;
  training: TrainingConfig;
  backend: string;
  device: string;
  data: Record<string, unknown>;
  epochs: EpochReport[];
  best_epoch: number;
  /** Dev accuracy of the best epoch (the exported weights); null without a dev split. */
  dev_accuracy: number | null;
  /** Scores of the exported weights per split. */
  splits: Record<string, SplitMetrics>;
  /** Of the best epoch. */
  train_examples_per_second: number;
  data_wait_share: number;
  seconds: number;
  /** The exported version directory (absolute), its name and version; null with --no-export. */
  model_dir: string | null;
  model_name: string | null;
  model_version: number | null;
}

/** --model, checked: one of the zoo's kinds (default bow-frozen). */
export function modelFlag(args: Parsed): ModelKind {
  const kind = str(args, 'model') ?? 'bow-frozen';
  if (!isModelKind(kind))
    throw new InvalidInputError(`--model must be one of ${MODEL_KINDS.join(', ')}, got ${JSON.stringify(kind)}`, {
      field: 'model',
    });
  return kind;
}

function numberFlag(args: Parsed, name: string, ok: (n: number) => boolean, what: string): number | undefined {
  const v = str(args, name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || !ok(n))
    throw new InvalidInputError(`--${name} must be ${what}, got ${JSON.stringify(v)}`, { field: name });
  return n;
}

/** The run's config from the flags; errors name the flag. */
function trainingConfig(args: Parsed, env: Record<string, string | undefined>): TrainingConfig {
  const model = modelFlag(args);
  const lr = numberFlag(args, 'lr', (n) => n > 0, 'a positive number');
  const dropout = numberFlag(args, 'dropout', (n) => n >= 0 && n < 1, 'a number in [0, 1)');
  const lrDecay = numberFlag(args, 'lr-decay', (n) => n > 0 && n <= 1, 'a number in (0, 1]');
  const weightAverage = numberFlag(args, 'weight-average', (n) => n >= 0 && n < 1, 'a number in [0, 1)');
  const wordDropout = numberFlag(args, 'word-dropout', (n) => n >= 0 && n < 1, 'a number in [0, 1)');
  const input: TrainingConfigInput = {
    model,
    epochs: int(args, 'epochs', 3, 1),
    batchSize: int(args, 'batch-size', 64, 0),
    seed: int(args, 'seed', 1, 0),
    patience: int(args, 'patience', 0, 0),
    bucketing: (str(args, 'bucketing') ?? 'chunk') as TrainingConfig['bucketing'],
    maxBatchesPerEpoch: int(args, 'max-batches', 0, 0),
    workers: int(args, 'workers', 1, 1),
    backend: (str(args, 'backend') ?? env['CH8_BACKEND'] ?? 'auto') as TrainingConfig['backend'],
    exportName: str(args, 'name') ?? model,
    ...(lr === undefined ? {} : { learningRate: lr }),
    ...(dropout === undefined ? {} : { dropout }),
    ...(lrDecay === undefined ? {} : { lrDecay }),
    ...(weightAverage === undefined ? {} : { weightAverage }),
    ...(wordDropout === undefined ? {} : { wordDropout }),
  };
  try {
    return resolveTrainingConfig(input);
  } catch (e) {
    // Name the flag the user typed, not the contract's field.
    if (e instanceof InvalidInputError) {
      const flag = FLAG_OF[e.field ?? ''] ?? e.field;
      throw new InvalidInputError(`--${flag} ${e.detail}`, { field: flag });
    }
    throw e;
  }
}

const FLAG_OF: Record<string, string> = {
  model: 'model',
  learning_rate: 'lr',
  batch_size: 'batch-size',
  epochs: 'epochs',
  seed: 'seed',
  early_stopping_patience: 'patience',
  bucketing: 'bucketing',
  export_name: 'name',
  backend: 'backend',
  dropout: 'dropout',
  max_batches_per_epoch: 'max-batches',
  lr_decay: 'lr-decay',
  weight_average: 'weight-average',
  word_dropout: 'word-dropout',
  embedding_mode: 'model',
};

function epochReport(e: EpochEvent): EpochReport {
  const r: EpochReport = {
    epoch: e.epoch,
    train_loss: e.trainLoss,
    train_accuracy: e.trainAccuracy,
    train_examples_per_second: e.trainExamplesPerSecond,
    seconds: e.seconds,
    data_wait_share: e.dataWaitShare,
    learning_rate: e.learningRate,
  };
  if (e.devAccuracy !== undefined) {
    r.dev_loss = e.devLoss!;
    r.dev_accuracy = e.devAccuracy;
  }
  return r;
}

function human(r: TrainReport): string {
  const t = r.training;
  const lines = [
    `model      ${r.model} (embeddings ${t.finetune ? 'fine-tuned' : 'frozen'}, batch ${t.batchSize === 0 ? 'full' : t.batchSize}, seed ${t.seed})${r.run_id ? `, run ${r.run_id} on ${r.via}` : ''}`,
    `backend    ${r.backend}: ${r.device}`,
    '',
    'epoch  train loss  train acc  dev loss  dev acc     ex/s',
  ];
  for (const e of r.epochs) {
    const dev =
      e.dev_accuracy === undefined
        ? `${'-'.padStart(8)}  ${'-'.padStart(7)}`
        : `${e.dev_loss!.toFixed(4).padStart(8)}  ${e.dev_accuracy.toFixed(4).padStart(7)}`;
    const mark = e.epoch === r.best_epoch ? ' *' : '';
    lines.push(
      `${String(e.epoch).padStart(5)}  ${e.train_loss.toFixed(4).padStart(10)}  ${e.train_accuracy.toFixed(4).padStart(9)}  ${dev}  ${Math.round(e.train_examples_per_second).toString().padStart(7)}${mark}`,
    );
  }
  lines.push('');
  for (const [name, s] of Object.entries(r.splits)) {
    lines.push(
      `${name.padEnd(6)} accuracy ${s.accuracy.toFixed(4)}  precision ${s.precision.toFixed(4)}  recall ${s.recall.toFixed(4)}  F1 ${s.f1.toFixed(4)}  confusion ${JSON.stringify(s.confusion)}`,
    );
  }
  lines.push(
    '',
    r.model_dir === null
      ? `best epoch ${r.best_epoch} (*), done in ${r.seconds.toFixed(1)} s (not exported)`
      : `best epoch ${r.best_epoch} (*) exported as ${r.model_name} version ${r.model_version}: ${r.model_dir} (${r.seconds.toFixed(1)} s)`,
  );
  return lines.join('\n');
}

/** Ctrl-C aborts the returned signal (once); `dispose` removes the handler. */
function interruptible(): { signal: AbortSignal; dispose: () => void } {
  const abort = new AbortController();
  const onSigint = (): void => abort.abort(new Error('interrupted'));
  process.once('SIGINT', onSigint);
  return { signal: abort.signal, dispose: () => process.removeListener('SIGINT', onSigint) };
}

async function trainLocally(
  args: Parsed,
  io: CommandIO,
  config: TrainingConfig,
  progress: Progress,
): Promise<TrainReport> {
  const t0 = performance.now();
  const repository = resolve(io.cwd, str(args, 'models') ?? resolve(ch8Home(io.env, io.cwd), 'models'));
  const backend: BackendInfo = await selectBackend({ prefer: config.backend, log: io.log });
  io.log(`backend ${backend.backend}: ${backend.device}`);
  const p = await prepareLocal(args, io);
  const feed = localFeed(p);
  const { signal, dispose } = interruptible();
  try {
    io.log(
      `training ${config.model} (${config.finetune ? 'fine-tuned' : 'frozen'} embeddings), ${config.epochs} epochs at most`,
    );
    const result = await train(config, feed, {
      signal,
      events: {
        onStep: (s) => progress.step({ ...s, epochs: config.epochs, elapsed: s.seconds }),
        onEpoch: (e) => progress.epoch({ ...e, examplesPerSecond: e.trainExamplesPerSecond }),
        onMessage: (m) => progress.log(m),
      },
    });
    const exported = bool(args, 'no-export')
      ? undefined
      : await exportRun(repository, result, { feed: feed.info, backend, data: describePrepared(p) });
    if (exported !== undefined)
      progress.log(`exported ${exported.name} version ${exported.version} to ${exported.path}`);
    const best = result.epochs.find((e) => e.epoch === result.bestEpoch)!;
    return {
      via: 'local',
      run_id: null,
      model: config.model,
      training: config,
      backend: backend.backend,
      device: backend.device,
      data: { ...describePrepared(p), splits: feed.info.splits },
      epochs: result.epochs.map(epochReport),
      best_epoch: result.bestEpoch,
      dev_accuracy: result.devAccuracy,
      splits: result.splits,
      train_examples_per_second: best.trainExamplesPerSecond,
      data_wait_share: result.dataWaitShare,
      seconds: (performance.now() - t0) / 1000,
      model_dir: exported?.path ?? null,
      model_name: exported?.name ?? null,
      model_version: exported?.version ?? null,
    };
  } finally {
    dispose();
    progress.done();
  }
}

async function trainRemotely(
  addr: string,
  args: Parsed,
  io: CommandIO,
  config: TrainingConfig,
  progress: Progress,
): Promise<TrainReport> {
  const t0 = performance.now();
  if (str(args, 'models') !== undefined)
    throw new InvalidInputError("--models is the trainer service's own setting (CH8_MODEL_REPOSITORY) with --addr", {
      field: 'models',
    });
  if (bool(args, 'no-export'))
    throw new InvalidInputError('--no-export is not available with --addr: a run through the service always exports', {
      field: 'no-export',
    });
  const client = createClient(TrainerService, addr);
  const { signal, dispose } = interruptible();
  try {
    const started = await client.startRun({
      config: { ...trainingConfigToProto(config), data: prepareRequest(args, io) },
    });
    const runId = started.run!.runId;
    io.log(`run ${runId} started on ${addr}`);
    const cancel = (): void => void client.cancelRun({ runId }).catch(() => {});
    signal.addEventListener('abort', cancel, { once: true });
    await showRunEvents(runId, client.watchRun({ runId }), progress, config.epochs);
    const run = (await client.getRun({ runId })).run as Run;
    if (run.state === RunState.CANCELLED || signal.aborted)
      throw new CancelledError(`run ${runId} was cancelled; nothing was exported`);
    if (run.state !== RunState.SUCCEEDED)
      throw new Error(`run ${runId} ${stateName(run.state)}: ${run.errorCode ? `${run.errorCode}: ` : ''}${run.error}`);
    const v: RunView = runView(run);
    const best = v.epochs.find((e) => e.epoch === v.best_epoch);
    return {
      via: addr,
      run_id: runId,
      model: config.model,
      training: config,
      backend: v.backend,
      device: v.device,
      data: { dataset_id: v.dataset_id },
      epochs: v.epochs,
      best_epoch: v.best_epoch,
      dev_accuracy: config.devSplit === null ? null : v.dev_accuracy,
      splits: v.splits,
      train_examples_per_second: best?.train_examples_per_second ?? 0,
      data_wait_share: v.data_wait_share,
      seconds: (performance.now() - t0) / 1000,
      model_dir: v.model_dir,
      model_name: v.model_name,
      model_version: v.model_version,
    };
  } finally {
    dispose();
    progress.done();
    client.close();
  }
}

export const trainCommand: Command = {
  name: 'train',
  summary: 'train a zoo model (in-process, or through the trainer service with --addr) and export the best epoch',
  problems: [72, 73, 74, 76, 77, 78, 79],
  usage:
    'ch8 train [--model bow-frozen] [--epochs 3] [--patience N] [--batch-size 64] [--backend auto] [--train TSV --dev TSV] [--name NAME] [--addr HOST:PORT] [--json]',
  flags: {
    ...DATA_FLAGS,
    model: { type: 'string', help: `one of ${MODEL_KINDS.join(', ')} (default bow-frozen)` },
    epochs: { type: 'string', help: 'passes over the train split at most (default 3)' },
    patience: { type: 'string', help: 'stop after this many epochs without a better dev accuracy (default 0 = never)' },
    'batch-size': {
      type: 'string',
      help: 'examples per step (default 64; 0 = the whole train split per step, problem 73)',
    },
    lr: { type: 'string', help: 'Adam learning rate (default 1e-2 for bow-frozen, 1e-3 otherwise)' },
    'lr-decay': {
      type: 'string',
      help: 'multiply the learning rate by this after an epoch without a better dev accuracy (default 1)',
    },
    'weight-average': {
      type: 'string',
      help: 'score and export an exponential moving average of the weights with this per-step decay, e.g. 0.999 (default 0 = off)',
    },
    'word-dropout': {
      type: 'string',
      help: 'leave out each token of a training batch with this probability (default 0 = off)',
    },
    dropout: { type: 'string', help: "dropout before the output layer (default the model's, 0.5)" },
    seed: { type: 'string', help: 'seed of the initial weights, dropout and batch order (default 1)' },
    bucketing: { type: 'string', help: 'none, chunk or global: group examples of similar length (default chunk)' },
    'max-batches': { type: 'string', help: 'stop each epoch after this many batches (quick runs; default 0 = all)' },
    workers: {
      type: 'string',
      help: 'data-parallel replicas: this thread and N-1 worker threads share every batch (wasm/cpu; default 1)',
    },
    backend: {
      type: 'string',
      help: 'auto, tfjs-node-gpu, tfjs-node, webgpu, wasm or cpu (default $CH8_BACKEND or auto)',
    },
    name: { type: 'string', help: 'export name in the model repository (default the model id)' },
    models: { type: 'string', help: 'model repository (default $CH8_HOME/models, or .cache/models in the workspace)' },
    'no-export': { type: 'boolean', help: 'train and score only' },
    addr: {
      type: 'string',
      help: 'HOST:PORT of a running trainer service: train there (--train/--dev then name files on its data roots)',
    },
    json: { type: 'boolean', help: 'one JSON document on standard output' },
  },
  async run(args, io) {
    // Every flag is checked before any work starts.
    const config = trainingConfig(args, io.env);
    const progress = createProgress(io);
    const addr = str(args, 'addr');
    const report =
      addr === undefined
        ? await trainLocally(args, io, config, progress)
        : await trainRemotely(addr, args, io, config, progress);
    io.result(report, human);
    return 0;
  },
};
