import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { validateChapterResults } from '@ch8/report/validate';
import { gpuSkipReason, chapterCommand } from './commands/chapter.ts';
import {
  CHAPTER_RUNS,
  fitWeightAverage,
  modelResult,
  parseModelList,
  planRuns,
  resultsTable,
  samplesTable,
} from './chapter-plan.ts';
import type { RunView } from './runs.ts';
import { phaseLine } from './chapter-progress.ts';
import { stepLine } from './progress.ts';
import { runCommand } from './testing.ts';

let dir: string;
before(async () => void (dir = await mkdtemp(join(tmpdir(), 'ch8-cli-chapter-'))));
after(() => rm(dir, { recursive: true, force: true }));

/** Runs `ch8 chapter` expecting a usage error before any service starts; returns the error. */
async function refused(argv: string[]): Promise<Error & { field?: string }> {
  let error: (Error & { field?: string }) | undefined;
  await runCommand(chapterCommand, [...argv, '--out', join(dir, 'never')], { cwd: dir }).catch((e: Error) => {
    error = e;
  });
  assert.ok(error !== undefined, `${argv.join(' ')} was accepted`);
  assert.equal(error.name, 'InvalidInputError', error.message);
  return error;
}

test('chapter: bad arguments are refused, naming the flag, before the stack starts', async () => {
  const t0 = performance.now();
  assert.equal((await refused(['--models', 'gpt'])).field, 'models');
  assert.match((await refused(['--models', 'bow-frozen,p80-x'])).message, /"p80-x"/);
  assert.equal((await refused(['--models', ','])).field, 'models');
  assert.equal((await refused(['--epochs', '0'])).field, 'epochs');
  assert.equal((await refused(['--epochs', 'many'])).field, 'epochs');
  assert.equal((await refused(['--seed', '-1'])).field, 'seed');
  assert.equal((await refused(['--backend', 'cuda'])).field, 'backend');
  assert.equal((await refused(['--sst2', join(dir, 'nowhere')])).field, 'sst2');
  await writeFile(join(dir, 'train.tsv'), 'sentence\tlabel\ngood\t1\n');
  // A folder with train.tsv but no dev.tsv is not SST-2.
  assert.match((await refused(['--sst2', dir])).message, /dev\.tsv/);
  assert.equal((await refused(['--vectors', join(dir, 'missing.bin.gz')])).field, 'vectors');
  assert.equal((await refused(['--vectors', dir])).field, 'vectors');
  // Nothing was started: refusing is immediate.
  assert.ok(performance.now() - t0 < 5000);
});

test('the plan: every problem 72-79 run under its own name; --models picks kinds or names; --epochs caps all', () => {
  const all = planRuns({ data: 'sst2', select: [], seed: 1 });
  assert.deepEqual(
    all.map((r) => [r.problem, r.name, r.model, r.config.finetune, r.config.batchSize, r.config.backend]),
    [
      ['72-74', 'p73-bow-frozen-fullbatch', 'bow-frozen', false, 0, 'auto'],
      ['76', 'p76-bow-frozen', 'bow-frozen', false, 64, 'auto'],
      ['77', 'p77-bow-frozen-gpu', 'bow-frozen', false, 64, 'webgpu'],
      ['78', 'p78-bow-finetune', 'bow-finetune', true, 64, 'auto'],
      ['79', 'p79-mlp', 'mlp', true, 64, 'auto'],
      ['79', 'p79-cnn', 'cnn', true, 64, 'auto'],
      ['79', 'p79-bilstm', 'bilstm', true, 64, 'auto'],
      ['79', 'p79-gru', 'gru', true, 64, 'auto'],
      ['79', 'p79-attention', 'attention', true, 64, 'auto'],
    ],
  );
  for (const r of all) assert.equal(r.config.exportName, r.name);
  assert.equal(all.filter((r) => r.gpu).length, 1);
  // bench/accuracy.ts's table: bow-frozen lr 1e-2 and patience 3, cnn lr 5e-4 with 8 epochs and decay 0.5.
  assert.deepEqual([all[1]!.config.learningRate, all[1]!.config.patience, all[1]!.config.epochs], [1e-2, 3, 10]);
  assert.deepEqual([all[5]!.config.learningRate, all[5]!.config.epochs, all[5]!.config.lrDecay], [5e-4, 8, 0.5]);
  assert.equal(all[3]!.config.learningRate, 5e-4);
  // The builtin review sets: bow-finetune takes a larger step (38 steps an epoch); the rest as on SST-2.
  const builtin = planRuns({ data: 'builtin', select: [], seed: 1 });
  assert.deepEqual(
    builtin.map((r) => r.config.learningRate),
    all.map((r) => (r.model === 'bow-finetune' ? 1e-2 : r.config.learningRate)),
  );
  // A run scores and exports its weight average: fitted to the data, its window (1 / (1 - decay) steps) is at most
  // half of the run's steps. The builtin review sets have 2,385 training sentences (38 steps of 64 an epoch): mlp and
  // the recurrent and attention runs drop SST-2's 0.999 there; on SST-2 (66,949) they keep it, unless the run is
  // cut to one epoch.
  const window = (w: number) => (w === 0 ? 0 : 1 / (1 - w));
  const fitted = builtin.map((r) => fitWeightAverage(r, 2385));
  assert.deepEqual(
    fitted.filter((f) => f.note !== null).map((f) => f.run.name),
    ['p79-mlp', 'p79-bilstm', 'p79-gru', 'p79-attention'],
  );
  assert.match(
    fitted[4]!.note!,
    /^p79-mlp: trains without the weight average 0\.999: its window of 1000 steps is more than half of the run's 380$/,
  );
  for (const { run } of fitted) {
    const steps = run.config.batchSize === 0 ? run.config.epochs : run.config.epochs * 38;
    assert.ok(window(run.config.weightAverage) <= steps / 2, run.name);
  }
  assert.ok(all.some((r) => r.config.weightAverage > 0));
  for (const r of all) assert.deepEqual(fitWeightAverage(r, 66949), { run: r, note: null }, r.name);
  const short = planRuns({ data: 'sst2', select: ['mlp'], epochs: 1, seed: 1 })[0]!;
  assert.equal(fitWeightAverage(short, 66949).run.config.weightAverage, 0);
  assert.equal(fitWeightAverage(short, 66949).run.config.learningRate, short.config.learningRate);

  const some = planRuns({ data: 'sst2', select: parseModelList('bow-frozen, p79-cnn'), epochs: 1, seed: 7 });
  assert.deepEqual(
    some.map((r) => r.name),
    ['p73-bow-frozen-fullbatch', 'p76-bow-frozen', 'p77-bow-frozen-gpu', 'p79-cnn'],
  );
  for (const r of some) assert.deepEqual([r.config.epochs, r.config.seed], [1, 7]);
  assert.equal(new Set(CHAPTER_RUNS.map((r) => r.name)).size, CHAPTER_RUNS.length);
});

