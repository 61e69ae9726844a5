/**
 * Soak under rollout: the gateway as its own process (services/gateway, as deployed) on a scratch model repository,
 * 64 concurrent callers sending single-text Predict calls for 60 s while a new version of the bag-of-words model is
 * published every 10 s (atomically: a temporary directory renamed into place, as the trainer exports), one of them
 * corrupt (a byte of its weights flipped, so its checksum fails). The gateway finds them by polling. Measured:
 * failed calls (the goal is 0, warm-up included), latency percentiles, which version answered and from when, the
 * state the gateway gives each version (the corrupt one FAILED, the previous one serving on), and the gateway's
 * resident memory (VmRSS from /proc/<pid>/status), sampled every second and compared between the end of the warm-up
 * and the end of the run: the growth must stay within 10 %.
 *
 * Memory is compared after a full garbage collection in the gateway (started with --expose-gc and a preloaded
 * SIGUSR2 handler that calls gc(): an instrument, the gateway's code is unchanged). Without it the comparison measures
 * where V8's collection cycle stands: under this load the resident set swings by 100+ MiB between major collections.
 * The warm-up (20 s) rolls out one version half-way, so one-time costs of a first rollout are in the baseline. The
 * gateway's own heap figures (prom-client's process metrics: heap used, heap committed, external) are reported at
 * both points too: live heap flat while the resident set grows means committed-but-free memory, not a leak.
 * Seeded (text order per caller, which version is corrupt, which byte). One JSON document on stdout; exit code 1 when
 * a check fails.
 *
 *   pnpm bench:soak [--models DIR] [--model NAME] [--seconds 60] [--callers 64] [--every 10] [--warmup 20]
 *       [--seed 1] [--poll-ms 1000] [--backend auto] [--sst2 DIR] [--rss-every-ms 1000] [--max-rss-growth 0.1]
 *
 * --models DIR: a model repository (DIR/<name>/<version>/) holding NAME (default bow-frozen); its newest version is
 * what gets rolled out. Without it a small bow-frozen model is trained in this process first (one epoch, wasm) on
 * GLUE SST-2 when --sst2 (default ../shared/data/sst2) holds train.tsv and dev.tsv, else on the builtin review
 * sentences, and exported into a temporary repository. The texts sent are the dev sentences of the same data.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdtemp, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { freePort } from '@ch8/cli/launch';
import { selectBackend } from '@ch8/backend/select';
import { ROOT } from '@ch8/cli/launch';
import { GatewayService, PredictRequestSchema, PredictResponseSchema, VersionState } from '@ch8/contracts/gateway';
import { loadDataset, type DatasetSpec } from '@ch8/datasets/dataset';
import { prepareLocal } from '@ch8/datasets/local';
import { createClient } from '@ch8/service-kit/client';
import { checkHealth } from '@ch8/service-kit/probes';
import { resolveTrainingConfig } from '@ch8/training/config';
import { exportRun } from '@ch8/training/export';
import { localFeed } from '@ch8/training/feed';
import { train } from '@ch8/training/run';
import { readArgs } from './src/args.ts';
import { frame, H2UnaryCaller } from './src/h2-grpc.ts';

let modelsDir: string | undefined;
let modelName = 'bow-frozen';
let seconds = 60;
let callers = 64;
let every = 10;
let warmup = 20;
let seed = 1;
let pollMs = 1000;
let backend = 'auto';
let sst2 = resolve(ROOT, '..', 'shared', 'data', 'sst2');
let rssEveryMs = 1000;
let maxRssGrowth = 0.1;
readArgs(process.argv.slice(2), (flag, value) => {
  const num = (min: number): number => {
    const v = value();
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n < min) throw new Error(`${flag} must be a number >= ${min}`);
    return n;
  };
  if (flag === '--models') modelsDir = resolve(value());
  else if (flag === '--model') modelName = value();
  else if (flag === '--seconds') seconds = num(1);
  else if (flag === '--callers') callers = Math.floor(num(1));
  else if (flag === '--every') every = num(0.5);
  else if (flag === '--warmup') warmup = num(0);
  else if (flag === '--seed') seed = Math.floor(num(0));
  else if (flag === '--poll-ms') pollMs = Math.floor(num(1));
  else if (flag === '--backend') backend = value();
  else if (flag === '--sst2') sst2 = resolve(value());
  else if (flag === '--rss-every-ms') rssEveryMs = Math.floor(num(50));
  else if (flag === '--max-rss-growth') maxRssGrowth = num(0);
  else return false;
  return true;
});

const log = (s: string) => void process.stderr.write(`[bench:soak] ${s}\n`);
const round = (x: number, digits = 1): number => Math.round(x * 10 ** digits) / 10 ** digits;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const loadAtStart = loadavg()[0]!;

/** A seeded uniform [0, 1) generator (an LCG: enough for orders and choices). */
function rng(s: number): () => number {
  let state = (s * 2654435761) >>> 0;
  return () => (state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}
const random = rng(seed);

/** The gateway's own account of its memory (prom-client's process metrics), MiB; NaN when not exposed. */
async function heapMiB(url: string): Promise<{ heap_used: number; heap_total: number; external: number }> {
  const text = await (await fetch(url)).text();
  const value = (name: string): number => {
    const m = new RegExp(`^ch8_gateway_${name} (\\S+)$`, 'm').exec(text);
    return m === null ? NaN : round(Number(m[1]) / 2 ** 20, 1);
  };
  return {
    heap_used: value('nodejs_heap_size_used_bytes'),
    heap_total: value('nodejs_heap_size_total_bytes'),
    external: value('nodejs_external_memory_bytes'),
  };
}

/** VmRSS of a process in MiB (Linux), or NaN. */
async function rssMiB(pid: number): Promise<number> {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
    return m === null ? NaN : Number(m[1]) / 1024;
  } catch {
    return NaN;
  }
}

