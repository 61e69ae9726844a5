/**
 * Data pipeline benchmark on GLUE SST-2 (../shared/data/sst2 or argv[2]):
 *  1. preparation of train + dev once the vocabulary is known (read, tokenize, map to ids) vs a naive baseline;
 *  2. padding share of one train epoch at batch 64: random batches vs length bucketing (chunk, global);
 *  3. Arrow IPC encode + decode throughput at batch 64, vs JSON as the baseline;
 *  4. kept / dropped counts against the chapter's reference (train 66,949 / 400, dev 872 / 0).
 * The vocabulary is wink GloVe-100d pruned to the SST-2 words (@ch8/embeddings). Prints one JSON document.
 *
 *   pnpm bench:data [sst2-dir]
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeBatch, decodeBatchWithReader, encodeBatch, encodeBatchWithWriter } from '@ch8/batching/arrow';
import { collate, type Batch } from '@ch8/batching/collate';
import { batchPlan, epochBatches, paddingStats, type Bucketing } from '@ch8/batching/plan';
import { collectWords, prepareSplit } from '@ch8/datasets/prepare';
import { loadSentimentFixtures } from '@ch8/datasets/sentiment-fixtures';
import { readSst2Tsv } from '@ch8/datasets/sst2';
import { defaultVectorsPath, pruneVectors } from '@ch8/embeddings/prune';
import { chapterTokenize, rawTokenize } from '@ch8/tokenizer';

const SEED = 1234;
const BATCH = 64;
const REPS = 5;
const here = fileURLToPath(new URL('.', import.meta.url));
const dir = resolve(process.argv[2] ?? join(here, '..', '..', 'shared', 'data', 'sst2'));
const trainPath = join(dir, 'train.tsv');
const devPath = join(dir, 'dev.tsv');

const ms = (t0: number): number => Math.round((performance.now() - t0) * 100) / 100;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const round = (x: number, digits = 4): number => Math.round(x * 10 ** digits) / 10 ** digits;

// --- Vocabulary (not part of the timed preparation) -------------------------------------------------------------
let t0 = performance.now();
const [trainRows0, devRows0] = await Promise.all([readSst2Tsv(trainPath), readSst2Tsv(devPath)]);
const words = collectWords(devRows0, chapterTokenize, collectWords(trainRows0, chapterTokenize));
const collectMs = ms(t0);
const sstWords = words.size;
// The offline default data set (raw text) shares the pruned table: add its words.
const fixtures = await loadSentimentFixtures({ seed: 0 });
for (const split of [fixtures.train, fixtures.dev, fixtures.test]) collectWords(split, rawTokenize, words);
t0 = performance.now();
const table = await pruneVectors({ source: defaultVectorsPath(), words });
const pruneMs = ms(t0);
const vocab = table.vocab;
const idOf = (t: string): number | undefined => vocab.idOf(t);

// --- 1. Preparation ------------------------------------------------------------------------------------------------
async function prepareAll() {
  const [train, dev] = await Promise.all([readSst2Tsv(trainPath), readSst2Tsv(devPath)]);
  return {
    train: prepareSplit(train, { tokenize: chapterTokenize, idOf }),
    dev: prepareSplit(dev, { tokenize: chapterTokenize, idOf }),
  };
}

/** Baseline: the straightforward way (split the file, split each line, number[] per example, then Int32Array). */
function prepareNaive(path: string): { kept: number; dropped: number } {
  const lines = readFileSync(path, 'utf8').split('\n');
  let kept = 0;
  let dropped = 0;
  for (const line of lines.slice(1)) {
    if (line === '') continue;
    const [sentence = '', label = ''] = line.split('\t');
    if (label !== '0' && label !== '1') throw new Error(`bad label in ${path}`);
    const ids: number[] = [];
    for (const tok of sentence
      .toLowerCase()
      .split(/\s+/)
      .filter((s) => s !== '')) {
      const id = vocab.idOf(tok);
      if (id !== undefined && id > 0) ids.push(id);
    }
    if (ids.length === 0) dropped += 1;
    else {
      void { inputIds: Int32Array.from(ids), label: Number(label) };
      kept += 1;
    }
  }
  return { kept, dropped };
}

const prepTimes: number[] = [];
const naiveTimes: number[] = [];
let prepared = await prepareAll(); // warm-up (JIT, page cache)
prepareNaive(trainPath);
for (let r = 0; r < REPS; r++) {
  t0 = performance.now();
  prepared = await prepareAll();
  prepTimes.push(ms(t0));
  t0 = performance.now();
  prepareNaive(trainPath);
  prepareNaive(devPath);
  naiveTimes.push(ms(t0));
}
const naiveCounts = prepareNaive(trainPath);
const { train, dev } = prepared;

