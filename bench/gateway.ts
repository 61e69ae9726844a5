/**
 * Gateway load generator: gRPC over loopback to the gateway running as its own process (services/gateway, as
 * deployed), on a scratch copy of a model repository. Phases (each after an untimed warm-up):
 *   bow-single  single-text Predict calls from 32 concurrent callers to the bag-of-words model: requests/s, latency
 *   bow-batch   Predict calls of many texts each (the batch text API): texts/s
 *   cnn-single  single-text Predict calls from 32 concurrent callers to the cnn model
 *   rollout     64 concurrent callers for 30 s; a new version of the bow model appears in the middle: failed calls
 * Texts are SST-2 dev sentences (raw text as a user would send it is tokenized by the gateway). Reports the CPU the
 * load generator itself used (this process) and the gateway's (its process), in cores. One JSON document on stdout.
 *
 *   pnpm bench:gateway --models DIR [--bow NAME] [--cnn NAME] [--phases bow-single,bow-batch,cnn-single,rollout]
 *       [--seconds 10] [--rollout-seconds 30] [--batch-texts 1000] [--batch-callers 4] [--backend auto]
 *       [--texts ../shared/data/sst2/dev.tsv] [--profile-gateway DIR (a V8 CPU profile of the gateway)]
 *       [--client h2|grpc-js] [--tls (the gateway serves mutual TLS with certificates made here; its phases' clients
 *       use them; the floor phases stay plaintext)] [--gateway-workers N (CH8_GATEWAY_WORKERS: serving processes on
 *       the one port)] [--connections N (HTTP/2 connections of the h2 client, calls taking them in turn)]
 *       [--gateway-node-options "FLAGS" (Node and V8 flags for the gateway's process, space separated)]
 * Clients: `h2` (default) is bench/src/h2-grpc.ts, gRPC over node:http2 with each request encoded once up front
 * and each answer decoded; `grpc-js` is the project's @grpc/grpc-js client (service-kit), which costs the load
 * generator about twice the CPU per call. Both share the machine's cores with the server, so the lighter one
 * leaves more to the gateway. A gateway of several processes gets each connection on one of them, so the h2 client
 * opens `--connections` connections (default: as many as the gateway has workers); the grpc-js client
 * has one. The server CPU is that of the gateway's whole process tree.
 * Garbage collection: `pnpm bench:gateway` runs this process with a young generation of 8 MB semi-spaces (Node's
 * default is 16). Its in-flight calls survive scavenges, so a scavenge's pause grows with the calls made since the
 * last one, and every call in flight waits through it; the smaller young generation shortens those pauses (p99 of
 * bow-single after the floor phases 19.4-19.5 ms against 21.6-26.2 ms, alternated; services/gateway/README.md).
 * Each phase reports this process's pauses (`load_generator_gc`) and the gateway's (`gateway_gc`, from its
 * metrics); the gateway runs with Node's defaults. A phase run alone on a fresh gateway measures mostly its first
 * seconds, faster than its steady state (README, "Garbage collection under load").
 * The echo-floor phase (a do-nothing server on the same service kit, same client) and http2-floor (a bare node:http2
 * server answering gRPC frames, no grpc-js) show what the machine allows.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { PerformanceObserver } from 'node:perf_hooks';
import { cp, mkdtemp, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { freePort } from '@ch8/cli/launch';
import { GatewayService, PredictRequestSchema, PredictResponseSchema } from '@ch8/contracts/gateway';
import { EchoRequestSchema, EchoResponseSchema, EchoService } from '@ch8/contracts/testing';
import { createClient } from '@ch8/service-kit/client';
import { checkHealth } from '@ch8/service-kit/probes';
import { makeTestCertificates } from '@ch8/service-kit/testing';
import { loadTls, type Tls } from '@ch8/service-kit/tls';
import { frame, H2UnaryCaller } from './src/h2-grpc.ts';

const here = fileURLToPath(new URL('.', import.meta.url));
const root = resolve(here, '..');
const argv = process.argv.slice(2);
function flag(name: string): string | undefined {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
}
const MODELS = flag('models');
if (MODELS === undefined) {
  process.stderr.write('usage: pnpm bench:gateway --models DIR [--bow NAME] [--cnn NAME] [--phases ...]\n');
  process.exit(2);
}
const BOW = flag('bow') ?? 'bow-finetune';
const CNN = flag('cnn') ?? 'cnn';
const PHASES = (flag('phases') ?? 'http2-floor,echo-floor,bow-single,bow-batch,cnn-single,rollout').split(',');
const SECONDS = Number(flag('seconds') ?? 10);
const ROLLOUT_SECONDS = Number(flag('rollout-seconds') ?? 30);
const WARMUP_SECONDS = 2;
const BATCH_TEXTS = Number(flag('batch-texts') ?? 1000);
const BATCH_CALLERS = Number(flag('batch-callers') ?? 4);
const BACKEND = flag('backend') ?? 'auto';
const CLIENT = flag('client') ?? 'h2';
if (CLIENT !== 'h2' && CLIENT !== 'grpc-js') {
  process.stderr.write(`--client must be h2 or grpc-js, got ${CLIENT}\n`);
  process.exit(2);
}
const WORKERS = Number(flag('gateway-workers') ?? process.env['CH8_GATEWAY_WORKERS'] ?? 1);
const CONNECTIONS = Number(flag('connections') ?? WORKERS);
if (!Number.isInteger(WORKERS) || WORKERS < 1 || !Number.isInteger(CONNECTIONS) || CONNECTIONS < 1) {
  process.stderr.write('--gateway-workers and --connections must be positive integers\n');
  process.exit(2);
}
const TEXTS_FILE = resolve(flag('texts') ?? join(root, '..', 'shared', 'data', 'sst2', 'dev.tsv'));
const TLS = argv.includes('--tls');

const loadAtStart = loadavg()[0]!;
const log = (s: string) => void process.stderr.write(`[bench:gateway] ${s}\n`);
const round = (x: number, digits = 1): number => Math.round(x * 10 ** digits) / 10 ** digits;

/** CPU seconds (user + system) of a process and all its descendants (a gateway's workers), from /proc (Linux), or NaN. */
async function processCpuSeconds(pid: number): Promise<number> {
  const stats = new Map<number, { ppid: number; cpu: number }>();
  for (const entry of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // ppid, then utime and stime in clock ticks (USER_HZ = 100)
      stats.set(Number(entry), { ppid: Number(fields[1]), cpu: (Number(fields[11]) + Number(fields[12])) / 100 });
    } catch {
      // the process ended meanwhile
    }
  }
  if (!stats.has(pid)) return NaN;
  let sum = 0;
  const tree = new Set([pid]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const [p, s] of stats) {
      if (!tree.has(p) && tree.has(s.ppid)) {
        tree.add(p);
        grew = true;
      }
    }
  }
  for (const p of tree) sum += stats.get(p)!.cpu;
  return sum;
}

const selfCpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/** The gateway's metrics a phase reports, as differences between its start and its end. */
const PHASE_METRICS = [
  'ch8_gateway_batch_size_count',
  'ch8_gateway_batch_size_sum',
  'ch8_gateway_nodejs_gc_duration_seconds_sum',
  'ch8_gateway_nodejs_gc_duration_seconds_count',
] as const;
type PhaseMetric = (typeof PHASE_METRICS)[number];

/** One scrape of the Prometheus text: per name, the sum of every sample of it (all label sets). */
async function scrapeSums(url: string): Promise<Record<PhaseMetric, number>> {
  const text = await (await fetch(url)).text();
  const sums = Object.fromEntries(PHASE_METRICS.map((n) => [n, 0])) as Record<PhaseMetric, number>;
  for (const line of text.split('\n')) {
    for (const name of PHASE_METRICS) {
      if (line.startsWith(name + '{') || line.startsWith(name + ' '))
        sums[name] += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return sums;
}

// --- Texts and a scratch repository ------------------------------------------------------------------------------
const texts = (await readFile(TEXTS_FILE, 'utf8'))
  .split('\n')
  .slice(1)
  .map((l) => l.split('\t')[0]!.trim())
  .filter((t) => t !== '');
log(`${texts.length} texts from ${TEXTS_FILE}`);

const scratch = await mkdtemp(join(tmpdir(), 'ch8-bench-gateway-'));
// --tls: a CA and certificates (openssl), the gateway serving mutual TLS, every gateway client presenting one.
let tls: Tls | undefined;
const tlsEnv: Record<string, string> = {};
if (TLS) {
  const certDir = await mkdtemp(join(tmpdir(), 'ch8-bench-gateway-tls-'));
  const made = makeTestCertificates(certDir);
  if ('skip' in made) throw new Error(made.skip);
  tls = loadTls({ ca: made.ca, cert: made.clientCert, key: made.clientKey });
  Object.assign(tlsEnv, {
    CH8_TLS_CA: made.ca,
    CH8_TLS_CERT: made.serverCert,
    CH8_TLS_KEY: made.serverKey,
    CH8_TLS_CLIENT_AUTH: 'require',
  });
}
async function newestVersion(dir: string): Promise<string> {
  const vs = (await readdir(dir)).filter((e) => /^[1-9]\d*$/.test(e)).map(Number);
  if (vs.length === 0) throw new Error(`no version under ${dir}`);
  return String(Math.max(...vs));
}
/** Copies version `from` of `name` into the scratch repository as version `to`, atomically (temp dir + rename). */
async function publish(name: string, fromDir: string, to: number): Promise<void> {
  const tmp = join(scratch, name, `.tmp-bench-${to}`);
  await cp(fromDir, tmp, { recursive: true });
  const manifestFile = join(tmp, 'manifest.json');
  const manifest = JSON.parse(await readFile(manifestFile, 'utf8'));
  manifest.version = to;
  await writeFile(manifestFile, JSON.stringify(manifest));
  await rename(tmp, join(scratch, name, String(to)));
}
const sources: Record<string, string> = {};
for (const name of new Set(PHASES.some((p) => p.startsWith('cnn')) ? [BOW, CNN] : [BOW])) {
  const dir = join(resolve(MODELS), name);
  sources[name] = join(dir, await newestVersion(dir));
  await publish(name, sources[name], 1);
}

// --- The gateway, in its own process -----------------------------------------------------------------------------
const address = `127.0.0.1:${await freePort()}`;
const metricsAddress = `127.0.0.1:${await freePort()}`;
const gatewayEnv = {
  CH8_MODEL_REPOSITORY: scratch,
  CH8_GATEWAY_ADDR: address,
  CH8_GATEWAY_METRICS_ADDR: metricsAddress,
  CH8_GATEWAY_POLL_MS: '1000',
  CH8_BACKEND: BACKEND,
  CH8_LOG_LEVEL: 'warn',
  CH8_GATEWAY_WORKERS: String(WORKERS),
};
const passOn = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => k.startsWith('CH8_GATEWAY_MAX') || k === 'CH8_GATEWAY_DRAIN_MS'),
);
const PROFILE = flag('profile-gateway');
const GATEWAY_NODE_OPTIONS = (flag('gateway-node-options') ?? '').split(' ').filter((a) => a !== '');
const child: ChildProcess = spawn(
  process.execPath,
  [
    ...(PROFILE !== undefined ? ['--cpu-prof', `--cpu-prof-dir=${resolve(PROFILE)}`] : []),
    ...GATEWAY_NODE_OPTIONS,
    '--import',
    'tsx',
    join(root, 'services', 'gateway', 'src', 'main.ts'),
  ],
  { cwd: root, env: { ...process.env, ...gatewayEnv, ...passOn, ...tlsEnv }, stdio: ['ignore', 'ignore', 'inherit'] },
);
const stopChild = () => {
  if (child.exitCode === null) child.kill('SIGTERM');
};
process.on('exit', stopChild);
const metricsUrl = `http://${metricsAddress}/metrics`;

