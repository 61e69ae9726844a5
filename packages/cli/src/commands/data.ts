/**
 * `ch8 data stats` and `ch8 data show` (problems 71 and 75). In-process by default: read the TSVs (or the builtin
 * review sets), tokenize, prune the vectors to the words with @ch8/embeddings (cached), map to ids, drop OOV tokens
 * and empty examples. With --addr the same work goes to a running dataset service.
 */
import { resolve } from 'node:path';
import { DatasetService, TokenizerKind, type DatasetInfo } from '@ch8/contracts/dataset';
import { decodeBatch } from '@ch8/batching/arrow';
import { collate, type Batch } from '@ch8/batching/collate';
import { loadSentimentFixtures } from '@ch8/datasets/sentiment-fixtures';
import { collectWords, prepareSplit, type Example, type SplitStats } from '@ch8/datasets/prepare';
import { readSst2Tsv, type LabelledRow } from '@ch8/datasets/sst2';
import { loadOrBuildTable } from '@ch8/embeddings/cache';
import { defaultVectorsPath } from '@ch8/embeddings/prune';
import { InvalidInputError } from '@ch8/errors';
import { createClient } from '@ch8/service-kit/client';
import { CHAPTER_TOKENIZER, RAW_TOKENIZER, formatTokenizerSpec, getTokenizer, parseTokenizerSpec, type TokenizerSpec } from '@ch8/tokenizer';
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
  train: { type: 'string', help: 'SST-2 style TSV (header sentence<TAB>label); default: the builtin sentiment review sets' },
  dev: { type: 'string', help: 'SST-2 style TSV for the dev split' },
  vectors: { type: 'string', help: 'vector file to prune (default: wink GloVe 100-d)' },
  'cache-dir': { type: 'string', help: 'pruned-table cache (default $CH8_CACHE_DIR or .cache/embeddings)' },
  tokenizer: { type: 'string', help: 'chapter or raw (default: chapter for TSVs, raw for the builtin sets)' },
} as const;

const COMMON_FLAGS = {
  ...DATA_FLAGS,
  vectors: { type: 'string', help: 'vector file to prune (default: wink GloVe 100-d); with --addr: as the embedding service sees it' },
  addr: { type: 'string', help: 'HOST:PORT of a running dataset service: do the work there' },
  json: { type: 'boolean', help: 'one JSON document on standard output' },
} as const;

interface LocalSplit {
  name: string;
  rows: LabelledRow[];
}

export interface LocalData {
  source: string;
  tokenizer: TokenizerSpec;
  splits: LocalSplit[];
  /** TSVs given by the user (for --addr). */
  files: Array<{ split: string; path: string }>;
}

function tokenizerFlag(args: Parsed): TokenizerSpec | undefined {
  const t = str(args, 'tokenizer');
  if (t === undefined) return undefined;
  if (t !== 'chapter' && t !== 'raw') throw new InvalidInputError(`--tokenizer must be chapter or raw, got ${JSON.stringify(t)}`, { field: 'tokenizer' });
  return parseTokenizerSpec(t);
}

async function readData(args: Parsed, io: CommandIO): Promise<LocalData> {
  const files: Array<{ split: string; path: string }> = [];
  for (const split of ['train', 'dev']) {
    const p = str(args, split);
    if (p !== undefined) files.push({ split, path: resolve(io.cwd, p) });
  }
  const tokenizer = tokenizerFlag(args);
  if (files.length > 0) {
    const rows = await Promise.all(files.map((f) => readSst2Tsv(f.path)));
    return {
      source: files.map((f) => `${f.split}=${f.path}`).join(', '),
      tokenizer: tokenizer ?? { ...CHAPTER_TOKENIZER },
      splits: files.map((f, i) => ({ name: f.split, rows: rows[i] as LabelledRow[] })),
      files,
    };
  }
  const f = await loadSentimentFixtures();
  const plain = (rows: readonly LabelledRow[]) => rows.map(({ text, label }) => ({ text, label }));
  return {
    source: `builtin sentiment review sets (${f.info.sources.join(', ')}), split seed ${f.info.seed}`,
    tokenizer: tokenizer ?? { ...RAW_TOKENIZER },
    splits: [
      { name: 'train', rows: plain(f.train) },
      { name: 'dev', rows: plain(f.dev) },
      { name: 'test', rows: plain(f.test) },
    ],
    files,
  };
}

export interface LocalPrepared {
  data: LocalData;
  vectors: string;
  tokens: readonly string[];
  vocabHash: string;
  dim: number;
  /** The pruned matrix, tokens.length x dim, row 0 = <pad>. */
  matrix: Float32Array;
  cacheHit: boolean;
  splits: Array<{ name: string; examples: Example[]; stats: SplitStats }>;
}

