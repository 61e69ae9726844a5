/**
 * The vocabulary of an embedding table: id 0 is `<pad>`, ids 1.. are the kept words in source order.
 */
import { createHash } from 'node:crypto';
import { InvalidInputError } from '@ch8/errors';

/** The padding token; always id 0, its row of the matrix is all zeros. */
export const PAD_TOKEN = '<pad>';
/** The id of {@link PAD_TOKEN}. */
export const PAD_ID = 0;

/** Module-private: only {@link Vocabulary.trusted} builds a vocabulary with a lazy index. */
const LAZY: unique symbol = Symbol('lazy');

/**
 * Token <-> id maps, both ways, plus a content hash.
 *
 * `tokens[i]` is the token of id `i`; `tokens[0]` is always `<pad>`. Tokens are unique.
 */
export class Vocabulary {
  /** Tokens in id order, `<pad>` first. */
  readonly tokens: readonly string[];
  /** Width of the vectors the ids refer to; part of the hash. */
  readonly dim: number;
  #ids: Map<string, number> | undefined;
  #hash: string | undefined;

  /**
   * @param tokens tokens in id order; `tokens[0]` must be `<pad>` and no token may repeat.
   * @param dim vector width of the table this vocabulary indexes (a positive integer).
   * @throws InvalidInputError when `<pad>` is not first, a token repeats, or dim is not a positive integer.
   */
  constructor(tokens: readonly string[], dim: number, lazy?: typeof LAZY) {
    this.tokens = tokens;
    this.dim = dim;
    this.#ids = lazy === LAZY ? undefined : Vocabulary.#index(tokens, dim);
  }

  /**
   * A vocabulary over tokens already known to be valid (read back from a checksummed table file): the token -> id
   * index is built on the first lookup instead of now, so loading a table does not pay for it. `<pad>` first and dim
   * are checked now; a repeated token surfaces as InvalidInputError on the first lookup.
   */
  static trusted(tokens: readonly string[], dim: number): Vocabulary {
    Vocabulary.#index(tokens.slice(0, 1), dim);
    return new Vocabulary(tokens, dim, LAZY);
  }

  static #index(tokens: readonly string[], dim: number): Map<string, number> {
    if (!Number.isInteger(dim) || dim <= 0) {
      throw new InvalidInputError(`dim must be a positive integer, got ${dim}`, { field: 'dim' });
    }
    if (tokens[0] !== PAD_TOKEN) {
      throw new InvalidInputError(`the first token must be "${PAD_TOKEN}"`, { field: 'tokens' });
    }
    const ids = new Map<string, number>();
    for (let i = 0; i < tokens.length; i++) {
      const t = tokens[i] as string;
      if (ids.has(t)) {
        throw new InvalidInputError(`token "${t}" occurs twice (ids ${ids.get(t)} and ${i})`, { field: 'tokens' });
      }
      ids.set(t, i);
    }
    return ids;
  }

  get #map(): Map<string, number> {
    if (this.#ids === undefined) this.#ids = Vocabulary.#index(this.tokens, this.dim);
    return this.#ids;
  }

  /** Builds a vocabulary of `<pad>` followed by `words` (which must not contain `<pad>` or repeat). */
  static fromWords(words: Iterable<string>, dim: number): Vocabulary {
    return new Vocabulary([PAD_TOKEN, ...words], dim);
  }

  /** Number of ids, `<pad>` included. */
  get size(): number {
    return this.tokens.length;
  }

  /** The id of a token, or undefined when the vocabulary lacks it. */
  idOf(token: string): number | undefined {
    return this.#map.get(token);
  }

  /** True when the vocabulary has the token. */
  has(token: string): boolean {
    return this.#map.has(token);
  }

  /** The token of an id, or undefined when the id is out of range. */
  tokenOf(id: number): string | undefined {
    return Number.isInteger(id) ? this.tokens[id] : undefined;
  }

  /**
   * Content hash: sha256 hex over `"ch8-vocab-v1\n"`, then `dim` as decimal and `"\n"`, then for each token in id
   * order its UTF-8 byte length as a little-endian uint32 followed by its UTF-8 bytes. Two vocabularies have the same
   * hash exactly when they have the same tokens in the same order and the same dim.
   */
  get hash(): string {
    if (this.#hash === undefined) this.#hash = vocabularyHash(this.tokens, this.dim);
    return this.#hash;
  }
}

/** The hash {@link Vocabulary.hash} computes, for tokens that are not (yet) a Vocabulary. */
export function vocabularyHash(tokens: readonly string[], dim: number): string {
  const h = createHash('sha256');
  h.update(`ch8-vocab-v1\n${dim}\n`);
  // Batched into one block buffer: one hash update per token would dominate for millions of tokens.
  let block = Buffer.allocUnsafe(1 << 20);
  let used = 0;
  for (const t of tokens) {
    const need = 4 + Buffer.byteLength(t, 'utf8');
    if (used + need > block.length) {
      h.update(block.subarray(0, used));
      used = 0;
      if (need > block.length) block = Buffer.allocUnsafe(need);
    }
    const n = block.write(t, used + 4, 'utf8');
    block.writeUInt32LE(n, used);
    used += 4 + n;
  }
  h.update(block.subarray(0, used));
  return h.digest('hex');
}
