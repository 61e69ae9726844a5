import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { selectBackend } from '@ch8/backend/select';
import { GatewayService } from '@ch8/contracts/gateway';
import { EchoService } from '@ch8/contracts/testing';
import type { SentimentModel } from '@ch8/models/model';
import { createClient } from '@ch8/service-kit/client';
import { checkHealth } from '@ch8/service-kit/probes';
import { Code } from '@ch8/service-kit/status';
import { exportVersion, scratchRoot, startGateway, tinyModel, TOKENS, type TestGateway } from './fixtures.ts';

await selectBackend({ prefer: 'cpu' });

const code = (c: number) => (e: { code?: number; details?: string }) => {
  assert.equal(e.code, c, `expected ${Code[c]}, got ${e.code} ${e.details}`);
  return true;
};
const codeWith = (c: number, re: RegExp) => (e: { code?: number; details?: string }) => {
  assert.equal(e.code, c, `expected ${Code[c]}, got ${e.code} ${e.details}`);
  assert.match(e.details ?? '', re);
  return true;
};

/** P(positive) of the model for token ids, one text per call (no batching, no padding): the reference. */
function reference(model: SentimentModel, tokens: string[]): number {
  const ids = Int32Array.from(tokens.map((t) => TOKENS.indexOf(t)));
  assert.ok(
    ids.every((id) => id > 0),
    `fixture tokens ${tokens.join(' ')}`,
  );
  return model.predictProbabilities({ inputIds: ids, batchSize: 1, maxLength: ids.length })[0]!;
}

describe('one model', () => {
  let repo: Awaited<ReturnType<typeof scratchRoot>>;
  let gw: TestGateway;
  let model: SentimentModel;
  let client: ReturnType<typeof createClient<typeof GatewayService>>;

  before(async () => {
    repo = await scratchRoot();
    model = tinyModel('bow-finetune');
    await exportVersion(repo.root, 'sst2', model);
    gw = await startGateway(repo.root, { CH8_GATEWAY_MAX_TEXTS: '8', CH8_GATEWAY_MAX_TEXT_BYTES: '64' });
    client = createClient(GatewayService, gw.address);
  });
  after(async () => {
    client.close();
    await gw.stop();
    model.dispose();
    await repo.remove();
  });

  test('predictions equal the model library on the same tokens; raw text tokenized as SST-2; OOV reported', async () => {
    const texts = [
      'I loved it!',
      "It wasn't bad.",
      'The plot was DULL, not fun',
      'great movie',
      'Zorblax loved the  popcorn',
    ];
    // Hand-written: what the raw-text tokenizer must make of them, split by the fixture vocabulary.
    const expected = [
      { tokens: ['i', 'loved', 'it', '!'], oov: [] },
      { tokens: ['it', 'was', "n't", 'bad', '.'], oov: [] },
      { tokens: ['the', 'plot', 'was', 'dull', ',', 'not', 'fun'], oov: [] },
      { tokens: ['great', 'movie'], oov: [] },
      { tokens: ['loved', 'the'], oov: ['zorblax', 'popcorn'] },
    ];
    const res = await client.predict({ texts });
    assert.equal(res.modelName, 'sst2');
    assert.equal(res.modelVersion, '1');
    assert.equal(res.predictions.length, texts.length);
    res.predictions.forEach((p, i) => {
      const want = expected[i]!;
      assert.equal(p.text, texts[i]);
      assert.deepEqual(p.tokens, want.tokens, texts[i]);
      assert.deepEqual(p.oovTokens, want.oov, texts[i]);
      assert.equal(p.noKnownToken, false);
      const ref = reference(model, want.tokens);
      assert.ok(Math.abs(p.probability - ref) < 1e-6, `${texts[i]}: ${p.probability} vs ${ref}`);
      assert.equal(p.labelId, ref > 0.5 ? 1 : 0);
      assert.equal(p.label, ref > 0.5 ? 'positive' : 'negative');
    });
    // Not all on one side: the fixture model separates something.
    assert.ok(
      new Set(res.predictions.map((p) => p.label)).size === 2,
      res.predictions.map((p) => p.probability).join(),
    );
  });

  test('a text with no known token gets the documented answer, the others in the call are computed', async () => {
    const res = await client.predict({ modelName: 'sst2', texts: ['qwxz blorp', 'loved it'] });
    const [none, some] = res.predictions;
    assert.deepEqual(
      { label: none!.label, labelId: none!.labelId, probability: none!.probability, noKnownToken: none!.noKnownToken },
      { label: 'negative', labelId: 0, probability: 0.5, noKnownToken: true },
    );
    assert.deepEqual(none!.tokens, []);
    assert.deepEqual(none!.oovTokens, ['qwxz', 'blorp']);
    assert.ok(Math.abs(some!.probability - reference(model, ['loved', 'it'])) < 1e-6);
  });

  test('bad input: clear status naming the problem; the server keeps serving', async () => {
    await assert.rejects(client.predict({ texts: [] }), codeWith(Code.INVALID_ARGUMENT, /texts.*at least one/));
    await assert.rejects(client.predict({ texts: ['good', ''] }), codeWith(Code.INVALID_ARGUMENT, /texts\[1\].*empty/));
    await assert.rejects(
      client.predict({ texts: ['good', 'bad', ' \t\n '] }),
      codeWith(Code.INVALID_ARGUMENT, /texts\[2\].*white space/),
    );
    await assert.rejects(
      client.predict({ texts: Array.from({ length: 9 }, () => 'good') }),
      codeWith(Code.INVALID_ARGUMENT, /9 texts.*limit is 8/),
    );
    await assert.rejects(
      client.predict({ texts: ['good', 'é'.repeat(33)] }),
      codeWith(Code.INVALID_ARGUMENT, /texts\[1\].*66 bytes.*limit is 64/),
    );
    await assert.rejects(
      client.predict({ modelName: 'nope', texts: ['good'] }),
      codeWith(Code.NOT_FOUND, /nope.*sst2/),
    );
    await assert.rejects(
      client.predict({ modelName: 'sst2', modelVersion: '7', texts: ['good'] }),
      codeWith(Code.NOT_FOUND, /version 7.*not in the repository.*serving: 1/),
    );
    await assert.rejects(
      client.predict({ modelVersion: 'latest', texts: ['good'] }),
      codeWith(Code.INVALID_ARGUMENT, /model_version.*positive integer/),
    );
    const ok = await client.predict({ texts: ['good movie'] });
    assert.equal(ok.predictions.length, 1);
  });

  test('a method the gateway does not implement answers UNIMPLEMENTED', async () => {
    const echo = createClient(EchoService, gw.address);
    try {
      await assert.rejects(echo.echo({ text: 'hi' }), code(Code.UNIMPLEMENTED));
    } finally {
      echo.close();
    }
  });

  test('health: the whole server and both APIs SERVING with a model ready', async () => {
    assert.equal(await checkHealth(gw.address, ''), 'SERVING');
    assert.equal(await checkHealth(gw.address, 'ch8.gateway.v1.GatewayService'), 'SERVING');
    assert.equal(await checkHealth(gw.address, 'inference.GRPCInferenceService'), 'SERVING');
  });
});

