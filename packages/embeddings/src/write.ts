/**
 * Writers of small vector files in every supported format: fixtures for tests (here and in other packages) and for
 * examples. They build the whole file in memory; for big files write the bytes yourself (see bench/embeddings.ts).
 */
import { writeFile } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import type { VectorFormat } from './format.ts';
import { mulberry32 } from '@ch8/random';

/** A word (a string, or raw bytes to write e.g. invalid UTF-8) and its values. */
export type FixtureEntry = readonly [string | Uint8Array, ArrayLike<number>];

export interface WriteOptions {
  /** gzip the file. */
  gzip?: boolean;
  /** word2vec binary: write `\n` after each vector (as the original word2vec tool does). Default true. */
  newline?: boolean;
  /** Text formats: end each line with a space (as fastText does). */
  trailingSpace?: boolean;
  /** word2vec formats: the N of the header (default: the number of entries); to write a lying header. */
  headerCount?: number;
  /** JSON: `wink` (metadata + "vectors" with l2norm and index appended) or `plain` ({word: [..]}). Default wink. */
  jsonLayout?: 'wink' | 'plain';
}

function wordBytes(w: string | Uint8Array): Buffer {
  return typeof w === 'string' ? Buffer.from(w, 'utf8') : Buffer.from(w);
}

/** The bytes of a vector file of `format` holding `entries` (all of width `dim`). */
export function vectorFileBytes(
  format: VectorFormat,
  entries: readonly FixtureEntry[],
  dim: number,
  opts: WriteOptions = {},
): Buffer {
  const n = opts.headerCount ?? entries.length;
  const parts: Buffer[] = [];
  switch (format) {
    case 'word2vec-binary': {
      parts.push(Buffer.from(`${n} ${dim}\n`, 'latin1'));
      for (const [w, v] of entries) {
        const vec = Buffer.alloc(4 * v.length);
        for (let k = 0; k < v.length; k++) vec.writeFloatLE(v[k] as number, 4 * k);
        parts.push(wordBytes(w), Buffer.from(' '), vec);
        if (opts.newline ?? true) parts.push(Buffer.from('\n'));
      }
      break;
    }
    case 'word2vec-text':
    case 'fasttext-vec':
    case 'glove-text': {
      if (format !== 'glove-text') parts.push(Buffer.from(`${n} ${dim}\n`, 'latin1'));
      const end = opts.trailingSpace === true ? ' \n' : '\n';
      for (const [w, v] of entries) {
        parts.push(wordBytes(w), Buffer.from(` ${Array.from(v).join(' ')}${end}`, 'latin1'));
      }
      break;
    }
    case 'wink-json': {
      const wink = (opts.jsonLayout ?? 'wink') === 'wink';
      if (wink) {
        const words = entries.map(([w]) => wordBytes(w).toString('utf8'));
        parts.push(
          Buffer.from(
            `{"precision":8,"l2NormIndex":${dim},"wordIndex":${dim + 1},"size":${n},"dimensions":${dim},` +
              `"words":${JSON.stringify(words)},"vectors":{`,
          ),
        );
      } else parts.push(Buffer.from('{'));
      entries.forEach(([w, v], i) => {
        const values = Array.from(v);
        if (wink) values.push(Math.hypot(...values), i);
        const key =
          typeof w === 'string'
            ? Buffer.from(JSON.stringify(w))
            : Buffer.concat([Buffer.from('"'), Buffer.from(w), Buffer.from('"')]);
        parts.push(Buffer.from(i > 0 ? ',' : ''), key, Buffer.from(`:[${values.join(',')}]`));
      });
      parts.push(Buffer.from(wink ? `},"unkVector":[${new Array(dim).fill(0).join(',')}]}` : '}'));
      break;
    }
  }
  const bytes = Buffer.concat(parts);
  return opts.gzip === true ? gzipSync(bytes) : bytes;
}

/** Writes {@link vectorFileBytes} to `path`. */
export async function writeVectorFile(
  path: string,
  format: VectorFormat,
  entries: readonly FixtureEntry[],
  dim: number,
  opts: WriteOptions = {},
): Promise<void> {
  await writeFile(path, vectorFileBytes(format, entries, dim, opts));
}

/** A seeded generator of uniform floats in [-1, 1) (mulberry32): deterministic fixtures. */
export function seededFloats(seed: number): () => number {
  const next = mulberry32(seed);
  return () => next() / 2 ** 31 - 1;
}

/** `count` entries `w1, w2, ...` (or the given words) with seeded float32-representable values. */
export function randomEntries(words: number | readonly string[], dim: number, seed = 1): Array<[string, Float32Array]> {
  const next = seededFloats(seed);
  const list = typeof words === 'number' ? Array.from({ length: words }, (_, i) => `w${i + 1}`) : words;
  return list.map((w) => {
    const v = new Float32Array(dim);
    for (let k = 0; k < dim; k++) v[k] = next();
    return [w, v];
  });
}