async function newestVersion(dir: string): Promise<number> {
  const vs = (await readdir(dir)).filter((e) => /^[1-9]\d*$/.test(e)).map(Number);
  if (vs.length === 0) throw new Error(`no version under ${dir}`);
  return Math.max(...vs);
}

// --- The model and the texts -------------------------------------------------------------------------------------
const hasSst2 = existsSync(join(sst2, 'train.tsv')) && existsSync(join(sst2, 'dev.tsv'));
const spec: DatasetSpec = hasSst2 ? { kind: 'sst2', dir: sst2 } : { kind: 'builtin' };
const trainedDir = modelsDir === undefined ? await mkdtemp(join(tmpdir(), 'ch8-soak-models-')) : undefined;
let trained: Record<string, unknown> | undefined;
if (modelsDir === undefined) {
  modelName = 'bow-frozen';
  const info = await selectBackend({ prefer: 'wasm' });
  log(
    `no --models: training ${modelName} on ${spec.kind === 'sst2' ? sst2 : 'the builtin review sets'} (${info.backend})`,
  );
  const t0 = performance.now();
  const prepared = await prepareLocal(spec, { cacheDir: join(ROOT, '.cache', 'embeddings'), log });
  const feed = localFeed(prepared);
  const config = resolveTrainingConfig({
    model: modelName,
    epochs: 1,
    batchSize: 64,
    learningRate: 1e-2,
    bucketing: 'none',
    seed,
    backend: 'wasm',
    exportName: modelName,
  });
  const result = await train(config, feed);
  await exportRun(trainedDir!, result, { feed: feed.info, backend: info });
  trained = {
    data: prepared.description,
    vocabulary: prepared.tokens.length,
    dim: prepared.dim,
    dev_accuracy: result.devAccuracy === null ? null : round(result.devAccuracy, 4),
    seconds: round((performance.now() - t0) / 1000),
  };
  log(`trained: ${JSON.stringify(trained)}`);
  modelsDir = trainedDir!;
}
const sourceDir = join(modelsDir, modelName, String(await newestVersion(join(modelsDir, modelName))));
const texts = (await loadDataset(spec)).splits
  .find((s) => s.name === 'dev')!
  .rows.map((r) => r.text.trim())
  .filter((t) => t !== '');
