/**
 * The in-process preparation (@ch8/datasets/local) against this service wired to the real embedding service: for
 * the same source and vectors, the same vocabulary (tokens in the same order, same hash), the same examples with the
 * same ids in the same order, and the same batches for the same (seed, epoch, bucketing). The vector file's words are
 * in neither sorted nor the data's first-seen order, so an order leaking from the word list would show.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { decodeBatch } from '@ch8/batching/arrow';
import { epochBatches, type Bucketing } from '@ch8/batching/plan';
import { Bucketing as WireBucketing } from '@ch8/contracts/dataset';
import type { DatasetSpec } from '@ch8/datasets/dataset';
import { prepareLocal, type LocalPreparation } from '@ch8/datasets/local';
import { datasetSpecToProto } from '@ch8/datasets/proto';
import { startStack, type Stack } from './test-stack.ts';

let stack: Stack;
let cacheDir: string;

before(async () => {
  stack = await startStack({ trainRows: 400 });
  cacheDir = await mkdtemp(join(tmpdir(), 'ch8-parity-'));
  await writeFile(
    join(stack.root, 'parity.csv'),
    'label,text\n1,"The movie was good, not bad."\n0,zz1 zz2\n0,"W3 w1, W2!"\n1,"it is a great film"\n',
  );
});
after(async () => {
  await stack.stop();
  await rm(cacheDir, { recursive: true, force: true });
});

interface Side {
  tokens: readonly string[];
  vocabHash: string;
  splits: Array<{ name: string; rows: number; kept: number; examples: Array<[number, number, number[]]> }>;
}

async function viaService(spec: DatasetSpec): Promise<{ side: Side; datasetId: string }> {
  const d = (await stack.dataset.prepareDataset(datasetSpecToProto(spec))).dataset!;
  const vocab = await stack.embedding.getVocabulary({ tableId: d.tableId });
  const splits: Side['splits'] = [];
  for (const s of d.splits) {
    const examples: Array<[number, number, number[]]> = [];
    for (let offset = 0; offset < Number(s.kept); offset += 1000) {
      const page = await stack.dataset.getExamples({ datasetId: d.datasetId, split: s.split, offset, limit: 1000 });
      for (const e of page.examples) examples.push([e.index, e.label, e.inputIds]);
    }
    splits.push({ name: s.split, rows: Number(s.rowsRead), kept: Number(s.kept), examples });
  }
  return { side: { tokens: vocab.tokens, vocabHash: d.vocabHash, splits }, datasetId: d.datasetId };
}

function viaLibrary(p: LocalPreparation): Side {
  return {
    tokens: p.tokens,
    vocabHash: p.vocabHash,
    splits: p.splits.map((s) => ({
      name: s.name,
      rows: s.stats.rows,
      kept: s.stats.kept,
      examples: s.examples.map((e) => [e.index, e.label, [...e.inputIds]] as [number, number, number[]]),
    })),
  };
}

const specs: Array<[string, DatasetSpec]> = [
  ['SST-2 directory (chapter tokenizer)', { kind: 'sst2', dir: 'sst2' }],
  ['builtin review sets (raw tokenizer)', { kind: 'builtin' }],
  [
    'builtin, one set, another seed, chapter tokenizer',
    { kind: 'builtin', sets: ['imdb'], seed: 5, tokenizer: { kind: 'chapter', version: 1 } },
  ],
  ['a CSV file with a custom split name', { kind: 'tabular', files: [{ split: 'holdout', path: 'parity.csv' }] }],
];

for (const [what, spec] of specs) {
  test(`same vocabulary, ids and example order in process and through the services: ${what}`, async () => {
    const { side } = await viaService(spec);
    // The same spec with the paths the service resolved against its data root.
    const local =
      spec.kind === 'sst2'
        ? { ...spec, dir: join(stack.root, spec.dir) }
        : spec.kind === 'tabular'
          ? { ...spec, files: spec.files.map((f) => ({ ...f, path: join(stack.root, f.path) })) }
          : spec;
    const p = await prepareLocal(local, { vectors: stack.vectors, cacheDir });
    const mine = viaLibrary(p);
    assert.ok(mine.tokens.length > 1 && mine.splits.every((s) => s.examples.length > 0));
    assert.deepEqual(mine.tokens, side.tokens, 'tokens in the same order');
    assert.equal(mine.vocabHash, side.vocabHash);
    assert.deepEqual(mine.splits, side.splits);
    // In the vector file's order: neither sorted nor the data's.
    assert.notDeepEqual([...mine.tokens].slice(1), [...mine.tokens].slice(1).sort());
  });
}

test('StreamBatches carries exactly the batches epochBatches builds in process', async () => {
  const spec: DatasetSpec = { kind: 'sst2', dir: 'sst2' };
  const { datasetId } = await viaService(spec);
  const p = await prepareLocal({ kind: 'sst2', dir: join(stack.root, 'sst2') }, { vectors: stack.vectors, cacheDir });
  const train = p.splits.find((s) => s.name === 'train')!.examples;
  const modes: Array<[Bucketing, WireBucketing]> = [
    ['none', WireBucketing.NONE],
    ['chunk', WireBucketing.CHUNK],
    ['global', WireBucketing.GLOBAL],
  ];
  for (const [bucketing, wire] of modes) {
    const streamed = [];
    for await (const m of stack.dataset.streamBatches({
      datasetId,
      split: 'train',
      batchSize: 16,
      shuffle: true,
      seed: 77n,
      epoch: 2,
      bucketing: wire,
    })) {
      streamed.push(decodeBatch(m.arrowIpc));
    }
    const local = [
      ...epochBatches(train, { batchSize: 16, shuffle: true, seed: 77, epoch: 2, bucketing, bucketChunk: 100 * 16 }),
    ];
    assert.equal(streamed.length, local.length, bucketing);
    streamed.forEach((b, i) => {
      const l = local[i]!;
      assert.deepEqual(
        [b.batchSize, b.maxLength, [...b.indices], [...b.lengths], [...b.labels], [...b.inputIds]],
        [l.batchSize, l.maxLength, [...l.indices], [...l.lengths], [...l.labels], [...l.inputIds]],
        `${bucketing} batch ${i}`,
      );
    });
  }
});