/** Reads, tokenizes and maps the data set in-process (the vectors pruned through the cache); `only` keeps one split. */
export async function prepareLocal(args: Parsed, io: CommandIO, only?: string): Promise<LocalPrepared> {
  const data = await readData(args, io);
  if (only !== undefined) {
    data.splits = data.splits.filter((s) => s.name === only);
    if (data.splits.length === 0) throw new InvalidInputError(`no split ${JSON.stringify(only)} (give --${only} or use the builtin sets)`, { field: 'split' });
  }
  const tokenize = getTokenizer(data.tokenizer);
  const words = new Set<string>();
  for (const s of data.splits) collectWords(s.rows, tokenize, words);
  const vectors = str(args, 'vectors') === undefined ? defaultVectorsPath() : resolve(io.cwd, str(args, 'vectors') as string);
  const cacheDir = resolve(io.cwd, str(args, 'cache-dir') ?? io.env['CH8_CACHE_DIR'] ?? '.cache/embeddings');
  io.log(`pruning ${vectors} to ${words.size} words (cache ${cacheDir}) ...`);
  const { table, cacheHit, seconds } = await loadOrBuildTable({ source: vectors, words, cacheDir });
  io.log(`vocabulary: ${table.vocab.size} tokens (dim ${table.dim}), ${cacheHit ? 'from the cache' : 'built'} in ${seconds.toFixed(2)} s`);
  const vocab = table.vocab;
  const idOf = (t: string) => vocab.idOf(t);
  return {
    data,
    vectors,
    tokens: vocab.tokens,
    vocabHash: vocab.hash,
    dim: table.dim,
    matrix: table.matrix,
    cacheHit,
    splits: data.splits.map((s) => ({ name: s.name, ...prepareSplit(s.rows, { tokenize, idOf }) })),
  };
}

/** What a local preparation used: the fields `data stats` and `train` report. */
export function describePrepared(p: LocalPrepared) {
  return {
    source: p.data.source,
    tokenizer: formatTokenizerSpec(p.data.tokenizer),
    vectors: p.vectors,
    vocab_size: p.tokens.length,
    dim: p.dim,
    vocab_hash: p.vocabHash,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The service path (--addr)

async function prepareRemote(addr: string, args: Parsed, io: CommandIO): Promise<{ info: DatasetInfo; client: ReturnType<typeof createClient<typeof DatasetService>> }> {
  const tokenizer = tokenizerFlag(args);
  const files: Array<{ split: string; path: string }> = [];
  for (const split of ['train', 'dev']) {
    const p = str(args, split);
    if (p !== undefined) files.push({ split, path: resolve(io.cwd, p) });
  }
  const vectors = str(args, 'vectors');
  const client = createClient(DatasetService, addr);
  io.log(`preparing on the dataset service at ${addr} ...`);
  try {
    const res = await client.prepareDataset({
      source:
        files.length > 0
          ? { kind: { case: 'tabular', value: { files, textColumn: 'sentence', labelColumn: 'label' } } }
          : { kind: { case: 'builtin', value: {} } },
      tokenizer: tokenizer === undefined ? (files.length > 0 ? TokenizerKind.CHAPTER : TokenizerKind.UNSPECIFIED) : tokenizer.kind === 'chapter' ? TokenizerKind.CHAPTER : TokenizerKind.RAW,
      embedding: { source: vectors === undefined ? '' : resolve(io.cwd, vectors) },
    });
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
  lines.push('', `${'split'.padEnd(8)}${'rows'.padStart(9)}${'kept'.padStart(9)}${'dropped'.padStart(9)}${'tokens'.padStart(10)}${'OOV'.padStart(9)}  length min/p50/p95/max (mean)`);
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
  if (r.batch) lines.push('', `collated (${r.batch.input_ids.length} x ${r.batch.input_ids[0]?.length ?? 0}, longest first, PAD = 0):`, chapterBatch(r.batch));
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
          lengths: { min: s.lengths?.min ?? 0, max: s.lengths?.max ?? 0, mean: s.lengths?.mean ?? 0, p50: s.lengths?.p50 ?? 0, p95: s.lengths?.p95 ?? 0 },
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
          examples: res.examples.map((e) => ({ index: e.index, text: e.text, label: e.label, input_ids: [...e.inputIds], tokens: [...e.tokens] })),
        };
        if (bool(args, 'collate') && res.examples.length > 0) {
          // The first batch of an unshuffled epoch is exactly these examples, collated by the service.
          for await (const m of client.streamBatches({ datasetId: info.datasetId, split, batchSize: res.examples.length, shuffle: false })) {
            report.batch = batchReport(decodeBatch(m.arrowIpc));
            break;
          }
        }
      } finally {
        client.close();
      }
    } else {
      const p = await prepareLocal(args, io, split);
      const s = p.splits[0]!;
      const examples = s.examples.slice(0, n);
      report = {
        via: 'local',
        source: p.data.source,
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