interface PhaseResult {
  [key: string]: unknown;
}

async function waitServing(): Promise<void> {
  const end = Date.now() + 120_000;
  while ((await checkHealth(address, 'ch8.gateway.v1.GatewayService', 2000, { tls })) !== 'SERVING') {
    if (child.exitCode !== null) throw new Error(`the gateway exited with ${child.exitCode}`);
    if (Date.now() > end) throw new Error('the gateway did not become SERVING within 120 s');
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * `callers` loops calling `call` for `seconds` (after an untimed warm-up): calls, items, failures, latency
 * percentiles, the CPU this process and the gateway used.
 */
async function load(
  pid: number,
  callers: number,
  seconds: number,
  call: (i: number) => Promise<{ items: number; version?: string }>,
  during?: (elapsed: () => number) => Promise<void>,
): Promise<PhaseResult> {
  const loop = async (until: number, record: boolean, stats: Stats, caller: number) => {
    let i = caller;
    while (performance.now() < until) {
      const t0 = performance.now();
      try {
        const r = await call(i);
        if (record) {
          stats.latencies.push(performance.now() - t0);
          stats.items += r.items;
          if (r.version !== undefined) stats.versions.set(r.version, (stats.versions.get(r.version) ?? 0) + 1);
        }
      } catch (e) {
        if (record) {
          stats.failures++;
          if (stats.errors.length < 10) stats.errors.push(String(e));
        }
      }
      i += callers;
    }
  };
  interface Stats {
    latencies: number[];
    items: number;
    failures: number;
    errors: string[];
    versions: Map<string, number>;
  }
  const fresh = (): Stats => ({ latencies: [], items: 0, failures: 0, errors: [], versions: new Map() });
  const warm = fresh();
  const warmUntil = performance.now() + WARMUP_SECONDS * 1000;
  await Promise.all(Array.from({ length: callers }, (_, c) => loop(warmUntil, false, warm, c)));

  const stats = fresh();
  const metrics0 = await scrapeSums(metricsUrl);
  // This process's own collector pauses: every call in flight during one is measured that much slower.
  const ownGc = { pauses: 0, totalMs: 0, maxMs: 0 };
  const gcObserver = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      ownGc.pauses++;
      ownGc.totalMs += e.duration;
      ownGc.maxMs = Math.max(ownGc.maxMs, e.duration);
    }
  });
  gcObserver.observe({ entryTypes: ['gc'] });
  const cpu0 = selfCpu();
  const gw0 = await processCpuSeconds(pid);
  const t0 = performance.now();
  const until = t0 + seconds * 1000;
  await Promise.all([
    ...Array.from({ length: callers }, (_, c) => loop(until, true, stats, c)),
    during?.(() => (performance.now() - t0) / 1000),
  ]);
  const wall = (performance.now() - t0) / 1000;
  gcObserver.disconnect();
  const cpu = selfCpu() - cpu0;
  const gwCpu = (await processCpuSeconds(pid)) - gw0;
  const metrics1 = await scrapeSums(metricsUrl);
  const delta = (name: PhaseMetric) => metrics1[name] - metrics0[name];
  const batches = delta('ch8_gateway_batch_size_count');
  const batchTexts = delta('ch8_gateway_batch_size_sum');
  const gwGcSeconds = delta('ch8_gateway_nodejs_gc_duration_seconds_sum');
  const gwGcCount = delta('ch8_gateway_nodejs_gc_duration_seconds_count');
  const sorted = Float64Array.from(stats.latencies).sort();
  return {
    callers,
    seconds: round(wall, 2),
    calls: stats.latencies.length,
    calls_per_second: round(stats.latencies.length / wall),
    texts: stats.items,
    texts_per_second: round(stats.items / wall),
    failed_calls: stats.failures,
    errors: stats.errors,
    latency_ms: {
      p50: round(percentile(sorted, 0.5), 2),
      p90: round(percentile(sorted, 0.9), 2),
      p99: round(percentile(sorted, 0.99), 2),
      max: round(sorted.at(-1) ?? NaN, 2),
    },
    mean_model_batch: round(batchTexts / Math.max(1, batches), 1),
    load_generator_cpu_cores: round(cpu / wall, 2),
    server_cpu_cores: round(gwCpu / wall, 2),
    server_cpu_us_per_text: round((gwCpu * 1e6) / Math.max(1, stats.items)),
    load_generator_cpu_us_per_call: round((cpu * 1e6) / Math.max(1, stats.latencies.length)),
    load_generator_gc: { pauses: ownGc.pauses, total_ms: round(ownGc.totalMs), max_ms: round(ownGc.maxMs) },
    // The gateway's collector (its metrics; the floor phases' servers are other processes: zero there).
    gateway_gc: { pauses: gwGcCount, total_ms: round(gwGcSeconds * 1000) },
    versions: Object.fromEntries(stats.versions),
  };
}

