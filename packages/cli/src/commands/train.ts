/**
 * `ch8 train` (problems 72-74, 76-79): trains one model of the zoo in-process on a data set (SST-2 TSVs or the
 * builtin review sets) with the pruned pretrained vectors, shows the loss while it trains, scores dev after every
 * epoch and, with --out, exports the model (atomically) with its vocabulary, tokenizer and metrics.
 *
 * The compute backend is chosen at start (--backend, default $CH8_BACKEND or auto) and reported with the result;
 * `--backend webgpu` trains on a GPU through Vulkan/Dawn (problem 77), on a software adapter too when named.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import process from 'node:process';
import type { BatchExample } from '@ch8/batching/collate';
import { epochBatches, type Bucketing } from '@ch8/batching/plan';
import { BACKENDS, selectBackend, type BackendInfo, type BackendPreference } from '@ch8/backend/select';
import { InvalidInputError } from '@ch8/errors';
import { MODEL_KINDS, isModelKind, type ModelConfig, type ModelKind } from '@ch8/models/config';
import { saveModel } from '@ch8/models/io';
import { createModel } from '@ch8/models/model';
import { fit, type EpochProgress } from '@ch8/models/train';
import { bool, int, str, type Parsed } from '../args.ts';
import type { Command } from '../command.ts';
import { DATA_FLAGS, describePrepared, prepareLocal } from './data.ts';

export interface EpochReport {
  epoch: number;
  train_loss: number;
  train_accuracy: number;
  train_examples: number;
  train_seconds: number;
  examples_per_second: number;
  dev_loss?: number;
  dev_accuracy?: number;
}

export interface TrainReport {
  model: ModelConfig;
  backend: BackendInfo;
  data: { source: string; tokenizer: string; vectors: string; vocab_size: number; dim: number; vocab_hash: string; train_examples: number; dev_examples: number };
  training: { epochs: number; batch_size: number; bucketing: Bucketing; seed: number; max_batches: number | null };
  epochs: EpochReport[];
  /** Dev accuracy after the last epoch (null without a dev split). */
  dev_accuracy: number | null;
  seconds: number;
  /** The exported model directory, when --out was given. */
  saved: string | null;
}

const BUCKETINGS: readonly Bucketing[] = ['none', 'chunk', 'global'];

function backendFlag(args: Parsed, env: Record<string, string | undefined>): BackendPreference {
  const b = str(args, 'backend') ?? env['CH8_BACKEND'] ?? 'auto';
  if (b !== 'auto' && !(BACKENDS as readonly string[]).includes(b)) {
    throw new InvalidInputError(`--backend must be auto or one of ${BACKENDS.join(', ')}, got ${JSON.stringify(b)}`, { field: 'backend' });
  }
  return b as BackendPreference;
}

/** --model, checked: one of the zoo's kinds (default bow-frozen). */
export function modelFlag(args: Parsed): ModelKind {
  const kind = str(args, 'model') ?? 'bow-frozen';
  if (!isModelKind(kind)) throw new InvalidInputError(`--model must be one of ${MODEL_KINDS.join(', ')}, got ${JSON.stringify(kind)}`, { field: 'model' });
  return kind;
}

function numberFlag(args: Parsed, name: string): number | undefined {
  const v = str(args, name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n <= 0) throw new InvalidInputError(`--${name} must be a positive number, got ${JSON.stringify(v)}`, { field: name });
  return n;
}

function epochReport(p: EpochProgress): EpochReport {
  const r: EpochReport = {
    epoch: p.epoch + 1,
    train_loss: p.trainLoss,
    train_accuracy: p.trainAccuracy,
    train_examples: p.trainExamples,
    train_seconds: p.trainSeconds,
    examples_per_second: p.examplesPerSecond,
  };
  if (p.eval !== undefined) {
    r.dev_loss = p.eval.loss;
    r.dev_accuracy = p.eval.accuracy;
  }
  return r;
}

