/**
 * `ch8 data stats` and `ch8 data show` (problems 71 and 75). The flags name a data set (`dataSpec`: --train/--dev
 * TSVs or the builtin review sets); in-process by default, through @ch8/datasets/local's `prepareLocal` (read,
 * tokenize, prune the vectors to the words through the cache, map to ids, drop OOV tokens and empty examples); with
 * --addr the same spec goes to a running dataset service as a PrepareDataset request (`prepareRequest`).
 */
import { join, resolve } from 'node:path';
import { DatasetService, type DatasetInfo, type PrepareDatasetRequest } from '@ch8/contracts/dataset';
import { decodeBatch } from '@ch8/batching/arrow';
import { collate, type Batch } from '@ch8/batching/collate';
import type { DatasetSpec } from '@ch8/datasets/dataset';
import { prepareLocal as prepareDataset, type LocalPreparation } from '@ch8/datasets/local';
import type { SplitStats } from '@ch8/datasets/prepare';
import { datasetSpecToProto } from '@ch8/datasets/proto';
import { defaultVectorsPath } from '@ch8/embeddings/prune';
import { InvalidInputError } from '@ch8/errors';
import { createClient } from '@ch8/service-kit/client';
import { ch8Home } from '@ch8/service-kit/config';
import { CHAPTER_TOKENIZER, formatTokenizerSpec, parseTokenizerSpec, type TokenizerSpec } from '@ch8/tokenizer';
import { bool, int, str, type Parsed } from '../args.ts';
import type { Command, CommandIO } from '../command.ts';

// ---------------------------------------------------------------------------------------------------------------
// Result shapes (the --json output)

export interface SplitReport {
  split: string;
  rows_read: number;
  kept: number;
  dropped_empty: number;
  tokens: number;
  oov_tokens: number;
  oov_rate: number;
  lengths: { min: number; max: number; mean: number; p50: number; p95: number };
}

export interface StatsReport {
  /** "local" (in-process) or the service address. */
  via: string;
  source: string;
  tokenizer: string;
  vectors: string;
  vocab_size: number;
  dim: number;
  vocab_hash: string;
  /** Only from a service. */
  dataset_id?: string;
  table_id?: string;
  cache_hit?: boolean;
  seconds: number;
  splits: SplitReport[];
}

export interface ShownExample {
  index: number;
  text: string;
  label: number;
  input_ids: number[];
  tokens: string[];
}

export interface ShowReport {
  via: string;
  source: string;
  split: string;
  vocab_hash: string;
  examples: ShownExample[];
  /** With --collate: the collated batch of those examples (problem 75). */
  batch?: { input_ids: number[][]; label: number[][]; lengths: number[]; index: number[] };
}

// ---------------------------------------------------------------------------------------------------------------
// Shared flags and the in-process preparation

/** The flags that choose the data and the vectors of an in-process preparation (`data`, `train`). */
export const DATA_FLAGS = {
  train: {
    type: 'string',
    help: 'SST-2 style TSV (header sentence<TAB>label); default: the builtin sentiment review sets',
  },
  dev: { type: 'string', help: 'SST-2 style TSV for the dev split' },
  vectors: { type: 'string', help: 'vector file to prune (default: wink GloVe 100-d)' },
  'cache-dir': {
    type: 'string',
    help: 'pruned-table cache (default $CH8_CACHE_DIR, or $CH8_HOME/embeddings: .cache/embeddings in the workspace)',
  },
  tokenizer: { type: 'string', help: 'chapter or raw (default: chapter for TSVs, raw for the builtin sets)' },
} as const;

const COMMON_FLAGS = {
  ...DATA_FLAGS,
  vectors: {
    type: 'string',
    help: 'vector file to prune (default: wink GloVe 100-d); with --addr: as the embedding service sees it',
  },
  addr: { type: 'string', help: 'HOST:PORT of a running dataset service: do the work there' },
  json: { type: 'boolean', help: 'one JSON document on standard output' },
} as const;

function tokenizerFlag(args: Parsed): TokenizerSpec | undefined {
  const t = str(args, 'tokenizer');
  if (t === undefined) return undefined;
  if (t !== 'chapter' && t !== 'raw')
    throw new InvalidInputError(`--tokenizer must be chapter or raw, got ${JSON.stringify(t)}`, { field: 'tokenizer' });
  return parseTokenizerSpec(t);
}

