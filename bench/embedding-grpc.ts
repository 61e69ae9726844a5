/**
 * Embedding service matrix transfer: a pruned 15,000 x 300 table fetched over gRPC on loopback with StreamMatrix and
 * decoded client side into one Float32Array (target: under 100 ms), at several chunk sizes, against baselines
 * measured in the same run:
 *  - in-process copy of the same matrix (the floor: what one memcpy of the bytes costs here);
 *  - reading the table from the service's disk cache file (what a client with the file at hand would do);
 *  - unary Lookup of every token with include_vectors (the matrix as repeated float fields, no streaming).
 * The table is seeded random vectors in a word2vec binary file of 30,000 words, pruned to 15,000 of them by LoadTable.
 * The server runs as its own process (as deployed; --in-process runs it in the bench's process instead).
 * Prints one JSON document.
 *
 *   pnpm bench:embedding-grpc [--rows 15000] [--dim 300] [--runs 9] [--in-process]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EmbeddingService } from '@ch8/contracts/embedding';
import { parseEmbeddingConfig } from '@ch8/embedding-service/config';
import { assembleMatrix } from '@ch8/embeddings/matrix-stream';
import { createEmbeddingServer } from '@ch8/embedding-service/server';
import { readTable } from '@ch8/embeddings/table-file';
import { seededFloats } from '@ch8/embeddings/write';
import { createClient } from '@ch8/service-kit/client';
import { silentLogger } from '@ch8/service-kit/logger';
import { freePort } from '@ch8/cli/launch';

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? fallback : Number(process.argv[i + 1]);
};
const ROWS = arg('rows', 15_000);
const DIM = arg('dim', 300);
const RUNS = arg('runs', 9);
const IN_PROCESS = process.argv.includes('--in-process');
const SOURCE_WORDS = 2 * ROWS;
const SEED = 70;
const TARGET_MS = 100;

const here = fileURLToPath(new URL('.', import.meta.url));
const ROOT = resolve(here, '..');
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const round = (x: number, digits = 2): number => Math.round(x * 10 ** digits) / 10 ** digits;
const log = (line: string) => void process.stderr.write(`${line}\n`);

async function time(runs: number, warmup: number, fn: () => Promise<unknown> | unknown) {
  for (let i = 0; i < warmup; i++) await fn();
  const xs: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    xs.push(performance.now() - t0);
  }
  return { median_ms: round(median(xs)), min_ms: round(Math.min(...xs)), max_ms: round(Math.max(...xs)), runs };
}

// --- The source: word2vec binary, SOURCE_WORDS seeded vectors; every second word is requested ------------------
const dir = await mkdtemp(join(tmpdir(), 'ch8-bench-embgrpc-'));
const next = seededFloats(SEED);
const words = Array.from({ length: SOURCE_WORDS }, (_, i) => `word${i}`);
const header = Buffer.from(`${SOURCE_WORDS} ${DIM}\n`);
const body = Buffer.alloc(SOURCE_WORDS * (4 * DIM + 2) + 16 * SOURCE_WORDS);
let at = 0;
const expected = new Float32Array((ROWS + 1) * DIM);
for (let i = 0; i < SOURCE_WORDS; i++) {
  at += body.write(`${words[i]} `, at, 'latin1');
  for (let k = 0; k < DIM; k++) {
    const v = Math.fround(next());
    body.writeFloatLE(v, at);
    at += 4;
    if (i % 2 === 0) expected[(i / 2 + 1) * DIM + k] = v;
  }
  body[at++] = 0x0a;
}
await writeFile(join(dir, 'vectors.bin'), Buffer.concat([header, body.subarray(0, at)]));
const requested = words.filter((_, i) => i % 2 === 0);

// --- The server ---------------------------------------------------------------------------------------------------
const env = { CH8_DATA_ROOTS: dir, CH8_CACHE_DIR: join(dir, 'cache'), CH8_LOG_LEVEL: 'warn' };
let child: ChildProcess | undefined;
let stopInProcess: (() => Promise<void>) | undefined;
let addr: string;
if (IN_PROCESS) {
  const { server, close } = createEmbeddingServer({ config: parseEmbeddingConfig(env), logger: silentLogger });
  addr = `127.0.0.1:${await server.listen('127.0.0.1:0')}`;
  server.ready();
  stopInProcess = async () => {
    await server.shutdown(1000);
    await close();
  };
} else {
  addr = `127.0.0.1:${await freePort()}`;
  child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'services/embedding/src/main.ts')], {
    cwd: ROOT,
    env: { ...process.env, ...env, CH8_EMBEDDING_ADDR: addr },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}
const client = createClient(EmbeddingService, addr);
// The same client with a 32 MiB HTTP/2 receive window (grpc-js defaults to 64 KiB, one WINDOW_UPDATE round trip per 64 KiB).
const WINDOW = 32 << 20;
const bigWindow = createClient(EmbeddingService, addr, { channelOptions: { 'grpc-node.flow_control_window': WINDOW } });
try {
  await client.waitForReady(20_000);
  let t0 = performance.now();
  const loaded = await client.loadTable({ source: 'vectors.bin', words: requested });
  const loadMs = performance.now() - t0;
  const info = loaded.table!;
  log(`loaded ${info.vocabSize} x ${info.dim} in ${round(loadMs)} ms (table ${info.tableId})`);
  t0 = performance.now();
  const again = await client.loadTable({ source: 'vectors.bin', words: requested });
  const reloadMs = performance.now() - t0;

  // Correctness first: the streamed matrix is the expected one, bit for bit.
  const check = await assembleMatrix(client.streamMatrix({ tableId: info.tableId }));
  const bitExact = Buffer.from(check.matrix.buffer).equals(Buffer.from(expected.buffer));
  if (!bitExact) throw new Error('the streamed matrix differs from the source vectors');

  const bytes = expected.byteLength;
  // The variants run interleaved (run i of each, then run i + 1 of each) so that load from other processes on this
  // shared machine spreads over all of them alike.
  const variants = [
    ['stream_64KiB', 64 << 10, client],
    ['stream_1MiB_default', 0, client],
    ['stream_4MiB', 4 << 20, client],
    ['stream_16MiB', 16 << 20, client],
    ['stream_1MiB_window32MiB', 0, bigWindow],
    ['stream_4MiB_window32MiB', 4 << 20, bigWindow],
  ] as const;
  const samples = new Map<string, number[]>(variants.map(([name]) => [name, []]));
  // CPU time of this process per fetch (client only, or client + server with --in-process): less sensitive to other
  // processes' load than wall time.
  const cpuSamples = new Map<string, number[]>(variants.map(([name]) => [name, []]));
  const chunkCounts = new Map<string, number>();
  for (let run = -2; run < RUNS; run++) {
    for (const [name, chunk, c] of variants) {
      const t0 = performance.now();
      const c0 = process.cpuUsage();
      const m = await assembleMatrix(c.streamMatrix({ tableId: info.tableId, maxChunkBytes: chunk }));
      const cpu = process.cpuUsage(c0);
      if (run >= 0) {
        samples.get(name)!.push(performance.now() - t0);
        cpuSamples.get(name)!.push((cpu.user + cpu.system) / 1000);
      }
      chunkCounts.set(name, m.chunks);
    }
  }
  const results: Record<string, unknown> = {};
  for (const [name] of variants) {
    const xs = samples.get(name)!;
    const med = median(xs);
    results[name] = {
      median_ms: round(med),
      min_ms: round(Math.min(...xs)),
      max_ms: round(Math.max(...xs)),
      runs: RUNS,
      cpu_ms_median: round(median(cpuSamples.get(name)!)),
      chunks: chunkCounts.get(name),
      mb_per_s: round(bytes / 2 ** 20 / (med / 1000), 1),
    };
    log(`${name}: ${round(med)} ms`);
  }

  // Baselines.
  const copy = await time(RUNS, 2, () => expected.slice());
  const cacheFile = await time(
    RUNS,
    1,
    async () => (await readTable(join(dir, 'cache', `${info.tableId}.ch8emb`))).table.matrix,
  );
  const lookupRuns = Math.max(3, Math.floor(RUNS / 3));
  const lookup = await time(lookupRuns, 1, async () => {
    const { entries } = await client.lookup({ tableId: info.tableId, tokens: requested, includeVectors: true });
    const out = new Float32Array((ROWS + 1) * DIM);
    entries.forEach((e, i) => out.set(e.vector, (i + 1) * DIM));
    return out;
  });
  log(
    `in-process copy ${copy.median_ms} ms, cache file read ${cacheFile.median_ms} ms, unary Lookup ${lookup.median_ms} ms`,
  );

  const stream = results['stream_1MiB_default'] as { median_ms: number };
  process.stdout.write(
    JSON.stringify({
      bench: 'embedding-grpc',
      seed: SEED,
      server: IN_PROCESS ? 'in-process' : 'child-process',
      load_average_1min: round(loadavg()[0] ?? 0),
      matrix: { rows: info.vocabSize, dim: info.dim, bytes, source_words: SOURCE_WORDS, bit_exact: bitExact },
      load_table_ms: { first: round(loadMs), again_in_memory: round(reloadMs), cache_hit_again: again.table?.cacheHit },
      stream_matrix: results,
      baselines: {
        in_process_copy: copy,
        table_cache_file_read: cacheFile,
        unary_lookup_all_tokens: lookup,
      },
      target_ms: TARGET_MS,
      meets_target: stream.median_ms < TARGET_MS,
      stream_vs_copy: round(stream.median_ms / copy.median_ms, 1),
      stream_vs_unary_lookup: round(lookup.median_ms / stream.median_ms, 1),
    }) + '\n',
  );
} finally {
  client.close();
  bigWindow.close();
  if (child !== undefined) {
    child.kill('SIGTERM');
    if (child.exitCode === null) await once(child, 'exit');
  }
  await stopInProcess?.();
  await rm(dir, { recursive: true, force: true });
}
