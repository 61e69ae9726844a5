import test from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { selectBackend } from '@ch8/backend/select';
import { InvalidInputError, NotFoundError, VocabularyMismatchError } from '@ch8/errors';
import { vocabularyHash } from '@ch8/embeddings/vocabulary';
import type { SentimentModel } from '@ch8/models/model';
import { validateManifest } from './manifest.ts';
import { exportModel, listModels, listVersions, loadModel, readManifest, resolveModelDir } from './repository.ts';
import { D, ROWS, TOKENS, V, collate, manifestInput, scratch, trainedModel } from './fixtures.ts';

await selectBackend({ prefer: 'cpu' });

const run = promisify(execFile);
const packageDir = dirname(dirname(fileURLToPath(import.meta.url)));

async function exportOf(
  root: string,
  name: string,
  model: SentimentModel,
  options?: Parameters<typeof exportModel>[4],
) {
  return exportModel(root, name, { config: model.config, weights: model.getWeights() }, manifestInput(model), options);
}

async function entries(dir: string): Promise<string[]> {
  return existsSync(dir) ? (await readdir(dir)).sort() : [];
}

/** Runs `fn` with a fresh repository root and a trained tiny model; cleans up both. */
async function withRepo(
  fn: (root: string, model: SentimentModel) => Promise<void>,
  kind: 'cnn' | 'bow-frozen' = 'cnn',
) {
  const root = await scratch();
  const model = trainedModel(kind);
  try {
    await fn(root, model);
  } finally {
    model.dispose();
    await rm(root, { recursive: true, force: true });
  }
}

test('export and load round trip: same weights bytes, bit-identical predictions, readable directories', async () => {
  for (const kind of ['cnn', 'bow-frozen'] as const) {
    await withRepo(async (root, model) => {
      const exported = await exportOf(root, 'sst2', model);
      assert.equal(exported.version, 1);
      assert.equal(exported.path, join(root, 'sst2', '1'));
      assert.deepEqual(await entries(exported.path), ['manifest.json', 'weights.bin']);
      assert.equal((await stat(exported.path)).mode & 0o777, 0o755, 'not mkdtemp 0700');
      assert.equal((await stat(join(root, 'sst2'))).mode & 0o777, 0o755);

      // weights.bin decoded independently: little-endian float32 in entry order, as the model gives them.
      const bytes = await readFile(join(exported.path, 'weights.bin'));
      const expected = model.getWeights();
      let offset = 0;
      for (const w of expected) {
        const decoded = Array.from({ length: w.values.length }, (_, i) => bytes.readFloatLE(offset + 4 * i));
        assert.deepEqual(decoded, Array.from(w.values), w.name);
        offset += 4 * w.values.length;
      }
      assert.equal(bytes.length, offset);
      assert.equal(expected.at(-1)!.name, 'embeddings');

      const text = await readFile(join(exported.path, 'manifest.json'), 'utf8');
      const json = JSON.parse(text);
      assert.equal(json.weights.sha256, createHash('sha256').update(bytes).digest('hex'));
      assert.equal(json.format, 'ch8-sentiment-model');
      assert.equal(json.formatVersion, 2);
      assert.equal(json.name, 'sst2');
      assert.equal(json.version, 1);
      assert.deepEqual(json.labels, ['negative', 'positive']);
      assert.equal(json.vocabulary.hash, vocabularyHash(TOKENS, D));
      assert.deepEqual(json.training, manifestInput(model).training);
      assert.equal(json.runId, 'run-fixture');
      assert.ok(Math.abs(Date.parse(json.createdAt) - Date.now()) < 60_000, json.createdAt);

      const { model: loaded, manifest } = await loadModel(exported.path, {
        expectedVocabHash: vocabularyHash(TOKENS, D),
      });
      try {
        assert.deepEqual(manifest, exported.manifest);
        assert.deepEqual(loaded.config, model.config);
        const batch = collate(ROWS);
        const a = model.predictProbabilities(batch);
        const b = loaded.predictProbabilities(batch);
        assert.deepEqual(Array.from(b), Array.from(a));
        assert.ok(
          a.some((p) => p !== 0.5),
          'a real prediction, not a constant',
        );
        assert.deepEqual(loaded.getWeights(), model.getWeights());
      } finally {
        loaded.dispose();
      }
    }, kind);
  }
});

