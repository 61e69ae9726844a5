/** A small generated data set whose right answer is known (for the tests): label 1 when positive words outnumber negative ones. */
import type { Example } from '@ch8/datasets/prepare';
import { uniform01 } from '@ch8/random';
import { vocabularyHash } from '@ch8/embeddings/vocabulary';
import type { PreparedData } from './feed.ts';

export const DIM = 8;

export function toyData(options: { seed?: number; train?: number; dev?: number } = {}): PreparedData {
  const rnd = uniform01(options.seed ?? 3);
  const words = ['pos', 'neg', 'neu'].flatMap((k) => Array.from({ length: 10 }, (_, i) => `${k}${i}`));
  const tokens = ['<pad>', ...words];
  const matrix = new Float32Array(tokens.length * DIM);
  tokens.forEach((t, id) => {
    if (id === 0) return;
    const sign = t.startsWith('pos') ? 1 : t.startsWith('neg') ? -1 : 0;
    for (let j = 0; j < DIM; j++) matrix[id * DIM + j] = (j === 0 ? sign : 0) + (rnd() - 0.5) * 0.6;
  });
  const split = (n: number): { examples: Example[]; stats: { rows: number; kept: number; droppedEmpty: number } } => {
    const examples: Example[] = [];
    for (let i = 0; i < n; i++) {
      const len = 2 + Math.floor(rnd() * 9);
      const ids = new Int32Array(len);
      let score = 0;
      for (let k = 0; k < len; k++) {
        ids[k] = 1 + Math.floor(rnd() * words.length);
        const w = tokens[ids[k]!]!;
        score += w.startsWith('pos') ? 1 : w.startsWith('neg') ? -1 : 0;
      }
      if (score === 0) ids[0] = 1 + Math.floor(rnd() * 20); // a pos or neg word breaks the tie most of the time
      let s = 0;
      for (const id of ids) s += tokens[id]!.startsWith('pos') ? 1 : tokens[id]!.startsWith('neg') ? -1 : 0;
      examples.push({
        text: Array.from(ids, (id) => tokens[id]).join(' '),
        label: s > 0 ? 1 : 0,
        inputIds: ids,
        index: i,
      });
    }
    return { examples, stats: { rows: n, kept: n, droppedEmpty: 0 } };
  };
  const train = split(options.train ?? 320);
  const dev = split(options.dev ?? 80);
  return {
    description: 'toy',
    tokenizer: { kind: 'chapter', version: 1 },
    vectors: 'generated',
    tokens,
    vocabHash: vocabularyHash(tokens, DIM),
    dim: DIM,
    matrix,
    splits: [
      { name: 'train', ...train },
      { name: 'dev', ...dev },
    ],
  };
}
