/**
 * One entry point for "which data set": SST-2 from a GLUE directory, the npm `sentiment` fixtures (the offline
 * default), or labelled files; each with the tokenizer its text needs.
 */
import { CHAPTER_TOKENIZER, RAW_TOKENIZER, parseTokenizerSpec, type TokenizerSpec } from '@ch8/tokenizer';
import { InvalidInputError } from '@ch8/errors';
import { readLabelled, type LabelledSourceOptions } from './labelled.ts';
import { loadSentimentFixtures, type FixtureSplitOptions } from './sentiment-fixtures.ts';
import { readSst2Dir } from './sst2.ts';
import type { LabelledRow } from './rows.ts';

export type DatasetSpec =
  /** GLUE SST-2: `dir/train.tsv`, `dir/dev.tsv`; already tokenized text (chapter tokenizer). */
  | { kind: 'sst2'; dir: string }
  /** npm `sentiment` fixtures, split train/dev/test by seed; raw text (raw tokenizer). */
  | ({ kind: 'sentiment-fixtures' } & FixtureSplitOptions)
  /** Labelled files (TSV/CSV/JSONL/JSON); raw text unless `tokenizer` says otherwise. */
  | {
      kind: 'files';
      train: string;
      dev: string;
      test?: string;
      options?: LabelledSourceOptions;
      tokenizer?: TokenizerSpec;
    };

export interface LoadedDataset {
  /** "sst2", "sentiment-fixtures" or "files". */
  kind: DatasetSpec['kind'];
  /** Human-readable description (paths, seed). */
  description: string;
  /** The tokenizer to prepare this data (and to record in models trained on it). */
  tokenizer: TokenizerSpec;
  train: LabelledRow[];
  dev: LabelledRow[];
  /** Only where the source has one. */
  test?: LabelledRow[];
}

/**
 * Load a data set. Without a spec: the npm `sentiment` fixtures with seed 0 (needs no download).
 * Unknown kind -> InvalidInputError (field `dataset.kind`); file errors as the readers throw them.
 */
export async function loadDataset(spec: DatasetSpec = { kind: 'sentiment-fixtures' }): Promise<LoadedDataset> {
  switch (spec.kind) {
    case 'sst2': {
      const { train, dev } = await readSst2Dir(spec.dir);
      return { kind: 'sst2', description: `SST-2 (GLUE) at ${spec.dir}`, tokenizer: { ...CHAPTER_TOKENIZER }, train, dev };
    }
    case 'sentiment-fixtures': {
      const { kind: _kind, ...options } = spec;
      const s = await loadSentimentFixtures(options);
      return {
        kind: 'sentiment-fixtures',
        description: `npm sentiment fixtures (${s.info.sources.join(', ')}), seed ${s.info.seed}`,
        tokenizer: { ...RAW_TOKENIZER },
        train: s.train.map(({ text, label }) => ({ text, label })),
        dev: s.dev.map(({ text, label }) => ({ text, label })),
        test: s.test.map(({ text, label }) => ({ text, label })),
      };
    }
    case 'files': {
      const tokenizer = spec.tokenizer === undefined ? { ...RAW_TOKENIZER } : parseTokenizerSpec(spec.tokenizer);
      const [train, dev, test] = await Promise.all([
        readLabelled(spec.train, spec.options),
        readLabelled(spec.dev, spec.options),
        spec.test === undefined ? undefined : readLabelled(spec.test, spec.options),
      ]);
      const loaded: LoadedDataset = {
        kind: 'files',
        description: `files ${[spec.train, spec.dev, spec.test].filter((p) => p !== undefined).join(', ')}`,
        tokenizer,
        train,
        dev,
      };
      if (test !== undefined) loaded.test = test;
      return loaded;
    }
    default:
      throw new InvalidInputError(`unknown data set kind ${JSON.stringify((spec as { kind?: unknown }).kind)}`, {
        field: 'dataset.kind',
      });
  }
}