test('versions increment; createdAt given is kept; listModels and listVersions see them', async () => {
  await withRepo(async (root, model) => {
    assert.deepEqual(await listModels(root), []);
    assert.deepEqual(await listModels(join(root, 'missing')), []);
    assert.deepEqual(await listVersions(root, 'a'), []);
    const input = { ...manifestInput(model), createdAt: '2024-02-29T23:59:59Z' };
    const weights = { config: model.config, weights: model.getWeights() };
    const versions = [];
    for (let i = 0; i < 3; i++) versions.push((await exportModel(root, 'a', weights, input)).version);
    assert.deepEqual(versions, [1, 2, 3]);
    await exportOf(root, 'b', model);
    assert.deepEqual(await listModels(root), ['a', 'b']);
    assert.deepEqual(await listVersions(root, 'a'), [1, 2, 3]);
    for (const v of [1, 2, 3]) {
      const m = await readManifest(join(root, 'a', String(v)));
      assert.equal(m.version, v);
      assert.equal(m.createdAt, '2024-02-29T23:59:59Z');
    }
  });
});

test('8 racing exports in one process get 8 distinct versions matching their directories', async () => {
  await withRepo(async (root, model) => {
    const results = await Promise.all(Array.from({ length: 8 }, () => exportOf(root, 'race', model)));
    assert.deepEqual(
      results.map((r) => r.version).sort((a, b) => a - b),
      [1, 2, 3, 4, 5, 6, 7, 8],
    );
    for (const r of results) assert.equal(r.path, join(root, 'race', String(r.version)));
    assert.deepEqual(await listVersions(root, 'race'), [1, 2, 3, 4, 5, 6, 7, 8]);
    for (let v = 1; v <= 8; v++) {
      const json = JSON.parse(await readFile(join(root, 'race', String(v), 'manifest.json'), 'utf8'));
      assert.equal(json.version, v, `manifest of directory ${v}`);
      (await loadModel(join(root, 'race', String(v)))).model.dispose();
    }
    assert.deepEqual(await entries(join(root, 'race')), ['1', '2', '3', '4', '5', '6', '7', '8'], 'no temporary left');
  });
});

test('exports from separate processes racing for one name get distinct versions; a crashed process leaves no version', async () => {
  await withRepo(async (root, model) => {
    const job = {
      root,
      name: 'shared',
      count: 3,
      config: model.config,
      weights: model.getWeights().map((w) => ({ name: w.name, shape: w.shape, values: Array.from(w.values) })),
      input: manifestInput(model),
    };
    const barrier = join(root, 'barrier');
    await mkdir(barrier);
    const jobFile = join(root, 'job.json');
    await writeFile(jobFile, JSON.stringify({ ...job, barrier }));
    // Processes that die just before their rename (as a killed trainer would): one into the racing model, one new.
    const crashFiles = [join(root, 'crash1.json'), join(root, 'crash2.json')];
    await writeFile(crashFiles[0]!, JSON.stringify({ ...job, count: 1, crash: true }));
    await writeFile(crashFiles[1]!, JSON.stringify({ ...job, name: 'crashy', count: 1, crash: true }));
    const child = (file: string) =>
      run(process.execPath, ['--import', 'tsx', join('src', 'export-child.ts'), file], { cwd: packageDir });
    const racers = [child(jobFile), child(jobFile)];
    const crashes = Promise.allSettled(crashFiles.map(child));
    let failed: unknown;
    for (const c of racers) c.catch((e: unknown) => (failed ??= e));
    // Start everyone's exports together once both racing processes are up.
    while ((await readdir(barrier)).length < 2) {
      if (failed !== undefined) throw failed;
      await sleep(5);
    }
    await writeFile(join(barrier, 'go'), '');
    const local = await Promise.all([exportOf(root, 'shared', model), exportOf(root, 'shared', model)]);
    const outputs = await Promise.all(racers);
    const got = outputs.flatMap((c) => JSON.parse(c.stdout) as number[]).concat(local.map((r) => r.version));
    assert.deepEqual(
      got.sort((a, b) => a - b),
      [1, 2, 3, 4, 5, 6, 7, 8],
    );
    for (let v = 1; v <= 8; v++) assert.equal((await readManifest(join(root, 'shared', String(v)))).version, v);

    const exits = await crashes;
    assert.deepEqual(
      exits.map((x) => x.status === 'rejected' && (x.reason as { code?: number }).code),
      [3, 3],
    );
    assert.deepEqual(await listVersions(root, 'shared'), [1, 2, 3, 4, 5, 6, 7, 8]);
    assert.deepEqual(await listVersions(root, 'crashy'), []);
    assert.deepEqual(await listModels(root), ['shared'], 'a model with only a leftover temporary is not listed');
    const left = (await readdir(join(root, 'crashy'))).filter((n) => n.startsWith('.tmp-'));
    assert.equal(left.length, 1, 'the crash left its temporary directory, which readers skip');
    assert.equal((await exportOf(root, 'shared', model)).version, 9);
  });
});

