/**
 * A request's DataSource to labelled rows per split, with the tokenizer the text needs: SST-2 directories, generic
 * tabular files, and the npm `sentiment` review sets (the default). Paths are checked against the data roots.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { TabularFormat, TokenizerKind, type DataSource } from '@ch8/contracts/dataset';
import { readLabelled, type LabelledFormat } from '@ch8/datasets/labelled';
import { FIXTURE_SOURCES, loadSentimentFixtures, type FixtureSource } from '@ch8/datasets/sentiment-fixtures';
import { readSst2Tsv } from '@ch8/datasets/sst2';
import type { LabelledRow } from '@ch8/datasets/sst2';
import { InvalidInputError } from '@ch8/errors';
import { CHAPTER_TOKENIZER, RAW_TOKENIZER, type TokenizerSpec } from '@ch8/tokenizer';
import { resolveDataPath } from './paths.ts';

export interface SourceSplit {
  name: string;
  rows: LabelledRow[];
}

export interface LoadedSource {
  /** "sst2", "tabular" or "builtin". */
  kind: string;
  description: string;
  tokenizer: TokenizerSpec;
  splits: SourceSplit[];
}

const SPLIT_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

function tokenizerOf(kind: TokenizerKind, fallback: Readonly<TokenizerSpec>): TokenizerSpec {
  switch (kind) {
    case TokenizerKind.UNSPECIFIED:
      return { ...fallback };
    case TokenizerKind.CHAPTER:
      return { ...CHAPTER_TOKENIZER };
    case TokenizerKind.RAW:
      return { ...RAW_TOKENIZER };
    default:
      throw new InvalidInputError(`unknown tokenizer ${String(kind)}`, { field: 'tokenizer' });
  }
}

const FORMATS: Record<number, LabelledFormat | undefined> = {
  [TabularFormat.UNSPECIFIED]: undefined,
  [TabularFormat.TSV]: 'tsv',
  [TabularFormat.CSV]: 'csv',
  [TabularFormat.JSONL]: 'jsonl',
};

/** Reads the rows a source names. File errors as @ch8/datasets throws them (file + line); paths outside the roots -> PermissionDeniedError. */
export async function loadSource(source: DataSource | undefined, tokenizer: TokenizerKind, roots: readonly string[]): Promise<LoadedSource> {
  const kind = source?.kind ?? { case: undefined };
  switch (kind.case) {
    case 'sst2': {
      const dir = await resolveDataPath(kind.value.dir, roots, 'source.sst2.dir');
      const [train, dev] = await Promise.all([readSst2Tsv(join(dir, 'train.tsv')), readSst2Tsv(join(dir, 'dev.tsv'))]);
      return {
        kind: 'sst2',
        description: `SST-2 (GLUE) at ${kind.value.dir}`,
        tokenizer: tokenizerOf(tokenizer, CHAPTER_TOKENIZER),
        splits: [
          { name: 'train', rows: train },
          { name: 'dev', rows: dev },
        ],
      };
    }
    case 'tabular': {
      const t = kind.value;
      if (t.files.length === 0) throw new InvalidInputError('a tabular source needs at least one file', { field: 'source.tabular.files' });
      if (!(t.format in FORMATS)) throw new InvalidInputError(`unknown tabular format ${String(t.format)}`, { field: 'source.tabular.format' });
      const seen = new Set<string>();
      for (const f of t.files) {
        if (!SPLIT_NAME.test(f.split)) {
          throw new InvalidInputError(`split name ${JSON.stringify(f.split)} must be 1-64 letters, digits, '_', '.' or '-'`, { field: 'source.tabular.files.split' });
        }
        if (seen.has(f.split)) throw new InvalidInputError(`split ${JSON.stringify(f.split)} is named twice`, { field: 'source.tabular.files.split' });
        seen.add(f.split);
      }
      const paths = await Promise.all(t.files.map((f) => resolveDataPath(f.path, roots, 'source.tabular.files.path')));
      const format = FORMATS[t.format];
      const options = {
        ...(format === undefined ? {} : { format }),
        ...(t.textColumn === '' ? {} : { textField: t.textColumn }),
        ...(t.labelColumn === '' ? {} : { labelField: t.labelColumn }),
      };
      const rows = await Promise.all(paths.map((p) => readLabelled(p, options)));
      return {
        kind: 'tabular',
        description: `files ${t.files.map((f) => `${f.split}=${f.path}`).join(', ')}`,
        tokenizer: tokenizerOf(tokenizer, RAW_TOKENIZER),
        splits: t.files.map((f, i) => ({ name: f.split, rows: rows[i] as LabelledRow[] })),
      };
    }
    case 'builtin':
    case undefined: {
      const sets = kind.case === 'builtin' ? kind.value.sets : [];
      for (const s of sets) {
        if (!(FIXTURE_SOURCES as readonly string[]).includes(s)) {
          throw new InvalidInputError(`unknown builtin set ${JSON.stringify(s)} (expected ${FIXTURE_SOURCES.join(', ')})`, { field: 'source.builtin.sets' });
        }
      }
      const seed = kind.case === 'builtin' ? kind.value.splitSeed : 0;
      const f = await loadSentimentFixtures({ seed, ...(sets.length > 0 ? { sources: sets as FixtureSource[] } : {}) });
      const plain = (rows: readonly LabelledRow[]) => rows.map(({ text, label }) => ({ text, label }));
      return {
        kind: 'builtin',
        description: `npm sentiment review sets (${f.info.sources.join(', ')}), split seed ${f.info.seed}`,
        tokenizer: tokenizerOf(tokenizer, RAW_TOKENIZER),
        splits: [
          { name: 'train', rows: plain(f.train) },
          { name: 'dev', rows: plain(f.dev) },
          { name: 'test', rows: plain(f.test) },
        ],
      };
    }
    default:
      throw new InvalidInputError('unknown data source kind', { field: 'source' });
  }
}

/** A hash of the rows themselves (split names, labels, texts): the source's identity, however it was named. */
export function contentHash(splits: readonly SourceSplit[]): string {
  const h = createHash('sha256');
  for (const s of splits) {
    h.update(`split\0${s.name}\0${s.rows.length}\0`);
    for (const r of s.rows) h.update(`${r.label}\0${r.text}\n`);
  }
  return h.digest('hex');
}