// --- 2. Padding ----------------------------------------------------------------------------------------------------
const lengths = Int32Array.from(train.examples, (e) => e.inputIds.length);
const padding: Record<string, unknown> = {};
for (const bucketing of ['none', 'chunk', 'global'] as Bucketing[]) {
  const shares: number[] = [];
  let batches = 0;
  for (let epoch = 0; epoch < 3; epoch++) {
    const plan = batchPlan(lengths, { batchSize: BATCH, seed: SEED, epoch, bucketing });
    batches = plan.length;
    shares.push(paddingStats(plan, lengths).padShare);
  }
  const s = paddingStats(batchPlan(lengths, { batchSize: BATCH, seed: SEED, epoch: 0, bucketing }), lengths);
  padding[bucketing === 'none' ? 'random' : `bucketed_${bucketing}`] = {
    batches,
    tokens: s.tokens,
    cells: s.cells,
    pad_share: round(s.padShare),
    pad_share_epochs_0_2: shares.map((x) => round(x)),
  };
}
t0 = performance.now();
for (let epoch = 0; epoch < 10; epoch++)
  batchPlan(lengths, { batchSize: BATCH, seed: SEED, epoch, bucketing: 'chunk' });
const planMs = ms(t0) / 10;

// --- 3. Arrow throughput ---------------------------------------------------------------------------------------------
const plan = batchPlan(lengths, { batchSize: BATCH, seed: SEED, epoch: 0 });
const batches: Batch[] = [...epochBatches(train.examples, { batchSize: BATCH, seed: SEED, epoch: 0 })];
t0 = performance.now();
for (const positions of plan) collate(Array.from(positions, (p) => train.examples[p]!));
const collateMs = ms(t0);

function arrowPass(): { encodeMs: number; decodeMs: number; bytes: number; checksum: number } {
  let bytes = 0;
  let checksum = 0;
  const encoded: Uint8Array[] = [];
  let t = performance.now();
  for (const b of batches) {
    const e = encodeBatch(b);
    bytes += e.length;
    encoded.push(e);
  }
  const encodeMs = ms(t);
  t = performance.now();
  for (const e of encoded) {
    const d = decodeBatch(e);
    checksum += d.inputIds[0]! + d.batchSize;
  }
  return { encodeMs, decodeMs: ms(t), bytes, checksum };
}

/** Baseline: arrow-js's own RecordBatchStreamWriter and RecordBatchReader (the obvious implementation). */
function arrowJsPass(): { encodeMs: number; decodeMs: number; bytes: number; checksum: number } {
  let bytes = 0;
  let checksum = 0;
  const encoded: Uint8Array[] = [];
  let t = performance.now();
  for (const b of batches) {
    const e = encodeBatchWithWriter(b);
    bytes += e.length;
    encoded.push(e);
  }
  const encodeMs = ms(t);
  t = performance.now();
  for (const e of encoded) {
    const d = decodeBatchWithReader(e);
    checksum += d.inputIds[0]! + d.batchSize;
  }
  return { encodeMs, decodeMs: ms(t), bytes, checksum };
}

function jsonPass(): { encodeMs: number; decodeMs: number; bytes: number; checksum: number } {
  let bytes = 0;
  let checksum = 0;
  const encoded: string[] = [];
  let t = performance.now();
  for (const b of batches) {
    const s = JSON.stringify({
      input_ids: Array.from(b.inputIds),
      max_length: b.maxLength,
      label: Array.from(b.labels),
      length: Array.from(b.lengths),
      index: Array.from(b.indices),
    });
    bytes += Buffer.byteLength(s);
    encoded.push(s);
  }
  const encodeMs = ms(t);
  t = performance.now();
  for (const s of encoded) {
    const o = JSON.parse(s) as { input_ids: number[]; label: number[]; length: number[]; index: number[] };
    const d = {
      inputIds: Int32Array.from(o.input_ids),
      labels: Float32Array.from(o.label),
      lengths: Int32Array.from(o.length),
      indices: Int32Array.from(o.index),
    };
    checksum += d.inputIds[0]! + d.labels.length;
  }
  return { encodeMs, decodeMs: ms(t), bytes, checksum };
}