test('a crash injected before the rename, or a write error, leaves no version and no temporary', async () => {
  await withRepo(async (root, model) => {
    await exportOf(root, 'm', model);
    const boom = new Error('injected');
    const seen: string[] = [];
    await assert.rejects(
      exportOf(root, 'm', model, {
        hooks: {
          afterWrite: (f) => void seen.push(f),
          beforeRename: (tmp) => {
            assert.ok(existsSync(join(tmp, 'manifest.json')) && existsSync(join(tmp, 'weights.bin')));
            throw boom;
          },
        },
      }),
      (e) => e === boom,
    );
    assert.equal(seen.length, 2);
    assert.deepEqual(
      seen.map((f) => f.split('/').at(-1)),
      ['weights.bin', 'manifest.json'],
    );
    assert.ok(
      seen.every((f) => f.includes('/m/.tmp-')),
      seen.join(),
    );
    assert.deepEqual(await listVersions(root, 'm'), [1]);
    assert.deepEqual(await entries(join(root, 'm')), ['1']);

    for (const failing of ['weights.bin', 'manifest.json']) {
      const err = Object.assign(new Error(`ENOSPC writing ${failing}`), { code: 'ENOSPC' });
      await assert.rejects(
        exportOf(root, 'm', model, {
          hooks: {
            afterWrite: (f) => {
              if (f.endsWith(failing)) throw err;
            },
          },
        }),
        (e) => e === err,
      );
      assert.deepEqual(await entries(join(root, 'm')), ['1'], failing);
    }
    // A brand-new name that fails leaves at most an empty model directory, which is not a model.
    await assert.rejects(exportOf(root, 'fresh', model, { hooks: { beforeRename: () => Promise.reject(boom) } }));
    assert.deepEqual(await entries(join(root, 'fresh')), []);
    assert.deepEqual(await listModels(root), ['m']);
    assert.equal((await exportOf(root, 'm', model)).version, 2);
  });
});

test('readers ignore temporary and junk entries; export skips numbers already taken', async () => {
  await withRepo(async (root, model) => {
    await exportOf(root, 'm', model);
    await exportOf(root, 'm', model);
    const m = join(root, 'm');
    for (const d of ['.tmp-abc', 'latest', '01', '0', '-3', 'Bad']) await mkdir(join(m, d));
    await writeFile(join(m, '.tmp-abc', 'manifest.json'), '{');
    await writeFile(join(m, '7'), 'a file, not a version');
    await writeFile(join(m, 'notes.txt'), 'x');
    for (const d of ['Bad_Name/1', '.hidden/1', 'empty', '-x/1']) await mkdir(join(root, d), { recursive: true });
    await writeFile(join(root, 'README'), 'x');
    await writeFile(join(root, 'filemodel'), 'x');
    assert.deepEqual(await listModels(root), ['m']);
    assert.deepEqual(await listVersions(root, 'm'), [1, 2]);
    assert.equal(await resolveModelDir(m), join(m, '2'));
    // '7' is occupied (by a file), so the next export takes 8.
    assert.equal((await exportOf(root, 'm', model)).version, 8);
    assert.deepEqual(await listVersions(root, 'm'), [1, 2, 8]);
    await assert.rejects(
      listModels(join(root, 'README')),
      (e: unknown) => e instanceof InvalidInputError && e.file === join(root, 'README'),
    );
  });
});

