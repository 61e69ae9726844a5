/**
 * The main job (`pnpm start` = `ch8 chapter`) as a user runs it, on a small configuration: the CLI as a child
 * process starts the four services as processes, trains through the trainer service, the gateway loads the models
 * and answers samples; what it printed (--json) is what results.json holds. Then a fresh gateway over the models the
 * run exported answers a test's own gRPC calls, the text API and the Open Inference Protocol v2, with the same
 * probabilities as during the run.
 *
 * The data: sentences whose label is the sign of (positive words - negative words), with 6-d vectors whose first
 * coordinate carries a word's sentiment, so that two epochs learn them, and whose words include the
 * sample sentences' (the gateway has tokens to go on).
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { GatewayService } from '@ch8/contracts/gateway';
import { GRPCInferenceService } from '@ch8/contracts/inference';
import { createClient } from '@ch8/service-kit/client';
import { checkHealth } from '@ch8/service-kit/probes';
import { DIM, knownAnswerTsv, knownAnswerVectors, type Lexicon } from './data.ts';
import { runCli, startStack, type Stack } from './stack.ts';

const WORDS: Lexicon = {
  pos: ['good', 'great', 'gorgeous', 'witty', 'moving', 'loved'],
  neg: ['bad', 'dull', 'worse', 'awful', 'cold', 'slow'],
  filler: ['the', 'film', 'plot', 'is', 'and', 'acting', 'food', 'service', 'was', 'it'],
};
const VOCAB = WORDS.pos.length + WORDS.neg.length + WORDS.filler.length;

let dir: string;
let out: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ch8-e2e-chapter-'));
  out = join(dir, 'out');
  await writeFile(join(dir, 'vectors.txt'), knownAnswerVectors(11, WORDS, 3));
  await writeFile(join(dir, 'train.tsv'), knownAnswerTsv(800, 1, WORDS, ' '));
  await writeFile(join(dir, 'dev.tsv'), knownAnswerTsv(150, 2, WORDS, ' '));
});

let stack: Stack | undefined;
after(async () => {
  await stack?.stop();
  await rm(dir, { recursive: true, force: true });
});

interface Printed {
  ok: boolean;
  models: Array<{
    problem: string;
    model: string;
    name: string;
    finetune: boolean;
    backend: string;
    dev_accuracy: number;
    best_epoch: number;
    epochs: Array<{ epoch: number; train_loss: number; dev_accuracy?: number }>;
    model_dir: string;
    splits?: Array<{ split: string; examples: number; confusion: number[][] }>;
  }>;
  samples: Array<{ text: string; model: string; label: string; probability: number }>;
  oip: { model: string; version: string; text: string; probability: number; label: string } | null;
  skipped: Array<{ name: string; reason: string }>;
  failures: unknown[];
  embeddings: { vocab_size: number; dim: number; words_requested: number; words_found: number } | null;
  dataset: { splits: Array<{ split: string; kept: number }>; batch: { shape: number[] } | null } | null;
  results_file: string;
  report_file: string | null;
}

let printed: Printed | undefined;

test('ch8 chapter --models bow-frozen,cnn --epochs 2: trains through the services, serves, prints what results.json holds', async () => {
  const r = await runCli(
    [
      'chapter',
      '--sst2',
      dir,
      '--vectors',
      join(dir, 'vectors.txt'),
      '--models',
      'bow-frozen,cnn',
      '--epochs',
      '2',
      '--backend',
      'wasm',
      '--out',
      out,
      '--json',
    ],
    { CH8_CACHE_DIR: join(dir, 'cache') },
  );
  assert.equal(r.code, 0, r.stderr);
  const doc = JSON.parse(r.stdout) as Printed;
  printed = doc;
  assert.equal(doc.ok, true);
  assert.deepEqual(doc.failures, []);

  // results.json is the printed document without the two file paths.
  assert.equal(doc.results_file, join(out, 'results.json'));
  const { results_file: _r, report_file: _h, ...rest } = doc;
  assert.deepEqual(JSON.parse(await readFile(doc.results_file, 'utf8')), rest);

  // 70, 71, 75 as the services reported them: 22 words in the vectors, all of them in the data.
  assert.deepEqual(
    [doc.embeddings?.vocab_size, doc.embeddings?.dim, doc.embeddings?.words_found],
    [VOCAB + 1, DIM, VOCAB],
  );
  assert.deepEqual(
    doc.dataset?.splits.map((s) => [s.split, s.kept]),
    [
      ['train', 800],
      ['dev', 150],
    ],
  );
  assert.equal(doc.dataset?.batch?.shape[0], 4);

  // The runs: bow-frozen full batch (72-74) and mini-batch (76), the GPU run only with a hardware GPU, cnn (79).
  const names = doc.models.map((m) => m.name);
  const gpu = names.includes('p77-bow-frozen-gpu');
  assert.deepEqual(names, [
    'p73-bow-frozen-fullbatch',
    'p76-bow-frozen',
    ...(gpu ? ['p77-bow-frozen-gpu'] : []),
    'p79-cnn',
  ]);
  if (!gpu)
    assert.deepEqual(
      doc.skipped.map((s) => s.name),
      ['p77-bow-frozen-gpu'],
    );
  for (const m of doc.models) {
    assert.equal(m.epochs.length, 2, m.name);
    assert.equal(m.dev_accuracy, m.epochs[m.best_epoch - 1]!.dev_accuracy);
    assert.equal(m.dev_accuracy, Math.max(...m.epochs.map((e) => e.dev_accuracy!)));
    assert.equal(m.backend, m.name.endsWith('-gpu') ? 'webgpu' : 'wasm');
    assert.equal(m.finetune, m.model === 'cnn');
    assert.ok(existsSync(join(m.model_dir, 'manifest.json')), m.model_dir);
    assert.ok(m.model_dir.startsWith(join(out, 'models', m.name) + '/'), m.model_dir);
    const dev = m.splits?.find((s) => s.split === 'dev');
    assert.equal(dev?.examples, 150);
    assert.equal(
      dev!.confusion.flat().reduce((a, b) => a + b, 0),
      150,
    );
  }
  // Learned something: 10 points over always answering dev's majority label.
  const devLabels = (await readFile(join(dir, 'dev.tsv'), 'utf8'))
    .trim()
    .split('\n')
    .slice(1)
    .map((l) => l.at(-1));
  const share = devLabels.filter((l) => l === '1').length / devLabels.length;
  for (const m of doc.models)
    assert.ok(m.dev_accuracy > Math.max(share, 1 - share) + 0.1, `${m.name}: ${m.dev_accuracy} (majority ${share})`);

  // The gateway answered the samples with every model (text API) and one through ModelInfer.
  assert.equal(doc.samples.length, 4 * doc.models.length);
  assert.deepEqual(new Set(doc.samples.map((s) => s.model)), new Set(names));
  for (const s of doc.samples) assert.ok(s.probability >= 0 && s.probability <= 1);
  assert.ok(doc.oip !== null);
  const same = doc.samples.find((s) => s.model === doc.oip!.model && s.text === doc.oip!.text)!;
  assert.ok(Math.abs(same.probability - doc.oip.probability) < 1e-6, `${same.probability} vs ${doc.oip.probability}`);
  assert.equal(same.label, doc.oip.label);

  assert.equal(doc.report_file, join(out, 'report.html'));
  const html = await readFile(doc.report_file!, 'utf8');
  for (const n of names) assert.ok(html.includes(n), n);
  for (const s of ['embedding', 'dataset', 'trainer', 'gateway']) assert.ok(existsSync(join(out, 'logs', `${s}.log`)));
});

test('a fresh gateway serves the models the trainer service exported: text API and OIP v2 agree with the run', async (t) => {
  if (printed === undefined) return t.skip('needs the chapter run above');
  stack = await startStack(
    {
      CH8_LOG_LEVEL: 'warn',
      CH8_MODEL_REPOSITORY: join(out, 'models'),
      CH8_GATEWAY_METRICS_ADDR: 'off',
      CH8_BACKEND: 'wasm',
    },
    ['gateway'],
  );
  const address = stack.services.gateway.address;
  const end = Date.now() + 60_000;
  while ((await checkHealth(address, 'inference.GRPCInferenceService', 1000)) !== 'SERVING') {
    assert.ok(Date.now() < end, 'the gateway never served');
    await sleep(200);
  }
  const gateway = createClient(GatewayService, address);
  const oip = createClient(GRPCInferenceService, address);
  try {
    const name = 'p76-bow-frozen';
    const want = (await gateway.listModels({})).models.filter((m) => m.name === name);
    assert.equal(want.length, 1);
    while (!(await oip.modelReady({ name, version: want[0]!.version })).ready) {
      assert.ok(Date.now() < end, `${name} never became ready`);
      await sleep(200);
    }

    // The text API through the CLI, as a user calls it.
    const texts = [
      'great gorgeous witty film',
      'awful dull and slow',
      ...printed.samples.map((s) => s.text).slice(0, 1),
    ];
    const cli = await runCli(['predict', '--addr', address, '--model', name, '--json', ...texts], {});
    assert.equal(cli.code, 0, cli.stderr);
    const text = JSON.parse(cli.stdout) as { predictions: Array<{ label: string; probability: number }> };
    assert.deepEqual(
      text.predictions.slice(0, 2).map((p) => p.label),
      ['positive', 'negative'],
    );
    // The same version answers as during the run.
    const during = printed.samples.find((s) => s.model === name && s.text === texts[2])!;
    assert.ok(Math.abs(text.predictions[2]!.probability - during.probability) < 1e-6);

    // Protocol v2, typed BYTES in, raw FP32 + length-prefixed BYTES out.
    const res = await oip.modelInfer({
      modelName: name,
      id: 'e2e',
      inputs: [
        {
          name: 'TEXT',
          datatype: 'BYTES',
          shape: [BigInt(texts.length)],
          contents: { bytesContents: texts.map((s) => new TextEncoder().encode(s)) },
        },
      ],
    });
    assert.equal(res.id, 'e2e');
    assert.deepEqual(
      res.outputs.map((o) => [o.name, o.datatype, o.shape]),
      [
        ['PROBABILITY', 'FP32', [BigInt(texts.length)]],
        ['LABEL', 'BYTES', [BigInt(texts.length)]],
      ],
    );
    const raw = res.rawOutputContents[0]!;
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    const probs = texts.map((_, i) => view.getFloat32(4 * i, true));
    for (const [i, p] of probs.entries()) assert.ok(Math.abs(p - text.predictions[i]!.probability) < 1e-6, texts[i]);
    const labels = new TextDecoder().decode(res.rawOutputContents[1]!);
    assert.ok(labels.includes('positive') && labels.includes('negative'));
  } finally {
    gateway.close();
    oip.close();
  }
});
