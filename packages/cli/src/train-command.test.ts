import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { selectBackend } from '@ch8/backend/select';
import { writeVectorFile } from '@ch8/embeddings/write';
import { listVersions, loadModel } from '@ch8/model-repository/repository';
import { initWebgpu } from '@ch8/webgpu/setup';
import { evalCommand, type EvalReport } from './commands/eval.ts';
import { trainCommand, type TrainReport } from './commands/train.ts';
import { ROOT } from './launch.ts';
import { runCommand } from './testing.ts';

// A separable toy task: the first coordinate of a word's vector carries its sentiment.
const DIM = 4;
const WORDS: Array<[string, number[]]> = [
  ['good', [1, 0.2, 0, 0.1]],
  ['great', [0.9, -0.1, 0.3, 0]],
  ['fun', [0.8, 0.4, -0.2, 0.1]],
  ['bad', [-1, 0.1, 0.2, 0]],
  ['awful', [-0.9, 0, -0.3, 0.2]],
  ['dull', [-0.8, -0.3, 0.1, 0]],
  ['the', [0, 0.5, 0.5, 0.5]],
  ['film', [0.05, -0.5, 0.4, -0.2]],
  ['plot', [-0.05, 0.3, -0.4, 0.3]],
];
const POS = ['good', 'great', 'fun'];
const NEG = ['bad', 'awful', 'dull'];
const FILLER = ['the', 'film', 'plot'];

function rows(n: number, offset: number): string {
  const lines = ['sentence\tlabel'];
  for (let i = 0; i < n; i++) {
    const label = (i + offset) % 2;
    const word = (label === 1 ? POS : NEG)[(i * 7 + offset) % 3]!;
    const filler = FILLER.slice(0, 1 + ((i + offset) % 3));
    lines.push(`${[...filler, word].join(' ')} \t${label}`);
  }
  return lines.join('\n') + '\n';
}

let dir: string;
const common = () => [
  '--train',
  'train.tsv',
  '--dev',
  'dev.tsv',
  '--vectors',
  'vec.txt',
  '--cache-dir',
  'cache',
  '--backend',
  'cpu',
  '--models',
  'models',
];
const run = (argv: string[]) => runCommand(trainCommand, argv, { cwd: dir });

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ch8-cli-train-'));
  await writeVectorFile(
    join(dir, 'vec.txt'),
    'glove-text',
    WORDS.map(([w, v]) => [w, Float32Array.from(v)]),
    DIM,
  );
  await writeFile(join(dir, 'train.tsv'), rows(96, 0));
  await writeFile(join(dir, 'dev.tsv'), rows(24, 1));
  await writeFile(join(dir, 'broken.tsv'), 'sentence\tlabel\ngood film \t1\nbad film \t2\n');
});
after(() => rm(dir, { recursive: true, force: true }));