test('resolveModelDir: a version directory is itself, a model directory its newest version (numerically)', async () => {
  await withRepo(async (root, model) => {
    const one = await exportOf(root, 'm', model);
    const m = join(root, 'm');
    assert.equal(await resolveModelDir(one.path), one.path);
    assert.equal(await resolveModelDir(m), one.path);
    for (const v of [2, 9, 10]) await mkdir(join(m, String(v)));
    assert.equal(await resolveModelDir(m), join(m, '10'));
    assert.equal(await resolveModelDir(join(root, '.', 'm', '..', 'm')), join(m, '10'), 'absolute and normalized');
    for (const bad of [join(root, 'absent'), root, join(m, '9'), join(one.path, 'weights.bin')]) {
      await assert.rejects(resolveModelDir(bad), (e: unknown) => e instanceof NotFoundError && e.file === bad, bad);
    }
  });
});

test('bad names are refused before anything is written', async () => {
  await withRepo(async (root, model) => {
    for (const name of ['../x', 'x/y', 'A', '', '.tmp-1', '..']) {
      await assert.rejects(
        exportOf(root, name, model),
        (e: unknown) => e instanceof InvalidInputError && e.field === 'name',
        name,
      );
      await assert.rejects(listVersions(root, name), InvalidInputError, name);
    }
    await assert.rejects(
      exportOf(root, '../x', model, { nameField: 'export_name' }),
      (e: unknown) => e instanceof InvalidInputError && e.field === 'export_name',
    );
    assert.deepEqual(await entries(root), []);
    assert.equal(existsSync(join(root, '..', 'x')), false);
  });
});

test('inconsistent export input is refused before anything is written', async () => {
  await withRepo(async (root, model) => {
    const weights = { config: model.config, weights: model.getWeights() };
    const wrongHash = {
      ...manifestInput(model),
      vocabulary: { ...manifestInput(model).vocabulary, hash: vocabularyHash(TOKENS, D + 1) },
    };
    await assert.rejects(
      exportModel(root, 'm', weights, wrongHash),
      (e: unknown) => e instanceof VocabularyMismatchError && e.field === 'vocabulary.hash',
    );
    const badEpoch = manifestInput(model);
    badEpoch.metrics.epochs[1]!.trainLoss = Number.NaN;
    await assert.rejects(
      exportModel(root, 'm', weights, badEpoch),
      (e: unknown) =>
        e instanceof InvalidInputError &&
        e.field === 'metrics.epochs[1].trainLoss' &&
        e.message.includes('export of model "m"'),
    );
    const otherConfig = { ...manifestInput(model), model: { ...model.config, seed: 99 } };
    await assert.rejects(
      exportModel(root, 'm', weights, otherConfig),
      (e: unknown) => e instanceof InvalidInputError && e.field === 'model',
    );
    const short = {
      config: model.config,
      weights: model.getWeights().map((w, i) => (i === 0 ? { ...w, values: w.values.subarray(1) } : w)),
    };
    await assert.rejects(
      exportModel(root, 'm', short, manifestInput(model)),
      (e: unknown) => e instanceof InvalidInputError && e.field === 'weights[0]',
    );
    const noTable = { config: model.config, weights: model.getWeights().filter((w) => w.name !== 'embeddings') };
    await assert.rejects(
      exportModel(root, 'm', noTable, manifestInput(model)),
      (e: unknown) => e instanceof InvalidInputError && e.field === 'weights.entries',
    );
    assert.deepEqual(await entries(root), []);
  });
});

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- free-form edits of parsed JSON
type Edit = [string, (j: any) => void, typeof InvalidInputError | typeof VocabularyMismatchError, string];

