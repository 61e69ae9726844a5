/**
 * The zoo on the webgpu backend against wasm (the baseline, measured in the same run) on GLUE SST-2 (problem 77):
 * training examples/s over one epoch (or its first --max-batches batches) and dev accuracy, per model.
 *
 * Training is the model's own `trainStepAsync` (dense Adam, row-sparse embedding Adam when fine-tuning, dropout on),
 * dev accuracy from `predictProbabilitiesAsync`: the asynchronous API is the only one that works on webgpu in Node
 * (`dataSync()` cannot read GPU tensors there), and both backends run exactly the same calls. Batch 64, length
 * bucketing 'chunk'. Vectors: wink GloVe-100d pruned to the SST-2 train+dev words (cached as bench:models does).
 *
 *   pnpm bench:webgpu [--models LIST] [--backends webgpu,wasm] [--epochs N] [--max-batches N] [--sst2 DIR]
 */
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { collate } from '@ch8/batching/collate';
import { batchPlan } from '@ch8/batching/plan';
import { selectBackend, type BackendInfo, type BackendPreference } from '@ch8/backend/select';
import type { ModelKind } from '@ch8/models/config';
import { createModel } from '@ch8/models/model';
import { modelList, readArgs } from './src/args.ts';
import { inOrder, loadSst2Glove } from './src/sst2-glove.ts';

const SEED = 1;
const BATCH = 64;
const EVAL_BATCH = 256;

function parseArgs(argv: string[]) {
  const here = fileURLToPath(new URL('.', import.meta.url));
  const opts = {
    models: ['bow-frozen', 'mlp'] as ModelKind[],
    backends: ['webgpu', 'wasm'] as BackendPreference[],
    epochs: 1,
    maxBatches: Infinity,
    sst2: join(here, '..', '..', 'shared', 'data', 'sst2'),
  };
  readArgs(argv, (a, value) => {
    if (a === '--models') opts.models = modelList(value());
    else if (a === '--backends') opts.backends = value().split(',') as BackendPreference[];
    else if (a === '--epochs') opts.epochs = Math.max(1, Number.parseInt(value(), 10));
    else if (a === '--max-batches') opts.maxBatches = Math.max(1, Number.parseInt(value(), 10));
    else if (a === '--sst2') opts.sst2 = resolve(value());
    else return false;
    return true;
  });
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
const log = (line: string): void => void process.stderr.write(`${line}\n`);
const round = (x: number, digits = 4): number => Math.round(x * 10 ** digits) / 10 ** digits;

const { table, train, dev, trainLengths: lengths } = await loadSst2Glove(opts.sst2);
const V = table.vocab.size;
log(`vocabulary ${V} x ${table.dim}, train ${train.length}, dev ${dev.length}`);

const devBatches = inOrder(dev, EVAL_BATCH);

async function run(kind: ModelKind, backend: BackendInfo) {
  const model = createModel({ kind, vocabSize: V, dim: table.dim, seed: SEED }, { embeddings: table.matrix });
  try {
    let seen = 0;
    let seconds = 0;
    let lossSum = 0;
    for (let epoch = 0; epoch < opts.epochs; epoch++) {
      const plan = batchPlan(lengths, { batchSize: BATCH, seed: SEED, epoch, bucketing: 'chunk' });
      let n = 0;
      lossSum = 0;
      let epochSeen = 0;
      const t0 = performance.now();
      for (const positions of plan) {
        if (n++ >= opts.maxBatches) break;
        const r = await model.trainStepAsync(collate(Array.from(positions, (p) => train[p]!)));
        lossSum += r.loss * r.examples;
        epochSeen += r.examples;
      }
      const dt = (performance.now() - t0) / 1000;
      seconds += dt;
      seen += epochSeen;
      log(
        `${kind} on ${backend.backend} epoch ${epoch + 1}: loss ${(lossSum / epochSeen).toFixed(4)}, ${Math.round(epochSeen / dt)} ex/s`,
      );
    }
    let correct = 0;
    for (const b of devBatches) {
      const p = await model.predictProbabilitiesAsync(b);
      for (let i = 0; i < b.batchSize; i++) if ((p[i]! > 0.5 ? 1 : 0) === b.labels![i]) correct++;
    }
    return {
      model: kind,
      finetune: model.config.finetune,
      backend: backend.backend,
      device: backend.device,
      train_examples: seen,
      train_seconds: round(seconds, 2),
      train_examples_per_second: Math.round(seen / seconds),
      final_epoch_train_loss: round(lossSum / (seen / opts.epochs)),
      dev_accuracy: round(correct / dev.length),
    };
  } finally {
    model.dispose();
  }
}

const results: Awaited<ReturnType<typeof run>>[] = [];
const backends: BackendInfo[] = [];
for (const prefer of opts.backends) {
  const info = await selectBackend({ prefer });
  backends.push(info);
  log(`backend ${info.backend}: ${info.device}`);
  for (const kind of opts.models) {
    const row = await run(kind, info);
    results.push(row);
    log(JSON.stringify(row));
  }
}

const baseline = opts.backends[opts.backends.length - 1];
const comparisons = opts.models.flatMap((kind) => {
  const base = results.find((r) => r.model === kind && r.backend === baseline);
  return results
    .filter((r) => r.model === kind && r.backend !== baseline && base !== undefined)
    .map((r) => ({
      model: kind,
      backend: r.backend,
      baseline,
      speed_ratio: round(r.train_examples_per_second / base!.train_examples_per_second, 3),
      dev_accuracy_points_vs_baseline: round(100 * (r.dev_accuracy - base!.dev_accuracy), 2),
    }));
});

process.stdout.write(
  `${JSON.stringify(
    {
      bench: 'webgpu',
      command: `pnpm bench:webgpu ${process.argv.slice(2).join(' ')}`.trim(),
      seed: SEED,
      batch_size: BATCH,
      epochs: opts.epochs,
      max_batches: Number.isFinite(opts.maxBatches) ? opts.maxBatches : null,
      driver: 'model.trainStepAsync per batch (bucketing chunk), dev accuracy from predictProbabilitiesAsync',
      baseline: `${baseline}, same run, same driver`,
      data: { train_examples: train.length, dev_examples: dev.length, vocab_size: V, dim: table.dim },
      backends,
      results,
      comparisons,
    },
    null,
    2,
  )}\n`,
);