function human(r: TrainReport): string {
  const lines = [
    `model      ${r.model.kind} (embeddings ${r.model.finetune ? 'fine-tuned' : 'frozen'}, lr ${r.model.learningRate}, seed ${r.model.seed})`,
    `backend    ${r.backend.backend}: ${r.backend.device}`,
    `data       ${r.data.source}: train ${r.data.train_examples}, dev ${r.data.dev_examples}, |V| ${r.data.vocab_size}, d ${r.data.dim}`,
    '',
    'epoch  train loss  train acc  dev loss  dev acc     ex/s',
  ];
  for (const e of r.epochs) {
    const dev = e.dev_accuracy === undefined ? `${'-'.padStart(8)}  ${'-'.padStart(7)}` : `${e.dev_loss!.toFixed(4).padStart(8)}  ${e.dev_accuracy.toFixed(4).padStart(7)}`;
    lines.push(`${String(e.epoch).padStart(5)}  ${e.train_loss.toFixed(4).padStart(10)}  ${e.train_accuracy.toFixed(4).padStart(9)}  ${dev}  ${Math.round(e.examples_per_second).toString().padStart(7)}`);
  }
  lines.push('', r.saved === null ? `done in ${r.seconds.toFixed(1)} s (not saved: give --out DIR)` : `saved to ${r.saved} in ${r.seconds.toFixed(1)} s`);
  return lines.join('\n');
}

