import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { selectBackend } from '@ch8/backend/select';
import { AlreadyExistsError, InvalidInputError, NotFoundError, VocabularyMismatchError } from '@ch8/errors';
import { createModel } from './model.ts';
import { MODEL_KINDS } from './config.ts';
import { loadModel, readManifest, saveModel } from './io.ts';
import { LABELS, ROWS, collate, tinyConfig, tinyEmbeddings } from './fixtures.ts';

await selectBackend({ prefer: 'wasm' });

async function scratch(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'ch8-models-io-'));
}

test('save/load round trip gives bit-identical predictions for every model', async () => {
  const root = await scratch();
  try {
    for (const kind of MODEL_KINDS) {
      const m = createModel(tinyConfig(kind), { embeddings: tinyEmbeddings() });
      try {
        m.trainStep(collate(ROWS, LABELS));
        const dir = join(root, kind);
        const manifest = await saveModel(m, dir, { vocabHash: 'abc123', metadata: { note: kind } });
        assert.equal(manifest.config.kind, kind);
        assert.equal((await stat(dir)).mode & 0o777, 0o755, 'readable by other users (not mkdtemp 0700)');
        const loaded = await loadModel(dir, { expectedVocabHash: 'abc123' });
        try {
          assert.deepEqual(loaded.manifest.metadata, { note: kind });
          assert.deepEqual(loaded.model.config, m.config);
          const b = collate(ROWS, undefined, 7);
          assert.deepEqual(loaded.model.predictProbabilities(b), m.predictProbabilities(b));
          assert.deepEqual(loaded.model.getEmbeddings(), m.getEmbeddings());
        } finally {
          loaded.model.dispose();
        }
      } finally {
        m.dispose();
      }
    }
    const left = (await readdir(root)).filter((n) => n.startsWith('.'));
    assert.deepEqual(left, [], 'no temporary directories left behind');
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('an existing directory is refused unless overwrite, which replaces it', async () => {
  const root = await scratch();
  const a = createModel(tinyConfig('bow-finetune', { seed: 1 }));
  const b = createModel(tinyConfig('bow-finetune', { seed: 2 }));
  try {
    const dir = join(root, 'm');
    await saveModel(a, dir);
    await assert.rejects(saveModel(b, dir), AlreadyExistsError);
    await saveModel(b, dir, { overwrite: true });
    const loaded = await loadModel(dir);
    const batch = collate(ROWS, undefined);
    assert.deepEqual(loaded.model.predictProbabilities(batch), b.predictProbabilities(batch));
    loaded.model.dispose();
    assert.deepEqual((await readdir(root)).sort(), ['m']);
  } finally {
    a.dispose();
    b.dispose();
    await rm(root, { recursive: true, force: true });
  }
});

test('missing and corrupt files are typed errors', async () => {
  const root = await scratch();
  const m = createModel(tinyConfig('mlp'));
  try {
    const dir = join(root, 'm');
    await assert.rejects(loadModel(join(root, 'absent')), NotFoundError);
    await saveModel(m, dir, { vocabHash: 'v1' });
    await assert.rejects(loadModel(dir, { expectedVocabHash: 'v2' }), VocabularyMismatchError);

    const weightsFile = join(dir, 'weights.bin');
    const weights = await readFile(weightsFile);
    const flipped = Buffer.from(weights);
    flipped[10]! ^= 0xff;
    await writeFile(weightsFile, flipped);
    await assert.rejects(loadModel(dir), (e: unknown) => e instanceof InvalidInputError && e.field === 'sha256');
    await writeFile(weightsFile, weights.subarray(0, weights.length - 4));
    await assert.rejects(loadModel(dir), InvalidInputError);
    await rm(weightsFile);
    await assert.rejects(loadModel(dir), NotFoundError);
    await writeFile(weightsFile, weights);
    (await loadModel(dir)).model.dispose();

    const manifestFile = join(dir, 'manifest.json');
    const text = await readFile(manifestFile, 'utf8');
    await writeFile(manifestFile, text.slice(0, 20));
    await assert.rejects(readManifest(dir), (e: unknown) => e instanceof InvalidInputError && e.file === manifestFile);
    const json = JSON.parse(text);
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- free-form edits of parsed JSON
    const edits: [(j: any) => void, string][] = [
      [(j) => (j.format = 'other'), 'format'],
      [(j) => (j.formatVersion = 99), 'formatVersion'],
      [(j) => (j.config.kind = 'rnn'), 'config.kind'],
      [(j) => (j.weights.sha256 = 'xyz'), 'weights.sha256'],
      [(j) => (j.weights.entries[0].length = 3), 'weights.entries[0].length'],
      [(j) => (j.weights.entries[0].offset = 1e9), 'weights.entries[0]'],
    ];
    for (const [edit, field] of edits) {
      const j = structuredClone(json);
      edit(j);
      await writeFile(manifestFile, JSON.stringify(j));
      await assert.rejects(loadModel(dir), (e: unknown) => e instanceof InvalidInputError && e.field === field, field);
    }
    const j = structuredClone(json);
    j.weights.entries[0].name = 'renamed';
    await writeFile(manifestFile, JSON.stringify(j));
    await assert.rejects(loadModel(dir), InvalidInputError);
    await rm(manifestFile);
    await assert.rejects(loadModel(dir), NotFoundError);
  } finally {
    m.dispose();
    await rm(root, { recursive: true, force: true });
  }
});
