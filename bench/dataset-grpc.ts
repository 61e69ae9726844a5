/**
 * Dataset service benchmark on GLUE SST-2 (../shared/data/sst2 or argv[2]):
 *  1. PrepareDataset over gRPC (the embedding service prunes wink GloVe-100d to the SST-2 words; cached after the
 *     first run) and its counts against the chapter's reference: train 67,349 -> 66,949 kept (400 dropped), dev 872.
 *  2. StreamBatches of train at batch 64 (seeded shuffle) to a gRPC client on loopback that decodes every batch to an
 *     Int32Array: examples/s, with the dataset service in its own process (as deployed) and in the client's process.
 *  3. Baseline in the same run: the in-process plan + collate + Arrow encode + decode of the same batches
 *     (@ch8/batching's epochBatches, the iteration the service streams), no gRPC.
 * Prints one JSON document on stdout (logs on stderr).
 *
 *   pnpm bench:dataset-grpc [sst2-dir] [--epochs N]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer as createNetServer } from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeBatch, encodeBatch } from '@ch8/batching/arrow';
import type { BatchExample } from '@ch8/batching/collate';
import { epochBatches } from '@ch8/batching/plan';
import { Bucketing, DatasetService } from '@ch8/contracts/dataset';
import { parseDatasetConfig } from '@ch8/dataset-service/config';
import { createDatasetServer } from '@ch8/dataset-service/server';
import { parseEmbeddingConfig } from '@ch8/embedding-service/config';
import { createEmbeddingServer } from '@ch8/embedding-service/server';
import { createClient } from '@ch8/service-kit/client';
import { createLogger, silentLogger } from '@ch8/service-kit/logger';
import { checkHealth } from '@ch8/service-kit/probes';

const SEED = 1234n;
const BATCH = 64;
const here = fileURLToPath(new URL('.', import.meta.url));
const repo = resolve(here, '..');
const args = process.argv.slice(2);
const epochsAt = args.indexOf('--epochs');
const EPOCHS = epochsAt >= 0 ? Number(args[epochsAt + 1]) : 5;
/** Untimed epochs first: the JIT of the client and of the child service warms up. */
const WARMUP = 2;
const dir = resolve(
  args.find((a, i) => !a.startsWith('--') && args[i - 1] !== '--epochs') ?? join(repo, '..', 'shared', 'data', 'sst2'),
);
const REFERENCE = { train: { rows: 67_349, kept: 66_949, dropped: 400 }, dev: { rows: 872, kept: 872, dropped: 0 } };

const log = (s: string) => void process.stderr.write(`[bench:dataset-grpc] ${s}\n`);
const round = (x: number, digits = 1): number => Math.round(x * 10 ** digits) / 10 ** digits;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

