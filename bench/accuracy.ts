/**
 * Dev accuracy of the zoo on GLUE SST-2 with wink GloVe-100d, through @ch8/training's pipeline (what `ch8 train`
 * and the trainer service run): early stopping on dev accuracy, the best epoch's accuracy reported, per seed and as
 * the mean over seeds. Hyperparameters per model are the table below (override with --set model.field=value). The
 * PyTorch reference's means (shared/peers, 3 seeds) are reported beside each model. One JSON document on stdout.
 *
 *   pnpm bench:accuracy [--models bow-frozen,cnn] [--seeds 1,2,3] [--sst2 DIR] [--set cnn.learningRate=5e-4]
 */
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { selectBackend } from '@ch8/backend/select';
import { ROOT } from '@ch8/cli/launch';
import { prepareLocal } from '@ch8/datasets/local';
import type { ModelKind } from '@ch8/models/config';
import { resolveTrainingConfig, type TrainingConfigInput } from '@ch8/training/config';
import { localFeed } from '@ch8/training/feed';
import { train } from '@ch8/training/run';
import { SST2_SETTINGS } from '@ch8/training/settings';
import { modelList, readArgs } from './src/args.ts';

/** The settings the accuracy figures are reported with (a copy: `--set model.field=value` changes it). */
export const SETTINGS: Record<ModelKind, Omit<TrainingConfigInput, 'model'>> = Object.fromEntries(
  Object.entries(SST2_SETTINGS).map(([k, v]) => [k, { ...v }]),
) as Record<ModelKind, Omit<TrainingConfigInput, 'model'>>;

/** What the issue asks of each model (mean over seeds 1-3), and the reference's mean (shared/peers/README.md). */
const TARGET: Partial<Record<ModelKind, number>> = {
  'bow-frozen': 0.77,
  'bow-finetune': 0.825,
  mlp: 0.835,
  cnn: 0.84,
  bilstm: 0.84,
};
const REFERENCE: Partial<Record<ModelKind, number>> = {
  'bow-frozen': 0.766,
  'bow-finetune': 0.823,
  mlp: 0.831,
  cnn: 0.834,
  bilstm: 0.837,
};

const here = fileURLToPath(new URL('.', import.meta.url));
let sst2 = resolve(here, '..', '..', 'shared', 'data', 'sst2');
let models = modelList('bow-frozen,bow-finetune,mlp,cnn,bilstm');
let seeds = [1, 2, 3];
const overrides: Array<[ModelKind, string, string]> = [];
readArgs(process.argv.slice(2), (flag, value) => {
  if (flag === '--sst2') sst2 = resolve(value());
  else if (flag === '--models') models = modelList(value());
  else if (flag === '--seeds') seeds = value().split(',').map(Number);
  else if (flag === '--set') {
    const m = /^([a-z-]+)\.([A-Za-z]+)=(.+)$/.exec(value());
    if (m === null) throw new Error('--set model.field=value');
    overrides.push([modelList(m[1]!)[0]!, m[2]!, m[3]!]);
  } else return false;
  return true;
});
for (const [model, field, raw] of overrides) {
  const v = raw === 'true' ? true : raw === 'false' ? false : /^-?[0-9.e-]+$/.test(raw) ? Number(raw) : raw;
  (SETTINGS[model] as Record<string, unknown>)[field] = v;
}

const log = (s: string) => void process.stderr.write(`[bench:accuracy] ${s}\n`);
const backend = await selectBackend({ prefer: 'wasm' });
const prepared = await prepareLocal({ kind: 'sst2', dir: sst2 }, { cacheDir: join(ROOT, '.cache', 'embeddings') });
const feed = localFeed(prepared);
const round = (x: number, d = 4): number => Math.round(x * 10 ** d) / 10 ** d;

const rows: Record<string, unknown> = {};
for (const model of models) {
  const settings = SETTINGS[model];
  const perSeed = [];
  for (const seed of seeds) {
    const config = resolveTrainingConfig({ model, ...settings, seed });
    const t0 = performance.now();
    const r = await train(config, feed, {
      events: {
        onEpoch: (e) =>
          log(
            `${model} seed ${seed} epoch ${e.epoch}: train loss ${e.trainLoss.toFixed(4)}, dev ${e.devAccuracy?.toFixed(4)} (${Math.round(e.trainExamplesPerSecond)} ex/s)`,
          ),
      },
    });
    const best = r.epochs[r.bestEpoch - 1]!;
    perSeed.push({
      seed,
      dev_accuracy: r.devAccuracy,
      best_epoch: r.bestEpoch,
      epochs_run: r.epochs.length,
      stop: r.stopReason,
      train_examples_per_second: Math.round(best.trainExamplesPerSecond),
      seconds: round((performance.now() - t0) / 1000, 1),
      dev: {
        precision: round(r.splits['dev']!.precision),
        recall: round(r.splits['dev']!.recall),
        f1: round(r.splits['dev']!.f1),
        confusion: r.splits['dev']!.confusion,
      },
    });
    log(`${model} seed ${seed}: best epoch ${r.bestEpoch}, dev ${r.devAccuracy!.toFixed(4)}`);
  }
  const accs = perSeed.map((p) => p.dev_accuracy!);
  const mean = accs.reduce((a, b) => a + b, 0) / accs.length;
  rows[model] = {
    settings,
    seeds: perSeed,
    mean_dev_accuracy: round(mean),
    target: TARGET[model] ?? null,
    met: TARGET[model] === undefined ? null : mean >= TARGET[model]!,
    reference_mean: REFERENCE[model] ?? null,
  };
}
process.stdout.write(
  JSON.stringify(
    {
      bench: 'accuracy',
      data: sst2,
      vectors: prepared.vectors,
      backend: backend.backend,
      device: backend.device,
      seeds,
      models: rows,
    },
    null,
    2,
  ) + '\n',
);