/** A finished run as the trainer reports it (runView of a Run), written out by hand. */
function view(): RunView {
  return {
    run_id: 'run-1',
    state: 'SUCCEEDED',
    model: 'cnn',
    export_name: 'p79-cnn',
    dataset_id: 'ds-1',
    backend: 'wasm',
    device: 'CPU, wasm SIMD, 1 thread',
    epochs: [
      {
        epoch: 1,
        train_loss: 0.6,
        train_accuracy: 0.7,
        dev_loss: 0.55,
        dev_accuracy: 0.75,
        train_examples_per_second: 400,
        seconds: 6,
        data_wait_share: 0.01,
        learning_rate: 5e-4,
      },
      {
        epoch: 2,
        train_loss: 0.4,
        train_accuracy: 0.8,
        dev_loss: 0.5,
        dev_accuracy: 0.8,
        train_examples_per_second: 500,
        seconds: 5,
        data_wait_share: 0.02,
        learning_rate: 5e-4,
      },
      {
        epoch: 3,
        train_loss: 0.3,
        train_accuracy: 0.9,
        dev_loss: 0.6,
        dev_accuracy: 0.78,
        train_examples_per_second: 450,
        seconds: 5,
        data_wait_share: 0.02,
        learning_rate: 2.5e-4,
      },
    ],
    best_epoch: 2,
    dev_accuracy: 0.8,
    splits: {
      train: {
        examples: 100,
        dropped: 0,
        loss: 0.3,
        accuracy: 0.9,
        precision: 0.9,
        recall: 0.9,
        f1: 0.9,
        confusion: [
          [45, 5],
          [5, 45],
        ],
      },
      dev: {
        examples: 20,
        dropped: 1,
        loss: 0.5,
        accuracy: 0.8,
        precision: 0.75,
        recall: 0.9,
        f1: 0.8182,
        confusion: [
          [7, 3],
          [1, 9],
        ],
      },
    },
    data_wait_share: 0.02,
    resumed_from_epoch: 0,
    model_dir: '/abs/models/p79-cnn/1',
    model_name: 'p79-cnn',
    model_version: 1,
    error: null,
    error_code: null,
    created_at: null,
    started_at: null,
    finished_at: null,
  };
}