async function freePort(): Promise<number> {
  const s = createNetServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

// --- Services ------------------------------------------------------------------------------------------------------
const emb = createEmbeddingServer({
  config: parseEmbeddingConfig({
    CH8_DATA_ROOTS: dir,
    CH8_CACHE_DIR: join(repo, '.cache', 'embeddings'),
    CH8_LOG_LEVEL: 'warn',
  }),
  logger: createLogger({ level: 'warn', bindings: { service: 'embedding' } }),
});
const embeddingAddr = `127.0.0.1:${await emb.server.listen('127.0.0.1:0')}`;
emb.server.ready();

const datasetEnv = {
  CH8_EMBEDDING_ADDR: embeddingAddr,
  CH8_DATA_ROOTS: dir,
  CH8_LOG_LEVEL: 'warn',
  CH8_MAX_BUFFERED_BATCHES: process.env['CH8_MAX_BUFFERED_BATCHES'] ?? '8',
};
const inproc = createDatasetServer({ config: parseDatasetConfig(datasetEnv), logger: silentLogger });
const inprocAddr = `127.0.0.1:${await inproc.server.listen('127.0.0.1:0')}`;
inproc.server.ready();

const childAddr = `127.0.0.1:${await freePort()}`;
const child: ChildProcess = spawn(
  process.execPath,
  ['--import', 'tsx', join(repo, 'services', 'dataset', 'src', 'main.ts')],
  {
    cwd: repo,
    env: { ...process.env, ...datasetEnv, CH8_DATASET_ADDR: childAddr },
    stdio: ['ignore', 'ignore', 'inherit'],
  },
);
const stopChild = () => {
  if (child.exitCode === null) child.kill('SIGTERM');
};
process.on('exit', stopChild);

try {
  // --- 1. Prepare over gRPC ----------------------------------------------------------------------------------------
  const client = createClient(DatasetService, inprocAddr);
  log(`preparing SST-2 at ${dir} (first run prunes the 307 MB wink JSON; then it is cached) ...`);
  let t0 = performance.now();
  const prep = (await client.prepareDataset({ source: { kind: { case: 'sst2', value: { dir } } } })).dataset!;
  const prepareSeconds = (performance.now() - t0) / 1000;
  const counts = Object.fromEntries(
    prep.splits.map((s) => [
      s.split,
      {
        rows: Number(s.rowsRead),
        kept: Number(s.kept),
        dropped: Number(s.droppedEmpty),
        tokens: Number(s.tokens),
        oov_tokens: Number(s.oovTokens),
      },
    ]),
  );
  const matches =
    counts['train']?.rows === REFERENCE.train.rows &&
    counts['train']?.kept === REFERENCE.train.kept &&
    counts['train']?.dropped === REFERENCE.train.dropped &&
    counts['dev']?.rows === REFERENCE.dev.rows &&
    counts['dev']?.kept === REFERENCE.dev.kept;
  log(
    `prepared ${prep.datasetId} in ${prepareSeconds.toFixed(1)} s: train ${counts['train']?.rows} -> ${counts['train']?.kept}, dev ${counts['dev']?.rows} -> ${counts['dev']?.kept}`,
  );

  // The examples as the service holds them, for the in-process baseline.
  const examples: BatchExample[] = [];
  const total = Number((await client.getExamples({ datasetId: prep.datasetId, split: 'train', limit: 1 })).total);
  for (let offset = 0; offset < total; offset += 1000) {
    for (const e of (await client.getExamples({ datasetId: prep.datasetId, split: 'train', offset, limit: 1000 }))
      .examples) {
      examples.push({ inputIds: Int32Array.from(e.inputIds), label: e.label, index: e.index });
    }
  }

  // --- 3. Baseline: plan + collate + encode + decode in process (the stream's own iteration, no gRPC) -------------
  const baselineRates: number[] = [];
  let sink = 0;
  for (let epoch = 0; epoch < WARMUP + EPOCHS; epoch++) {
    t0 = performance.now();
    let n = 0;
    for (const batch of epochBatches(examples, { batchSize: BATCH, seed: Number(SEED), epoch })) {
      const ids = decodeBatch(encodeBatch(batch)).inputIds;
      sink += ids[0] ?? 0;
      n += batch.batchSize;
    }
    if (epoch >= WARMUP) baselineRates.push(n / ((performance.now() - t0) / 1000));
  }

  // --- 2. StreamBatches over gRPC ---------------------------------------------------------------------------------
  async function streamRates(
    addr: string,
    bucketing: Bucketing,
  ): Promise<{ rates: number[]; batches: number; bytes: number }> {
    const c = createClient(DatasetService, addr);
    const rates: number[] = [];
    let batches = 0;
    let bytes = 0;
    try {
      for (let epoch = 0; epoch < WARMUP + EPOCHS; epoch++) {
        const start = performance.now();
        let n = 0;
        for await (const m of c.streamBatches({
          datasetId: prep.datasetId,
          split: 'train',
          batchSize: BATCH,
          shuffle: true,
          seed: SEED,
          epoch,
          bucketing,
        })) {
          const batch = decodeBatch(m.arrowIpc);
          const ids: Int32Array = batch.inputIds;
          sink += ids[0] ?? 0;
          n += batch.batchSize;
          if (epoch >= WARMUP) {
            batches++;
            bytes += m.arrowIpc.byteLength;
          }
        }
        if (n !== examples.length)
          throw new Error(`epoch ${epoch}: ${n} examples streamed, expected ${examples.length}`);
        if (epoch >= WARMUP) rates.push(n / ((performance.now() - start) / 1000));
      }
    } finally {
      c.close();
    }
    return { rates, batches, bytes };
  }

  for (let i = 0; i < 100 && (await checkHealth(childAddr, '', 1000)) !== 'SERVING'; i++)
    await new Promise((r) => setTimeout(r, 200));
  log('preparing in the child dataset service ...');
  const childClient = createClient(DatasetService, childAddr);
  const childPrep = (await childClient.prepareDataset({ source: { kind: { case: 'sst2', value: { dir } } } })).dataset!;
  childClient.close();
  if (childPrep.datasetId !== prep.datasetId) throw new Error('the two services disagree on the data set id');

  log('streaming ...');
  const separate = await streamRates(childAddr, Bucketing.NONE);
  const separateBucketed = await streamRates(childAddr, Bucketing.CHUNK);
  const sameProcess = await streamRates(inprocAddr, Bucketing.NONE);
  client.close();

  const baseline = median(baselineRates);
  const grpc = median(separate.rates);
  const result = {
    bench: 'dataset-grpc',
    data: dir,
    batch_size: BATCH,
    seed: Number(SEED),
    epochs_timed: EPOCHS,
    warmup_epochs: WARMUP,
    max_buffered_batches: Number(datasetEnv.CH8_MAX_BUFFERED_BATCHES),
    prepare: {
      seconds: round(prepareSeconds, 2),
      dataset_id: prep.datasetId,
      vocab_size: prep.vocabSize,
      vocab_hash: prep.vocabHash,
      splits: counts,
    },
    reference: REFERENCE,
    counts_match_reference: matches,
    examples_per_s: {
      grpc_separate_process: round(grpc),
      grpc_separate_process_bucketing: round(median(separateBucketed.rates)),
      grpc_same_process: round(median(sameProcess.rates)),
      baseline_in_process_encode_decode: round(baseline),
    },
    grpc_over_baseline: round(grpc / baseline, 3),
    target_examples_per_s: 300_000,
    meets_target: grpc >= 300_000,
    batches_per_epoch: Math.ceil(examples.length / BATCH),
    mean_message_bytes: round(separate.bytes / separate.batches),
    runs: {
      grpc_separate_process: separate.rates.map((r) => round(r)),
      grpc_separate_process_bucketing: separateBucketed.rates.map((r) => round(r)),
      grpc_same_process: sameProcess.rates.map((r) => round(r)),
      baseline: baselineRates.map((r) => round(r)),
    },
    checksum: sink,
  };
  process.stdout.write(JSON.stringify(result, null, 2) + '\n');
} finally {
  stopChild();
  await inproc.server.shutdown(500);
  await inproc.close();
  await emb.server.shutdown(500);
  await emb.close();
}
