/**
 * Model zoo benchmark on GLUE SST-2 (problems 72, 76-79): for each model, whole epochs over the kept train examples
 * at batch 64 (Adam; lr 1e-2 for bow-frozen, 1e-3 otherwise), with and without length bucketing, then dev accuracy
 * and inference throughput at batch 256. Vectors: wink GloVe-100d pruned to the SST-2 train+dev words.
 *
 * train_examples_per_second counts batch assembly (collate) + forward + backward + update; evaluation excluded.
 * The baseline measured in the same run is bucketing off (random batches padded to their longest example, as the
 * PyTorch reference does); pass --reference peer.json (ch8_torch.py --out) to add the reference's figures and ratios.
 *
 * --workers N trains data-parallel (@ch8/training/parallel: this thread and N-1 worker threads, wasm or cpu);
 * data_wait_share is the share of the training time spent assembling batches (collate) on the training thread;
 * train_examples_per_busiest_thread_cpu_second (Linux) is the rate if every thread had a core of its own.
 *
 *   pnpm bench:models [--models LIST] [--epochs N] [--backend NAME] [--sst2 DIR] [--bucketing on|off|both]
 *                     [--workers N] [--reference FILE] [--json]
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { collate, type Batch } from '@ch8/batching/collate';
import { batchPlan, paddingStats } from '@ch8/batching/plan';
import { selectBackend, type BackendPreference } from '@ch8/backend/select';
import { MODEL_KINDS, type ModelKind } from '@ch8/models/config';
import { createModel } from '@ch8/models/model';
import { DataParallel, isParallelBackend } from '@ch8/training/parallel';
import { modelList, readArgs } from './src/args.ts';
import { inOrder, loadSst2Glove } from './src/sst2-glove.ts';

const SEED = 1;
const BATCH = 64;
const INFER_BATCH = 256;

function parseArgs(argv: string[]) {
  const here = fileURLToPath(new URL('.', import.meta.url));
  const opts = {
    models: [...MODEL_KINDS] as ModelKind[],
    epochs: 1,
    backend: 'auto' as BackendPreference,
    sst2: join(here, '..', '..', 'shared', 'data', 'sst2'),
    bucketing: ['off', 'on'] as ('on' | 'off')[],
    reference: undefined as string | undefined,
    json: false,
    workers: 1,
  };
  readArgs(argv, (a, value) => {
    if (a === '--models') opts.models = modelList(value());
    else if (a === '--epochs') opts.epochs = Math.max(1, Number.parseInt(value(), 10));
    else if (a === '--backend') opts.backend = value() as BackendPreference;
    else if (a === '--sst2') opts.sst2 = resolve(value());
    else if (a === '--bucketing') {
      const v = value();
      if (v !== 'on' && v !== 'off' && v !== 'both') throw new Error('--bucketing on|off|both');
      opts.bucketing = v === 'both' ? ['off', 'on'] : [v];
    } else if (a === '--reference') opts.reference = resolve(value());
    else if (a === '--json') opts.json = true;
    else if (a === '--workers') opts.workers = Math.max(1, Number.parseInt(value(), 10));
    else return false;
    return true;
  });
  return opts;
}

const opts = parseArgs(process.argv.slice(2));

/** CPU seconds per thread of this process (Linux /proc; empty elsewhere), by thread id. */
function threadCpuSeconds(): Map<string, number> {
  const out = new Map<string, number>();
  try {
    for (const tid of readdirSync('/proc/self/task')) {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(tid, (Number(f[11]) + Number(f[12])) / 100); // utime + stime, in clock ticks of 1/100 s
    }
  } catch {
    // not Linux: no per-thread figures
  }
  return out;
}
const log = (line: string): void => void process.stderr.write(`${line}\n`);
const round = (x: number, digits = 4): number => Math.round(x * 10 ** digits) / 10 ** digits;

const info = await selectBackend({ prefer: opts.backend });
log(`backend ${info.backend}: ${info.device}`);
if (opts.workers > 1 && !isParallelBackend(info.tfBackend)) throw new Error(`--workers needs wasm or cpu`);

// --- Data: SST-2, vocabulary = wink GloVe-100d words of train + dev (cached pruned table) ---------------------------
const { table, cacheHit, train, dev, trainLengths: lengths } = await loadSst2Glove(opts.sst2);
const V = table.vocab.size;
log(`vocabulary ${V} x ${table.dim} (cache ${cacheHit ? 'hit' : 'built'}), train ${train.length}, dev ${dev.length}`);

const devBatches = inOrder(dev, INFER_BATCH);

// --- Reference figures (optional) -------------------------------------------------------------------------------------
const REFERENCE_NAMES: Partial<Record<ModelKind, string>> = {
  'bow-frozen': 'lr_frozen_mb',
  'bow-finetune': 'lr_finetune_mb',
  mlp: 'mlp_finetune',
  cnn: 'cnn_finetune',
  bilstm: 'bilstm_finetune',
};
const reference = new Map<string, { train_ex_per_s: number; dev_acc: number; epochs_run: number }>();
if (opts.reference !== undefined) {
  // ch8_torch.py writes NaN for a missing test split (Python's json), which JSON.parse rejects.
  const peer = JSON.parse(readFileSync(opts.reference, 'utf8').replace(/\bNaN\b/g, 'null')) as {
    models: { model: string; train_ex_per_s: number; dev_acc: number; epochs_run: number }[];
  };
  for (const m of peer.models) reference.set(m.model, m);
}