/**
 * The data set the flags name: --train / --dev are SST-2 style TSVs (columns `sentence` and `label`, chapter
 * tokenizer), paths resolved against the working directory; neither: the builtin review sets (raw tokenizer).
 * --tokenizer overrides the tokenizer. The same spec is prepared in process (`prepareLocal`) or sent to the dataset
 * service (`prepareRequest`).
 */
export function dataSpec(args: Parsed, io: CommandIO): DatasetSpec {
  const tokenizer = tokenizerFlag(args);
  const files: Array<{ split: string; path: string }> = [];
  for (const split of ['train', 'dev']) {
    const p = str(args, split);
    if (p !== undefined) files.push({ split, path: resolve(io.cwd, p) });
  }
  if (files.length === 0) return { kind: 'builtin', ...(tokenizer === undefined ? {} : { tokenizer }) };
  return {
    kind: 'tabular',
    files,
    format: 'tsv',
    textColumn: 'sentence',
    labelColumn: 'label',
    tokenizer: tokenizer ?? { ...CHAPTER_TOKENIZER },
  };
}

/** --vectors resolved against the working directory, or undefined (the default source). */
function vectorsFlag(args: Parsed, io: CommandIO): string | undefined {
  const v = str(args, 'vectors');
  return v === undefined ? undefined : resolve(io.cwd, v);
}

/** The PrepareDataset request for the data and vectors the flags name (what `prepareLocal` would prepare here). */
export function prepareRequest(args: Parsed, io: CommandIO): PrepareDatasetRequest {
  return datasetSpecToProto(dataSpec(args, io), { vectors: vectorsFlag(args, io) ?? '' });
}

/** An in-process preparation, plus the description and tokenizer under their former names. */
export interface LocalPrepared extends LocalPreparation {
  /** @deprecated use `description` and `tokenizer`. */
  data: { source: string; tokenizer: TokenizerSpec };
}

/** Prepares the data set the flags name in process (@ch8/datasets/local), the pruned vectors cached under --cache-dir. */
export async function prepareLocal(args: Parsed, io: CommandIO): Promise<LocalPrepared> {
  const p = await prepareDataset(dataSpec(args, io), {
    vectors: vectorsFlag(args, io) ?? defaultVectorsPath(),
    cacheDir: resolve(
      io.cwd,
      str(args, 'cache-dir') ?? io.env['CH8_CACHE_DIR'] ?? join(ch8Home(io.env, io.cwd), 'embeddings'),
    ),
    log: io.log,
  });
  return { ...p, data: { source: p.description, tokenizer: p.tokenizer } };
}

/** What a local preparation used: the fields `data stats` and `train` report. */
export function describePrepared(p: LocalPreparation) {
  return {
    source: p.description,
    tokenizer: formatTokenizerSpec(p.tokenizer),
    vectors: p.vectors,
    vocab_size: p.tokens.length,
    dim: p.dim,
    vocab_hash: p.vocabHash,
  };
}

/** The split names a spec has, in order (for a usage error before any work). */
function splitNames(spec: DatasetSpec): string[] {
  if (spec.kind === 'tabular') return spec.files.map((f) => f.split);
  return spec.kind === 'sst2' ? ['train', 'dev'] : ['train', 'dev', 'test'];
}