log(`${texts.length} texts, model ${sourceDir}`);

// --- The scratch repository and the rollout plan -----------------------------------------------------------------
const scratch = await mkdtemp(join(tmpdir(), 'ch8-soak-'));
const weightsBytes = (await readFile(join(sourceDir, 'weights.bin'))).length;
const rollouts = Math.max(0, Math.ceil(seconds / every) - 1);
const corruptIndex = rollouts === 0 ? -1 : Math.floor(random() * rollouts);
const flipAt = Math.floor(random() * weightsBytes);
/** Copies the source version into the scratch repository as version `v`, atomically; `corrupt` flips a byte. */
async function publish(v: number, corrupt: boolean): Promise<void> {
  const tmp = join(scratch, modelName, `.tmp-soak-${v}`);
  await cp(sourceDir, tmp, { recursive: true });
  const manifestFile = join(tmp, 'manifest.json');
  const manifest = JSON.parse(await readFile(manifestFile, 'utf8')) as { version: number };
  manifest.version = v;
  await writeFile(manifestFile, JSON.stringify(manifest));
  if (corrupt) {
    const w = await readFile(join(tmp, 'weights.bin'));
    w[flipAt] = w[flipAt]! ^ 0xff;
    await writeFile(join(tmp, 'weights.bin'), w);
  }
  await rename(tmp, join(scratch, modelName, String(v)));
}
await publish(1, false);

