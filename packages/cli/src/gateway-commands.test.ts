/**
 * ch8 serve, ch8 predict and ch8 models against a real gateway: `ch8 serve` runs as a process (as a user runs it)
 * and starts the gateway as its own process on a scratch model repository of tiny models exported here.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, test } from 'node:test';
import { selectBackend } from '@ch8/backend/select';
import { vocabularyHash } from '@ch8/embeddings/vocabulary';
import { computeSplitMetrics } from '@ch8/model-repository/manifest';
import { exportModel } from '@ch8/model-repository/repository';
import { createModel, type SentimentModel } from '@ch8/models/model';
import {
  modelsKeepCommand,
  modelsListCommand,
  modelsPinCommand,
  modelsReloadCommand,
  modelsUnpinCommand,
} from './commands/models.ts';
import { createPredictCommand, type PredictView } from './commands/predict.ts';
import { ROOT } from './launch.ts';
import { runCommand } from './testing.ts';

await selectBackend({ prefer: 'cpu' });

const TOKENS = ['<pad>', 'i', 'loved', 'it', '!', 'was', "n't", 'bad', 'great', 'movie', 'the', 'plot', 'dull', '.'];
const DIM = 4;

function model(seed: number): SentimentModel {
  return createModel({ kind: 'bow-finetune', vocabSize: TOKENS.length, dim: DIM, seed });
}

async function exportVersion(root: string, m: SentimentModel): Promise<number> {
  const exported = await exportModel(
    root,
    'sst2',
    { config: m.config, weights: await m.getWeightsAsync() },
    {
      model: m.config,
      vocabulary: { size: TOKENS.length, dim: DIM, hash: vocabularyHash(TOKENS, DIM), tokens: TOKENS },
      tokenizer: { training: { kind: 'chapter', version: 1 }, raw: { kind: 'raw', version: 1 } },
      training: { data: 'cli test' },
      metrics: {
        epochs: [],
        bestEpoch: null,
        devAccuracy: null,
        splits: {
          dev: computeSplitMetrics(
            [
              [1, 0],
              [0, 1],
            ],
            0.5,
          ),
        },
      },
      backend: { backend: 'cpu', device: 'cpu' },
      timings: {},
    },
  );
  return exported.version;
}

/** P(positive) of `m` for tokens, one text alone (the reference the gateway must match). */
function reference(m: SentimentModel, tokens: string[]): number {
  const ids = Int32Array.from(tokens.map((t) => TOKENS.indexOf(t)));
  return m.predictProbabilities({ inputIds: ids, batchSize: 1, maxLength: ids.length })[0]!;
}

let dir: string;
let serve: ChildProcess;
let address: string;
const stderr: string[] = [];
const m1 = model(1);
const m2 = model(2);

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ch8-cli-gateway-'));
  await exportVersion(join(dir, 'models'), m1);
  serve = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(ROOT, 'packages/cli/src/main.ts'),
      'serve',
      '--models',
      'models',
      '--addr',
      '127.0.0.1:0',
      '--metrics-addr',
      'off',
      '--backend',
      'cpu',
      '--poll-ms',
      '0',
      // Two serving processes on the one port: the commands below reach either, and pin/unpin must reach both.
      '--workers',
      '2',
    ],
    // As `pnpm ch8` runs it: from the workspace root, the user's directory in INIT_CWD.
    { cwd: ROOT, env: { ...process.env, INIT_CWD: dir, CH8_LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  address = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`ch8 serve did not get ready:\n${stderr.join('\n')}`)), 60_000);
    serve.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`ch8 serve exited with ${code}:\n${stderr.join('\n')}`));
    });
    createInterface({ input: serve.stderr! }).on('line', (line) => {
      stderr.push(line);
      const m = /^ch8 serve: ready on (\S+) with sst2/.exec(line);
      if (m !== null) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
  });
});

after(async () => {
  if (serve.exitCode === null) {
    serve.kill('SIGTERM');
    await new Promise((r) => serve.once('exit', r));
  }
  m1.dispose();
  m2.dispose();
  await rm(dir, { recursive: true, force: true });
});

const predict = (argv: string[], stdin?: string) =>
  runCommand(
    createPredictCommand(async () => stdin),
    ['--addr', address, ...argv],
    { cwd: dir },
  );
const models = (command: Parameters<typeof runCommand>[0], argv: string[]) =>
  runCommand(command, ['--addr', address, '--json', ...argv], { cwd: dir });

test('ch8 serve says where it listens on standard error, once for its two serving processes', async () => {
  assert.match(address, /^127\.0\.0\.1:\d+$/);
  // Both workers start (each logs its own JSON line; the second may come a moment after the first).
  const readyLogs = () => stderr.filter((l) => l.includes('"msg":"gateway ready"')).length;
  for (let i = 0; i < 100 && readyLogs() < 2; i++) await new Promise((r) => setTimeout(r, 100));
  assert.equal(readyLogs(), 2, stderr.join('\n'));
  const said = (prefix: string) => stderr.filter((l) => l.startsWith(prefix)).length;
  assert.equal(said(`ch8 serve: gateway listening on ${address}`), 1, stderr.join('\n'));
  assert.equal(said('ch8 serve: ready on '), 1, stderr.join('\n'));
});

