import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { selectBackend } from '@ch8/backend/select';
import { GatewayService, VersionState } from '@ch8/contracts/gateway';
import type { SentimentModel } from '@ch8/models/model';
import { createClient, type Client } from '@ch8/service-kit/client';
import { checkHealth } from '@ch8/service-kit/probes';
import { Code } from '@ch8/service-kit/status';
import { exportVersion, scratchRoot, startGateway, tinyModel, TOKENS, type TestGateway } from './fixtures.ts';

await selectBackend({ prefer: 'cpu' });

const TEXT = 'I loved it!';
const TEXT_TOKENS = ['i', 'loved', 'it', '!'];

function reference(model: SentimentModel): number {
  const ids = Int32Array.from(TEXT_TOKENS.map((t) => TOKENS.indexOf(t)));
  return model.predictProbabilities({ inputIds: ids, batchSize: 1, maxLength: ids.length })[0]!;
}

const codeWith = (c: number, re: RegExp) => (e: { code?: number; details?: string }) => {
  assert.equal(e.code, c, `expected ${Code[c]}, got ${e.code} ${e.details}`);
  assert.match(e.details ?? '', re);
  return true;
};

/** Calls Predict from `callers` loops until stopped; every failure and every answer is kept. */
function traffic(client: Client<typeof GatewayService>, callers: number) {
  let running = true;
  const answers: { version: string; probability: number }[] = [];
  const failures: string[] = [];
  const loops = Array.from({ length: callers }, async () => {
    while (running) {
      try {
        const r = await client.predict({ modelName: 'sst2', texts: [TEXT] }, { timeoutMs: 10_000 });
        answers.push({ version: r.modelVersion, probability: r.predictions[0]!.probability });
      } catch (e) {
        failures.push(String(e));
      }
    }
  });
  return {
    answers,
    failures,
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

describe('versions of one model', () => {
  let repo: Awaited<ReturnType<typeof scratchRoot>>;
  let gw: TestGateway;
  let client: Client<typeof GatewayService>;
  const models: SentimentModel[] = [];
  /** Reference probability of TEXT per version. */
  const expected = new Map<string, number>();

  async function exportNext(seed: number): Promise<number> {
    const m = tinyModel('bow-finetune', seed);
    models.push(m);
    const v = await exportVersion(repo.root, 'sst2', m);
    expected.set(String(v), reference(m));
    return v;
  }

  const states = async () =>
    (await client.listModels({})).models
      .filter((m) => m.name === 'sst2')
      .map((m) => [m.version, VersionState[m.state], m.defaultVersion] as const);

  before(async () => {
    repo = await scratchRoot();
    await exportNext(1);
    gw = await startGateway(repo.root, { CH8_GATEWAY_POLL_MS: '40', CH8_GATEWAY_MAX_DELAY_MS: '1' });
    client = createClient(GatewayService, gw.address);
  });
  after(async () => {
    client.close();
    await gw.stop();
    for (const m of models) m.dispose();
    await repo.remove();
  });

  test('hot reload under traffic: new versions found by polling and by ReloadModels, swapped in with zero errors', async () => {
    const load = traffic(client, 8);
    await sleep(150);
    await exportNext(2); // found by polling
    await until('version 2 to answer', () => load.answers.some((a) => a.version === '2'));
    await exportNext(3);
    const reloaded = await client.reloadModels({}); // found at once
    assert.deepEqual(
      reloaded.models.filter((m) => m.ready).map((m) => m.version),
      ['3'],
    );
    await until('version 3 to answer', () => load.answers.some((a) => a.version === '3'));
    await sleep(100);
    await load.stop();
    assert.deepEqual(load.failures, []);
    const seen = new Set(load.answers.map((a) => a.version));
    assert.deepEqual([...seen].sort(), ['1', '2', '3']);
    // Every answer is the one of the version it names; once 3 answered, nothing older did.
    for (const a of load.answers) assert.ok(Math.abs(a.probability - expected.get(a.version)!) < 1e-6, a.version);
    const first3 = load.answers.findIndex((a) => a.version === '3');
    assert.ok(
      load.answers.slice(first3 + 8).every((a) => a.version === '3'),
      'old versions stopped answering',
    );
    assert.ok(new Set([...expected.values()]).size === 3, 'the versions answer differently');
    await until('old versions unloaded', async () =>
      (await states()).every(([v, s]) => (v === '3' ? s === 'READY' : s === 'AVAILABLE')),
    );
    assert.deepEqual(await states(), [
      ['1', 'AVAILABLE', false],
      ['2', 'AVAILABLE', false],
      ['3', 'READY', true],
    ]);
  });

  test('pin (rollback) and unpin; keep the newest N', async () => {
    await assert.rejects(
      client.setVersionPolicy({ modelName: 'sst2', policy: { choice: { case: 'pinnedVersion', value: 9 } } }),
      codeWith(Code.NOT_FOUND, /no version 9/),
    );
    const pinned = await client.setVersionPolicy({
      modelName: 'sst2',
      policy: { choice: { case: 'pinnedVersion', value: 1 } },
    });
    assert.deepEqual(pinned.policy?.policy?.choice, { case: 'pinnedVersion', value: 1 });
    assert.equal(pinned.policy?.overridden, true);
    let r = await client.predict({ modelName: 'sst2', texts: [TEXT] });
    assert.equal(r.modelVersion, '1');
    assert.ok(Math.abs(r.predictions[0]!.probability - expected.get('1')!) < 1e-6);
    await until('version 3 unloaded', async () => (await states()).find(([v]) => v === '3')![1] === 'AVAILABLE');
    await assert.rejects(
      client.predict({ modelName: 'sst2', modelVersion: '3', texts: [TEXT] }),
      codeWith(Code.NOT_FOUND, /version 3 of model sst2 is not loaded.*serving: 1/),
    );
    // Polling does not undo a pin.
    await sleep(120);
    assert.equal((await client.predict({ modelName: 'sst2', texts: [TEXT] })).modelVersion, '1');

    const unpinned = await client.setVersionPolicy({ modelName: 'sst2' });
    assert.deepEqual(unpinned.policy?.policy?.choice, { case: 'latest', value: 1 });
    assert.equal(unpinned.policy?.overridden, false);
    r = await client.predict({ modelName: 'sst2', texts: [TEXT] });
    assert.equal(r.modelVersion, '3');

    await client.setVersionPolicy({ modelName: 'sst2', policy: { choice: { case: 'latest', value: 2 } } });
    assert.equal((await client.predict({ modelName: 'sst2', texts: [TEXT] })).modelVersion, '3');
    r = await client.predict({ modelName: 'sst2', modelVersion: '2', texts: [TEXT] });
    assert.equal(r.modelVersion, '2');
    assert.ok(Math.abs(r.predictions[0]!.probability - expected.get('2')!) < 1e-6);
    const listed = await client.listModels({});
    assert.deepEqual(
      listed.policies.map((p) => [p.modelName, p.policy?.choice.case, p.policy?.choice.value, p.overridden]),
      [['sst2', 'latest', 2, true]],
    );
    await client.setVersionPolicy({ modelName: 'sst2' });
  });

  test('versions that fail to load are reported with their reason; the previous version keeps serving', async () => {
    const good = tinyModel('bow-finetune', 4);
    models.push(good);
    const spoilJson = (edit: (m: Record<string, unknown>) => void) => async (dir: string) => {
      const file = join(dir, 'manifest.json');
      const m = JSON.parse(await readFile(file, 'utf8'));
      edit(m);
      await writeFile(file, JSON.stringify(m));
    };
    let saved: Buffer | undefined;
    const cases: [string, (dir: string) => Promise<void>, RegExp][] = [
      [
        'corrupt weights',
        async (dir) => {
          const file = join(dir, 'weights.bin');
          saved = await readFile(file);
          const bytes = Buffer.from(saved);
          bytes[5] = bytes[5]! ^ 0xff;
          await writeFile(file, bytes);
        },
        /weights\.bin.*weights\.sha256.*corrupt/,
      ],
      [
        'bad manifest',
        async (dir) => writeFile(join(dir, 'manifest.json'), '{ "format": '),
        /manifest\.json.*not valid JSON/,
      ],
      [
        'vocabulary hash mismatch',
        spoilJson((m) => ((m['vocabulary'] as { hash: string }).hash = 'ab'.repeat(32))),
        /VocabularyMismatchError.*vocabulary\.hash/,
      ],
      [
        'unknown tokenizer',
        spoilJson((m) => ((m['tokenizer'] as { raw: { kind: string } }).raw.kind = 'klingon')),
        /tokenizer\.raw\.kind/,
      ],
    ];
    const failed: string[] = [];
    for (const [what, spoil, reason] of cases) {
      const v = String(await exportVersion(repo.root, 'sst2', good, spoil));
      failed.push(v);
      const res = await client.reloadModels({});
      const entry = res.models.find((m) => m.version === v)!;
      assert.equal(VersionState[entry.state], 'FAILED', what);
      assert.match(entry.error, reason, what);
      const r = await client.predict({ modelName: 'sst2', texts: [TEXT] });
      assert.equal(r.modelVersion, '3', `${what}: the previous version serves`);
      assert.equal(await checkHealth(gw.address, 'ch8.gateway.v1.GatewayService'), 'SERVING');
    }
    // Polling does not retry them while their files are unchanged.
    await sleep(120);
    assert.deepEqual(
      (await states()).filter(([v]) => failed.includes(v)).map(([, s]) => s),
      ['FAILED', 'FAILED', 'FAILED', 'FAILED'],
    );
    await assert.rejects(
      client.predict({ modelName: 'sst2', modelVersion: failed[1], texts: [TEXT] }),
      codeWith(Code.NOT_FOUND, /failed to load.*not valid JSON/),
    );
    // Repairing the corrupt weights makes that version load on the next scan: it is now the newest good one.
    await writeFile(join(repo.root, 'sst2', failed[0]!, 'weights.bin'), saved!);
    await client.reloadModels({});
    const r = await client.predict({ modelName: 'sst2', texts: [TEXT] });
    assert.equal(r.modelVersion, failed[0]);
    assert.ok(Math.abs(r.predictions[0]!.probability - reference(good)) < 1e-6);
  });
});

test('an unloaded version finishes the requests it holds before it is disposed', async () => {
  const repo = await scratchRoot();
  const a = tinyModel('bow-finetune', 1);
  const b = tinyModel('bow-finetune', 2);
  // Long batching delay: the request sits in version 1's queue while version 2 replaces it.
  const gw = await startGateway(repo.root, { CH8_GATEWAY_MAX_DELAY_MS: '400' });
  const client = createClient(GatewayService, gw.address);
  try {
    await exportVersion(repo.root, 'm', a);
    await client.reloadModels({});
    const pending = client.predict({ texts: [TEXT] });
    await sleep(50);
    await exportVersion(repo.root, 'm', b);
    await client.reloadModels({});
    const after = await client.predict({ texts: [TEXT] });
    assert.equal(after.modelVersion, '2');
    const held = await pending;
    assert.equal(held.modelVersion, '1');
    assert.ok(Math.abs(held.predictions[0]!.probability - reference(a)) < 1e-6);
  } finally {
    client.close();
    await gw.stop();
    a.dispose();
    b.dispose();
    await repo.remove();
  }
});