test("a run's results.json entry: the best epoch's dev accuracy and speed, every epoch, per-split confusion", () => {
  const run = planRuns({ data: 'sst2', select: ['p79-cnn'], seed: 1 })[0]!;
  const entry = modelResult(run, view(), 17.5);
  assert.deepEqual(entry, {
    problem: '79',
    model: 'cnn',
    name: 'p79-cnn',
    finetune: true,
    backend: 'wasm',
    dev_accuracy: 0.8,
    best_epoch: 2,
    train_examples_per_second: 500,
    epochs: [
      {
        epoch: 1,
        train_loss: 0.6,
        train_accuracy: 0.7,
        dev_loss: 0.55,
        dev_accuracy: 0.75,
        train_examples_per_second: 400,
        seconds: 6,
        learning_rate: 5e-4,
      },
      {
        epoch: 2,
        train_loss: 0.4,
        train_accuracy: 0.8,
        dev_loss: 0.5,
        dev_accuracy: 0.8,
        train_examples_per_second: 500,
        seconds: 5,
        learning_rate: 5e-4,
      },
      {
        epoch: 3,
        train_loss: 0.3,
        train_accuracy: 0.9,
        dev_loss: 0.6,
        dev_accuracy: 0.78,
        train_examples_per_second: 450,
        seconds: 5,
        learning_rate: 2.5e-4,
      },
    ],
    seconds: 17.5,
    model_dir: '/abs/models/p79-cnn/1',
    batch_size: 64,
    run_id: 'run-1',
    splits: [
      {
        split: 'train',
        examples: 100,
        accuracy: 0.9,
        precision: 0.9,
        recall: 0.9,
        f1: 0.9,
        confusion: [
          [45, 5],
          [5, 45],
        ],
      },
      {
        split: 'dev',
        examples: 20,
        accuracy: 0.8,
        precision: 0.75,
        recall: 0.9,
        f1: 0.8182,
        confusion: [
          [7, 3],
          [1, 9],
        ],
      },
    ],
  });
  // The report package's own reader accepts the document and keeps every model field.
  const doc = { models: [entry], data: 'd', vectors: 'v', samples: [], started_at: 'now', seconds: 20 };
  assert.deepEqual(validateChapterResults(JSON.parse(JSON.stringify(doc))).models, [entry]);
});

test('the results table: one row per model, skipped and failed runs listed with the reason', () => {
  const run = planRuns({ data: 'sst2', select: ['p79-cnn'], seed: 1 })[0]!;
  const text = resultsTable({
    models: [modelResult(run, view(), 75)],
    skipped: [{ problem: '77', name: 'p77-bow-frozen-gpu', reason: 'no hardware GPU adapter' }],
    failures: [{ problem: '79', name: 'p79-gru', model: 'gru', run_id: 'run-9', error: 'FAILED INTERNAL: boom' }],
  });
  const lines = text.split('\n');
  assert.match(lines[0]!, /^problem\s+model\s+embeddings\s+batch\s+backend\s+dev acc\s+ex\/s\s+epochs\s+time$/);
  assert.match(lines[2]!, /^79\s+p79-cnn\s+fine-tuned\s+64\s+wasm\s+0\.8000\s+500\s+3 \(best 2\)\s+1m15s$/);
  assert.match(lines[3]!, /^77\s+p77-bow-frozen-gpu\s+skipped$/);
  assert.match(lines[4]!, /^79\s+p79-gru\s+FAILED$/);
  assert.ok(lines.includes('p77-bow-frozen-gpu skipped: no hardware GPU adapter; the other runs trained on wasm'));
  assert.ok(lines.includes('p79-gru FAILED (run run-9): FAILED INTERNAL: boom'));

  const grid = samplesTable([
    { text: 'great', model: 'p76-bow-frozen', label: 'positive', probability: 0.91 },
    { text: 'great', model: 'p79-cnn', label: 'positive', probability: 0.8 },
    { text: 'awful', model: 'p76-bow-frozen', label: 'negative', probability: 0.12 },
  ]).split('\n');
  assert.match(grid[0]!, /^P\(positive\)\s+bow-frozen\s+cnn$/);
  assert.match(grid[2]!, /^great\s+\+ 0\.91\s+\+ 0\.80$/);
  assert.match(grid[3]!, /^awful\s+- 0\.12\s+-$/);
});

test('problem 77 without a GPU: the reason in words', () => {
  assert.equal(
    gpuSkipReason({
      gpu: false,
      reason:
        'field prefer: backend webgpu is not available: no hardware WebGPU adapter (software adapters need prefer: "webgpu" or allowSoftwareGpu)',
    }),
    'no hardware GPU adapter (a software one such as Mesa lavapipe does not count)',
  );
  assert.equal(
    gpuSkipReason({ gpu: false, reason: 'backend webgpu is not available: webgpu setup failed: no Dawn' }),
    'no usable GPU adapter: webgpu setup failed: no Dawn',
  );
});

test('the waiting bars: done/total filled in proportion, a bouncing block without a total, 0 columns read as 80', () => {
  // 'load' + 40 columns: bar width max(10, min(30, 40 - 4 - 40)) = 10; 3 of 4 done fills round(7.5) = 8 cells.
  assert.equal(phaseLine('load', 1.25, 40, 3, 4), 'load [########..] 3/4 1.3 s');
  // No total: a block of 3 at 5 cells a second; at 0.4 s it has moved 2 cells.
  assert.equal(phaseLine('load', 0.4, 40), 'load [..###.....] 0.4 s');
  assert.equal(phaseLine('load', 0, 0, 1, 2, 'embedding'), phaseLine('load', 0, 80, 1, 2, 'embedding'));
  const step = {
    epoch: 1,
    epochs: 2,
    step: 5,
    stepsInEpoch: 10,
    loss: 0.5,
    accuracy: 0.75,
    examplesPerSecond: 100,
    elapsed: 5,
  };
  assert.equal(stepLine(step, 0), stepLine(step, 80));
  assert.ok(stepLine(step, 0).includes('ETA 0:05'), stepLine(step, 0));
});
