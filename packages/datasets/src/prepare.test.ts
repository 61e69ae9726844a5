import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isInvalidInput } from '@ch8/errors';
import { chapterTokenize, rawTokenize } from '@ch8/tokenizer';
import { Vocabulary } from '@ch8/embeddings/vocabulary';
import { collectWords, prepareSplit, prepareSplits } from './prepare.ts';

const vocab = new Map<string, number>([
  ['good', 1],
  ['movie', 2],
  ['bad', 3],
  ['.', 4],
  ['<pad>', 0],
]);
const idOf = (t: string): number | undefined => vocab.get(t);

describe('collectWords', () => {
  it('collects distinct tokens in first-seen order, across splits', () => {
    const words = collectWords([{ text: 'Good movie . ' }, { text: 'bad  MOVIE' }], chapterTokenize);
    assert.deepEqual([...words], ['good', 'movie', '.', 'bad']);
    collectWords([{ text: "it's bad" }], rawTokenize, words);
    assert.deepEqual([...words], ['good', 'movie', '.', 'bad', 'it', "'s"]);
  });
});

describe('prepareSplit', () => {
  const rows = [
    { text: 'Good movie . ', label: 1 as const },
    { text: 'xyzzy plugh', label: 0 as const }, // all OOV: dropped
    { text: '   ', label: 1 as const }, // no tokens: dropped
    { text: 'bad unknownword movie', label: 0 as const },
    { text: '<pad> good', label: 1 as const }, // id 0 is not a token id
  ];

  it('maps to ids, drops OOV tokens and empty examples, keeps the row index', () => {
    const { examples, stats } = prepareSplit(rows, { tokenize: chapterTokenize, idOf });
    assert.deepEqual(
      examples.map((e) => ({ ...e, inputIds: [...e.inputIds] })),
      [
        { text: 'Good movie . ', label: 1, inputIds: [1, 2, 4], index: 0 },
        { text: 'bad unknownword movie', label: 0, inputIds: [3, 2], index: 3 },
        { text: '<pad> good', label: 1, inputIds: [1], index: 4 },
      ],
    );
    assert.ok(examples.every((e) => e.inputIds instanceof Int32Array));
    assert.deepEqual(stats, {
      rows: 5,
      kept: 3,
      droppedEmpty: 2,
      noTokens: 1,
      tokens: 10,
      oovTokens: 4,
      oovTypes: 4,
      oovRate: 0.4,
      keptTokens: 6,
      length: { min: 1, max: 3, mean: 2, p50: 2, p95: 3 },
    });
  });

  it('grows its id buffer past the first guess', () => {
    const long = Array.from({ length: 3000 }, () => 'good movie').join(' ');
    const { examples, stats } = prepareSplit(
      [
        { text: long, label: 1 },
        { text: 'bad', label: 0 },
      ],
      {
        tokenize: chapterTokenize,
        idOf,
      },
    );
    assert.equal(examples[0]?.inputIds.length, 6000);
    assert.equal(examples[0]?.inputIds[5999], 2);
    assert.deepEqual([...(examples[1]?.inputIds ?? [])], [3]);
    assert.equal(stats.length.max, 6000);
  });

  it('empty input and all-empty input give zero stats', () => {
    const { examples, stats } = prepareSplit([{ text: 'zzz', label: 0 }], { tokenize: chapterTokenize, idOf });
    assert.equal(examples.length, 0);
    assert.deepEqual(stats.length, { min: 0, max: 0, mean: 0, p50: 0, p95: 0 });
    assert.equal(prepareSplit([], { tokenize: chapterTokenize, idOf }).stats.oovRate, 0);
  });

  it('a label other than 0/1 -> InvalidInputError', () => {
    assert.throws(
      () =>
        prepareSplit(
          [
            { text: 'good', label: 1 },
            { text: 'good', label: 0.5 },
          ],
          { tokenize: chapterTokenize, idOf },
        ),
      (e: unknown) => isInvalidInput(e) && e.entry === 2 && e.field === 'label',
    );
  });
});

describe('prepareSplits', () => {
  it('maps every split with one Vocabulary under the data set tokenizer, names and order kept', () => {
    const vocabulary = new Vocabulary(['<pad>', 'movie', 'good', "n't", 'bad'], 2);
    const splits = [
      { name: 'dev', rows: [{ text: "Isn't it a good movie?", label: 1 as const }] },
      {
        name: 'train',
        rows: [
          { text: 'nothing known', label: 0 as const },
          { text: 'BAD movie', label: 0 as const },
        ],
      },
    ];
    const out = prepareSplits({ tokenizer: { kind: 'raw', version: 1 }, splits }, vocabulary);
    assert.deepEqual(
      out.map((s) => [s.name, s.examples.map((e) => [e.index, [...e.inputIds]]), s.stats.droppedEmpty]),
      [
        ['dev', [[0, [3, 2, 1]]], 0],
        ['train', [[1, [4, 1]]], 1],
      ],
    );
    // The chapter tokenizer does not split "Isn't" or "movie?": neither is known.
    const chapter = prepareSplits({ tokenizer: { kind: 'chapter', version: 1 }, splits }, vocabulary);
    assert.deepEqual([...chapter[0]!.examples[0]!.inputIds], [2]);
  });
});
