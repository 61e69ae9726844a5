/**
 * The one answer to "which data set": a `DatasetSpec` names SST-2 (a GLUE directory), the npm `sentiment` review
 * sets (the offline default) or labelled tabular files with any split names; `loadDataset` reads it into named
 * splits of labelled rows, with the tokenizer its text needs. The dataset service (after its data-root checks) and
 * the CLI both call it; `@ch8/datasets/proto` translates a PrepareDatasetRequest to a spec and back.
 */
import { InvalidInputError } from '@ch8/errors';
import { CHAPTER_TOKENIZER, RAW_TOKENIZER, getTokenizer, parseTokenizerSpec, type TokenizerSpec } from '@ch8/tokenizer';
import { readLabelled, type LabelledSourceOptions } from './labelled.ts';
import { collectWords } from './prepare.ts';
import type { LabelledRow } from './rows.ts';
import { FIXTURE_SOURCES, loadSentimentFixtures, type FixtureSource } from './sentiment-fixtures.ts';
import { readSst2Dir } from './sst2.ts';

export type { LabelledRow } from './rows.ts';
export type { FixtureSource } from './sentiment-fixtures.ts';

/** Formats of tabular files (JSON arrays are read too when the format is left to the file name, `.json`). */
export type TabularFormat = 'tsv' | 'csv' | 'jsonl';
export const TABULAR_FORMATS: readonly TabularFormat[] = ['tsv', 'csv', 'jsonl'];

/** One file of a tabular data set and the split it holds. */
export interface TabularFile {
  /** Split name: 1-64 letters, digits, `_`, `.` or `-`; unique within the data set. */
  split: string;
  path: string;
}

export type DatasetSpec =
  /** GLUE SST-2: `dir/train.tsv` and `dir/dev.tsv` (header `sentence<TAB>label`); splits train, dev. */
  | { kind: 'sst2'; dir: string; tokenizer?: TokenizerSpec }
  /**
   * The npm `sentiment` review sets (amazon, imdb, yelp), split train/dev/test by `seed` (default 0; see
   * `@ch8/datasets/sentiment-fixtures`). `sets`: which ones (default, or empty: all three).
   */
  | { kind: 'builtin'; sets?: readonly FixtureSource[]; seed?: number; tokenizer?: TokenizerSpec }
  /**
   * Labelled files, one per split, splits in the order given. `format`: default from each file's extension;
   * `textColumn` / `labelColumn`: default `text` / `label`; labels 0/1.
   */
  | {
      kind: 'tabular';
      files: readonly TabularFile[];
      format?: TabularFormat;
      textColumn?: string;
      labelColumn?: string;
      tokenizer?: TokenizerSpec;
    };

export type DatasetKind = DatasetSpec['kind'];

/** The data set of an empty request: the builtin review sets with split seed 0 (needs no download). */
export const DEFAULT_DATASET: Readonly<DatasetSpec> = Object.freeze({ kind: 'builtin' });

export interface DatasetSplit {
  name: string;
  rows: LabelledRow[];
}

export interface LoadedDataset {
  kind: DatasetKind;
  /** Human-readable: what was read (paths, sets, seed). */
  description: string;
  /** The tokenizer to prepare this data with (and to record in models trained on it): the spec's, else the kind's. */
  tokenizer: TokenizerSpec;
  /** Named splits, in order: sst2 train, dev; builtin train, dev, test; tabular as the files are given. */
  splits: DatasetSplit[];
}

const SPLIT_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

function bad(message: string, field: string): InvalidInputError {
  return new InvalidInputError(message, { field });
}

function checkPath(path: unknown, field: string): void {
  if (typeof path !== 'string' || path.trim() === '') throw bad('path is empty', field);
  if (path.includes('\0')) throw bad('path contains a NUL byte', field);
}

/** The tokenizer a spec asks for, or its kind's default (chapter for SST-2, raw otherwise). */
export function tokenizerOf(spec: DatasetSpec): TokenizerSpec {
  if (spec.tokenizer !== undefined) return parseTokenizerSpec(spec.tokenizer);
  return { ...(spec.kind === 'sst2' ? CHAPTER_TOKENIZER : RAW_TOKENIZER) };
}

/**
 * Checks a spec without touching the file system: a known kind, non-empty paths, split names (1-64 of
 * `[A-Za-z0-9_.-]`, unique, at least one file), known builtin sets, a safe-integer seed, a known format, non-empty
 * column names, a valid tokenizer. Any problem -> InvalidInputError naming the spec's field (`kind`, `dir`, `sets`,
 * `seed`, `files`, `files.split`, `files.path`, `format`, `textColumn`, `labelColumn`, `tokenizer.*`).
 */
