/**
 * Memory under a flood of large requests: the gateway as its own process (services/gateway/src/main.ts, as
 * deployed), many callers each sending Predict requests just under CH8_GATEWAY_MAX_MESSAGE_BYTES, concurrently,
 * for a while. The gateway's resident memory (VmRSS, sampled every 50 ms) before, at its peak and after, the answers
 * by status, and the same flood against a gateway without a call limit (CH8_GATEWAY_MAX_CONCURRENT_CALLS=0) for
 * comparison. Calls beyond the limit are refused on their headers, before their request is read, so memory held by
 * requests stays under about limit x message size however many callers there are. One JSON document on stdout.
 *
 * The callers are @grpc/grpc-js clients (the service kit's), one per connection: a gRPC client stops sending a
 * request once its call has a status. (bench/src/h2-grpc.ts does not: it keeps writing a refused request, and Node's
 * HTTP/2 server closes such a connection with ENHANCE_YOUR_CALM after about a thousand frames for closed streams.)
 *
 *   pnpm bench:gateway-flood [--callers 192] [--seconds 15] [--max-calls 128] [--max-bytes 2097152]
 *       [--models DIR --model NAME (a model to answer with; default none: every admitted call is NOT_FOUND after
 *       its request is read)] [--connections 8] [--no-compare]
 */
import { spawn } from 'node:child_process';
import { cp, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '@ch8/cli/launch';
import { GatewayService } from '@ch8/contracts/gateway';
import { createClient } from '@ch8/service-kit/client';
import { checkHealth } from '@ch8/service-kit/probes';
import { Code, GrpcError } from '@ch8/service-kit/status';
import { readArgs } from './src/args.ts';

const root = resolve(fileURLToPath(new URL('.', import.meta.url)), '..');
let callers = 192;
let seconds = 15;
let maxCalls = 128;
let maxBytes = 2 * 1024 * 1024;
let connections = 8;
let models: string | undefined;
let model = 'flood';
let compare = true;
readArgs(process.argv.slice(2), (flag, value) => {
  if (flag === '--callers') callers = Number(value());
  else if (flag === '--seconds') seconds = Number(value());
  else if (flag === '--max-calls') maxCalls = Number(value());
  else if (flag === '--max-bytes') maxBytes = Number(value());
  else if (flag === '--connections') connections = Number(value());
  else if (flag === '--models') models = resolve(value());
  else if (flag === '--model') model = value();
  else if (flag === '--no-compare') compare = false;
  else return false;
  return true;
});
const log = (s: string) => void process.stderr.write(`[bench:gateway-flood] ${s}\n`);
const mib = (b: number) => Math.round((b / 2 ** 20) * 10) / 10;
const loadAtStart = loadavg()[0]!;

async function rss(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

// A request just under the limit: texts of 16,000 bytes (under CH8_GATEWAY_MAX_TEXT_BYTES), as many as fit.
const text = (i: number) => `${i} ${'a gorgeous , witty film '.repeat(660)}`.slice(0, 16_000);
const texts: string[] = [];
for (let i = 0, size = 64; size + 16_010 < maxBytes * 0.95; i++, size += 16_010) texts.push(text(i));
const requestBytes = texts.reduce((n, t) => n + t.length + 3, 8 + model.length);

async function flood(limit: number) {
  const scratch = await mkdtemp(join(tmpdir(), 'ch8-bench-flood-'));
  if (models !== undefined) {
    const dir = join(models, model);
    const versions = (await readdir(dir)).filter((v) => /^\d+$/.test(v)).map(Number);
    await cp(join(dir, String(Math.max(...versions))), join(scratch, model, '1'), { recursive: true });
  }
  const address = `127.0.0.1:${await freePort()}`;
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'services', 'gateway', 'src', 'main.ts')], {
    cwd: root,
    env: {
      ...process.env,
      CH8_MODEL_REPOSITORY: scratch,
      CH8_GATEWAY_ADDR: address,
      CH8_GATEWAY_METRICS_ADDR: 'off',
      CH8_GATEWAY_MAX_CONCURRENT_CALLS: String(limit),
      CH8_GATEWAY_MAX_MESSAGE_BYTES: String(maxBytes),
      CH8_LOG_LEVEL: 'error',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  try {
    for (let i = 0; (await checkHealth(address, '', 1000)) !== 'SERVING'; i++) {
      if (i > 600 || child.exitCode !== null) throw new Error('the gateway did not start');
      await new Promise((r) => setTimeout(r, 200));
    }
    if (models !== undefined)
      while ((await checkHealth(address, 'inference.GRPCInferenceService', 1000)) !== 'SERVING')
        await new Promise((r) => setTimeout(r, 200));
    const pid = child.pid!;
    const before = await rss(pid);
    let peak = before;
    let running = true;
    const sampler = (async () => {
      while (running) {
        peak = Math.max(peak, await rss(pid).catch(() => 0));
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    // One connection each: grpc-js shares a connection between clients of the same target unless told not to.
    const pool = Array.from({ length: connections }, () =>
      createClient(GatewayService, address, { channelOptions: { 'grpc.use_local_subchannel_pool': 1 } }),
    );
    const codes: Record<string, number> = {};
    const details: Record<string, string> = {};
    const until = performance.now() + seconds * 1000;
    const t0 = performance.now();
    let sent = 0;
    await Promise.all(
      Array.from({ length: callers }, async (_, c) => {
        while (performance.now() < until) {
          let code = 'OK';
          sent += requestBytes;
          try {
            await pool[c % connections]!.predict({ modelName: model, texts }, { timeoutMs: 120_000 });
          } catch (e) {
            code = e instanceof GrpcError ? (Code[e.code] ?? String(e.code)) : 'other';
            details[code] ??= e instanceof GrpcError ? e.details : String(e);
          }
          codes[code] = (codes[code] ?? 0) + 1;
        }
      }),
    );
    const wall = (performance.now() - t0) / 1000;
    running = false;
    await sampler;
    for (const p of pool) p.close();
    await new Promise((r) => setTimeout(r, 1000));
    const after = await rss(pid);
    return {
      max_concurrent_calls: limit,
      seconds: Math.round(wall * 10) / 10,
      calls: Object.values(codes).reduce((a, b) => a + b, 0),
      sent_mib: mib(sent),
      answers_by_grpc_status: codes,
      details,
      rss_mib: { before: mib(before), peak: mib(peak), after: mib(after), peak_growth: mib(peak - before) },
      bound_mib: limit > 0 ? mib(limit * requestBytes) : null,
    };
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => (child.exitCode === null ? child.once('exit', r) : r(undefined)));
    await rm(scratch, { recursive: true, force: true });
  }
}

log(`${callers} callers on ${connections} connections, ${texts.length} texts (${mib(requestBytes)} MiB) a request`);
const limited = await flood(maxCalls);
log(`limit ${maxCalls}: ${JSON.stringify(limited)}`);
const unlimited = compare ? await flood(0) : null;
if (unlimited) log(`no limit: ${JSON.stringify(unlimited)}`);
process.stdout.write(
  JSON.stringify(
    {
      bench: 'gateway-flood',
      machine: { cpus: cpus().length, node: process.version, load_average: [loadAtStart, loadavg()[0]] },
      request: { texts: texts.length, bytes: requestBytes, model: models === undefined ? null : model },
      callers,
      connections,
      limited,
      unlimited,
    },
    null,
    2,
  ) + '\n',
);