test('every load failure is typed and names the file and field', async () => {
  await withRepo(async (root, model) => {
    const { path: dir } = await exportOf(root, 'm', model);
    const manifestFile = join(dir, 'manifest.json');
    const weightsFile = join(dir, 'weights.bin');
    const text = await readFile(manifestFile, 'utf8');
    const weights = await readFile(weightsFile);
    const json = JSON.parse(text);
    const expectFailure = async (
      what: string,
      kind: Edit[2] | typeof NotFoundError,
      file: string,
      field: string | undefined,
      options = {},
    ) =>
      assert.rejects(
        loadModel(dir, options),
        (e: unknown) => {
          assert.ok(e instanceof kind, `${what}: ${String(e)}`);
          assert.equal((e as InvalidInputError).file, file, what);
          assert.equal((e as InvalidInputError).field, field, `${what}: ${String(e)}`);
          assert.ok((e as Error).message.includes(file), what);
          return true;
        },
        what,
      );

    await expectFailure('another vocabulary expected', VocabularyMismatchError, manifestFile, 'vocabulary.hash', {
      expectedVocabHash: 'f'.repeat(64),
    });

    const flipped = Buffer.from(weights);
    flipped[10]! ^= 0x01;
    await writeFile(weightsFile, flipped);
    await expectFailure('corrupt weights', InvalidInputError, weightsFile, 'weights.sha256');
    await writeFile(weightsFile, weights.subarray(0, weights.length - 4));
    await expectFailure('truncated weights', InvalidInputError, weightsFile, 'weights.byteLength');
    await writeFile(weightsFile, Buffer.concat([weights, Buffer.alloc(4)]));
    await expectFailure('weights too long', InvalidInputError, weightsFile, 'weights.byteLength');
    await rm(weightsFile);
    await expectFailure('weights missing', NotFoundError, weightsFile, undefined);
    await writeFile(weightsFile, weights);
    (await loadModel(dir)).model.dispose();

    await writeFile(manifestFile, text.slice(0, 100));
    await expectFailure('bad JSON', InvalidInputError, manifestFile, undefined);

    const edits: Edit[] = [
      ['missing field', (j) => delete j.metrics.epochs[1].trainLoss, InvalidInputError, 'metrics.epochs[1].trainLoss'],
      ['extra field', (j) => (j.weights.compressed = false), InvalidInputError, 'weights.compressed'],
      ['byteLength in the manifest', (j) => (j.weights.byteLength += 4), InvalidInputError, 'weights.byteLength'],
      ['sha256 of other bytes', (j) => (j.weights.sha256 = 'a'.repeat(64)), InvalidInputError, 'weights.sha256'],
      ['config that the weights do not fit', (j) => (j.model.filters = 4), InvalidInputError, 'weights.entries[0]'],
      ['weight renamed', (j) => (j.weights.entries[1].name = 'conv9/bias'), InvalidInputError, 'weights.entries[1]'],
      [
        'tokens that do not give the hash',
        (j) => (j.vocabulary.tokens[4] = 'never'),
        VocabularyMismatchError,
        'vocabulary.hash',
      ],
      [
        'unknown tokenizer kind',
        (j) => (j.tokenizer.training.kind = 'sentencepiece'),
        InvalidInputError,
        'tokenizer.training.kind',
      ],
      [
        'unknown tokenizer version',
        (j) => (j.tokenizer.raw.version = 2),
        VocabularyMismatchError,
        'tokenizer.raw.version',
      ],
      ['vocabulary size vs vocabSize', (j) => (j.model.vocabSize = V + 1), InvalidInputError, 'vocabulary.size'],
      ['labels', (j) => (j.labels = ['neg', 'pos']), InvalidInputError, 'labels'],
      ['signature', (j) => (j.signature.inputs[0].name = 'INPUT_IDS'), InvalidInputError, 'signature'],
      ['version not the directory', (j) => (j.version = 2), InvalidInputError, 'version'],
      ['name not the directory', (j) => (j.name = 'other'), InvalidInputError, 'name'],
      ['formatVersion', (j) => (j.formatVersion = 3), InvalidInputError, 'formatVersion'],
    ];
    for (const [what, edit, kind, field] of edits) {
      const j = structuredClone(json);
      edit(j);
      await writeFile(manifestFile, JSON.stringify(j));
      // A byteLength the entries contradict is the manifest's fault; a SHA-256 the bytes do not give is reported on weights.bin.
      const file = field === 'weights.sha256' ? weightsFile : manifestFile;
      await expectFailure(what, kind, file, field);
    }
    await rm(manifestFile);
    await expectFailure('manifest missing', NotFoundError, manifestFile, undefined);
    await assert.rejects(loadModel(join(root, 'm')), NotFoundError, 'a model directory is not a version directory');
  });
});

