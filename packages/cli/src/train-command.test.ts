import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { collate } from '@ch8/batching/collate';
import { selectBackend } from '@ch8/backend/select';
import { writeVectorFile } from '@ch8/embeddings/write';
import { loadModel } from '@ch8/models/io';
import { initWebgpu } from '@ch8/webgpu/setup';
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
const common = () => ['--train', 'train.tsv', '--dev', 'dev.tsv', '--vectors', 'vec.txt', '--cache-dir', 'cache', '--backend', 'cpu'];
const run = (argv: string[]) => runCommand(trainCommand, argv, { cwd: dir });

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ch8-cli-train-'));
  await writeVectorFile(join(dir, 'vec.txt'), 'glove-text', WORDS.map(([w, v]) => [w, Float32Array.from(v)]), DIM);
  await writeFile(join(dir, 'train.tsv'), rows(96, 0));
  await writeFile(join(dir, 'dev.tsv'), rows(24, 1));
  await writeFile(join(dir, 'broken.tsv'), 'sentence\tlabel\ngood film \t1\nbad film \t2\n');
});
after(() => rm(dir, { recursive: true, force: true }));

describe('ch8 train', () => {
  test('learns the toy task: loss falls, dev accuracy per epoch, one JSON document', async () => {
    const r = await run([...common(), '--epochs', '8', '--batch-size', '8', '--json']);
    assert.equal(r.code, 0);
    const report = r.value as TrainReport;
    assert.deepEqual(JSON.parse(r.text), JSON.parse(JSON.stringify(report)));
    assert.equal(report.model.kind, 'bow-frozen');
    assert.equal(report.backend.backend, 'cpu');
    assert.equal(report.data.vocab_size, WORDS.length + 1);
    assert.equal(report.data.train_examples, 96);
    assert.equal(report.data.dev_examples, 24);
    assert.equal(report.epochs.length, 8);
    assert.ok(report.epochs.every((e) => e.train_examples === 96 && e.dev_accuracy !== undefined && e.dev_loss !== undefined));
    assert.ok(report.epochs.at(-1)!.train_loss < report.epochs[0]!.train_loss, 'training loss goes down');
    assert.equal(report.dev_accuracy, report.epochs.at(-1)!.dev_accuracy);
    assert.equal(report.dev_accuracy, 1, 'the first coordinate separates the classes');
    assert.equal(report.saved, null);
    // Problem 73: the loss is shown while training.
    assert.ok(r.logs.some((l) => /^epoch 1 step \d+\/12: loss \d\.\d{4}/.test(l)), r.logs.join('\n'));
    assert.ok(r.logs.some((l) => /^epoch 8: train loss .*dev loss .*acc 1\.0000/.test(l)));
  });

  test('is deterministic for a seed, and the seed matters', async () => {
    const argv = [...common(), '--model', 'mlp', '--epochs', '2', '--batch-size', '16', '--json'];
    const a = (await run([...argv, '--seed', '5'])).value as TrainReport;
    const b = (await run([...argv, '--seed', '5'])).value as TrainReport;
    const c = (await run([...argv, '--seed', '6'])).value as TrainReport;
    const losses = (r: TrainReport) => r.epochs.map((e) => [e.train_loss, e.dev_loss]);
    assert.deepEqual(losses(a), losses(b));
    assert.notDeepEqual(losses(a), losses(c));
  });

  test('--out exports a model that loads and predicts the same; an existing --out is refused before training', async () => {
    const out = join(dir, 'models', 'cnn');
    const r = await run([...common(), '--model', 'cnn', '--epochs', '1', '--batch-size', '32', '--out', out, '--json']);
    assert.equal(r.code, 0);
    const report = r.value as TrainReport;
    assert.equal(report.saved, out);
    const { model, manifest } = await loadModel(out, { expectedVocabHash: report.data.vocab_hash });
    try {
      assert.equal(manifest.config.kind, 'cnn');
      const meta = manifest.metadata as { vocabulary: string[]; tokenizer: string; epochs: unknown[]; training: { batch_size: number } };
      assert.equal(meta.vocabulary[0], '<pad>');
      assert.equal(meta.vocabulary.length, report.data.vocab_size);
      assert.equal(meta.tokenizer, 'chapter@1');
      assert.equal(meta.training.batch_size, 32);
      assert.deepEqual(meta.epochs, JSON.parse(JSON.stringify(report.epochs)));
      // The exported weights reproduce the reported dev accuracy.
      const ids = (s: string) => s.split(' ').map((w) => meta.vocabulary.indexOf(w));
      const dev = (await readFile(join(dir, 'dev.tsv'), 'utf8')).trim().split('\n').slice(1).map((l, index) => {
        const [s, y] = l.split('\t');
        return { inputIds: ids(s!.trim()), label: Number(y), index };
      });
      const p = await model.predictProbabilitiesAsync(collate(dev));
      const batch = collate(dev);
      let correct = 0;
      for (let i = 0; i < dev.length; i++) if ((p[i]! > 0.5 ? 1 : 0) === batch.labels[i]) correct++;
      assert.equal(correct / dev.length, report.dev_accuracy);
    } finally {
      model.dispose();
    }
    const before = await readFile(join(out, 'weights.bin'));
    await assert.rejects(run([...common(), '--epochs', '1', '--out', out]), (e: Error) => e.name === 'InvalidInputError' && e.message.includes(out) && e.message.includes('--overwrite'));
    assert.deepEqual(await readFile(join(out, 'weights.bin')), before, 'the existing model is untouched');
    const again = await run([...common(), '--epochs', '1', '--out', out, '--overwrite', '--json']);
    assert.equal(again.code, 0);
    assert.deepEqual(await readdir(join(dir, 'models')), ['cnn'], 'no temporary directory is left behind');
  });

  test('bad flags and bad data fail before training, with the flag, file and line named', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--model', 'transformer'], /--model must be one of bow-frozen, .*"transformer"/],
      [['--epochs', '0'], /--epochs must be an integer >= 1/],
      [['--batch-size', 'x'], /--batch-size must be an integer/],
      [['--lr', '-1'], /--lr must be a positive number/],
      [['--bucketing', 'sorted'], /--bucketing must be one of none, chunk, global/],
      [['--backend', 'cuda'], /--backend must be auto or one of/],
    ];
    for (const [argv, re] of cases) {
      await assert.rejects(run([...common(), ...argv]), (e: Error) => e.name === 'InvalidInputError' && re.test(e.message), argv.join(' '));
    }
    await assert.rejects(
      run([...common(), '--train', 'broken.tsv']),
      (e: Error) => e.name === 'InvalidInputError' && e.message.includes('broken.tsv') && /line 3/.test(e.message),
    );
    await assert.rejects(run([...common(), '--train', 'missing.tsv']), (e: Error) => e.name === 'NotFoundError' && e.message.includes('missing.tsv'));
  });

  test('a train split with no known word left is refused with a clear error', async () => {
    await writeFile(join(dir, 'oov.tsv'), 'sentence\tlabel\nxyzzy plugh \t1\nfrobnicate \t0\n');
    await assert.rejects(run([...common(), '--train', 'oov.tsv']), /the train split has no examples left/);
    const devOnly = common().filter((a, i, all) => a !== '--train' && all[i - 1] !== '--train');
    await assert.rejects(run(devOnly), /--dev needs --train/);
  });

  test('Ctrl-C stops after the current step: exit 1, a clear message, nothing exported', async () => {
    const out = join(dir, 'interrupted');
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(ROOT, 'packages/cli/src/main.ts'), 'train', ...common(), '--model', 'mlp', '--epochs', '100000', '--batch-size', '1', '--log-every', '1', '--out', out],
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
    assert.equal(existsSync(out), false);
    assert.deepEqual((await readdir(dir)).filter((f) => f.includes('interrupted')), []);
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
  test('trains every step on the GPU, matches the cpu backend, and exports', { skip: gpu.ok ? false : `no WebGPU adapter: ${gpu.reason}` }, async () => {
    const argv = [...common(), '--model', 'bow-finetune', '--epochs', '2', '--batch-size', '32', '--max-batches', '2', '--json'];
    const cpu = (await run(argv)).value as TrainReport;
    const out = join(dir, 'webgpu-model');
    const web = (await run([...argv, '--backend', 'webgpu', '--out', out])).value as TrainReport;
    assert.equal(web.backend.backend, 'webgpu');
    assert.equal(web.saved, out, 'the export reads the weights back from the GPU');
    assert.ok(web.backend.adapter !== undefined);
    assert.equal(web.epochs.length, 2);
    for (let i = 0; i < 2; i++) {
      const [a, b] = [cpu.epochs[i]!, web.epochs[i]!];
      assert.ok(Math.abs(a.train_loss - b.train_loss) < 1e-4 * Math.max(1, Math.abs(a.train_loss)), `epoch ${i + 1} train loss ${a.train_loss} vs ${b.train_loss}`);
      assert.ok(Math.abs(a.dev_loss! - b.dev_loss!) < 1e-4, `epoch ${i + 1} dev loss ${a.dev_loss} vs ${b.dev_loss}`);
      assert.equal(a.dev_accuracy, b.dev_accuracy);
    }
    await selectBackend({ prefer: 'cpu' });
  });
});
