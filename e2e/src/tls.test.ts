/**
 * The stack over mutual TLS, as a user runs it: the four services as processes with CH8_TLS_* (a CA, a certificate
 * for 127.0.0.1 each service serves with and presents when it calls another, client certificates required), the CLI
 * trains a small bag-of-words model through the trainer with --tls-*, the trainer pulls the matrix and the batches
 * over mutual TLS, and the gateway answers Predict to a client with a certificate. Clients without the CA or without
 * a certificate are refused; Kubernetes-style probes reach the gateway's plaintext health-only port.
 *
 * The same stack runs with small call limits (CH8_<SERVICE>_MAX_CONCURRENT_CALLS, _MAX_MESSAGE_BYTES): each service
 * refuses one call too many and one message too large with RESOURCE_EXHAUSTED naming the limit and serves on; a
 * flood of large requests to the gateway leaves its memory bounded (bench/gateway-flood.ts is the long form).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { DatasetService } from '@ch8/contracts/dataset';
import { EmbeddingService } from '@ch8/contracts/embedding';
import { GatewayService } from '@ch8/contracts/gateway';
import { TrainerService } from '@ch8/contracts/trainer';
import { freePort } from '@ch8/cli/launch';
import { createClient } from '@ch8/service-kit/client';
import { checkHealth } from '@ch8/service-kit/probes';
import { Code, type GrpcError } from '@ch8/service-kit/status';
import { holdCall, makeTestCertificates, type HeldCall, type TestCertificates } from '@ch8/service-kit/testing';
import { loadTls, type Tls } from '@ch8/service-kit/tls';
import { runCli, startStack, type Stack } from './stack.ts';

let dir: string;
let stack: Stack | undefined;
let certs: TestCertificates;
let skip: string | false = false;
let client: Tls;
let healthAddress: string;
let gatewayMetrics: string;

/** Small limits, still roomy for the training run: concurrent calls per service, and message size. */
const MAX_CALLS = { embedding: 8, dataset: 8, trainer: 8, gateway: 6 } as const;
const MAX_BYTES = { embedding: 1 << 20, dataset: 1 << 20, trainer: 1 << 20, gateway: 2 << 20 } as const;

const POS = ['good', 'great', 'fine', 'superb', 'lovely', 'fun'];
const NEG = ['bad', 'awful', 'dull', 'poor', 'boring', 'weak'];
const FILLER = ['the', 'film', 'plot', 'was', 'a', 'story', 'cast', 'it'];

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

/** Sentences labelled by the sign of (positive words - negative words). */
function tsv(n: number, seed: number): string {
  const r = rng(seed);
  const lines = ['sentence\tlabel'];
  for (let i = 0; i < n; i++) {
    const words: string[] = [];
    let score = 0;
    for (let k = 0, len = 3 + Math.floor(r() * 6); k < len; k++) {
      const u = r();
      const pick = (list: string[]) => list[Math.floor(r() * list.length)]!;
      const word = u < 0.3 ? pick(POS) : u < 0.6 ? pick(NEG) : pick(FILLER);
      words.push(word);
      score += POS.includes(word) ? 1 : NEG.includes(word) ? -1 : 0;
    }
    if (score === 0) {
      words.push('good');
      score = 1;
    }
    lines.push(`${words.join(' ')}\t${score > 0 ? 1 : 0}`);
  }
  return lines.join('\n') + '\n';
}