export function checkDatasetSpec(spec: DatasetSpec): void {
  if (typeof spec !== 'object' || spec === null) throw bad('a data set spec must be an object', 'kind');
  switch (spec.kind) {
    case 'sst2':
      checkPath(spec.dir, 'dir');
      break;
    case 'builtin':
      for (const s of spec.sets ?? []) {
        if (!(FIXTURE_SOURCES as readonly string[]).includes(s)) {
          throw bad(`unknown builtin set ${JSON.stringify(s)} (expected ${FIXTURE_SOURCES.join(', ')})`, 'sets');
        }
      }
      if (spec.seed !== undefined && !Number.isSafeInteger(spec.seed))
        throw bad(`seed must be an integer, got ${spec.seed}`, 'seed');
      break;
    case 'tabular': {
      if (!Array.isArray(spec.files) || spec.files.length === 0)
        throw bad('a tabular data set needs at least one file', 'files');
      const seen = new Set<string>();
      for (const f of spec.files) {
        if (typeof f.split !== 'string' || !SPLIT_NAME.test(f.split)) {
          throw bad(
            `split name ${JSON.stringify(f.split)} must be 1-64 letters, digits, '_', '.' or '-'`,
            'files.split',
          );
        }
        if (seen.has(f.split)) throw bad(`split ${JSON.stringify(f.split)} is named twice`, 'files.split');
        seen.add(f.split);
        checkPath(f.path, 'files.path');
      }
      if (spec.format !== undefined && !TABULAR_FORMATS.includes(spec.format)) {
        throw bad(`unknown format ${JSON.stringify(spec.format)} (expected ${TABULAR_FORMATS.join(', ')})`, 'format');
      }
      if (spec.textColumn !== undefined && spec.textColumn === '')
        throw bad('the text column name is empty', 'textColumn');
      if (spec.labelColumn !== undefined && spec.labelColumn === '')
        throw bad('the label column name is empty', 'labelColumn');
      break;
    }
    default:
      throw bad(
        `unknown data set kind ${JSON.stringify((spec as { kind?: unknown }).kind)} (expected sst2, builtin or tabular)`,
        'kind',
      );
  }
  tokenizerOf(spec);
}

/**
 * Reads the data set a spec names (default: the builtin review sets, seed 0). A bad spec -> InvalidInputError (see
 * `checkDatasetSpec`); file problems as the readers throw them: a missing file NotFoundError, a malformed one
 * InvalidInputError with file, line and field. Paths are used as given (relative ones against the process's working
 * directory): a caller that must confine them (the dataset service) resolves and checks them first.
 */
export async function loadDataset(spec: DatasetSpec = DEFAULT_DATASET): Promise<LoadedDataset> {
  checkDatasetSpec(spec);
  const tokenizer = tokenizerOf(spec);
  switch (spec.kind) {
    case 'sst2': {
      const { train, dev } = await readSst2Dir(spec.dir);
      return {
        kind: 'sst2',
        description: `SST-2 (GLUE) at ${spec.dir}`,
        tokenizer,
        splits: [
          { name: 'train', rows: train },
          { name: 'dev', rows: dev },
        ],
      };
    }
    case 'builtin': {
      const sets = spec.sets ?? [];
      const f = await loadSentimentFixtures({ seed: spec.seed ?? 0, ...(sets.length > 0 ? { sources: sets } : {}) });
      const plain = (rows: readonly LabelledRow[]): LabelledRow[] => rows.map(({ text, label }) => ({ text, label }));
      return {
        kind: 'builtin',
        description: `npm sentiment review sets (${f.info.sources.join(', ')}), split seed ${f.info.seed}`,
        tokenizer,
        splits: [
          { name: 'train', rows: plain(f.train) },
          { name: 'dev', rows: plain(f.dev) },
          { name: 'test', rows: plain(f.test) },
        ],
      };
    }
    case 'tabular': {
      const options: LabelledSourceOptions = {
        ...(spec.format === undefined ? {} : { format: spec.format }),
        ...(spec.textColumn === undefined ? {} : { textField: spec.textColumn }),
        ...(spec.labelColumn === undefined ? {} : { labelField: spec.labelColumn }),
      };
      const rows = await Promise.all(spec.files.map((f) => readLabelled(f.path, options)));
      return {
        kind: 'tabular',
        description: `files ${spec.files.map((f) => `${f.split}=${f.path}`).join(', ')}`,
        tokenizer,
        splits: spec.files.map((f, i) => ({ name: f.split, rows: rows[i] as LabelledRow[] })),
      };
    }
  }
}

/**
 * The distinct tokens of every split under the data set's tokenizer, sorted (UTF-16 code unit order): the words
 * to prune the vectors to. The pruned vocabulary is in the vector source's order whatever order the words come in;
 * one list keeps the service's request and the in-process preparation byte-identical all the same.
 */
export function datasetWords(dataset: Pick<LoadedDataset, 'tokenizer' | 'splits'>): string[] {
  const tokenize = getTokenizer(dataset.tokenizer);
  const words = new Set<string>();
  for (const s of dataset.splits) collectWords(s.rows, tokenize, words);
  return [...words].sort();
}
