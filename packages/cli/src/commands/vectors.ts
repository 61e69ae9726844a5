/**
 * `ch8 vectors prune` and `ch8 vectors lookup` (problem 70): prune a vector source to the words of TSV data sets and
 * write the table file, look tokens up in it. In-process by default; with --addr the same work goes to a running
 * embedding service (prune -> LoadTable with the words, lookup -> Lookup on --table-id).
 */
import { stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { EmbeddingService, VectorFormat as ProtoFormat, type TableInfo } from '@ch8/contracts/embedding';
import { InvalidInputError } from '@ch8/errors';
import { VECTOR_FORMATS, type VectorFormat } from '@ch8/embeddings/format';
import { assembleMatrix } from '@ch8/embeddings/matrix-stream';
import { defaultVectorsPath, pruneVectors, type Progress } from '@ch8/embeddings/prune';
import { lookupReport, pruneReport, type LookupEntry, type PruneReport } from '@ch8/embeddings/report';
import type { EmbeddingTable } from '@ch8/embeddings/table';
import { readTable, writeTable } from '@ch8/embeddings/table-file';
import { Vocabulary } from '@ch8/embeddings/vocabulary';
import { wordsFromTsv } from '@ch8/embeddings/words';
import { createClient, type Client } from '@ch8/service-kit/client';
import { bool, list, str } from '../args.ts';
import type { Command, CommandIO } from '../command.ts';

/** The file `vectors prune` writes into --out (the @ch8/embeddings table file format, `CH8EMBT1`). */
export const TABLE_FILE = 'table.ch8emb';

const PROTO_FORMAT: Record<VectorFormat, ProtoFormat> = {
  'word2vec-binary': ProtoFormat.WORD2VEC_BINARY,
  'word2vec-text': ProtoFormat.WORD2VEC_TEXT,
  'fasttext-vec': ProtoFormat.FASTTEXT_VEC,
  'glove-text': ProtoFormat.GLOVE_TEXT,
  'wink-json': ProtoFormat.WINK_JSON,
};
const LIBRARY_FORMAT = new Map<ProtoFormat, VectorFormat>(
  Object.entries(PROTO_FORMAT).map(([l, p]) => [p, l as VectorFormat]),
);

function formatFlag(value: string | undefined): VectorFormat | undefined {
  if (value === undefined) return undefined;
  if (!(VECTOR_FORMATS as readonly string[]).includes(value)) {
    throw new InvalidInputError(`--format must be one of ${VECTOR_FORMATS.join(', ')}, got ${JSON.stringify(value)}`, {
      field: 'format',
    });
  }
  return value as VectorFormat;
}

async function connect(addr: string, io: CommandIO): Promise<Client<typeof EmbeddingService>> {
  const client = createClient(EmbeddingService, addr);
  io.log(`connecting to the embedding service at ${addr}`);
  try {
    await client.waitForReady(10_000);
  } catch (e) {
    client.close();
    throw e;
  }
  return client;
}

/** A progress logger that prints at most about once a second. */
function progressLog(io: CommandIO, what: string): (p: Progress) => void {
  let last = 0;
  return (p) => {
    const now = performance.now();
    if (now - last < 1000 && p.bytesRead < p.fileBytes) return;
    last = now;
    const pct = p.fileBytes > 0 ? ((100 * p.bytesRead) / p.fileBytes).toFixed(1) : '100.0';
    io.log(`${what}: ${pct}% (${(p.bytesRead / 2 ** 20).toFixed(1)} MiB, ${p.entries} entries)`);
  };
}

/** What `vectors prune` prints: the library's report, plus where the table went. */
export interface PruneResult extends PruneReport {
  /** The table file written (absent with --addr and no --out). */
  table_file: string | null;
  /** The service's table id (with --addr). */
  table_id?: string;
}

function humanPrune(r: PruneResult): string {
  const lines = [
    `source      ${r.source} (${r.format})`,
    `words       ${r.requested ?? 'all'} requested, ${r.found} found, ${r.missing} missing${r.missing_sample.length > 0 ? ` (e.g. ${r.missing_sample.slice(0, 8).join(' ')})` : ''}`,
    `table       ${r.vocab_size} x ${r.dim} (<pad> = id 0), vocab hash ${r.vocab_hash.slice(0, 16)}`,
    `read        ${(r.bytes_read / 2 ** 20).toFixed(1)} MiB in ${r.seconds.toFixed(2)} s, peak RSS ${(r.peak_rss_bytes / 2 ** 20).toFixed(0)} MiB`,
  ];
  if (r.duplicates > 0 || r.invalid_utf8 > 0)
    lines.push(`skipped     ${r.duplicates} duplicate entries, ${r.invalid_utf8} words not valid UTF-8`);
  if (r.table_id !== undefined) lines.push(`table id    ${r.table_id}${r.cache_hit ? ' (cached)' : ''}`);
  if (r.table_file !== null) lines.push(`written     ${r.table_file}`);
  return lines.join('\n');
}

const peakRss = () => process.resourceUsage().maxRSS * 1024;

/** The pruned table the service holds, fetched into memory (vocabulary + streamed matrix). */
async function fetchTable(client: Client<typeof EmbeddingService>, info: TableInfo): Promise<EmbeddingTable> {
  const vocab = await client.getVocabulary({ tableId: info.tableId });
  const { matrix, vocabSize, dim } = await assembleMatrix(client.streamMatrix({ tableId: info.tableId }));
  if (vocabSize !== info.vocabSize || dim !== info.dim || vocab.tokens.length !== info.vocabSize) {
    throw new InvalidInputError(
      `the service sent ${vocabSize} x ${dim} rows and ${vocab.tokens.length} tokens for ${info.vocabSize} x ${info.dim}`,
      { field: 'matrix' },
    );
  }
  const cov = info.coverage;
  const fmt = LIBRARY_FORMAT.get(info.format);
  return {
    vocab: new Vocabulary(vocab.tokens, info.dim),
    dim: info.dim,
    matrix,
    source: info.source,
    format: fmt ?? 'memory',
    gzip: false,
    stats: {
      requested: Number(cov?.requested ?? 0),
      found: Number(cov?.found ?? 0),
      missing: Number(cov?.missing ?? 0),
      missingSample: cov?.missingSample ?? [],
      duplicates: Number(cov?.duplicates ?? 0),
      invalidUtf8: Number(cov?.invalidUtf8 ?? 0),
      entries: 0,
      bytesRead: Number(info.bytesRead),
      fileBytes: 0,
      seconds: info.loadSeconds,
    },
  };
}

export const vectorsPruneCommand: Command = {
  name: 'vectors prune',
  summary: 'prune a vector source to the words of TSV data sets and write the table (problem 70)',
  problems: [70],
  usage:
    'ch8 vectors prune --source FILE --words-from TSV [TSV...] --out DIR [--all] [--format F] [--addr HOST:PORT] [--json]',
  flags: {
    source: {
      type: 'string',
      help: 'vector file (word2vec bin/text, GloVe, fastText .vec, wink JSON, .gz); default: the wink GloVe 100-d JSON',
    },
    'words-from': { type: 'string', multiple: true, help: 'GLUE TSVs whose sentence column gives the words to keep' },
    all: { type: 'boolean', help: 'keep every word of the source instead' },
    out: {
      type: 'string',
      help: `folder to write ${TABLE_FILE} into (required in-process; with --addr, also fetches the table)`,
    },
    format: { type: 'string', help: `skip detection: ${VECTOR_FORMATS.join(', ')}` },
    addr: {
      type: 'string',
      help: 'send the work to the embedding service at HOST:PORT (--source is then a path on its data roots)',
    },
    json: { type: 'boolean', help: 'one JSON document on standard output' },
  },
  async run(args, io) {
    const all = bool(args, 'all');
    const from = list(args, 'words-from');
    const out = str(args, 'out');
    const addr = str(args, 'addr');
    const format = formatFlag(str(args, 'format'));
    const src = str(args, 'source');
    if (args.positionals.length > 0)
      throw new InvalidInputError(`unexpected argument ${JSON.stringify(args.positionals[0])}`);
    if (all === from.length > 0)
      throw new InvalidInputError('give either --words-from TSV... or --all', { field: 'words-from' });
    if (out === undefined && addr === undefined) throw new InvalidInputError('--out DIR is required', { field: 'out' });
    const t0 = performance.now();
    let words: Set<string> | null = null;
    if (!all) {
      words = await wordsFromTsv(from.map((p) => resolve(io.cwd, p)));
      io.log(`${words.size} distinct words from ${from.length} file(s)`);
    }
    const outDir = out === undefined ? undefined : resolve(io.cwd, out);
    const tableFile = outDir === undefined ? null : join(outDir, TABLE_FILE);

    if (addr !== undefined) {
      const client = await connect(addr, io);
      try {
        io.log(
          `LoadTable ${src ?? '(the service default source)'}${words === null ? ' keeping every word' : ` for ${words.size} words`}`,
        );
        const res = await client.loadTable({
          source: src ?? '',
          format: format === undefined ? ProtoFormat.UNSPECIFIED : PROTO_FORMAT[format],
          words: words === null ? [] : [...words],
          keepAll: all,
        });
        const info = res.table;
        if (info === undefined) throw new InvalidInputError('the service answered without a table', { field: 'table' });
        const table = await fetchTable(client, info).then(async (t) => {
          if (tableFile !== null) {
            io.log(`writing ${tableFile}`);
            await writeTable(tableFile, t);
          }
          return t;
        });
        const report: PruneResult = {
          ...pruneReport(table, {
            seconds: (performance.now() - t0) / 1000,
            peakRssBytes: peakRss(),
            cacheHit: info.cacheHit,
          }),
          requested: words === null ? null : Number(info.coverage?.requested ?? 0),
          format: table.format,
          table_file: tableFile,
          table_id: info.tableId,
        };
        io.result(report, humanPrune);
        return 0;
      } finally {
        client.close();
      }
    }

    const source = src === undefined ? defaultVectorsPath() : resolve(io.cwd, src);
    io.log(`pruning ${source}${words === null ? ' (keeping every word)' : ''}`);
    const table = await pruneVectors({
      source,
      words,
      ...(format !== undefined ? { format } : {}),
      onProgress: progressLog(io, 'read'),
    });
    io.log(`writing ${tableFile}`);
    await writeTable(tableFile as string, table);
    const report: PruneResult = {
      ...pruneReport(table, { seconds: (performance.now() - t0) / 1000, peakRssBytes: peakRss() }),
      table_file: tableFile,
    };
    io.result(report, humanPrune);
    return 0;
  },
};

function humanLookup(v: { tokens: LookupEntry[] }): string {
  return v.tokens
    .map((t) => `${t.token}\t${t.id ?? 'OOV'}${t.vector === null ? '' : `\t${t.vector.join(' ')}`}`)
    .join('\n');
}

export const vectorsLookupCommand: Command = {
  name: 'vectors lookup',
  summary: 'ids and vectors of tokens in a pruned table (OOV: id null) (problem 70)',
  problems: [70],
  usage:
    'ch8 vectors lookup --table DIR [--json] WORD...   |   ch8 vectors lookup --addr HOST:PORT --table-id ID [--json] WORD...',
  flags: {
    table: { type: 'string', help: `folder written by vectors prune (or the ${TABLE_FILE} file itself)` },
    addr: { type: 'string', help: 'ask the embedding service at HOST:PORT instead' },
    'table-id': { type: 'string', help: 'with --addr: the table id LoadTable returned' },
    json: { type: 'boolean', help: 'one JSON document on standard output' },
  },
  async run(args, io) {
    const tokens = args.positionals;
    if (tokens.length === 0) throw new InvalidInputError('give at least one WORD to look up', { field: 'words' });
    const addr = str(args, 'addr');
    if (addr !== undefined) {
      const tableId = str(args, 'table-id');
      if (tableId === undefined)
        throw new InvalidInputError('--table-id is required with --addr', { field: 'table-id' });
      const client = await connect(addr, io);
      try {
        const { entries } = await client.lookup({ tableId, tokens, includeVectors: true });
        const report = {
          tokens: entries.map(
            (e): LookupEntry => ({ token: e.token, id: e.id ?? null, vector: e.id === undefined ? null : e.vector }),
          ),
        };
        io.result(report, humanLookup);
        return 0;
      } finally {
        client.close();
      }
    }
    const given = str(args, 'table');
    if (given === undefined)
      throw new InvalidInputError('--table DIR (or --addr with --table-id) is required', { field: 'table' });
    let file = resolve(io.cwd, given);
    const st = await stat(file).catch(() => undefined);
    if (st?.isDirectory() === true) file = join(file, TABLE_FILE);
    io.log(`reading ${file}`);
    const { table } = await readTable(file);
    io.result(lookupReport(table, tokens), humanLookup);
    return 0;
  },
};