/** Writes a formatVersion 1 directory by hand, as `@ch8/models/io` saveModel wrote it for `ch8 train --out`. */
async function writeV1(
  dir: string,
  model: SentimentModel,
  metadata: Record<string, unknown>,
  vocabHash: string | null,
): Promise<void> {
  await mkdir(dir, { recursive: true });
  const weights = model.getWeights();
  const entries = [];
  const parts: Buffer[] = [];
  let offset = 0;
  for (const w of weights) {
    entries.push({ name: w.name, shape: w.shape, offset, length: w.values.length });
    const b = Buffer.alloc(4 * w.values.length);
    w.values.forEach((x, i) => b.writeFloatLE(x, 4 * i));
    parts.push(b);
    offset += b.length;
  }
  const bytes = Buffer.concat(parts);
  const manifest = {
    format: 'ch8-sentiment-model',
    formatVersion: 1,
    config: model.config,
    vocabHash,
    metadata,
    weights: {
      file: 'weights.bin',
      byteLength: bytes.length,
      sha256: createHash('sha256').update(bytes).digest('hex'),
      dtype: 'float32',
      entries,
    },
  };
  await writeFile(join(dir, 'weights.bin'), bytes);
  await writeFile(join(dir, 'manifest.json'), JSON.stringify(manifest, null, 2));
}

const V1_METADATA = {
  vocabulary: TOKENS,
  tokenizer: 'chapter@1',
  data: { source: 'sst2', vocab_size: V, dim: D },
  training: { epochs: 2, batch_size: 32 },
  backend: { backend: 'wasm', device: 'wasm (SIMD)' },
  epochs: [
    {
      epoch: 1,
      train_loss: 0.7,
      train_accuracy: 0.5,
      train_examples: 100,
      train_seconds: 1.5,
      examples_per_second: 66.7,
      dev_loss: 0.68,
      dev_accuracy: 0.55,
    },
    {
      epoch: 2,
      train_loss: 0.6,
      train_accuracy: 0.7,
      train_examples: 100,
      train_seconds: 1.25,
      examples_per_second: 80,
      dev_loss: 0.6,
      dev_accuracy: 0.65,
    },
  ],
};