async function serving(address: string, service = '', tls: Tls | undefined = client, ms = 90_000): Promise<void> {
  const end = Date.now() + ms;
  while ((await checkHealth(address, service, 1000, { tls })) !== 'SERVING') {
    if (Date.now() > end) throw new Error(`${address} ${service} not SERVING over TLS`);
    await sleep(200);
  }
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ch8-e2e-tls-'));
  const made = makeTestCertificates(dir);
  if ('skip' in made) {
    skip = made.skip;
    return;
  }
  certs = made;
  client = loadTls({ ca: certs.ca, cert: certs.clientCert, key: certs.clientKey })!;
  const r = rng(7);
  const vectors = [...POS, ...NEG, ...FILLER].map((w) => {
    const sign = POS.includes(w) ? 1 : NEG.includes(w) ? -1 : 0;
    return `${w} ${Array.from({ length: 6 }, (_, j) => ((j === 0 ? sign : 0) + (r() - 0.5) * 0.5).toFixed(5)).join(' ')}`;
  });
  await writeFile(join(dir, 'vectors.txt'), vectors.join('\n') + '\n');
  await writeFile(join(dir, 'train.tsv'), tsv(300, 1));
  await writeFile(join(dir, 'dev.tsv'), tsv(60, 2));
  healthAddress = `127.0.0.1:${await freePort()}`;
  gatewayMetrics = `127.0.0.1:${await freePort()}`;
  const limits: Record<string, string> = {};
  for (const [name, n] of Object.entries(MAX_CALLS)) {
    limits[`CH8_${name.toUpperCase()}_MAX_CONCURRENT_CALLS`] = String(n);
    limits[`CH8_${name.toUpperCase()}_MAX_MESSAGE_BYTES`] = String(MAX_BYTES[name as keyof typeof MAX_BYTES]);
  }
  stack = await startStack({
    CH8_LOG_LEVEL: 'warn',
    CH8_DATA_ROOTS: dir,
    CH8_HOME: join(dir, 'home'),
    CH8_CACHE_DIR: join(dir, 'cache'),
    CH8_BACKEND: 'wasm',
    CH8_GATEWAY_POLL_MS: '300',
    CH8_TLS_CA: certs.ca,
    CH8_TLS_CERT: certs.serverCert,
    CH8_TLS_KEY: certs.serverKey,
    CH8_TLS_CLIENT_AUTH: 'require',
    CH8_GATEWAY_HEALTH_ADDR: healthAddress,
    ...Object.fromEntries(['EMBEDDING', 'DATASET', 'TRAINER'].map((s) => [`CH8_${s}_METRICS_ADDR`, 'off'] as const)),
    CH8_GATEWAY_METRICS_ADDR: gatewayMetrics,
    ...limits,
  });
  await Promise.all(Object.values(stack.services).map((s) => serving(s.address)));
});

after(async () => {
  await stack?.stop();
  await rm(dir, { recursive: true, force: true });
});

test('the stack trains and predicts over mutual TLS: ch8 train --tls-*, then Predict through the gateway', async (t) => {
  if (skip) return t.skip(skip);
  const s = stack!;
  const t0 = Date.now();
  const train = await runCli(
    [
      'train',
      ...['--train', join(dir, 'train.tsv'), '--dev', join(dir, 'dev.tsv'), '--vectors', join(dir, 'vectors.txt')],
      ...['--model', 'bow-frozen', '--epochs', '3', '--batch-size', '16', '--seed', '1', '--backend', 'wasm'],
      ...['--name', 'tls-bow', '--addr', s.services.trainer.address, '--json'],
      ...['--tls-ca', certs.ca, '--tls-cert', certs.clientCert, '--tls-key', certs.clientKey],
    ],
    { CH8_HOME: join(dir, 'home-cli') },
  );
  assert.equal(train.code, 0, train.stderr);
  t.diagnostic(`ch8 train over mutual TLS: ${Date.now() - t0} ms`);
  const report = JSON.parse(train.stdout) as { via: string; model_version: number; dev_accuracy: number };
  assert.equal(report.via, s.services.trainer.address);
  assert.equal(report.model_version, 1);
  assert.ok(report.dev_accuracy > 0.7, `dev accuracy ${report.dev_accuracy}`);

  const gateway = s.services.gateway.address;
  await serving(gateway, 'inference.GRPCInferenceService', client, 30_000);
  const predict = createClient(GatewayService, gateway, { tls: client });
  try {
    const res = await predict.predict(
      { modelName: 'tls-bow', texts: ['a good great fun film', 'a bad awful dull plot'] },
      { timeoutMs: 10_000 },
    );
    assert.equal(res.modelVersion, '1');
    assert.deepEqual(
      res.predictions.map((p) => p.labelId),
      [1, 0],
    );
    t.diagnostic(`trained, loaded and answered: ${Date.now() - t0} ms`);
  } finally {
    predict.close();
  }
});