// --- Runs ---------------------------------------------------------------------------------------------------------------
const results: Record<string, unknown>[] = [];
for (const kind of opts.models) {
  for (const bucketing of opts.bucketing) {
    // webgpu cannot read tensors synchronously in Node: use the models' async reads there.
    const readAsync = info.tfBackend === 'webgpu';
    const config = { kind, vocabSize: V, dim: table.dim, seed: SEED };
    const backend = info.tfBackend;
    const dp =
      opts.workers > 1 && isParallelBackend(backend)
        ? await DataParallel.start(config, table.matrix, { workers: opts.workers, backend })
        : undefined;
    const model = dp?.model ?? createModel(config, { embeddings: table.matrix });
    try {
      let dataSeconds = 0;
      let trainSeconds = 0;
      let cpuSeconds = 0;
      const busiest = new Map<string, number>();
      let seen = 0;
      let lossSum = 0;
      let cells = 0;
      let tokens = 0;
      for (let epoch = 0; epoch < opts.epochs; epoch++) {
        const plan = batchPlan(lengths, {
          batchSize: BATCH,
          seed: SEED,
          epoch,
          bucketing: bucketing === 'on' ? 'chunk' : 'none',
        });
        const pad = paddingStats(plan, lengths);
        cells += pad.cells;
        tokens += pad.tokens;
        lossSum = 0;
        let epochSeen = 0;
        const t0 = performance.now();
        const c0 = process.cpuUsage();
        const t0Threads = threadCpuSeconds();
        for (const positions of plan) {
          const d0 = performance.now();
          const batch = collate(Array.from(positions, (p) => train[p]!));
          dataSeconds += (performance.now() - d0) / 1000;
          const r = dp ? await dp.step(batch) : readAsync ? await model.trainStepAsync(batch) : model.trainStep(batch);
          lossSum += r.loss * r.examples;
          epochSeen += r.examples;
        }
        const dt = (performance.now() - t0) / 1000;
        const cpu = process.cpuUsage(c0);
        cpuSeconds += (cpu.user + cpu.system) / 1e6;
        for (const [tid, s] of threadCpuSeconds())
          busiest.set(tid, (busiest.get(tid) ?? 0) + s - (t0Threads.get(tid) ?? 0));
        trainSeconds += dt;
        seen += epochSeen;
        log(
          `${kind} bucketing ${bucketing} epoch ${epoch + 1}: loss ${(lossSum / epochSeen).toFixed(4)}, ${Math.round(epochSeen / dt)} ex/s`,
        );
      }
      const evaluation = readAsync ? await model.evaluateAsync(devBatches) : model.evaluate(devBatches);
      // Inference throughput: predict the dev set at batch 256, several passes.
      const passes = Math.max(1, Math.ceil(4000 / dev.length));
      const predict = (b: Batch) => (readAsync ? model.predictProbabilitiesAsync(b) : model.predictProbabilities(b));
      await predict(devBatches[0]!);
      const t1 = performance.now();
      for (let p = 0; p < passes; p++) for (const b of devBatches) await predict(b);
      const inferSeconds = (performance.now() - t1) / 1000;
      const row: Record<string, unknown> = {
        model: kind,
        finetune: model.config.finetune,
        backend: info.backend,
        device: info.device,
        bucketing,
        workers: opts.workers,
        epochs: opts.epochs,
        train_examples: seen,
        train_seconds: round(trainSeconds, 2),
        train_examples_per_second: Math.round(seen / trainSeconds),
        // Less sensitive to other processes on a shared machine than wall time (this process's CPU time only).
        train_examples_per_cpu_second: Math.round(seen / cpuSeconds),
        // With a core per thread a step lasts as long as its busiest thread: this is the rate that would give.
        train_examples_per_busiest_thread_cpu_second:
          busiest.size > 0 ? Math.round(seen / Math.max(...busiest.values())) : null,
        data_wait_share: round(dataSeconds / trainSeconds),
        padding_share: round(1 - tokens / cells),
        final_epoch_train_loss: round(lossSum / (seen / opts.epochs)),
        dev_accuracy: round(evaluation.accuracy),
        dev_loss: round(evaluation.loss),
        infer_examples_per_second: Math.round((passes * dev.length) / inferSeconds),
        parameters_dense: model.parameterCount,
      };
      const refName = REFERENCE_NAMES[kind];
      const ref = refName !== undefined ? reference.get(refName) : undefined;
      if (ref !== undefined) {
        row.reference = {
          model: refName,
          train_examples_per_second: ref.train_ex_per_s,
          dev_accuracy: ref.dev_acc,
          epochs: ref.epochs_run,
        };
        row.speed_ratio_vs_reference = round(seen / trainSeconds / ref.train_ex_per_s, 3);
        row.dev_accuracy_minus_reference = round(evaluation.accuracy - ref.dev_acc);
      }
      results.push(row);
      log(JSON.stringify(row));
    } finally {
      await dp?.close();
      model.dispose();
    }
  }
}

const doc = {
  bench: 'models',
  command: `pnpm bench:models ${process.argv.slice(2).join(' ')}`.trim(),
  seed: SEED,
  batch_size: BATCH,
  infer_batch_size: INFER_BATCH,
  backend: info,
  data: { sst2: opts.sst2, train_examples: train.length, dev_examples: dev.length, vocab_size: V, dim: table.dim },
  baseline: 'bucketing off (random batches padded to their longest example), same run',
  results,
};
if (opts.json) {
  process.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
} else {
  const cols = [
    'model',
    'finetune',
    'bucketing',
    'workers',
    'train_examples_per_second',
    'data_wait_share',
    'padding_share',
    'dev_accuracy',
    'infer_examples_per_second',
    'speed_ratio_vs_reference',
  ];
  process.stdout.write(`${cols.join('\t')}\n`);
  for (const r of results) process.stdout.write(`${cols.map((c) => String(r[c] ?? '')).join('\t')}\n`);
}