test('formatVersion 1 directories (ch8 train --out) load, converted; re-export makes them version 2 models', async () => {
  await withRepo(async (root, model) => {
    const dir = join(root, 'out', 'My CNN');
    await writeV1(dir, model, V1_METADATA, vocabularyHash(TOKENS, D));
    assert.equal(await resolveModelDir(dir), dir);
    const { model: loaded, manifest } = await loadModel(dir, { expectedVocabHash: vocabularyHash(TOKENS, D) });
    try {
      assert.deepEqual(
        Array.from(loaded.predictProbabilities(collate(ROWS))),
        Array.from(model.predictProbabilities(collate(ROWS))),
      );
      assert.equal(manifest.formatVersion, 2);
      assert.equal(manifest.name, 'my-cnn');
      assert.equal(manifest.version, 1);
      assert.deepEqual(manifest.model, model.config);
      assert.deepEqual(manifest.vocabulary, { size: V, dim: D, hash: vocabularyHash(TOKENS, D), tokens: TOKENS });
      assert.deepEqual(manifest.tokenizer, {
        training: { kind: 'chapter', version: 1 },
        raw: { kind: 'raw', version: 1 },
      });
      assert.deepEqual(manifest.backend, { backend: 'wasm', device: 'wasm (SIMD)' });
      assert.deepEqual(manifest.metrics, {
        epochs: [
          {
            epoch: 1,
            trainLoss: 0.7,
            trainAccuracy: 0.5,
            trainExamplesPerSecond: 66.7,
            seconds: 1.5,
            devLoss: 0.68,
            devAccuracy: 0.55,
          },
          {
            epoch: 2,
            trainLoss: 0.6,
            trainAccuracy: 0.7,
            trainExamplesPerSecond: 80,
            seconds: 1.25,
            devLoss: 0.6,
            devAccuracy: 0.65,
          },
        ],
        bestEpoch: 2,
        devAccuracy: 0.65,
        splits: {},
      });
      assert.deepEqual(manifest.training.training, { epochs: 2, batch_size: 32 });
      assert.equal(manifest.training.vocabulary, undefined, 'the tokens are not copied into training');
      assert.equal(manifest.createdAt, (await stat(join(dir, 'manifest.json'))).mtime.toISOString());

      // The documented migration: load, then export into a repository.
      const again = await exportModel(
        root,
        'cnn',
        { config: loaded.config, weights: await loaded.getWeightsAsync() },
        manifest,
      );
      assert.equal(again.version, 1);
      assert.equal(again.manifest.createdAt, manifest.createdAt);
      const { model: migrated } = await loadModel(again.path);
      assert.deepEqual(
        Array.from(migrated.predictProbabilities(collate(ROWS))),
        Array.from(model.predictProbabilities(collate(ROWS))),
      );
      migrated.dispose();
      assert.equal(JSON.parse(await readFile(join(again.path, 'manifest.json'), 'utf8')).formatVersion, 2);
    } finally {
      loaded.dispose();
    }

    // Placed in the repository layout, a v1 directory is that model's version.
    await writeV1(join(root, 'legacy', '1'), model, { ...V1_METADATA, epochs: 'not a list' }, null);
    assert.deepEqual(await listModels(root), ['cnn', 'legacy']);
    const legacy = await readManifest(await resolveModelDir(join(root, 'legacy')));
    assert.equal(legacy.name, 'legacy');
    assert.equal(legacy.version, 1);
    assert.deepEqual(legacy.metrics, { epochs: [], bestEpoch: null, devAccuracy: null, splits: {} });
    assert.equal((await exportOf(root, 'legacy', model)).version, 2);
  });
});

test('formatVersion 1 directories without what serving needs are refused, saying how to get a v2 model', async () => {
  await withRepo(async (root, model) => {
    const cases: [string, Record<string, unknown>, string | null, string, string][] = [
      ['no vocabulary', { tokenizer: 'chapter@1' }, null, 'FailedPreconditionError', 'metadata.vocabulary'],
      ['no tokenizer', { vocabulary: TOKENS }, null, 'FailedPreconditionError', 'metadata.tokenizer'],
      ['hash of other tokens', V1_METADATA, vocabularyHash(['<pad>', 'x'], D), 'VocabularyMismatchError', 'vocabHash'],
      [
        'duplicate token',
        { ...V1_METADATA, vocabulary: [...TOKENS.slice(0, -1), 'good'] },
        null,
        'InvalidInputError',
        'metadata.vocabulary[11]',
      ],
      [
        'unknown tokenizer version',
        { ...V1_METADATA, tokenizer: 'chapter@7' },
        null,
        'VocabularyMismatchError',
        'metadata.tokenizer',
      ],
      [
        'unknown tokenizer kind',
        { ...V1_METADATA, tokenizer: 'wordpiece@1' },
        null,
        'InvalidInputError',
        'metadata.tokenizer',
      ],
    ];
    for (const [what, metadata, hash, errorName, field] of cases) {
      const dir = join(root, what.replaceAll(' ', '-'));
      await writeV1(dir, model, metadata, hash);
      const file = join(dir, 'manifest.json');
      await assert.rejects(
        loadModel(dir),
        (e: unknown) => {
          const err = e as InvalidInputError;
          assert.equal(err.name, errorName, `${what}: ${String(e)}`);
          assert.equal(err.file, file, what);
          assert.equal(err.field, field, `${what}: ${String(e)}`);
          if (errorName === 'FailedPreconditionError')
            assert.match(err.message, /formatVersion 1 .*formatVersion 2/, what);
          return true;
        },
        what,
      );
    }
  });
});

test('validateManifest accepts exactly what exportModel writes', async () => {
  await withRepo(async (root, model) => {
    const { path, manifest } = await exportOf(root, 'm', model);
    const file = join(path, 'manifest.json');
    assert.deepEqual(validateManifest(JSON.parse(await readFile(file, 'utf8')), file), manifest);
  });
});