test('refused: a client without the CA, without a certificate, or in plaintext (UNAVAILABLE); probes use the plaintext health port', async (t) => {
  if (skip) return t.skip(skip);
  const gateway = stack!.services.gateway.address;
  const tries: [string, Tls | undefined][] = [
    ['another CA', loadTls({ ca: certs.otherCa, cert: certs.clientCert, key: certs.clientKey })],
    ['no client certificate', loadTls({ ca: certs.ca })],
    ['plaintext', undefined],
  ];
  for (const [what, tls] of tries) {
    const c = createClient(GatewayService, gateway, { tls });
    try {
      await assert.rejects(c.listModels({}, { timeoutMs: 5000 }), (e: GrpcError) => {
        assert.equal(e.code, Code.UNAVAILABLE, `${what}: ${e.message}`);
        return true;
      });
    } finally {
      c.close();
    }
  }
  // What a Kubernetes gRPC probe does: plaintext, to the health-only port.
  assert.equal(await checkHealth(healthAddress, '', 2000, { tls: undefined }), 'SERVING');
  assert.equal(await checkHealth(healthAddress, 'inference.GRPCInferenceService', 2000, { tls: undefined }), 'SERVING');
  assert.equal(await checkHealth(gateway, '', 2000, { tls: undefined }), 'UNREACHABLE');
});

/** Per service: a call that succeeds, one whose request is too large, and a path to hold a call on. */
function probesOf(name: keyof typeof MAX_CALLS, address: string) {
  const big = MAX_BYTES[name] + 1024;
  switch (name) {
    case 'embedding': {
      const c = createClient(EmbeddingService, address, { tls: client });
      return {
        close: () => c.close(),
        path: `/${EmbeddingService.typeName}/ListTables`,
        ok: () => c.listTables({}, { timeoutMs: 5000 }),
        tooBig: () => c.lookup({ tableId: 't', tokens: ['x'.repeat(big)] }, { timeoutMs: 5000 }),
      };
    }
    case 'dataset': {
      const c = createClient(DatasetService, address, { tls: client });
      return {
        close: () => c.close(),
        path: `/${DatasetService.typeName}/ListDatasets`,
        ok: () => c.listDatasets({}, { timeoutMs: 5000 }),
        tooBig: () => c.getDataset({ datasetId: 'x'.repeat(big) }, { timeoutMs: 5000 }),
      };
    }
    case 'trainer': {
      const c = createClient(TrainerService, address, { tls: client });
      return {
        close: () => c.close(),
        path: `/${TrainerService.typeName}/ListRuns`,
        ok: () => c.listRuns({}, { timeoutMs: 5000 }),
        tooBig: () => c.getRun({ runId: 'x'.repeat(big) }, { timeoutMs: 5000 }),
      };
    }
    case 'gateway': {
      const c = createClient(GatewayService, address, { tls: client });
      return {
        close: () => c.close(),
        path: `/${GatewayService.typeName}/ListModels`,
        ok: () => c.listModels({}, { timeoutMs: 5000 }),
        tooBig: () => c.predict({ texts: ['good '.repeat(big / 5)] }, { timeoutMs: 5000 }),
      };
    }
  }
}

