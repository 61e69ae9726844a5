/**
 * Training end to end, as a user runs it: the embedding, dataset and trainer services as real processes, the CLI as
 * a child process. The same `ch8 train` in-process and through the trainer service (matrix from the embedding
 * service, Arrow batches from the dataset service, a worker thread) must give bit-identical results on wasm; the
 * exported version scores the same under `ch8 eval`; `ch8 runs` lists, shows, watches and cancels runs.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { checkHealth } from '@ch8/service-kit/probes';
import { ROOT } from '@ch8/cli/launch';
import { knownAnswerTsv, knownAnswerVectors, LEXICON } from './data.ts';
import { runCli, startStack, type Stack } from './stack.ts';

let stack: Stack;
let dir: string;

async function waitServing(address: string): Promise<void> {
  const end = Date.now() + 60_000;
  while (Date.now() < end) {
    if ((await checkHealth(address, '', 1000)) === 'SERVING') return;
    await sleep(200);
  }
  throw new Error(`${address} not SERVING`);
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ch8-e2e-train-'));
  await writeFile(join(dir, 'vectors.txt'), knownAnswerVectors(7));
  await writeFile(join(dir, 'train.tsv'), knownAnswerTsv(600, 1, LEXICON, ' '));
  await writeFile(join(dir, 'dev.tsv'), knownAnswerTsv(120, 2, LEXICON, ' '));
  stack = await startStack(
    {
      CH8_LOG_LEVEL: 'warn',
      CH8_DATA_ROOTS: dir,
      CH8_HOME: join(dir, 'home'),
      CH8_CACHE_DIR: join(dir, 'cache-service'),
      CH8_BACKEND: 'wasm',
    },
    ['embedding', 'dataset', 'trainer'],
  );
  await Promise.all((['embedding', 'dataset', 'trainer'] as const).map((n) => waitServing(stack.services[n].address)));
});

after(async () => {
  await stack?.stop();
  await rm(dir, { recursive: true, force: true });
});

interface Report {
  via: string;
  run_id: string | null;
  backend: string;
  epochs: Array<{ epoch: number; train_loss: number; train_accuracy: number; dev_loss: number; dev_accuracy: number }>;
  best_epoch: number;
  dev_accuracy: number;
  splits: Record<string, { accuracy: number; confusion: number[][]; f1: number }>;
  model_dir: string;
  model_version: number;
}

const data = () => [
  '--train',
  join(dir, 'train.tsv'),
  '--dev',
  join(dir, 'dev.tsv'),
  '--vectors',
  join(dir, 'vectors.txt'),
];
const env = () => ({ ...stack.env, CH8_HOME: join(dir, 'home-cli') });

test('the same run in-process and through the services: bit-identical epochs, best epoch and scores; eval reproduces it', async () => {
  const common = [
    ...data(),
    '--model',
    'mlp',
    '--epochs',
    '4',
    '--patience',
    '2',
    '--batch-size',
    '16',
    '--seed',
    '3',
    '--backend',
    'wasm',
    '--name',
    'e2e-mlp',
    '--json',
  ];
  const local = await runCli(['train', ...common, '--cache-dir', join(dir, 'cache-cli')], env());
  assert.equal(local.code, 0, local.stderr);
  const remote = await runCli(['train', ...common, '--addr', stack.services.trainer.address], env());
  assert.equal(remote.code, 0, remote.stderr);
  const a = JSON.parse(local.stdout) as Report;
  const b = JSON.parse(remote.stdout) as Report;
  assert.equal(a.via, 'local');
  assert.equal(b.via, stack.services.trainer.address);
  assert.equal(a.backend, 'wasm');
  assert.equal(b.backend, 'wasm');
  const epochs = (r: Report) =>
    r.epochs.map((e) => [e.epoch, e.train_loss, e.train_accuracy, e.dev_loss, e.dev_accuracy]);
  assert.deepEqual(epochs(b), epochs(a));
  assert.equal(b.best_epoch, a.best_epoch);
  assert.equal(b.dev_accuracy, a.dev_accuracy);
  assert.deepEqual(b.splits['dev']!.confusion, a.splits['dev']!.confusion);
  assert.deepEqual(b.splits['train']!.confusion, a.splits['train']!.confusion);
  assert.ok(a.dev_accuracy > 0.8, `dev accuracy ${a.dev_accuracy} (chance 0.5)`);
  assert.equal(b.model_dir, join(dir, 'home', 'models', 'e2e-mlp', '1'));
  assert.equal(a.model_dir, join(dir, 'home-cli', 'models', 'e2e-mlp', '1'));

  const ev = await runCli(
    ['eval', '--model-dir', b.model_dir, '--data', join(dir, 'dev.tsv'), '--backend', 'wasm', '--json'],
    env(),
  );
  assert.equal(ev.code, 0, ev.stderr);
  const e = JSON.parse(ev.stdout) as { accuracy: number; confusion: number[][]; f1: number; examples: number };
  assert.equal(e.accuracy, b.dev_accuracy);
  assert.deepEqual(e.confusion, b.splits['dev']!.confusion);
  assert.equal(e.examples, 120);

  const list = await runCli(['runs', 'list', '--addr', stack.services.trainer.address, '--json'], env());
  assert.equal(list.code, 0, list.stderr);
  const runs = (JSON.parse(list.stdout) as { runs: Array<{ run_id: string; state: string; model_dir: string }> }).runs;
  const mine = runs.find((r) => r.run_id === b.run_id);
  assert.equal(mine?.state, 'SUCCEEDED');
  assert.equal(mine?.model_dir, b.model_dir);
  const watch = await runCli(['runs', 'watch', b.run_id!, '--addr', stack.services.trainer.address], env());
  assert.equal(watch.code, 0, watch.stderr);
  assert.match(watch.stderr, /epoch 1: train loss/);
  assert.match(watch.stderr, /SUCCEEDED/);
});

test('Ctrl-C on `ch8 train --addr` cancels the run on the service: CANCELLED, nothing exported', async () => {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(ROOT, 'packages/cli/src/main.ts'),
      'train',
      ...data(),
      '--model',
      'cnn',
      '--epochs',
      '500',
      '--batch-size',
      '4',
      '--name',
      'e2e-cancel',
      '--addr',
      stack.services.trainer.address,
    ],
    { cwd: ROOT, env: { ...process.env, ...env() }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  const exited = new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  await new Promise<void>((resolve) => {
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (/epoch 1 step \d+/.test(stderr) && !child.killed) {
        child.kill('SIGINT');
        resolve();
      }
    });
  });
  assert.equal(await exited, 1, stderr);
  assert.match(stderr, /cancelled; nothing was exported/);
  const runId = /run (run-[^ ]+) started/.exec(stderr)![1]!;
  const show = await runCli(['runs', 'show', runId, '--addr', stack.services.trainer.address, '--json'], env());
  const run = JSON.parse(show.stdout) as { state: string; model_dir: string | null };
  assert.equal(run.state, 'CANCELLED');
  assert.equal(run.model_dir, null);
  const again = await runCli(['runs', 'cancel', runId, '--addr', stack.services.trainer.address], env());
  assert.equal(again.code, 1);
  assert.match(again.stderr, /FAILED_PRECONDITION|already/);
});