// --- The gateway, in its own process -----------------------------------------------------------------------------
const address = `127.0.0.1:${await freePort()}`;
const metricsUrl = `http://127.0.0.1:${await freePort()}/metrics`;
const passOn = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => k.startsWith('CH8_GATEWAY_MAX') || k === 'CH8_GATEWAY_DRAIN_MS'),
);
// Instrument only, no change to the gateway: with --expose-gc, SIGUSR2 makes it collect its garbage, so the memory
// compared after the warm-up and at the end is what it holds, not where V8's collection cycle happens to stand (under
// this load the resident set swings by 100+ MiB between major collections).
const GC_ON_SIGUSR2 = 'data:text/javascript,process.on("SIGUSR2",()=>globalThis.gc())';
const child: ChildProcess = spawn(
  process.execPath,
  ['--expose-gc', '--import', 'tsx', '--import', GC_ON_SIGUSR2, join(ROOT, 'services/gateway/src/main.ts')],
  {
    cwd: ROOT,
    env: {
      ...process.env,
      CH8_MODEL_REPOSITORY: scratch,
      CH8_GATEWAY_ADDR: address,
      CH8_GATEWAY_METRICS_ADDR: new URL(metricsUrl).host,
      CH8_GATEWAY_POLL_MS: String(pollMs),
      CH8_BACKEND: backend,
      CH8_LOG_LEVEL: 'warn',
      ...passOn,
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  },
);
const stopChild = () => {
  if (child.exitCode === null) child.kill('SIGTERM');
};
process.on('exit', stopChild);

interface Stats {
  latencies: number[];
  calls: number;
  failures: number;
  errors: string[];
  versions: Map<string, number>;
}
const fresh = (): Stats => ({ latencies: [], calls: 0, failures: 0, errors: [], versions: new Map() });

const client = createClient(GatewayService, address);
const caller = new H2UnaryCaller(address);
const PREDICT = `/${GatewayService.typeName}/${GatewayService.method.predict.name}`;
// Requests encoded once, before the clock starts; each caller walks its own seeded order of the texts.
const framed = texts.map((t) =>
  frame(toBinary(PredictRequestSchema, create(PredictRequestSchema, { modelName, texts: [t] }))),
);
const orders = Array.from({ length: callers }, () => {
  const o = Int32Array.from(texts, (_, i) => i);
  for (let i = o.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [o[i], o[j]] = [o[j]!, o[i]!];
  }
  return o;
});

const rss: Array<[number, number]> = [];
const rollout: Array<{ version: number; corrupt: boolean; published_at_second: number; in_warmup: boolean }> = [];
const firstAnswer = new Map<string, number>();
let t0 = NaN;
const elapsed = () => (performance.now() - t0) / 1000;
const warm = fresh();
const stats = fresh();
/** Calls after the measured window (while the end is sampled): only failures matter. */
const tail = fresh();
let report: Record<string, unknown> = {};
let ok = false;
try {
  for (
    const end = Date.now() + 120_000;
    (await checkHealth(address, 'ch8.gateway.v1.GatewayService')) !== 'SERVING';

  ) {
    if (child.exitCode !== null) throw new Error(`the gateway exited with ${child.exitCode}`);
    if (Date.now() > end) throw new Error('the gateway did not become SERVING within 120 s');
    await new Promise((r) => setTimeout(r, 200));
  }
  log(`gateway SERVING at ${address} (pid ${child.pid}); warm-up ${warmup} s, then ${seconds} s at ${callers} callers`);

  let phase: 'warmup' | 'run' | 'tail' = 'warmup';
  let stopped = false;
  const loop = async (c: number) => {
    const order = orders[c]!;
    for (let i = 0; !stopped; i++) {
      const s = phase === 'run' ? stats : phase === 'warmup' ? warm : tail;
      const started = performance.now();
      try {
        const r = fromBinary(PredictResponseSchema, await caller.call(PREDICT, framed[order[i % order.length]!]!));
        s.latencies.push(performance.now() - started);
        s.calls++;
        s.versions.set(r.modelVersion, (s.versions.get(r.modelVersion) ?? 0) + 1);
        if (phase === 'run' && !firstAnswer.has(r.modelVersion)) firstAnswer.set(r.modelVersion, elapsed());
      } catch (e) {
        s.calls++;
        s.failures++;
        if (s.errors.length < 10) s.errors.push(String(e));
      }
    }
  };
  const sampler = setInterval(() => {
    void rssMiB(child.pid!).then((mb) => rss.push([round(Number.isNaN(t0) ? -1 : elapsed(), 2), round(mb, 1)]));
  }, rssEveryMs);

  /** VmRSS shortly after a full collection in the gateway, the callers still calling. */
  const settledRss = async (): Promise<number> => {
    child.kill('SIGUSR2');
    await sleep(300);
    return rssMiB(child.pid!);
  };
  const loops = Promise.all(Array.from({ length: callers }, (_, c) => loop(c)));
  // The warm-up rolls out one version too, half-way: what a first rollout costs once (code compiled on the first
  // load, two models alive during the swap, the heap sized for it) is then in the baseline, not in the growth.
  let next = 2;
  const warmStart = performance.now();
  if (warmup >= 2) {
    await sleep((warmup / 2) * 1000);
    await publish(next, false);
    rollout.push({
      version: next,
      corrupt: false,
      published_at_second: -round((warmup * 1000 - (performance.now() - warmStart)) / 1000, 2),
      in_warmup: true,
    });
    log(`published version ${next} during the warm-up`);
    next++;
  }
  await sleep(Math.max(0, warmup * 1000 - (performance.now() - warmStart)));
  const rawBaseline = await rssMiB(child.pid!);
  const baseline = await settledRss();
  const heapBaseline = await heapMiB(metricsUrl);
  phase = 'run';
  t0 = performance.now();
  rss.push([0, round(rawBaseline, 1)]);
  const publisher = (async () => {
    for (let k = 0; k < rollouts; k++) {
      const at = (k + 1) * every;
      while (elapsed() < at) await sleep(50);
      const corrupt = k === corruptIndex;
      const v = next++;
      await publish(v, corrupt);
      rollout.push({ version: v, corrupt, published_at_second: round(elapsed(), 2), in_warmup: false });
      log(`published version ${v}${corrupt ? ' (corrupt)' : ''} at ${elapsed().toFixed(1)} s`);
    }
  })();
  await sleep(seconds * 1000);
  phase = 'tail';
  const wall = elapsed();
  const rawEnd = await rssMiB(child.pid!);
  rss.push([round(wall, 2), round(rawEnd, 1)]);
  clearInterval(sampler);
  const end = await settledRss();
  const heapEnd = await heapMiB(metricsUrl);
  stopped = true;
  await Promise.all([loops, publisher]);

  const listed = (await client.listModels({})).models.filter((m) => m.name === modelName);
  const sorted = Float64Array.from(stats.latencies).sort();
  const pct = (q: number) => round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN, 2);
  const during = rss.filter(([t]) => t >= 0 && t <= wall).map(([, mb]) => mb);
  const growth = end / baseline - 1;
  const versions = [
    { version: 1, corrupt: false, published_at_second: null as number | null, in_warmup: true },
    ...rollout,
  ].map((r) => {
    const entry = listed.find((m) => m.version === String(r.version));
    const first = firstAnswer.get(String(r.version));
    return {
      ...r,
      first_answer_at_second: first === undefined ? null : round(first, 2),
      answers: stats.versions.get(String(r.version)) ?? 0,
      state: entry === undefined ? null : VersionState[entry.state],
      ...(entry?.error ? { error: entry.error } : {}),
    };
  });
  const corruptEntry = versions.find((v) => v.corrupt);
  const checks = {
    zero_failed_requests: stats.failures + warm.failures + tail.failures === 0,
    rss_growth_within_limit: growth <= maxRssGrowth,
    corrupt_version_failed_and_never_answered:
      corruptEntry === undefined || (corruptEntry.state === 'FAILED' && corruptEntry.answers === 0),
    every_good_version_answered: versions.filter((v) => !v.corrupt && !v.in_warmup).every((v) => v.answers > 0),
  };
  ok = Object.values(checks).every(Boolean);
  report = {
    bench: 'soak',
    seed,
    machine: {
      cpus: cpus().length,
      model: cpus()[0]?.model,
      node: process.version,
      load_average: [round(loadAtStart, 2), round(loadavg()[0]!, 2)],
    },
    settings: {
      seconds,
      callers,
      rollout_every_seconds: every,
      warmup_seconds: warmup,
      poll_ms: pollMs,
      backend,
      gateway: passOn,
    },
    model: {
      name: modelName,
      source: sourceDir,
      weights_bytes: weightsBytes,
      ...(trained === undefined ? {} : { trained_here: trained }),
    },
    texts: { count: texts.length, from: spec.kind === 'sst2' ? join(sst2, 'dev.tsv') : 'builtin dev split' },
    requests: {
      calls: stats.calls,
      failed: stats.failures,
      calls_per_second: round(stats.calls / wall),
      warmup_calls: warm.calls,
      warmup_failed: warm.failures,
      after_window_calls: tail.calls,
      after_window_failed: tail.failures,
      errors: [...warm.errors, ...stats.errors, ...tail.errors].slice(0, 10),
    },
    latency_ms: { p50: pct(0.5), p90: pct(0.9), p99: pct(0.99), max: round(sorted.at(-1) ?? NaN, 2) },
    versions,
    corrupt: corruptEntry === undefined ? null : { version: corruptEntry.version, flipped_byte: flipAt },
    rss_mib: {
      measured: 'VmRSS 0.3 s after a full collection in the gateway (--expose-gc, SIGUSR2), under load',
      after_warmup: round(baseline, 1),
      end: round(end, 1),
      max: round(Math.max(...during), 1),
      growth: round(growth, 4),
      limit: maxRssGrowth,
      gateway_heap_mib: { after_warmup: heapBaseline, end: heapEnd },
      raw: {
        after_warmup: round(rawBaseline, 1),
        end: round(rawEnd, 1),
        growth: round(rawEnd / rawBaseline - 1, 4),
      },
      samples: rss,
    },
    checks,
    ok,
  };
} finally {
  client.close();
  caller.close();
  stopChild();
  await new Promise((r) => (child.exitCode === null ? child.once('exit', r) : r(undefined)));
  await rm(scratch, { recursive: true, force: true });
  if (trainedDir !== undefined) await rm(trainedDir, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify(report, null, 2) + '\n');
process.exitCode = ok ? 0 : 1;