export const trainCommand: Command = {
  name: 'train',
  summary: 'train a zoo model in-process (loss while training, dev accuracy per epoch), optionally export it',
  problems: [72, 73, 74, 76, 77, 78, 79],
  usage: 'ch8 train [--model bow-frozen] [--epochs 3] [--batch-size 64] [--backend auto] [--train TSV --dev TSV] [--out DIR] [--json]',
  flags: {
    ...DATA_FLAGS,
    model: { type: 'string', help: `one of ${MODEL_KINDS.join(', ')} (default bow-frozen)` },
    epochs: { type: 'string', help: 'passes over the train split (default 3)' },
    'batch-size': { type: 'string', help: 'examples per step (default 64; 1 trains on one example at a time)' },
    lr: { type: 'string', help: 'Adam learning rate (default 1e-2 for bow-frozen, 1e-3 otherwise)' },
    seed: { type: 'string', help: 'seed of the initial weights, dropout and batch order (default 1)' },
    bucketing: { type: 'string', help: 'none, chunk or global: group examples of similar length (default chunk)' },
    'max-batches': { type: 'string', help: 'stop each epoch after this many batches (quick runs)' },
    backend: { type: 'string', help: `auto or one of ${BACKENDS.join(', ')} (default $CH8_BACKEND or auto)` },
    'log-every': { type: 'string', help: 'log the training loss every N steps (default: about 10 lines per epoch)' },
    out: { type: 'string', help: 'export the trained model to this directory (written atomically)' },
    overwrite: { type: 'boolean', help: 'replace an existing --out directory' },
    json: { type: 'boolean', help: 'one JSON document on standard output' },
  },
  async run(args, io) {
    const t0 = performance.now();
    // Every flag is checked before any work starts.
    const kind = modelFlag(args);
    const epochs = int(args, 'epochs', 3, 1);
    const batchSize = int(args, 'batch-size', 64, 1);
    const seed = int(args, 'seed', 1);
    const maxBatches = int(args, 'max-batches', Number.POSITIVE_INFINITY, 1);
    const logEvery = str(args, 'log-every') === undefined ? undefined : int(args, 'log-every', 1, 1);
    const bucketing = (str(args, 'bucketing') ?? 'chunk') as Bucketing;
    if (!BUCKETINGS.includes(bucketing)) throw new InvalidInputError(`--bucketing must be one of ${BUCKETINGS.join(', ')}, got ${JSON.stringify(bucketing)}`, { field: 'bucketing' });
    const learningRate = numberFlag(args, 'lr');
    const prefer = backendFlag(args, io.env);
    const out = str(args, 'out') === undefined ? undefined : resolve(io.cwd, str(args, 'out') as string);
    const overwrite = bool(args, 'overwrite');
    if (out !== undefined && !overwrite && existsSync(out)) {
      throw new InvalidInputError('--out already exists (pass --overwrite to replace it)', { file: out, field: 'out' });
    }

    const backend = await selectBackend({ prefer, log: io.log });
    io.log(`backend ${backend.backend}: ${backend.device}`);
    const p = await prepareLocal(args, io);
    const trainSplit = p.splits.find((s) => s.name === 'train');
    const devSplit = p.splits.find((s) => s.name === 'dev');
    if (trainSplit === undefined) throw new InvalidInputError('--dev needs --train (or neither, for the builtin review sets)', { field: 'train' });
    if (trainSplit.examples.length === 0) {
      throw new InvalidInputError('the train split has no examples left after dropping OOV tokens and empty examples', { field: 'train' });
    }
    const train: readonly BatchExample[] = trainSplit.examples;
    const dev: readonly BatchExample[] = devSplit?.examples ?? [];
    const steps = Math.min(Math.ceil(train.length / batchSize), maxBatches);
    const every = logEvery ?? Math.max(1, Math.floor(steps / 10));

    const model = createModel(
      { kind, vocabSize: p.tokens.length, dim: p.dim, seed, ...(learningRate === undefined ? {} : { learningRate }) },
      { embeddings: p.matrix },
    );
    // Ctrl-C stops after the current step: nothing is exported, the process exits 1 with a clear message.
    const abort = new AbortController();
    const onSigint = (): void => abort.abort(new Error('interrupted'));
    process.once('SIGINT', onSigint);
    try {
      io.log(`training ${kind} (${model.config.finetune ? 'fine-tuned' : 'frozen'} embeddings) on ${train.length} examples, ${steps} steps per epoch, dev ${dev.length}`);
      const history = await fit(model, {
        epochs,
        batches: function* (epoch) {
          let n = 0;
          for (const batch of epochBatches(train, { batchSize, seed, epoch, bucketing })) {
            if (n++ >= maxBatches) return;
            yield batch;
          }
        },
        ...(dev.length > 0 ? { evalBatches: () => epochBatches(dev, { batchSize: 256, shuffle: false }) } : {}),
        stepEvery: every,
        onStep: (s) => io.log(`epoch ${s.epoch + 1} step ${s.step}/${steps}: loss ${s.loss.toFixed(4)} (${Math.round(s.examplesPerSecond)} ex/s)`),
        onEpoch: (e) =>
          io.log(
            `epoch ${e.epoch + 1}: train loss ${e.trainLoss.toFixed(4)}, acc ${e.trainAccuracy.toFixed(4)}` +
              (e.eval ? `; dev loss ${e.eval.loss.toFixed(4)}, acc ${e.eval.accuracy.toFixed(4)}` : '') +
              ` (${Math.round(e.examplesPerSecond)} ex/s)`,
          ),
        signal: abort.signal,
      });
      const reports = history.map(epochReport);
      const report: TrainReport = {
        model: model.config,
        backend,
        data: {
          ...describePrepared(p),
          train_examples: train.length,
          dev_examples: dev.length,
        },
        training: { epochs, batch_size: batchSize, bucketing, seed, max_batches: Number.isFinite(maxBatches) ? maxBatches : null },
        epochs: reports,
        dev_accuracy: reports.at(-1)?.dev_accuracy ?? null,
        seconds: 0,
        saved: null,
      };
      if (out !== undefined) {
        await saveModel(model, out, {
          vocabHash: p.vocabHash,
          overwrite,
          metadata: {
            vocabulary: p.tokens,
            tokenizer: report.data.tokenizer,
            data: report.data,
            training: report.training,
            backend: { backend: backend.backend, device: backend.device },
            epochs: reports,
          },
        });
        report.saved = out;
        io.log(`exported to ${out}`);
      }
      report.seconds = (performance.now() - t0) / 1000;
      io.result(report, human);
      return 0;
    } finally {
      process.removeListener('SIGINT', onSigint);
      model.dispose();
    }
  },
};