function checkSplit(spec: DatasetSpec, split: string): void {
  if (!splitNames(spec).includes(split)) {
    throw new InvalidInputError(`no split ${JSON.stringify(split)} (give --${split} or use the builtin sets)`, {
      field: 'split',
    });
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The service path (--addr)

async function prepareRemote(
  addr: string,
  args: Parsed,
  io: CommandIO,
): Promise<{ info: DatasetInfo; client: ReturnType<typeof createClient<typeof DatasetService>> }> {
  const request = prepareRequest(args, io);
  const client = createClient(DatasetService, addr);
  io.log(`preparing on the dataset service at ${addr} ...`);
  try {
    const res = await client.prepareDataset(request);
    if (!res.dataset) throw new Error('the dataset service returned no data set');
    return { info: res.dataset, client };
  } catch (e) {
    client.close();
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Rendering

function splitReport(name: string, s: SplitStats): SplitReport {
  return {
    split: name,
    rows_read: s.rows,
    kept: s.kept,
    dropped_empty: s.droppedEmpty,
    tokens: s.tokens,
    oov_tokens: s.oovTokens,
    oov_rate: s.oovRate,
    lengths: { ...s.length },
  };
}

function statsHuman(r: StatsReport): string {
  const lines = [
    `source     ${r.source}`,
    `tokenizer  ${r.tokenizer}`,
    `vectors    ${r.vectors}: |V| = ${r.vocab_size} (with <pad>), d = ${r.dim}, vocab hash ${r.vocab_hash.slice(0, 16)}`,
  ];
  if (r.dataset_id !== undefined) lines.push(`data set   ${r.dataset_id} (table ${r.table_id})`);
  lines.push(
    '',
    `${'split'.padEnd(8)}${'rows'.padStart(9)}${'kept'.padStart(9)}${'dropped'.padStart(9)}${'tokens'.padStart(10)}${'OOV'.padStart(9)}  length min/p50/p95/max (mean)`,
  );
  for (const s of r.splits) {
    const l = s.lengths;
    lines.push(
      `${s.split.padEnd(8)}${String(s.rows_read).padStart(9)}${String(s.kept).padStart(9)}${String(s.dropped_empty).padStart(9)}${String(s.tokens).padStart(10)}${String(s.oov_tokens).padStart(9)}  ${l.min}/${l.p50}/${l.p95}/${l.max} (${l.mean.toFixed(2)})`,
    );
  }
  return lines.join('\n');
}

/** A Python string literal, as `repr` writes it. */
export function pyRepr(s: string): string {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of s) {
    if (ch === '\\') out += '\\\\';
    else if (ch === quote) out += `\\${ch}`;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\r') out += '\\r';
    else out += ch;
  }
  return out + quote;
}

/** `tensor([...])` as PyTorch prints an int vector (values right-aligned to a common width). */
export function tensor1d(values: readonly number[]): string {
  const w = Math.max(0, ...values.map((v) => String(v).length));
  return `tensor([${values.map((v) => String(v).padStart(w)).join(', ')}])`;
}

/** A float label vector/matrix entry as PyTorch prints 0/1 floats: `1.` */
function pyFloat(v: number): string {
  return Number.isInteger(v) ? `${v}.` : String(v);
}

/** `tensor([[...], [...]])` of a 2-D int matrix, or of `[B, 1]` labels, in PyTorch's layout. */
export function tensor2d(rows: readonly (readonly string[])[]): string {
  const w = Math.max(0, ...rows.flatMap((r) => r.map((v) => v.length)));
  const body = rows.map((r) => `[${r.map((v) => v.padStart(w)).join(', ')}]`).join(',\n        ');
  return `tensor([${body}])`;
}

/** The chapter's form of an example: {'text': ..., 'label': tensor([1.]), 'input_ids': tensor([...])}. */
export function chapterExample(e: ShownExample): string {
  return `{'text': ${pyRepr(e.text)}, 'label': tensor([${pyFloat(e.label)}]), 'input_ids': ${tensor1d(e.input_ids)}}`;
}

export function chapterBatch(b: NonNullable<ShowReport['batch']>): string {
  const ids = tensor2d(b.input_ids.map((r) => r.map(String)));
  const labels = tensor2d(b.label.map((r) => r.map(pyFloat)));
  return `{'input_ids': ${ids}, 'label': ${labels}}`;
}

function batchReport(batch: Batch): NonNullable<ShowReport['batch']> {
  const { batchSize: b, maxLength: t } = batch;
  return {
    input_ids: Array.from({ length: b }, (_, r) => Array.from(batch.inputIds.subarray(r * t, (r + 1) * t))),
    label: Array.from(batch.labels, (v) => [v]),
    lengths: Array.from(batch.lengths),
    index: Array.from(batch.indices),
  };
}

function showHuman(r: ShowReport): string {
  const lines = r.examples.map(chapterExample);
  if (r.batch)
    lines.push(
      '',
      `collated (${r.batch.input_ids.length} x ${r.batch.input_ids[0]?.length ?? 0}, longest first, PAD = 0):`,
      chapterBatch(r.batch),
    );
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------------------------
// Commands

export const dataStatsCommand: Command = {
  name: 'data stats',
  summary: 'read, tokenize and map a data set to ids; per split: rows, kept, dropped empty, tokens, OOV, lengths',
  problems: [71],
  usage: 'ch8 data stats [--train TSV] [--dev TSV] [--vectors FILE] [--addr HOST:PORT] [--json]',
  flags: { ...COMMON_FLAGS },
  async run(args, io) {
    const t0 = performance.now();
    const addr = str(args, 'addr');
    let report: StatsReport;
    if (addr !== undefined) {
      const { info, client } = await prepareRemote(addr, args, io);
      client.close();
      report = {
        via: addr,
        source: info.name,
        tokenizer: info.tokenizerVersion,
        vectors: str(args, 'vectors') ?? '(the embedding service default)',
        vocab_size: info.vocabSize,
        dim: info.dim,
        vocab_hash: info.vocabHash,
        dataset_id: info.datasetId,
        table_id: info.tableId,
        seconds: (performance.now() - t0) / 1000,
        splits: info.splits.map((s) => ({
          split: s.split,
          rows_read: Number(s.rowsRead),
          kept: Number(s.kept),
          dropped_empty: Number(s.droppedEmpty),
          tokens: Number(s.tokens),
          oov_tokens: Number(s.oovTokens),
          oov_rate: s.tokens === 0n ? 0 : Number(s.oovTokens) / Number(s.tokens),
          lengths: {
            min: s.lengths?.min ?? 0,
            max: s.lengths?.max ?? 0,
            mean: s.lengths?.mean ?? 0,
            p50: s.lengths?.p50 ?? 0,
            p95: s.lengths?.p95 ?? 0,
          },
        })),
      };
    } else {
      const p = await prepareLocal(args, io);
      report = {
        via: 'local',
        ...describePrepared(p),
        cache_hit: p.cacheHit,
        seconds: (performance.now() - t0) / 1000,
        splits: p.splits.map((s) => splitReport(s.name, s.stats)),
      };
    }
    io.result(report, statsHuman);
    return 0;
  },
};

export const dataShowCommand: Command = {
  name: 'data show',
  summary: "print examples in the chapter's form {'text', 'label', 'input_ids'}; --collate adds the padded batch",
  problems: [71, 75],
  usage: 'ch8 data show [--n 4] [--split train] [--collate] [--train TSV] [--vectors FILE] [--addr HOST:PORT] [--json]',
  flags: {
    ...COMMON_FLAGS,
    n: { type: 'string', help: 'how many examples (default 4)' },
    split: { type: 'string', help: 'which split (default train)' },
    collate: { type: 'boolean', help: 'also print the collated batch {input_ids [B,T], label [B,1]} (problem 75)' },
  },
  async run(args, io) {
    const n = int(args, 'n', 4, 1);
    const split = str(args, 'split') ?? 'train';
    const addr = str(args, 'addr');
    let report: ShowReport;
    if (addr !== undefined) {
      const { info, client } = await prepareRemote(addr, args, io);
      try {
        const res = await client.getExamples({ datasetId: info.datasetId, split, limit: n });
        report = {
          via: addr,
          source: info.name,
          split,
          vocab_hash: info.vocabHash,
          examples: res.examples.map((e) => ({
            index: e.index,
            text: e.text,
            label: e.label,
            input_ids: [...e.inputIds],
            tokens: [...e.tokens],
          })),
        };
        if (bool(args, 'collate') && res.examples.length > 0) {
          // The first batch of an unshuffled epoch is exactly these examples, collated by the service.
          for await (const m of client.streamBatches({
            datasetId: info.datasetId,
            split,
            batchSize: res.examples.length,
            shuffle: false,
          })) {
            report.batch = batchReport(decodeBatch(m.arrowIpc));
            break;
          }
        }
      } finally {
        client.close();
      }
    } else {
      checkSplit(dataSpec(args, io), split);
      const p = await prepareLocal(args, io);
      const s = p.splits.find((x) => x.name === split)!;
      const examples = s.examples.slice(0, n);
      report = {
        via: 'local',
        source: p.description,
        split,
        vocab_hash: p.vocabHash,
        examples: examples.map((e) => ({
          index: e.index,
          text: e.text,
          label: e.label,
          input_ids: Array.from(e.inputIds),
          tokens: Array.from(e.inputIds, (id) => p.tokens[id] ?? ''),
        })),
      };
      if (bool(args, 'collate') && examples.length > 0) report.batch = batchReport(collate(examples));
    }
    io.result(report, showHuman);
    return 0;
  },
};