/** The echo phase: the service kit's server with EchoService in its own process, called as the gateway is. */
async function echoFloor(): Promise<PhaseResult> {
  const script = [
    "import { EchoService } from '@ch8/contracts/testing';",
    "import { createServer } from '@ch8/service-kit/server';",
    "import { silentLogger } from '@ch8/service-kit/logger';",
    "const s = createServer({ name: 'echo', logger: silentLogger }).add(EchoService, {",
    '  echo: async (r) => ({ text: r.text }), async *count() {}, collect: async () => ({ count: 0 }), async *chat() {},',
    '});',
    "const port = await s.listen('127.0.0.1:0'); s.ready(); process.stdout.write(port + '\\n');",
  ].join('\n');
  const echo = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: here,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    const port = await new Promise<string>((ok, fail) => {
      echo.stdout!.once('data', (d: Buffer) => ok(String(d).trim()));
      echo.once('exit', (code) => fail(new Error(`the echo server exited with ${code}`)));
    });
    if (CLIENT === 'h2') {
      const caller = new H2UnaryCaller(`127.0.0.1:${port}`, undefined, CONNECTIONS);
      const framed = texts.map((text) => frame(toBinary(EchoRequestSchema, create(EchoRequestSchema, { text }))));
      const path = `/${EchoService.typeName}/${EchoService.method.echo.name}`;
      try {
        return await load(echo.pid!, 32, SECONDS, async (i) => {
          fromBinary(EchoResponseSchema, await caller.call(path, framed[i % framed.length]!));
          return { items: 1 };
        });
      } finally {
        caller.close();
      }
    }
    const echoClient = createClient(EchoService, `127.0.0.1:${port}`);
    try {
      return await load(echo.pid!, 32, SECONDS, async (i) => {
        await echoClient.echo({ text: texts[i % texts.length]! }, { timeoutMs: 10_000 });
        return { items: 1 };
      });
    } finally {
      echoClient.close();
    }
  } finally {
    echo.kill('SIGTERM');
  }
}

