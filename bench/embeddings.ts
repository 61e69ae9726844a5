/**
 * Benchmark of @ch8/embeddings (problem 70). Prints one JSON document on stdout (progress on stderr).
 *
 *  1. wink GloVe-100d (307 MB JSON) pruned to the words of SST-2 train.tsv + dev.tsv (chapter tokenization): words
 *     found (the chapter's 14,262) + pad, first build time and a cache hit, each in a fresh process; baseline in the
 *     same run: JSON.parse of the whole file (time, peak RSS).
 *  2. a generated word2vec binary file, 3,000,000 x 300 (3.6 GB, seeded) by default, pruned to 20,000 words spread
 *     through it (the last entry among them) plus 100 it lacks, in a child process: GB/s, bytes read, peak RSS;
 *     baselines in the same run: `cat file > /dev/null` and a plain Node read loop (16 MiB fs.read, no parsing).
 *     The gzipped variant is a smaller file by default (--gz-size): compressing 3.6 GB here takes minutes.
 *  3. a cache hit of the 20,000 x 300 table in a fresh process.
 *
 * Options: --size N (word2vec rows, default 3000000), --dim D (300), --keep K (20000), --gz-size N (500000, 0 skips),
 * --runs R (prune repeats, 3), --skip-wink, --skip-naive, --tmp DIR (where the temp folder goes; deleted after).
 * Data: ../shared/data/sst2/{train,dev}.tsv beside the repository.
 */
import { spawnSync } from 'node:child_process';
import { createWriteStream, openSync, readSync, closeSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir, cpus, loadavg, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createGzip } from 'node:zlib';
import { once } from 'node:events';
import { loadOrBuildTable } from '@ch8/embeddings/cache';
import { defaultVectorsPath, pruneVectors } from '@ch8/embeddings/prune';
import { wordsFromTsv } from '@ch8/embeddings/words';
import { seededFloats } from '@ch8/embeddings/write';

const HERE = fileURLToPath(import.meta.url);
const SST2 = resolve(dirname(HERE), '../../shared/data/sst2');

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? (process.argv[i + 1] as string) : fallback;
}
const flag = (name: string): boolean => process.argv.includes(`--${name}`);
const log = (...a: unknown[]): void => console.error('[bench:embeddings]', ...a);
const round = (x: number, d = 3): number => Math.round(x * 10 ** d) / 10 ** d;
const peakRss = (): number => process.resourceUsage().maxRSS * 1024;

// ------------------------------------------------------------------------------------------------ child processes

interface ChildResult {
  [k: string]: unknown;
}

async function child(mode: string): Promise<ChildResult> {
  const wordsFile = arg('words-file', '');
  const words = wordsFile === '' ? null : (JSON.parse(await readFile(wordsFile, 'utf8')) as string[]);
  const source = arg('source', '');
  const cpu0 = process.cpuUsage();
  // CPU time of this process (user + system): less sensitive than wall time to other work on a shared machine.
  const cpuSeconds = (): number => {
    const c = process.cpuUsage(cpu0);
    return (c.user + c.system) / 1e6;
  };
  const t0 = performance.now();
  if (mode === 'prune') {
    const table = await pruneVectors({ source, words });
    const seconds = (performance.now() - t0) / 1000;
    const cpu = cpuSeconds();
    const { missingSample: _m, ...stats } = table.stats;
    return {
      seconds,
      cpu_seconds: cpu,
      vocab_size: table.vocab.size,
      dim: table.dim,
      stats,
      peak_rss_bytes: peakRss(),
    };
  }
  if (mode === 'cache') {
    const r = await loadOrBuildTable({ source, words, cacheDir: arg('cache-dir', '') });
    const seconds = (performance.now() - t0) / 1000;
    const cpu = cpuSeconds();
    return {
      seconds,
      cpu_seconds: cpu,
      cache_hit: r.cacheHit,
      vocab_size: r.table.vocab.size,
      found: r.table.stats.found,
      dim: r.table.dim,
      vocab_hash: r.table.vocab.hash,
      cache_file_bytes: statSync(r.cachePath).size,
      peak_rss_bytes: peakRss(),
    };
  }
  if (mode === 'read') {
    const fd = openSync(source, 'r');
    const buf = Buffer.allocUnsafe(16 << 20);
    let total = 0;
    let n: number;
    while ((n = readSync(fd, buf, 0, buf.length, null)) > 0) total += n;
    closeSync(fd);
    return { seconds: (performance.now() - t0) / 1000, bytes: total, peak_rss_bytes: peakRss() };
  }
  if (mode === 'json-parse') {
    const text = await readFile(source, 'utf8');
    const obj = JSON.parse(text) as { vectors: Record<string, number[]> };
    const n = Object.keys(obj.vectors).length;
    return { seconds: (performance.now() - t0) / 1000, entries: n, peak_rss_bytes: peakRss() };
  }
  throw new Error(`unknown child mode ${mode}`);
}

