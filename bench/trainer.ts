/**
 * Training through the services vs in-process, on the same batches (GLUE SST-2, wink GloVe-100d, batch 64, chunk
 * bucketing, seed 1, one epoch, wasm), rounds alternated:
 *  - `local`:    @ch8/training's train() in this process on data prepared in-process (@ch8/datasets/local);
 *  - `grpc-feed`: train() in this process, the matrix and the Arrow batches from the running embedding and dataset
 *                 services (the feed the trainer's workers use);
 *  - `service`:  a run of the trainer service (StartRun; worker thread; data from the two services), figures from
 *                its Run record;
 *  - `cli`:      `ch8 train` in a fresh process (in-process training as a user runs it: prepared data from the
 *                embeddings cache, figures from its --json output).
 * `local` runs in this process, warmed by the rounds before; `service` and `cli` start cold each time (a new worker
 * thread, a new process), so for a one-epoch figure `cli` is the like-for-like in-process baseline of `service`.
 * Both ratios are reported.
 * Reported per model: training examples/s (the epoch's train wall time, data waits included, scoring excluded), the
 * share of it spent waiting for data, the median ratio service/local, and whether the epoch's loss is identical.
 * The services run as separate processes (as deployed), started by this script. One JSON document on stdout.
 *
 *   pnpm bench:trainer [--sst2 DIR] [--models bow-finetune,cnn] [--rounds 2]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { selectBackend } from '@ch8/backend/select';
import { ROOT, startStack } from '@ch8/cli/launch';
import { DatasetService } from '@ch8/contracts/dataset';
import { EmbeddingService } from '@ch8/contracts/embedding';
import { RunState, TrainerService } from '@ch8/contracts/trainer';
import { prepareLocal } from '@ch8/datasets/local';
import { datasetSpecToProto } from '@ch8/datasets/proto';
import { createClient } from '@ch8/service-kit/client';
import { checkHealth } from '@ch8/service-kit/probes';
import { resolveTrainingConfig, type TrainingConfig } from '@ch8/training/config';
import { localFeed } from '@ch8/training/feed';
import { openGrpcFeed } from '@ch8/training/grpc-feed';
import { trainingConfigToProto } from '@ch8/training/proto';
import { train } from '@ch8/training/run';
import { modelList, readArgs } from './src/args.ts';
import { failure, runChild } from './src/child.ts';

const here = fileURLToPath(new URL('.', import.meta.url));
let sst2 = resolve(here, '..', '..', 'shared', 'data', 'sst2');
let models = modelList('bow-finetune,cnn');
let rounds = 2;
readArgs(process.argv.slice(2), (flag, value) => {
  if (flag === '--sst2') sst2 = resolve(value());
  else if (flag === '--models') models = modelList(value());
  else if (flag === '--rounds') rounds = Number(value());
  else return false;
  return true;
});

const log = (s: string) => void process.stderr.write(`[bench:trainer] ${s}\n`);
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const round = (x: number, d = 1): number => Math.round(x * 10 ** d) / 10 ** d;
const cacheDir = join(ROOT, '.cache', 'embeddings');

interface Measure {
  examplesPerSecond: number;
  dataWaitShare: number;
  trainLoss: number;
  devAccuracy: number;
}

const home = await mkdtemp(join(tmpdir(), 'ch8-bench-trainer-'));
const stack = await startStack(
  { CH8_LOG_LEVEL: 'warn', CH8_DATA_ROOTS: sst2, CH8_HOME: home, CH8_CACHE_DIR: cacheDir, CH8_BACKEND: 'wasm' },
  ['embedding', 'dataset', 'trainer'],
);
try {
  for (const n of ['embedding', 'dataset', 'trainer'] as const) {
    while ((await checkHealth(stack.services[n].address, '', 1000)) !== 'SERVING')
      await new Promise((r) => setTimeout(r, 200));
  }
  const backend = await selectBackend({ prefer: 'wasm' });
  const spec = { kind: 'sst2', dir: sst2 } as const;
  const t0 = performance.now();
  const prepared = await prepareLocal(spec, { cacheDir });
  log(`prepared in-process in ${((performance.now() - t0) / 1000).toFixed(2)} s (cache hit ${prepared.cacheHit})`);
  const embedding = createClient(EmbeddingService, stack.services.embedding.address);
  const dataset = createClient(DatasetService, stack.services.dataset.address);
  const trainer = createClient(TrainerService, stack.services.trainer.address);
  const request = datasetSpecToProto(spec);

  const config = (model: TrainingConfig['model']): TrainingConfig =>
    resolveTrainingConfig({
      model,
      epochs: 1,
      batchSize: 64,
      seed: 1,
      bucketing: 'chunk',
      backend: 'wasm',
      exportName: `bench-${model}`,
    });

  const runLocal = async (c: TrainingConfig, feedKind: 'local' | 'grpc-feed'): Promise<Measure> => {
    const feed =
      feedKind === 'local' ? localFeed(prepared) : await openGrpcFeed({ embedding, dataset, prepare: request });
    const r = await train(c, feed);
    const e = r.epochs[0]!;
    return {
      examplesPerSecond: e.trainExamplesPerSecond,
      dataWaitShare: e.dataWaitShare,
      trainLoss: e.trainLoss,
      devAccuracy: e.devAccuracy!,
    };
  };
  const runService = async (c: TrainingConfig): Promise<Measure> => {
    const started = await trainer.startRun({ config: { ...trainingConfigToProto(c), data: request } });
    const runId = started.run!.runId;
    for await (const _ of trainer.watchRun({ runId })) void _;
    const run = (await trainer.getRun({ runId })).run!;
    if (run.state !== RunState.SUCCEEDED) throw new Error(`run ${runId}: ${run.errorCode} ${run.error}`);
    const e = run.epochs[0]!;
    return {
      examplesPerSecond: e.trainExamplesPerSecond,
      dataWaitShare: e.dataWaitShare,
      trainLoss: e.trainLoss,
      devAccuracy: e.devAccuracy,
    };
  };

  /** `ch8 train` in a new process on the same config (its data from the embeddings cache, no export). */
  const runCli = async (c: TrainingConfig): Promise<Measure> => {
    const args = [
      '--import',
      'tsx',
      join(ROOT, 'packages', 'cli', 'src', 'main.ts'),
      'train',
      ...['--model', c.model, '--epochs', '1', '--batch-size', String(c.batchSize), '--bucketing', c.bucketing],
      ...['--seed', String(c.seed), '--backend', 'wasm', '--no-export', '--json'],
      ...['--train', join(sst2, 'train.tsv'), '--dev', join(sst2, 'dev.tsv')],
    ];
    const r = await runChild(`ch8 train ${c.model}`, process.execPath, args, {
      env: { ...process.env, CH8_CACHE_DIR: cacheDir, CH8_HOME: home, CH8_LOG_LEVEL: 'warn' },
    });
    if (r.code !== 0) throw new Error(`ch8 train: ${failure(r)}`);
    const e = (JSON.parse(r.stdout) as { epochs: Record<string, number>[] }).epochs[0]!;
    return {
      examplesPerSecond: e['train_examples_per_second']!,
      dataWaitShare: e['data_wait_share']!,
      trainLoss: e['train_loss']!,
      devAccuracy: e['dev_accuracy']!,
    };
  };

  type Variant = 'local' | 'grpc-feed' | 'service' | 'cli';
  const VARIANTS = ['local', 'service', 'grpc-feed', 'cli'] as const;
  const results: Record<string, Record<Variant, Measure[]>> = {};
  for (let round_ = 0; round_ < rounds; round_++) {
    for (const model of models) {
      const c = config(model);
      const slot = (results[model] ??= { local: [], 'grpc-feed': [], service: [], cli: [] });
      for (const variant of VARIANTS) {
        const m =
          variant === 'service'
            ? await runService(c)
            : variant === 'cli'
              ? await runCli(c)
              : await runLocal(c, variant);
        slot[variant].push(m);
        log(
          `round ${round_ + 1} ${model} ${variant}: ${Math.round(m.examplesPerSecond)} ex/s, data wait ${(100 * m.dataWaitShare).toFixed(2)}%, loss ${m.trainLoss.toFixed(6)}`,
        );
      }
    }
  }
  embedding.close();
  dataset.close();
  trainer.close();

  const out = {
    bench: 'trainer',
    data: { sst2, train_examples: prepared.splits.find((s) => s.name === 'train')!.examples.length },
    setup: {
      batch_size: 64,
      bucketing: 'chunk',
      seed: 1,
      epochs: 1,
      rounds,
      backend: backend.backend,
      device: backend.device,
    },
    baseline:
      'local: train() in this process (warm after round 1) on data prepared in-process; cli: ch8 train in a fresh process (cold, as service)',
    models: Object.fromEntries(
      Object.entries(results).map(([model, r]) => {
        const med = (v: Variant) => median(r[v].map((m) => m.examplesPerSecond));
        const losses = new Set(VARIANTS.flatMap((v) => r[v].map((m) => m.trainLoss)));
        return [
          model,
          {
            examples_per_second: Object.fromEntries(
              VARIANTS.map((v) => [v, r[v].map((m) => Math.round(m.examplesPerSecond))]),
            ),
            median_examples_per_second: {
              local: Math.round(med('local')),
              grpc_feed: Math.round(med('grpc-feed')),
              service: Math.round(med('service')),
              cli: Math.round(med('cli')),
            },
            ratio_service_to_local: round(med('service') / med('local'), 3),
            ratio_service_to_cli: round(med('service') / med('cli'), 3),
            ratio_grpc_feed_to_local: round(med('grpc-feed') / med('local'), 3),
            data_wait_share: Object.fromEntries(VARIANTS.map((v) => [v, r[v].map((m) => round(m.dataWaitShare, 4))])),
            median_data_wait_share: Object.fromEntries(
              VARIANTS.map((v) => [v, round(median(r[v].map((m) => m.dataWaitShare)), 4)]),
            ),
            same_loss_every_variant: losses.size === 1,
            dev_accuracy: r.service[0]!.devAccuracy,
          },
        ];
      }),
    ),
  };
  process.stdout.write(JSON.stringify(out, null, 2) + '\n');
} finally {
  await stack.stop();
  await rm(home, { recursive: true, force: true });
}