/**
 * The HTTP/2 floor: a bare node:http2 server in its own process that answers every POST with one empty gRPC
 * message and grpc-status 0 (no gRPC library, no protobuf), called by the lean client. No gRPC server in Node
 * can answer faster than this on the same machine.
 */
async function http2Floor(): Promise<PhaseResult> {
  const script = [
    "import { createServer } from 'node:http2';",
    'const empty = Buffer.from([0, 0, 0, 0, 0]);',
    'const s = createServer();',
    "s.on('stream', (stream) => {",
    "  stream.on('data', () => {});",
    "  stream.on('end', () => {",
    "    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });",
    "    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));",
    '    stream.end(empty);',
    '  });',
    '});',
    "s.listen(0, '127.0.0.1', () => process.stdout.write(s.address().port + '\\n'));",
  ].join('\n');
  const srv = spawn(process.execPath, ['--input-type=module', '-e', script], {
    cwd: here,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    const port = await new Promise<string>((ok, fail) => {
      srv.stdout!.once('data', (d: Buffer) => ok(String(d).trim()));
      srv.once('exit', (code) => fail(new Error(`the http2 server exited with ${code}`)));
    });
    const caller = new H2UnaryCaller(`127.0.0.1:${port}`, undefined, CONNECTIONS);
    const framed = texts.map((text) => frame(toBinary(EchoRequestSchema, create(EchoRequestSchema, { text }))));
    try {
      return await load(srv.pid!, 32, SECONDS, async (i) => {
        await caller.call('/floor/Call', framed[i % framed.length]!);
        return { items: 1 };
      });
    } finally {
      caller.close();
    }
  } finally {
    srv.kill('SIGTERM');
  }
}

const results: Record<string, PhaseResult> = {};
const client = createClient(GatewayService, address, { tls });
const caller = new H2UnaryCaller(address, tls, CONNECTIONS);
const PREDICT = `/${GatewayService.typeName}/${GatewayService.method.predict.name}`;
/** One Predict call of `batch` texts through the chosen client: texts answered and the version that answered. */
async function predict(model: string, batch: string[], timeoutMs: number) {
  if (CLIENT === 'grpc-js') {
    const r = await client.predict({ modelName: model, texts: batch }, { timeoutMs });
    return { items: r.predictions.length, version: r.modelVersion };
  }
  const framed = frame(
    toBinary(PredictRequestSchema, create(PredictRequestSchema, { modelName: model, texts: batch })),
  );
  return predictFramed(framed);
}
async function predictFramed(framed: Buffer) {
  const r = fromBinary(PredictResponseSchema, await caller.call(PREDICT, framed));
  return { items: r.predictions.length, version: r.modelVersion };
}
try {
  await waitServing();
  log(`gateway SERVING at ${address} (models ${Object.keys(sources).join(', ')}), client ${CLIENT}`);
  const singles = new Map<string, Buffer[]>();
  const one = (model: string) => {
    if (CLIENT === 'grpc-js') return (i: number) => predict(model, [texts[i % texts.length]!], 10_000);
    // Requests encoded once, before the clock starts, as a load generator replaying a log would.
    if (!singles.has(model)) {
      const enc = (t: string) => create(PredictRequestSchema, { modelName: model, texts: [t] });
      singles.set(
        model,
        texts.map((t) => frame(toBinary(PredictRequestSchema, enc(t)))),
      );
    }
    const framed = singles.get(model)!;
    return (i: number) => predictFramed(framed[i % framed.length]!);
  };
  for (const phase of PHASES) {
    log(`phase ${phase} ...`);
    switch (phase) {
      case 'echo-floor':
        results[phase] = await echoFloor();
        break;
      case 'http2-floor':
        results[phase] = await http2Floor();
        break;
      case 'bow-single':
        results[phase] = { model: BOW, ...(await load(child.pid!, 32, SECONDS, one(BOW))) };
        break;
      case 'cnn-single':
        results[phase] = { model: CNN, ...(await load(child.pid!, 32, SECONDS, one(CNN))) };
        break;
      case 'bow-batch':
        results[phase] = {
          model: BOW,
          texts_per_call: BATCH_TEXTS,
          ...(await load(child.pid!, BATCH_CALLERS, SECONDS, async (i) => {
            const start = (i * BATCH_TEXTS) % texts.length;
            const batch = Array.from({ length: BATCH_TEXTS }, (_, k) => texts[(start + k) % texts.length]!);
            return predict(BOW, batch, 30_000);
          })),
        };
        break;
      case 'rollout': {
        let rolledAt = NaN;
        const current = Number(await newestVersion(join(scratch, BOW)));
        results[phase] = {
          model: BOW,
          ...(await load(child.pid!, 64, ROLLOUT_SECONDS, one(BOW), async (elapsed) => {
            while (elapsed() < ROLLOUT_SECONDS / 2) await new Promise((r) => setTimeout(r, 100));
            await publish(BOW, sources[BOW]!, current + 1);
            rolledAt = elapsed();
            log(`published ${BOW} version ${current + 1} at ${rolledAt.toFixed(1)} s`);
          })),
          new_version: current + 1,
          published_at_second: round(rolledAt, 1),
        };
        break;
      }
      default:
        throw new Error(`unknown phase ${phase}`);
    }
    log(`${phase}: ${JSON.stringify(results[phase])}`);
  }
} finally {
  client.close();
  caller.close();
  stopChild();
  await new Promise((r) => (child.exitCode === null ? child.once('exit', r) : r(undefined)));
  await rm(scratch, { recursive: true, force: true });
}

process.stdout.write(
  JSON.stringify(
    {
      bench: 'gateway',
      machine: {
        cpus: cpus().length,
        model: cpus()[0]?.model,
        node: process.version,
        // Other work on the machine takes CPU from both processes: the 1-minute load average at start and end.
        load_average: [round(loadAtStart, 2), round(loadavg()[0]!, 2)],
      },
      gateway: { backend: BACKEND, workers: WORKERS, settings: passOn, texts_file: TEXTS_FILE },
      client: CLIENT,
      // How this process (the load generator) was started: the package script gives it a smaller young generation.
      load_generator_node_options: process.execArgv.filter((a) => a.startsWith('--max-semi-space-size')),
      gateway_node_options: GATEWAY_NODE_OPTIONS,
      connections: CLIENT === 'h2' ? CONNECTIONS : 1,
      tls: TLS ? 'mutual' : 'off',
      phases: results,
    },
    null,
    2,
  ) + '\n',
);