/** Runs this file in a fresh Node process in `mode`; returns its JSON plus the wall time seen from here. */
function runChild(mode: string, args: string[]): ChildResult & { process_wall_seconds: number } {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [...process.execArgv, HERE, '--child', mode, ...args], {
    encoding: 'utf8',
    maxBuffer: 1 << 24,
  });
  const wall = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`child ${mode} failed (${r.status}): ${r.stderr}`);
  return { ...(JSON.parse(r.stdout) as ChildResult), process_wall_seconds: round(wall) };
}

function shellSeconds(cmd: string): number {
  const t0 = performance.now();
  const r = spawnSync('sh', ['-c', cmd], { stdio: 'ignore' });
  if (r.status !== 0) throw new Error(`${cmd} failed`);
  return (performance.now() - t0) / 1000;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

// ------------------------------------------------------------------------------------------------ generation

const wordOf = (i: number): string => `w${String(i).padStart(7, '0')}`;

/**
 * Writes a word2vec binary file of n x dim: words w0000001.., vectors drawn from a seeded pool of 2^22 random floats
 * at pseudo-random offsets (so 3.6 GB need not be generated float by float). Returns the number of bytes written.
 */
async function writeWord2vec(path: string, n: number, dim: number, gzip: boolean): Promise<number> {
  const next = seededFloats(70);
  const pool = new Float32Array(1 << 22);
  for (let i = 0; i < pool.length; i++) pool[i] = next();
  const poolBytes = Buffer.from(pool.buffer);
  const out = createWriteStream(path, { highWaterMark: 16 << 20 });
  const gz = gzip ? createGzip({ level: 1, chunkSize: 1 << 20 }) : undefined;
  const sink = gz ?? out;
  if (gz !== undefined) gz.pipe(out);
  const write = async (b: Buffer): Promise<void> => {
    if (!sink.write(b)) await once(sink, 'drain');
  };
  await write(Buffer.from(`${n} ${dim}\n`));
  const entry = 10 + 4 * dim;
  let chunk = Buffer.allocUnsafe(8 << 20);
  let used = 0;
  let h = 12345;
  for (let i = 1; i <= n; i++) {
    if (used + entry > chunk.length) {
      await write(chunk.subarray(0, used));
      chunk = Buffer.allocUnsafe(8 << 20);
      used = 0;
    }
    used += chunk.write(`${wordOf(i)} `, used, 'latin1');
    h = (Math.imul(h, 1103515245) + 12345) >>> 0;
    const off = 4 * (h % (pool.length - dim));
    used += poolBytes.copy(chunk, used, off, off + 4 * dim);
    chunk[used++] = 0x0a;
  }
  await write(chunk.subarray(0, used));
  sink.end();
  await once(out, 'close');
  return statSync(path).size;
}

// ------------------------------------------------------------------------------------------------ main

async function main(): Promise<void> {
  const size = Number(arg('size', '3000000'));
  const dim = Number(arg('dim', '300'));
  const keep = Number(arg('keep', '20000'));
  const gzSize = Number(arg('gz-size', '500000'));
  const runs = Number(arg('runs', '3'));
  const tmp = await mkdtemp(join(arg('tmp', tmpdir()), 'ch8-bench-emb-'));
  const report: Record<string, unknown> = {
    benchmark: 'embeddings',
    machine: {
      cpus: cpus().length,
      cpu: cpus()[0]?.model,
      total_mem_bytes: totalmem(),
      node: process.version,
      // The machine is shared: the 1-minute load average says how contended the timings were.
      loadavg_1m_start: round(loadavg()[0] as number, 2),
    },
    options: { size, dim, keep, gz_size: gzSize, runs },
  };
  const cleanup = (): void => {
    spawnSync('rm', ['-rf', tmp]);
  };
  process.on('SIGINT', () => {
    cleanup();
    process.exit(130);
  });
  try {
    // 1. wink GloVe pruned to SST-2.
    if (!flag('skip-wink')) {
      const source = defaultVectorsPath();
      const t0 = performance.now();
      const words = await wordsFromTsv([join(SST2, 'train.tsv'), join(SST2, 'dev.tsv')]);
      const wordsSeconds = (performance.now() - t0) / 1000;
      const wordsFile = join(tmp, 'sst2-words.json');
      await writeFile(wordsFile, JSON.stringify([...words]));
      const cacheDir = join(tmp, 'cache-wink');
      log('wink: first build (fresh process)');
      const build = runChild('cache', ['--source', source, '--words-file', wordsFile, '--cache-dir', cacheDir]);
      log('wink: cache hit (fresh process)');
      const hit = runChild('cache', ['--source', source, '--words-file', wordsFile, '--cache-dir', cacheDir]);
      const prune = runChild('prune', ['--source', source, '--words-file', wordsFile]);
      const naive = flag('skip-naive') ? undefined : runChild('json-parse', ['--source', source]);
      report.wink_sst2 = {
        source_bytes: statSync(source).size,
        sst2_distinct_words: words.size,
        words_seconds: round(wordsSeconds),
        found: build.found,
        vocab_size: build.vocab_size,
        expected_found: 14262,
        ok: build.found === 14262 && build.vocab_size === 14263 && hit.vocab_hash === build.vocab_hash,
        vocab_hash: build.vocab_hash,
        first_build: build,
        cache_hit: hit,
        prune_only: prune,
        baseline_json_parse_whole_file: naive,
        speedup_cache_hit_vs_build: round((build.seconds as number) / (hit.seconds as number), 1),
      };
      log(JSON.stringify(report.wink_sst2));
    }

    // 2. word2vec binary, plain.
    const bin = join(tmp, 'vectors.bin');
    log(`word2vec: writing ${size} x ${dim}`);
    let t0 = performance.now();
    const binBytes = await writeWord2vec(bin, size, dim, false);
    const genSeconds = (performance.now() - t0) / 1000;
    const step = size / keep;
    const wanted: string[] = [];
    for (let k = 1; k <= keep; k++) wanted.push(wordOf(Math.round(k * step)));
    for (let k = 1; k <= 100; k++) wanted.push(`missing${k}`);
    const wordsFile = join(tmp, 'w2v-words.json');
    await writeFile(wordsFile, JSON.stringify(wanted));
    const catSeconds: number[] = [];
    const readSeconds: number[] = [];
    const prunes: ChildResult[] = [];
    for (let r = 0; r < runs; r++) {
      catSeconds.push(shellSeconds(`cat '${bin}' > /dev/null`));
      readSeconds.push(runChild('read', ['--source', bin]).seconds as number);
      prunes.push(runChild('prune', ['--source', bin, '--words-file', wordsFile]));
      log('word2vec prune run', r + 1, JSON.stringify(prunes[r]));
    }
    const pruneSeconds = prunes.map((p) => p.seconds as number);
    const best = prunes[pruneSeconds.indexOf(Math.min(...pruneSeconds))] as ChildResult;
    const bestStats = best.stats as { bytesRead: number; found: number; missing: number; entries: number };
    report.word2vec_binary = {
      file_bytes: binBytes,
      rows: size,
      dim,
      generate_seconds: round(genSeconds),
      requested: wanted.length,
      found: bestStats.found,
      missing: bestStats.missing,
      entries: bestStats.entries,
      bytes_read: bestStats.bytesRead,
      bytes_read_equals_file_size: bestStats.bytesRead === binBytes,
      prune_seconds: pruneSeconds.map((s) => round(s)),
      prune_gb_per_s_best: round(binBytes / Math.min(...pruneSeconds) / 1e9),
      prune_gb_per_s_median: round(binBytes / median(pruneSeconds) / 1e9),
      peak_rss_bytes_max: Math.max(...prunes.map((p) => p.peak_rss_bytes as number)),
      baseline_cat_seconds: catSeconds.map((s) => round(s)),
      baseline_cat_gb_per_s_best: round(binBytes / Math.min(...catSeconds) / 1e9),
      baseline_node_read_seconds: readSeconds.map((s) => round(s)),
      baseline_node_read_gb_per_s_best: round(binBytes / Math.min(...readSeconds) / 1e9),
      prune_vs_node_read: round(Math.min(...readSeconds) / Math.min(...pruneSeconds), 2),
      note: 'vectors are windows of a seeded pool of 2^22 random floats; file in page cache after generation',
    };
    log(JSON.stringify(report.word2vec_binary));

    // 3. cache hit of the 20,000 x 300 table in a fresh process.
    const cacheDir = join(tmp, 'cache-w2v');
    const build = runChild('cache', ['--source', bin, '--words-file', wordsFile, '--cache-dir', cacheDir]);
    const hits = [1, 2, 3, 4, 5].map(() =>
      runChild('cache', ['--source', bin, '--words-file', wordsFile, '--cache-dir', cacheDir]),
    );
    report.cache_hit_20k = {
      rows: build.vocab_size,
      dim: build.dim,
      build_seconds: round(build.seconds as number),
      cache_file_bytes: build.cache_file_bytes,
      hit_seconds: hits.map((h) => round(h.seconds as number, 4)),
      hit_seconds_median: round(median(hits.map((h) => h.seconds as number)), 4),
      hit_cpu_seconds: hits.map((h) => round(h.cpu_seconds as number, 4)),
      hit_process_wall_seconds: hits.map((h) => h.process_wall_seconds),
      all_hits: hits.every((h) => h.cache_hit === true && h.vocab_hash === build.vocab_hash),
      under_100ms: Math.max(...hits.map((h) => h.seconds as number)) < 0.1,
    };
    log(JSON.stringify(report.cache_hit_20k));
    await rm(bin, { force: true });

    // 2b. gzipped word2vec binary (smaller by default).
    if (gzSize > 0) {
      const gzPath = join(tmp, 'vectors.bin.gz');
      log(`word2vec gzip: writing ${gzSize} x ${dim}`);
      t0 = performance.now();
      const gzBytes = await writeWord2vec(gzPath, gzSize, dim, true);
      const gzGen = (performance.now() - t0) / 1000;
      const gzStep = gzSize / keep;
      const gzWanted: string[] = [];
      for (let k = 1; k <= keep; k++) gzWanted.push(wordOf(Math.max(1, Math.round(k * gzStep))));
      const gzWordsFile = join(tmp, 'gz-words.json');
      await writeFile(gzWordsFile, JSON.stringify([...new Set(gzWanted)]));
      const zcat = shellSeconds(`gzip -dc '${gzPath}' > /dev/null`);
      const p = runChild('prune', ['--source', gzPath, '--words-file', gzWordsFile]);
      const st = p.stats as { bytesRead: number; found: number };
      const raw = `${gzSize} ${dim}\n`.length + gzSize * (10 + 4 * dim);
      report.word2vec_binary_gzip = {
        rows: gzSize,
        dim,
        file_bytes: gzBytes,
        uncompressed_bytes: raw,
        generate_seconds: round(gzGen),
        found: st.found,
        bytes_read: st.bytesRead,
        bytes_read_equals_file_size: st.bytesRead === gzBytes,
        prune_seconds: round(p.seconds as number),
        compressed_mb_per_s: round(gzBytes / (p.seconds as number) / 1e6, 1),
        uncompressed_mb_per_s: round(raw / (p.seconds as number) / 1e6, 1),
        peak_rss_bytes: p.peak_rss_bytes,
        baseline_gzip_dc_seconds: round(zcat),
        note:
          gzSize < size
            ? `smaller than the plain file (${gzSize} rows): gzip -1 of 3.6 GB random floats takes minutes here`
            : undefined,
      };
      log(JSON.stringify(report.word2vec_binary_gzip));
    }
  } finally {
    cleanup();
  }
  (report.machine as Record<string, unknown>).loadavg_1m_end = round(loadavg()[0] as number, 2);
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
}

const mode = arg('child', '');
if (mode !== '') {
  child(mode)
    .then((r) => process.stdout.write(JSON.stringify(r)))
    .catch((e: unknown) => {
      console.error(e);
      process.exit(1);
    });
} else {
  main().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