describe('ch8 train', () => {
  test('learns the toy task: loss falls, dev accuracy per epoch, the best epoch exported, one JSON document', async () => {
    const r = await run([...common(), '--epochs', '8', '--batch-size', '8', '--json']);
    assert.equal(r.code, 0);
    const report = r.value as TrainReport;
    assert.equal(report.via, 'local');
    assert.equal(report.epochs.length, 8);
    assert.ok(report.epochs[7]!.train_loss < report.epochs[0]!.train_loss);
    assert.equal(report.dev_accuracy, Math.max(...report.epochs.map((e) => e.dev_accuracy!)));
    assert.equal(report.epochs[report.best_epoch - 1]!.dev_accuracy, report.dev_accuracy);
    assert.equal(report.dev_accuracy, 1);
    assert.equal(report.splits['dev']!.accuracy, 1);
    assert.deepEqual(report.splits['dev']!.confusion, [
      [12, 0],
      [0, 12],
    ]);
    assert.equal(report.model_dir, join(dir, 'models', 'bow-frozen', '1'));
    assert.equal(report.backend, 'cpu');
    assert.deepEqual(JSON.parse(r.text), report, 'the JSON document is the report');
    assert.ok(
      r.logs.some((l) => /^epoch 1 step \d+\/12: loss \d\.\d{4}/.test(l)),
      r.logs.join('\n'),
    );
    assert.ok(r.logs.some((l) => /^epoch 8: train loss .*dev loss .*acc 1\.0000/.test(l)));
  });

  test('is deterministic for a seed, and the seed matters', async () => {
    const argv = [...common(), '--model', 'mlp', '--epochs', '2', '--batch-size', '16', '--no-export', '--json'];
    const a = (await run(argv)).value as TrainReport;
    const b = (await run(argv)).value as TrainReport;
    const c = (await run([...argv, '--seed', '2'])).value as TrainReport;
    assert.deepEqual(
      a.epochs.map((e) => e.train_loss),
      b.epochs.map((e) => e.train_loss),
    );
    assert.notDeepEqual(
      a.epochs.map((e) => e.train_loss),
      c.epochs.map((e) => e.train_loss),
    );
    assert.equal(a.model_dir, null);
  });

  test('each export is a new version; ch8 eval on it reproduces the run dev accuracy, scores and confusion', async () => {
    const argv = [...common(), '--model', 'cnn', '--name', 'toy-cnn', '--epochs', '3', '--batch-size', '8', '--json'];
    const first = (await run(argv)).value as TrainReport;
    const second = (await run([...argv, '--seed', '3'])).value as TrainReport;
    assert.deepEqual(await listVersions(join(dir, 'models'), 'toy-cnn'), [1, 2]);
    assert.equal(second.model_dir, join(dir, 'models', 'toy-cnn', '2'));
    const { model, manifest } = await loadModel(first.model_dir!);
    model.dispose();
    assert.equal(manifest.metrics.devAccuracy, first.dev_accuracy);
    assert.equal(manifest.metrics.bestEpoch, first.best_epoch);
    // A model folder means its newest version.
    const e = (
      await runCommand(
        evalCommand,
        ['--model-dir', 'models/toy-cnn', '--data', 'dev.tsv', '--backend', 'cpu', '--json'],
        { cwd: dir },
      )
    ).value as EvalReport;
    assert.equal(e.model_version, 2);
    assert.equal(e.accuracy, second.dev_accuracy);
    assert.deepEqual(e.confusion, second.splits['dev']!.confusion);
    assert.equal(e.examples, 24);
    assert.equal(e.dropped, 0);
    const v1 = (
      await runCommand(
        evalCommand,
        ['--model-dir', first.model_dir!, '--data', 'dev.tsv', '--backend', 'cpu', '--json'],
        { cwd: dir },
      )
    ).value as EvalReport;
    assert.equal(v1.accuracy, first.dev_accuracy);
    assert.equal(v1.f1, first.splits['dev']!.f1);
  });

  test('ch8 eval names what is wrong', async () => {
    const ev = (argv: string[]) => runCommand(evalCommand, argv, { cwd: dir });
    await assert.rejects(ev(['--data', 'dev.tsv']), /--model-dir is required/);
    await assert.rejects(
      ev(['--model-dir', 'models/none', '--data', 'dev.tsv']),
      (e: Error) => e.name === 'NotFoundError',
    );
    await assert.rejects(
      ev(['--model-dir', 'models/bow-frozen', '--data', 'broken.tsv']),
      (e: Error) => e.name === 'InvalidInputError' && /broken\.tsv.*line 3/.test(e.message),
    );
  });

  test('bad flags and bad data fail before training, with the flag, file and line named', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--model', 'transformer'], /--model must be one of bow-frozen, .*"transformer"/],
      [['--epochs', '0'], /--epochs must be an integer >= 1/],
      [['--batch-size', 'x'], /--batch-size must be an integer/],
      [['--lr', '-1'], /--lr must be a positive number/],
      [['--bucketing', 'sorted'], /--bucketing must be one of none, chunk, global/],
      [['--backend', 'cuda'], /--backend must be auto or one of/],
      [['--name', '../escape'], /--name model name "..\/escape" is not allowed/],
      [['--patience', '2', '--lr-decay', '2'], /--lr-decay must be a number in/],
    ];
    for (const [argv, re] of cases) {
      await assert.rejects(
        run([...common(), ...argv]),
        (e: Error) => e.name === 'InvalidInputError' && re.test(e.message),
        `${argv.join(' ')}`,
      );
    }
    await assert.rejects(
      run([...common(), '--train', 'broken.tsv']),
      (e: Error) => e.name === 'InvalidInputError' && e.message.includes('broken.tsv') && /line 3/.test(e.message),
    );
    await assert.rejects(
      run([...common(), '--train', 'missing.tsv']),
      (e: Error) => e.name === 'NotFoundError' && e.message.includes('missing.tsv'),
    );
  });

  test('a train split with no known word left is refused with a clear error', async () => {
    await writeFile(join(dir, 'oov.tsv'), 'sentence\tlabel\nxyzzy plugh \t1\nfrobnicate \t0\n');
    await assert.rejects(run([...common(), '--train', 'oov.tsv']), /has no examples left/);
  });

  test('Ctrl-C stops after the current step: exit 1, a clear message, nothing exported', async () => {
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        join(ROOT, 'packages/cli/src/main.ts'),
        'train',
        ...common(),
        '--model',
        'mlp',
        '--name',
        'interrupted',
        '--epochs',
        '100000',
        '--batch-size',
        '1',
      ],
      { cwd: ROOT, env: { ...process.env, INIT_CWD: dir }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    const code = await new Promise<number | null>((resolve) => {
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        if (/step \d+\/96: loss/.test(stderr) && !child.killed) child.kill('SIGINT');
      });
      child.on('exit', (c) => resolve(c));
    });
    assert.equal(code, 1, stderr);
    assert.match(stderr, /ch8 train: training cancelled/);
    assert.equal(stdout, '');
    assert.equal(existsSync(join(dir, 'models', 'interrupted')), false);
    assert.deepEqual(await listVersions(join(dir, 'models'), 'interrupted'), []);
  });
});