describe('model names and health without models', () => {
  test('no model: APIs NOT_SERVING ("" SERVING), FAILED_PRECONDITION; the first export makes them SERVING', async () => {
    const repo = await scratchRoot();
    const gw = await startGateway(repo.root);
    const client = createClient(GatewayService, gw.address);
    const model = tinyModel('bow-finetune');
    try {
      assert.equal(await checkHealth(gw.address, ''), 'SERVING');
      assert.equal(await checkHealth(gw.address, 'ch8.gateway.v1.GatewayService'), 'NOT_SERVING');
      assert.equal(await checkHealth(gw.address, 'inference.GRPCInferenceService'), 'NOT_SERVING');
      await assert.rejects(client.predict({ texts: ['good'] }), codeWith(Code.FAILED_PRECONDITION, /no model/));
      await exportVersion(repo.root, 'only', model);
      const reloaded = await client.reloadModels({});
      assert.deepEqual(
        reloaded.models.map((m) => [m.name, m.version, m.ready]),
        [['only', '1', true]],
      );
      assert.equal(await checkHealth(gw.address, 'ch8.gateway.v1.GatewayService'), 'SERVING');
      assert.equal(await checkHealth(gw.address, 'inference.GRPCInferenceService'), 'SERVING');
      assert.equal((await client.predict({ texts: ['good'] })).modelName, 'only');
    } finally {
      client.close();
      await gw.stop();
      model.dispose();
      await repo.remove();
    }
  });

  test('several models: an empty name is INVALID_ARGUMENT listing them, unless a default model is configured', async () => {
    const repo = await scratchRoot();
    const a = tinyModel('bow-finetune', 1);
    const b = tinyModel('cnn', 2);
    await exportVersion(repo.root, 'alpha', a);
    await exportVersion(repo.root, 'beta', b);
    const plain = await startGateway(repo.root);
    const chosen = await startGateway(repo.root, { CH8_GATEWAY_DEFAULT_MODEL: 'beta' });
    const c1 = createClient(GatewayService, plain.address);
    const c2 = createClient(GatewayService, chosen.address);
    try {
      await assert.rejects(c1.predict({ texts: ['good'] }), codeWith(Code.INVALID_ARGUMENT, /model_name.*alpha, beta/));
      assert.equal((await c1.predict({ modelName: 'alpha', texts: ['good'] })).modelName, 'alpha');
      const viaDefault = await c2.predict({ texts: ['the plot was dull'] });
      assert.equal(viaDefault.modelName, 'beta');
      assert.ok(Math.abs(viaDefault.predictions[0]!.probability - reference(b, ['the', 'plot', 'was', 'dull'])) < 1e-6);
      const listed = await c2.listModels({});
      assert.equal(listed.defaultModel, 'beta');
      assert.deepEqual(
        listed.models.map((m) => [m.name, m.kind, m.ready, m.defaultVersion]),
        [
          ['alpha', 'bow-finetune', true, true],
          ['beta', 'cnn', true, true],
        ],
      );
    } finally {
      c1.close();
      c2.close();
      await plain.stop();
      await chosen.stop();
      a.dispose();
      b.dispose();
      await repo.remove();
    }
  });
});
