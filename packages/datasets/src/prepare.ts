/**
 * Problem 71: rows to examples. Tokenize, map tokens to ids, drop out-of-vocabulary tokens, drop examples left
 * empty, and count what happened.
 */
import { InvalidInputError } from '@ch8/errors';
import { getTokenizer, type TokenizerSpec } from '@ch8/tokenizer';

/** A model-ready example. */
export interface Example {
  text: string;
  /** 1.0 (positive) or 0.0 (negative): the `[1]` float label of the chapter. */
  label: number;
  /** Token ids, OOV tokens dropped; never empty. */
  inputIds: Int32Array;
  /** Position of the row in the input `rows` (0-based), so results map back to the source. */
  index: number;
}

export interface LengthStats {
  min: number;
  max: number;
  mean: number;
  p50: number;
  p95: number;
}

export interface SplitStats {
  /** Rows read. */
  rows: number;
  /** Examples kept (at least one known token). */
  kept: number;
  /** Rows dropped because no token was left after dropping OOV tokens (includes `noTokens`). */
  droppedEmpty: number;
  /** Rows whose text gave no token at all. */
  noTokens: number;
  /** Tokens produced by the tokenizer over all rows. */
  tokens: number;
  /** Of those, not in the vocabulary. */
  oovTokens: number;
  /** Distinct OOV token strings. */
  oovTypes: number;
  /** oovTokens / tokens (0 when there are no tokens). */
  oovRate: number;
  /** Token ids kept, over kept examples. */
  keptTokens: number;
  /** Lengths (ids) of kept examples; all 0 when none is kept. */
  length: LengthStats;
}

export interface PrepareOptions {
  tokenize: (text: string) => string[];
  /** Vocabulary lookup: a positive id, or undefined for an unknown token (0, the pad id, also counts as OOV). */
  idOf: (token: string) => number | undefined;
}

export interface PreparedSplit {
  examples: Example[];
  stats: SplitStats;
}

/**
 * The distinct tokens of `rows` in first-seen order: the words to ask the embedding service for. Pass `into` to
 * collect several splits into one set.
 */
export function collectWords(
  rows: Iterable<{ text: string }>,
  tokenize: (text: string) => string[],
  into: Set<string> = new Set(),
): Set<string> {
  for (const row of rows) for (const t of tokenize(row.text)) into.add(t);
  return into;
}

function lengthStats(histogram: number[], count: number, total: number): LengthStats {
  if (count === 0) return { min: 0, max: 0, mean: 0, p50: 0, p95: 0 };
  let min = -1;
  let max = 0;
  let p50 = -1;
  let p95 = -1;
  let seen = 0;
  // Nearest-rank percentiles.
  const r50 = Math.ceil(0.5 * count);
  const r95 = Math.ceil(0.95 * count);
  for (let len = 0; len < histogram.length; len++) {
    const c = histogram[len] ?? 0;
    if (c === 0) continue;
    if (min < 0) min = len;
    max = len;
    seen += c;
    if (p50 < 0 && seen >= r50) p50 = len;
    if (p95 < 0 && seen >= r95) p95 = len;
  }
  return { min, max, mean: total / count, p50, p95 };
}

/**
 * Rows to examples: `tokenize`, map with `idOf`, drop OOV tokens, drop rows left empty. The ids of all kept
 * examples share one buffer (each `inputIds` is a view into it). A label other than 0/1 -> InvalidInputError.
 */
export function prepareSplit(
  rows: ReadonlyArray<{ text: string; label: number }>,
  options: PrepareOptions,
): PreparedSplit {
  const { tokenize, idOf } = options;
  let ids = new Int32Array(Math.max(1024, rows.length * 16));
  let used = 0;
  const starts: number[] = [];
  const ends: number[] = [];
  const keptRows: number[] = [];
  const oov = new Set<string>();
  const histogram: number[] = [];
  let tokens = 0;
  let oovTokens = 0;
  let noTokens = 0;

  for (let r = 0; r < rows.length; r++) {
    const row = rows[r] as { text: string; label: number };
    if (row.label !== 0 && row.label !== 1) {
      throw new InvalidInputError(`label must be 0 or 1, got ${String(row.label)}`, { entry: r + 1, field: 'label' });
    }
    const toks = tokenize(row.text);
    tokens += toks.length;
    if (toks.length === 0) noTokens += 1;
    if (used + toks.length > ids.length) {
      const bigger = new Int32Array(Math.max(ids.length * 2, used + toks.length));
      bigger.set(ids.subarray(0, used));
      ids = bigger;
    }
    const start = used;
    for (const t of toks) {
      const id = idOf(t);
      if (id === undefined || id <= 0) {
        oovTokens += 1;
        oov.add(t);
      } else {
        ids[used++] = id;
      }
    }
    const len = used - start;
    if (len > 0) {
      starts.push(start);
      ends.push(used);
      keptRows.push(r);
      histogram[len] = (histogram[len] ?? 0) + 1;
    }
  }

  const examples: Example[] = new Array<Example>(keptRows.length);
  for (let k = 0; k < keptRows.length; k++) {
    const r = keptRows[k] as number;
    const row = rows[r] as { text: string; label: number };
    examples[k] = {
      text: row.text,
      label: row.label === 1 ? 1.0 : 0.0,
      inputIds: ids.subarray(starts[k], ends[k]),
      index: r,
    };
  }
  const kept = examples.length;
  return {
    examples,
    stats: {
      rows: rows.length,
      kept,
      droppedEmpty: rows.length - kept,
      noTokens,
      tokens,
      oovTokens,
      oovTypes: oov.size,
      oovRate: tokens === 0 ? 0 : oovTokens / tokens,
      keptTokens: used,
      length: lengthStats(histogram, kept, used),
    },
  };
}

/** A prepared split with its name. */
export interface NamedSplit extends PreparedSplit {
  name: string;
}

/**
 * Every split of a loaded data set to examples with one vocabulary (an `@ch8/embeddings` Vocabulary: its `idOf`),
 * under the data set's tokenizer: the mapping the dataset service and the in-process preparation share. Splits keep
 * their names and order. A tokenizer version this build lacks -> VocabularyMismatchError; a bad label ->
 * InvalidInputError.
 */
export function prepareSplits(
  dataset: {
    tokenizer: TokenizerSpec;
    splits: ReadonlyArray<{ name: string; rows: ReadonlyArray<{ text: string; label: number }> }>;
  },
  vocabulary: { idOf(token: string): number | undefined },
): NamedSplit[] {
  const tokenize = getTokenizer(dataset.tokenizer);
  const idOf = (t: string): number | undefined => vocabulary.idOf(t);
  return dataset.splits.map((s) => ({ name: s.name, ...prepareSplit(s.rows, { tokenize, idOf }) }));
}