describe('ch8 train on webgpu', async () => {
  // Handoff threshold 0: every op of these tiny batches runs as a shader instead of being handed to the CPU.
  await initWebgpu({ allowSoftware: true, cpuHandoffThreshold: 0 });
  const gpu = await selectBackend({ prefer: 'webgpu' }).then(
    (info) => ({ ok: true as const, info }),
    (e: Error) => ({ ok: false as const, reason: e.message }),
  );
  await selectBackend({ prefer: 'cpu' });
  test(
    'trains every step on the GPU, matches the cpu backend, and exports',
    { skip: gpu.ok ? false : `no WebGPU adapter: ${gpu.reason}` },
    async () => {
      const argv = [
        ...common(),
        '--model',
        'bow-finetune',
        '--epochs',
        '2',
        '--batch-size',
        '32',
        '--max-batches',
        '2',
        '--json',
      ];
      const cpu = (await run([...argv, '--no-export'])).value as TrainReport;
      const web = (await run([...argv, '--backend', 'webgpu', '--name', 'on-gpu'])).value as TrainReport;
      assert.equal(web.backend, 'webgpu');
      assert.equal(web.model_dir, join(dir, 'models', 'on-gpu', '1'), 'the export reads the weights back from the GPU');
      assert.equal(web.epochs.length, 2);
      for (let i = 0; i < 2; i++) {
        const [a, b] = [cpu.epochs[i]!, web.epochs[i]!];
        assert.ok(
          Math.abs(a.train_loss - b.train_loss) < 1e-4 * Math.max(1, Math.abs(a.train_loss)),
          `epoch ${i + 1} train loss ${a.train_loss} vs ${b.train_loss}`,
        );
        assert.ok(Math.abs(a.dev_loss! - b.dev_loss!) < 1e-4, `epoch ${i + 1} dev loss ${a.dev_loss} vs ${b.dev_loss}`);
        assert.equal(a.dev_accuracy, b.dev_accuracy);
      }
      await selectBackend({ prefer: 'cpu' });
    },
  );
});
