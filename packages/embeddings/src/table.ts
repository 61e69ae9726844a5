/**
 * The embedding table E (|V| x d): the vocabulary, the row-major float32 matrix with row 0 = `<pad>` zeros, and how
 * it was built.
 */
import { InvalidInputError } from '@ch8/errors';
import type { VectorFormat } from './format.ts';
import { PAD_TOKEN, Vocabulary } from './vocabulary.ts';

/** What one pass over a vector source found. */
export interface PruneStats {
  /** Distinct words asked for; null when every word of the source was kept. */
  requested: number | null;
  /** Words kept (rows without `<pad>`). */
  found: number;
  /** Requested words the source lacks (0 when keeping all). */
  missing: number;
  /** The first (up to 20) missing words in sorted order. */
  missingSample: string[];
  /**
   * Entries dropped because their word occurred earlier in the source (first occurrence wins). When pruning, only
   * repeats of requested words are noticed; when keeping all, every repeat.
   */
  duplicates: number;
  /** Entries whose word was not valid UTF-8 (decoded with U+FFFD replacement characters, not an error). */
  invalidUtf8: number;
  /** Entries scanned. */
  entries: number;
  /** Bytes of the file read (compressed bytes for gzip); equals fileBytes when read to the end. */
  bytesRead: number;
  /** Size of the file. */
  fileBytes: number;
  /** Wall time of the pass. */
  seconds: number;
}

/** A pruned embedding table. */
export interface EmbeddingTable {
  vocab: Vocabulary;
  /** Vector width d. */
  dim: number;
  /** |V| * d values, row-major; row i is the vector of vocab.tokenOf(i); row 0 (`<pad>`) is all zeros. */
  matrix: Float32Array;
  /** Where the vectors came from (a path, or a label for in-memory tables). */
  source: string;
  format: VectorFormat | 'memory';
  gzip: boolean;
  stats: PruneStats;
}

/** The vector of a token (a view into the matrix, not a copy), or undefined when the vocabulary lacks it. */
export function vectorOf(table: EmbeddingTable, token: string): Float32Array | undefined {
  const id = table.vocab.idOf(token);
  return id === undefined ? undefined : rowOf(table, id);
}

/** Row `id` of the matrix (a view). @throws InvalidInputError for an id outside [0, |V|). */
export function rowOf(table: EmbeddingTable, id: number): Float32Array {
  if (!Number.isInteger(id) || id < 0 || id >= table.vocab.size) {
    throw new InvalidInputError(`id ${id} is outside [0, ${table.vocab.size})`, { field: 'id' });
  }
  return table.matrix.subarray(id * table.dim, (id + 1) * table.dim);
}

/**
 * Builds a table in memory from words and their vectors (for tests and small fixtures): `<pad>` gets id 0 and a zero
 * row, word i gets id i + 1.
 *
 * @throws InvalidInputError when a vector's width differs, a word repeats, or there are no words to infer d from and
 *   no dim is given.
 */
export function makeTable(
  entries: Iterable<readonly [string, ArrayLike<number>]>,
  dim?: number,
  source = 'memory',
): EmbeddingTable {
  const list = [...entries];
  const d = dim ?? list[0]?.[1].length;
  if (d === undefined || d < 1) throw new InvalidInputError('no vectors to infer the width from', { field: 'dim' });
  const matrix = new Float32Array((list.length + 1) * d);
  list.forEach(([word, v], i) => {
    if (v.length !== d) {
      throw new InvalidInputError(`vector of "${word}" has ${v.length} values, expected ${d}`, { entry: i + 1 });
    }
    matrix.set(Array.from(v), (i + 1) * d);
  });
  const vocab = new Vocabulary([PAD_TOKEN, ...list.map(([w]) => w)], d);
  return {
    vocab,
    dim: d,
    matrix,
    source,
    format: 'memory',
    gzip: false,
    stats: {
      requested: null,
      found: list.length,
      missing: 0,
      missingSample: [],
      duplicates: 0,
      invalidUtf8: 0,
      entries: list.length,
      bytesRead: 0,
      fileBytes: 0,
      seconds: 0,
    },
  };
}
