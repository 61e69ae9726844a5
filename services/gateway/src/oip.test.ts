import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { selectBackend } from '@ch8/backend/select';
import { GRPCInferenceService } from '@ch8/contracts/inference';
import type { SentimentModel } from '@ch8/models/model';
import { createClient, type Client } from '@ch8/service-kit/client';
import { Code } from '@ch8/service-kit/status';
import { exportVersion, scratchRoot, startGateway, tinyModel, TOKENS, type TestGateway } from './fixtures.ts';

await selectBackend({ prefer: 'cpu' });

let repo: Awaited<ReturnType<typeof scratchRoot>>;
let gw: TestGateway;
let model: SentimentModel;
let client: Client<typeof GRPCInferenceService>;

before(async () => {
  repo = await scratchRoot();
  model = tinyModel('bow-finetune', 6);
  await exportVersion(repo.root, 'sst2', model);
  gw = await startGateway(repo.root, { CH8_GATEWAY_MAX_TEXTS: '16' });
  client = createClient(GRPCInferenceService, gw.address);
});
after(async () => {
  client.close();
  await gw.stop();
  model.dispose();
  await repo.remove();
});

const enc = (s: string) => new TextEncoder().encode(s);

/** Length-prefixed BYTES, written here by hand (little-endian uint32 length, then the bytes). */
function lengthPrefixed(items: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(items.reduce((n, b) => n + 4 + b.length, 0));
  const view = new DataView(out.buffer);
  let at = 0;
  for (const b of items) {
    view.setUint32(at, b.length, true);
    out.set(b, at + 4);
    at += 4 + b.length;
  }
  return out;
}

function floats(raw: Uint8Array): number[] {
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  return Array.from({ length: raw.length / 4 }, (_, i) => view.getFloat32(4 * i, true));
}

function strings(raw: Uint8Array): string[] {
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const out: string[] = [];
  for (let at = 0; at < raw.length; ) {
    const n = view.getUint32(at, true);
    out.push(new TextDecoder().decode(raw.subarray(at + 4, at + 4 + n)));
    at += 4 + n;
  }
  return out;
}

function reference(tokens: string[]): number {
  const ids = Int32Array.from(tokens.map((t) => TOKENS.indexOf(t)));
  return model.predictProbabilities({ inputIds: ids, batchSize: 1, maxLength: ids.length })[0]!;
}

const invalid = (re: RegExp) => (e: { code?: number; details?: string }) => {
  assert.equal(e.code, Code.INVALID_ARGUMENT, `${e.code} ${e.details}`);
  assert.match(e.details ?? '', re);
  return true;
};

const TEXTS = ['great movie', 'the plot was dull', 'qwxz'];
const TEXT_TOKENS = [['great', 'movie'], ['the', 'plot', 'was', 'dull'], []];

test('ModelInfer, typed and raw inputs: raw outputs as Triton answers them, request id echoed', async () => {
  const want = TEXT_TOKENS.map((t) => (t.length === 0 ? 0.5 : reference(t)));
  const typed = await client.modelInfer({
    modelName: 'sst2',
    id: 'req-17',
    inputs: [{ name: 'TEXT', datatype: 'BYTES', shape: [3n], contents: { bytesContents: TEXTS.map(enc) } }],
  });
  const raw = await client.modelInfer({
    modelName: 'sst2',
    modelVersion: '1',
    id: 'req-18',
    inputs: [{ name: 'TEXT', datatype: 'BYTES', shape: [3n] }],
    outputs: [{ name: 'LABEL' }, { name: 'PROBABILITY' }],
    rawInputContents: [lengthPrefixed(TEXTS.map(enc))],
  });
  assert.equal(typed.id, 'req-17');
  assert.equal(raw.id, 'req-18');
  for (const r of [typed, raw]) {
    assert.equal(r.modelName, 'sst2');
    assert.equal(r.modelVersion, '1');
    assert.ok(
      r.outputs.every((o) => o.contents === undefined),
      'typed contents stay empty',
    );
    assert.equal(r.rawOutputContents.length, 2);
  }
  assert.deepEqual(
    typed.outputs.map((o) => [o.name, o.datatype, o.shape]),
    [
      ['PROBABILITY', 'FP32', [3n]],
      ['LABEL', 'BYTES', [3n]],
    ],
  );
  assert.deepEqual(
    raw.outputs.map((o) => o.name),
    ['LABEL', 'PROBABILITY'],
    'requested outputs in the requested order',
  );
  for (const [p, labels] of [
    [typed.rawOutputContents[0]!, typed.rawOutputContents[1]!],
    [raw.rawOutputContents[1]!, raw.rawOutputContents[0]!],
  ] as const) {
    floats(p).forEach((v, i) => assert.ok(Math.abs(v - want[i]!) < 1e-6, `${i}: ${v} vs ${want[i]}`));
    assert.deepEqual(
      strings(labels),
      want.map((q) => (q > 0.5 ? 'positive' : 'negative')),
    );
  }
});