// Correctness once: the round trip gives the batch back.
for (const b of batches.slice(0, 20)) {
  const d = decodeBatch(encodeBatch(b));
  if (
    d.inputIds.length !== b.inputIds.length ||
    d.inputIds.some((x, i) => x !== b.inputIds[i]) ||
    d.indices.some((x, i) => x !== b.indices[i])
  ) {
    throw new Error('Arrow round trip differs');
  }
}
arrowPass();
arrowJsPass();
jsonPass(); // warm-up
const arrowRuns = Array.from({ length: 3 }, arrowPass);
const arrowJsRuns = Array.from({ length: 3 }, arrowJsPass);
const jsonRuns = Array.from({ length: 3 }, jsonPass);
const examplesPerEpoch = train.examples.length;
function throughput(runs: ReturnType<typeof arrowPass>[]) {
  const enc = median(runs.map((r) => r.encodeMs));
  const dec = median(runs.map((r) => r.decodeMs));
  return {
    encode_ms_per_epoch: enc,
    decode_ms_per_epoch: dec,
    encode_plus_decode_examples_per_s: Math.round(examplesPerEpoch / ((enc + dec) / 1000)),
    us_per_batch_encode_plus_decode: round(((enc + dec) * 1000) / batches.length, 1),
    bytes_per_batch: Math.round((runs[0]?.bytes ?? 0) / batches.length),
  };
}
const arrow = throughput(arrowRuns);
const json = throughput(jsonRuns);
const arrowJs = throughput(arrowJsRuns);

// --- npm sentiment fixtures (raw text, rawTokenize) ---------------------------------------------------------------
t0 = performance.now();
const fixturePrepared = Object.fromEntries(
  (['train', 'dev', 'test'] as const).map((name) => {
    const { stats } = prepareSplit(fixtures[name], { tokenize: rawTokenize, idOf });
    return [
      name,
      {
        rows: stats.rows,
        kept: stats.kept,
        dropped: stats.droppedEmpty,
        oov_rate: round(stats.oovRate),
        mean_length: round(stats.length.mean, 2),
      },
    ];
  }),
);
const fixtureMs = ms(t0);

// --- Report ------------------------------------------------------------------------------------------------------------
const reference = { train: { rows: 67349, kept: 66949, dropped: 400 }, dev: { rows: 872, kept: 872, dropped: 0 } };
const counts = {
  train: { rows: train.stats.rows, kept: train.stats.kept, dropped: train.stats.droppedEmpty },
  dev: { rows: dev.stats.rows, kept: dev.stats.kept, dropped: dev.stats.droppedEmpty },
};
const prepMedian = median(prepTimes);
console.log(
  JSON.stringify(
    {
      bench: 'data',
      node: process.version,
      seed: SEED,
      batch_size: BATCH,
      data: dir,
      vocabulary: {
        source: table.source,
        words_requested_sst2: sstWords,
        words_requested_with_fixtures: words.size,
        found: table.stats.found,
        size_with_pad: vocab.size,
        collect_words_ms: collectMs,
        prune_ms: pruneMs,
      },
      prepare_train_dev: {
        what: 'read train.tsv + dev.tsv, chapterTokenize, map to ids, drop OOV and empty (vocabulary known)',
        median_ms: prepMedian,
        runs_ms: prepTimes,
        target_ms: 1000,
        meets_target: prepMedian < 1000,
        baseline_naive_median_ms: median(naiveTimes),
        speedup_vs_naive: round(median(naiveTimes) / prepMedian, 2),
      },
      counts,
      reference,
      counts_match_reference:
        JSON.stringify(counts) === JSON.stringify(reference) && naiveCounts.kept === reference.train.kept,
      stats: { train: train.stats, dev: dev.stats },
      sentiment_fixtures_raw_tokenizer: { split_info: fixtures.info, prepare_ms: fixtureMs, ...fixturePrepared },
      padding_epoch_batch64: {
        ...padding,
        target_bucketed_max: 0.05,
        meets_target: (padding.bucketed_chunk as { pad_share: number }).pad_share <= 0.05,
        plan_ms_per_epoch_chunk: round(planMs, 2),
      },
      arrow_ipc_batch64: {
        batches: batches.length,
        examples: examplesPerEpoch,
        collate_ms_per_epoch: collateMs,
        arrow,
        baseline_arrowjs_writer_reader: arrowJs,
        baseline_json: json,
        speedup_vs_arrowjs_writer_reader: round(
          arrowJs.us_per_batch_encode_plus_decode / arrow.us_per_batch_encode_plus_decode,
          2,
        ),
        speedup_vs_json: round(json.us_per_batch_encode_plus_decode / arrow.us_per_batch_encode_plus_decode, 2),
      },
    },
    null,
    2,
  ),
);
