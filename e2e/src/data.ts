/**
 * Known-answer data for the black-box tests: a sentence's label is the sign of (positive words - negative words), and
 * the first coordinate of a word's vector carries its sentiment, so a few epochs learn the data and the labels of
 * clear sentences are known without the code under test.
 */

export interface Lexicon {
  pos: readonly string[];
  neg: readonly string[];
  filler: readonly string[];
}

export const LEXICON: Lexicon = {
  pos: ['good', 'great', 'fine', 'superb', 'lovely', 'fun'],
  neg: ['bad', 'awful', 'dull', 'poor', 'boring', 'weak'],
  filler: ['the', 'film', 'plot', 'was', 'a', 'story', 'cast', 'it'],
};

/** The dimension of the vectors `knownAnswerVectors` writes. */
export const DIM = 6;

/** A seeded linear congruential generator of numbers in [0, 1). */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

/**
 * An SST-2 style TSV (`sentence\tlabel`) of `n` sentences of 3-10 words, a quarter positive words, a quarter negative;
 * a sentence with as many of each gets one more `good`. `sentenceEnd` is written before the tab.
 */
export function knownAnswerTsv(n: number, seed: number, lexicon: Lexicon = LEXICON, sentenceEnd = ''): string {
  const r = rng(seed);
  const { pos, neg, filler } = lexicon;
  const lines = ['sentence\tlabel'];
  for (let i = 0; i < n; i++) {
    const words: string[] = [];
    let score = 0;
    const len = 3 + Math.floor(r() * 8);
    for (let k = 0; k < len; k++) {
      const u = r();
      if (u < 0.25) {
        words.push(pos[Math.floor(r() * pos.length)]!);
        score++;
      } else if (u < 0.5) {
        words.push(neg[Math.floor(r() * neg.length)]!);
        score--;
      } else words.push(filler[Math.floor(r() * filler.length)]!);
    }
    if (score === 0) {
      words.push(pos[0]!);
      score = 1;
    }
    lines.push(`${words.join(' ')}${sentenceEnd}\t${score > 0 ? 1 : 0}`);
  }
  return lines.join('\n') + '\n';
}

/** GloVe text vectors of every word of `lexicon`: ±`scale` (0 for fillers) in the first coordinate, plus noise. */
export function knownAnswerVectors(seed: number, lexicon: Lexicon = LEXICON, scale = 1): string {
  const r = rng(seed);
  const { pos, neg, filler } = lexicon;
  const rows = [...pos, ...neg, ...filler].map((w) => {
    const sign = pos.includes(w) ? 1 : neg.includes(w) ? -1 : 0;
    const v = Array.from({ length: DIM }, (_, j) => (j === 0 ? scale * sign : 0) + (r() - 0.5) * 0.5);
    return `${w} ${v.map((x) => x.toFixed(5)).join(' ')}`;
  });
  return rows.join('\n') + '\n';
}