test('ModelReady and ModelMetadata by version', async () => {
  assert.equal((await client.modelReady({ name: 'sst2', version: '1' })).ready, true);
  assert.equal((await client.modelReady({ name: 'sst2', version: '2' })).ready, false);
  assert.equal((await client.modelReady({ name: '' })).ready, true, 'empty name: the only model');
  const meta = await client.modelMetadata({ name: 'sst2', version: '1' });
  assert.equal(meta.platform, 'ch8_tfjs');
  assert.deepEqual(meta.versions, ['1']);
  await assert.rejects(client.modelMetadata({ name: 'sst2', version: '2' }), (e: { code: number; details: string }) => {
    assert.equal(e.code, Code.NOT_FOUND);
    assert.match(e.details, /version 2 of model sst2/);
    return true;
  });
});

test('ModelInfer bad input: INVALID_ARGUMENT naming the problem', async () => {
  const input = (over: object = {}) => ({
    name: 'TEXT',
    datatype: 'BYTES',
    shape: [1n],
    contents: { bytesContents: [enc('good')] },
    ...over,
  });
  await assert.rejects(client.modelInfer({ modelName: 'sst2', inputs: [] }), invalid(/exactly one input/));
  await assert.rejects(
    client.modelInfer({ modelName: 'sst2', inputs: [input(), input()] }),
    invalid(/exactly one input \(TEXT\), got 2/),
  );
  await assert.rejects(
    client.modelInfer({ modelName: 'sst2', inputs: [input({ name: 'INPUT0' })] }),
    invalid(/inputs\[0\]\.name.*unknown input "INPUT0"/),
  );
  await assert.rejects(
    client.modelInfer({ modelName: 'sst2', inputs: [input({ datatype: 'INT32', contents: { intContents: [1] } })] }),
    invalid(/datatype must be BYTES, got "INT32"/),
  );
  await assert.rejects(
    client.modelInfer({ modelName: 'sst2', inputs: [input({ shape: [] })] }),
    invalid(/shape must be \[N\]/),
  );
  await assert.rejects(
    client.modelInfer({ modelName: 'sst2', inputs: [input({ shape: [2n] })] }),
    invalid(/holds 1 elements, the shape says 2/),
  );
  await assert.rejects(
    client.modelInfer({
      modelName: 'sst2',
      inputs: [input({ contents: { bytesContents: [Uint8Array.of(0xc3, 0x28)] } })],
    }),
    invalid(/\[0\].*not valid UTF-8/),
  );
  await assert.rejects(
    client.modelInfer({
      modelName: 'sst2',
      inputs: [input({ contents: undefined })],
      rawInputContents: [Uint8Array.of(4, 0, 0)],
    }),
    invalid(/raw_input_contents\[0\].*too few for a 4-byte length prefix/),
  );
  await assert.rejects(
    client.modelInfer({
      modelName: 'sst2',
      inputs: [input()],
      rawInputContents: [lengthPrefixed([enc('good')])],
    }),
    invalid(/may not carry contents when raw_input_contents is used/),
  );
  await assert.rejects(
    client.modelInfer({
      modelName: 'sst2',
      inputs: [input({ contents: undefined })],
      rawInputContents: [lengthPrefixed([enc('good')]), lengthPrefixed([enc('bad')])],
    }),
    invalid(/2 raw buffers for 1 input/),
  );
  await assert.rejects(
    client.modelInfer({ modelName: 'sst2', inputs: [input()], outputs: [{ name: 'LOGITS' }] }),
    invalid(/outputs\[0\]\.name.*unknown output "LOGITS"/),
  );
  await assert.rejects(
    client.modelInfer({
      modelName: 'sst2',
      inputs: [input({ shape: [17n], contents: { bytesContents: Array.from({ length: 17 }, () => enc('good')) } })],
    }),
    invalid(/17 texts in one call, the limit is 16/),
  );
  await assert.rejects(
    client.modelInfer({ modelName: 'sst2', modelVersion: 'v1', inputs: [input()] }),
    invalid(/model_version/),
  );
  const ok = await client.modelInfer({ modelName: 'sst2', inputs: [input()] });
  assert.equal(ok.rawOutputContents.length, 2);
});