test('ch8 predict --json: one document with the model, version and per-text answers', async () => {
  const r = await predict(['--json', 'I loved it!', "It wasn't bad.", 'qwxz']);
  assert.equal(r.code, 0);
  const v = JSON.parse(r.text) as PredictView;
  assert.deepEqual(Object.keys(v), ['model_name', 'model_version', 'predictions']);
  assert.equal(v.model_name, 'sst2');
  assert.equal(v.model_version, '1');
  const want = [
    ['i', 'loved', 'it', '!'],
    ['it', 'was', "n't", 'bad', '.'],
  ];
  for (const [i, tokens] of want.entries()) {
    const p = v.predictions[i]!;
    assert.deepEqual(p.tokens, tokens);
    assert.deepEqual(p.oov_tokens, []);
    const ref = reference(m1, tokens);
    assert.ok(Math.abs(p.probability - ref) < 1e-6);
    assert.equal(p.label, ref > 0.5 ? 'positive' : 'negative');
  }
  assert.deepEqual(v.predictions[2], {
    text: 'qwxz',
    label: 'negative',
    probability: 0.5,
    tokens: [],
    oov_tokens: ['qwxz'],
    no_known_token: true,
  });
});

test('ch8 predict reads texts from standard input, one per line; human output names the model', async () => {
  const r = await predict([], 'great movie\n\n  \nthe plot was dull\n');
  assert.equal(r.code, 0);
  const lines = r.text.split('\n');
  assert.equal(lines[0], 'model sst2 version 1');
  assert.equal(lines.length, 3);
  assert.match(lines[1]!, /^(positive|negative) +0\.\d{4} {2}great movie$/);
  assert.match(lines[2]!, /the plot was dull$/);
  await assert.rejects(predict([]), /give the texts as arguments/);
  await assert.rejects(predict(['--model', 'nope', 'good']), (e: { code?: number; message: string }) => {
    assert.equal(e.code, 5); // NOT_FOUND
    assert.match(e.message, /nope/);
    return true;
  });
});

test('ch8 models list, pin, unpin, keep and reload', async () => {
  await exportVersion(join(dir, 'models'), m2);
  let r = await models(modelsReloadCommand, []);
  assert.deepEqual(
    (r.value as { versions: { version: string; state: string }[] }).versions.map((v) => [v.version, v.state]),
    [
      ['1', 'available'],
      ['2', 'ready'],
    ],
  );
  const after2 = JSON.parse((await predict(['--json', 'great movie'])).text) as PredictView;
  assert.equal(after2.model_version, '2');
  assert.ok(Math.abs(after2.predictions[0]!.probability - reference(m2, ['great', 'movie'])) < 1e-6);

  r = await models(modelsPinCommand, ['sst2', '1']);
  assert.deepEqual((r.value as { policy: unknown }).policy, {
    model: 'sst2',
    policy: 'pinned',
    value: 1,
    overridden: true,
  });
  assert.equal((JSON.parse((await predict(['--json', 'great movie'])).text) as PredictView).model_version, '1');
  r = await models(modelsListCommand, []);
  const listed = r.value as { default_model: string; versions: { version: string; default: boolean }[] };
  assert.equal(listed.default_model, 'sst2');
  assert.deepEqual(
    listed.versions.map((v) => [v.version, v.default]),
    [
      ['1', true],
      ['2', false],
    ],
  );

  r = await models(modelsUnpinCommand, ['sst2']);
  assert.deepEqual((r.value as { policy: unknown }).policy, {
    model: 'sst2',
    policy: 'latest',
    value: 1,
    overridden: false,
  });
  assert.equal((JSON.parse((await predict(['--json', 'great movie'])).text) as PredictView).model_version, '2');

  r = await models(modelsKeepCommand, ['sst2', '2']);
  assert.deepEqual(
    (r.value as { versions: { state: string }[] }).versions.map((v) => v.state),
    ['ready', 'ready'],
  );
  const v1 = JSON.parse((await predict(['--json', '--version', '1', 'great movie'])).text) as PredictView;
  assert.equal(v1.model_version, '1');
  await assert.rejects(models(modelsPinCommand, ['sst2', 'x']), /VERSION.*positive integer/);
  await assert.rejects(models(modelsPinCommand, ['sst2', '9']), /no version 9/);
});

test('ch8 serve stops the gateway on SIGTERM and exits 0', async () => {
  serve.kill('SIGTERM');
  const [code] = await new Promise<[number | null]>((r) => serve.once('exit', (c) => r([c])));
  assert.equal(code, 0, stderr.slice(-5).join('\n'));
});