test('limits: one call too many and one message too large are RESOURCE_EXHAUSTED naming the limit; each service serves on', async (t) => {
  if (skip) return t.skip(skip);
  const held: HeldCall[] = [];
  try {
    await Promise.all(
      (Object.keys(MAX_CALLS) as (keyof typeof MAX_CALLS)[]).map(async (name) => {
        const address = stack!.services[name].address;
        const p = probesOf(name, address);
        try {
          const setting = `CH8_${name.toUpperCase()}`;
          // Calls whose request never comes hold every place; one more is refused, health still answers.
          const mine = await Promise.all(
            Array.from({ length: MAX_CALLS[name] }, () => holdCall(address, p.path, { tls: client })),
          );
          held.push(...mine);
          await sleep(300);
          await assert.rejects(p.ok(), (e: GrpcError) => {
            assert.equal(e.code, Code.RESOURCE_EXHAUSTED, `${name}: ${e.message}`);
            assert.match(
              e.details,
              new RegExp(
                `too many concurrent calls: the limit is ${MAX_CALLS[name]} \\(${setting}_MAX_CONCURRENT_CALLS\\)`,
              ),
            );
            return true;
          });
          assert.equal(await checkHealth(address, '', 2000, { tls: client }), 'SERVING', name);
          for (const h of mine) h.close();
          await sleep(300);
          await p.ok();
          await assert.rejects(p.tooBig(), (e: GrpcError) => {
            assert.equal(e.code, Code.RESOURCE_EXHAUSTED, `${name}: ${e.message}`);
            assert.match(e.details, new RegExp(`larger than max \\(\\d+ vs\\.? ${MAX_BYTES[name]}\\)`));
            return true;
          });
          assert.equal(await checkHealth(address, '', 2000, { tls: client }), 'SERVING', name);
          await p.ok();
        } finally {
          p.close();
        }
      }),
    );
  } finally {
    for (const h of held) h.close();
  }
});

/** The gateway's resident memory, from its own metrics. */
async function gatewayRss(): Promise<number> {
  const text = await (await fetch(`http://${gatewayMetrics}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('ch8_gateway_process_resident_memory_bytes '));
  return Number(line!.split(' ')[1]);
}

test('a flood of large requests: refused beyond the limit before they are read, the gateway stays small and serving', async (t) => {
  if (skip) return t.skip(skip);
  const gateway = stack!.services.gateway.address;
  const callers = 96;
  const texts = Array.from({ length: 120 }, (_, i) => `${i} ${'good film '.repeat(1600)}`);
  const bytes = texts.reduce((n, x) => n + x.length, 0);
  assert.ok(bytes < MAX_BYTES.gateway && bytes > MAX_BYTES.gateway * 0.8, `${bytes} bytes a request`);
  const c = createClient(GatewayService, gateway, { tls: client });
  try {
    const before = await gatewayRss();
    let peak = before;
    let flooding = true;
    const sampler = (async () => {
      while (flooding) {
        peak = Math.max(peak, await gatewayRss());
        await sleep(50);
      }
    })();
    const codes = new Map<string, number>();
    await Promise.all(
      Array.from({ length: callers }, async () => {
        let code = 'OK';
        try {
          // A model the gateway does not have: an admitted call is read whole, then NOT_FOUND (the model's
          // answer to so many texts would pass the message limit itself: it echoes texts and tokens).
          await c.predict({ modelName: 'flood', texts }, { timeoutMs: 60_000 });
        } catch (e) {
          code = Code[(e as GrpcError).code] ?? 'UNKNOWN';
        }
        codes.set(code, (codes.get(code) ?? 0) + 1);
      }),
    );
    flooding = false;
    await sampler;
    const mib = (x: number) => Math.round((x / 2 ** 20) * 10) / 10;
    t.diagnostic(
      `${callers} concurrent Predict calls of ${mib(bytes)} MiB (${mib(callers * bytes)} MiB in all), limit ${MAX_CALLS.gateway}: ${JSON.stringify(Object.fromEntries(codes))}; gateway RSS ${mib(before)} -> peak ${mib(peak)} MiB`,
    );
    assert.deepEqual([...codes.keys()].sort(), ['NOT_FOUND', 'RESOURCE_EXHAUSTED']);
    assert.ok(codes.get('RESOURCE_EXHAUSTED')! >= callers / 2, 'most calls were beyond the limit');
    // Admitted calls hold at most limit x bytes (11 MiB here; decoded, a few times that). Had every request been read,
    // the gateway would have grown by about twice what was sent (bench/gateway-flood.ts without a limit).
    assert.ok(peak - before < callers * bytes * 0.75, `RSS grew by ${mib(peak - before)} MiB`);
    assert.equal(await checkHealth(gateway, 'inference.GRPCInferenceService', 2000, { tls: client }), 'SERVING');
  } finally {
    c.close();
  }
});
