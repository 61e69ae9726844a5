import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isInvalidInput, VocabularyMismatchError } from '@ch8/errors';
import {
  CHAPTER_TOKENIZER,
  chapterTokenize,
  formatTokenizerSpec,
  getTokenizer,
  parseTokenizerSpec,
  RAW_TOKENIZER,
  rawTokenize,
  TOKENIZER_VERSION,
  tokenizerForRawText,
} from './tokenizer.ts';

describe('chapterTokenize', () => {
  const golden: Array<[string, string[]]> = [
    ['hide new secretions from the parental units ', ['hide', 'new', 'secretions', 'from', 'the', 'parental', 'units']],
    [
      "it 's a charming and often affecting journey . ",
      ['it', "'s", 'a', 'charming', 'and', 'often', 'affecting', 'journey', '.'],
    ],
    ['  Leading  and\ttabs\nUPPER ', ['leading', 'and', 'tabs', 'upper']],
    ['', []],
    ['   ', []],
    ['Clichés BUÑUEL', ['clichés', 'buñuel']],
    ["don't", ["don't"]], // no clitic splitting: the data is already tokenized
  ];
  for (const [text, tokens] of golden) {
    it(JSON.stringify(text), () => assert.deepEqual(chapterTokenize(text), tokens));
  }
});

describe('rawTokenize', () => {
  const golden: Array<[string, string]> = [
    ["I don't like it, can't you see?", "i do n't like it , ca n't you see ?"],
    ["Won't work. Ain't so.", "wo n't work . ai n't so ."],
    [
      "It's great; they're here, we've won, you'll see, he'd go, I'm in.",
      "it 's great ; they 're here , we 've won , you 'll see , he 'd go , i 'm in .",
    ],
    ['"Great" movie -- really... (sort of)', "`` great '' movie -- really ... ( sort of )"],
    ['He said "no"', "he said `` no ''"],
    ["The 'best' film of the '70s", "the ` best ' film of the '70s"],
    ["the guys' car", "the guys ' car"],
    ['A sci-fi rip-off, well-made and over-the-top.', 'a sci-fi rip-off , well-made and over-the-top .'],
    ['It cost $5.99, i.e. 1,000 times 1.8% more at 10:30.', 'it cost $ 5.99 , i.e. 1,000 times 1.8 % more at 10:30 .'],
    ['Mr. Smith vs. E.T. and J.K. Rowling, etc.', 'mr. smith vs. e.t. and j.k. rowling , etc.'],
    ['I cannot believe you are gonna go, wanna bet?', 'i can not believe you are gon na go , wan na bet ?'],
    ['What?!? No!!', 'what ?!? no !!'],
    ['Wait...for it....', 'wait ... for it ...'],
    ['This--is it', 'this -- is it'],
    ['***great*** and/or 1/2 stars #1', '*** great *** and/or 1/2 stars # 1'],
    ['Tied to charger for 45 minutes.MAJOR PROBLEMS!!', 'tied to charger for 45 minutes . major problems !!'],
    [
      '\u201cSmart\u201d and \u2018fun\u2019 \u2014 it\u2019s great\u2026',
      "`` smart '' and ` fun ' -- it 's great ...",
    ],
    ['pages 10\u201320 \u2013 fine', 'pages 10-20 -- fine'],
    ["Rock 'n' roll, ol' man, 'em all", "rock 'n' roll , ol' man , 'em all"],
    ['feardotcom.com is a site.', 'feardotcom.com is a site .'],
    ['[brackets] {braces}', '[ brackets ] { braces }'],
    ["Don't!", "do n't !"],
    ["(it's)", "( it 's )"],
    ['', ''],
    ['   \t ', ''],
    ["'hello'", "` hello '"],
    ['The No. 1 film? No.', 'the no. 1 film ? no .'],
  ];
  for (const [text, expected] of golden) {
    it(JSON.stringify(text), () => assert.equal(rawTokenize(text).join(' '), expected));
  }

  it('leaves SST-2 style (already tokenized) text as chapterTokenize does', () => {
    const lines = [
      "that 's so sloppily written and cast that you can not believe anyone more central to the creation of bugsy than the caterer ",
      "you 're gon na like this movie . ",
      "as much as i laughed throughout the movie , i ca n't mount a cogent defense -- or even ... `` performance art '' ",
      "the film 's `` mr. deeds '' ( e.t. ) is a '70s-style b-movie , and/or a 1/2 - star rip-off ; it wo n't ! ",
      "these guys ' superhuman capacity to withstand pain ?!? *** ",
      "it 's the ` best ' film : $ 5.99 # 1 & more ",
    ];
    for (const line of lines) assert.deepEqual(rawTokenize(line), chapterTokenize(line), line);
  });

  it('never yields empty tokens or tokens with white space', () => {
    const text = ' a , b\t"c" \'d\' ... -- !? (e) ';
    for (const t of rawTokenize(text)) assert.match(t, /^\S+$/);
  });
});

describe('tokenizer specs', () => {
  it('getTokenizer returns the function of each kind', () => {
    assert.equal(getTokenizer(CHAPTER_TOKENIZER), chapterTokenize);
    assert.equal(getTokenizer(RAW_TOKENIZER), rawTokenize);
    assert.equal(getTokenizer({ kind: 'raw', version: TOKENIZER_VERSION }), rawTokenize);
  });

  it('unknown kind -> InvalidInputError naming the field', () => {
    assert.throws(
      () => getTokenizer({ kind: 'bpe' as never, version: 1 }),
      (e: unknown) => isInvalidInput(e) && e.field === 'tokenizer.kind',
    );
    assert.throws(
      () => parseTokenizerSpec(null),
      (e: unknown) => isInvalidInput(e) && e.field === 'tokenizer',
    );
    assert.throws(() => parseTokenizerSpec('wordpiece@1'), isInvalidInput);
    // A kind nested deeper than JSON.stringify's stack allows is refused by name, not with a RangeError.
    let deep: unknown = 'raw';
    for (let i = 0; i < 100_000; i++) deep = [deep];
    assert.throws(
      () => parseTokenizerSpec({ kind: deep, version: 1 }),
      (e: unknown) => isInvalidInput(e) && e.field === 'tokenizer.kind',
    );
  });

  it('malformed version -> InvalidInputError; unknown version -> VocabularyMismatchError', () => {
    assert.throws(
      () => parseTokenizerSpec({ kind: 'raw', version: 1.5 }),
      (e: unknown) => isInvalidInput(e) && e.field === 'tokenizer.version',
    );
    assert.throws(() => parseTokenizerSpec('raw@x'), isInvalidInput);
    assert.throws(() => getTokenizer({ kind: 'raw', version: TOKENIZER_VERSION + 1 }), VocabularyMismatchError);
  });

  it('parses and formats the short form', () => {
    assert.deepEqual(parseTokenizerSpec('raw@1'), { kind: 'raw', version: 1 });
    assert.deepEqual(parseTokenizerSpec('chapter'), CHAPTER_TOKENIZER);
    assert.equal(formatTokenizerSpec(RAW_TOKENIZER), `raw@${TOKENIZER_VERSION}`);
    assert.deepEqual(parseTokenizerSpec(formatTokenizerSpec(CHAPTER_TOKENIZER)), CHAPTER_TOKENIZER);
  });

  it('raw text for a model of either kind goes through rawTokenize', () => {
    assert.equal(tokenizerForRawText(CHAPTER_TOKENIZER), rawTokenize);
    assert.equal(tokenizerForRawText(RAW_TOKENIZER), rawTokenize);
    assert.throws(() => tokenizerForRawText({ kind: 'x' as never, version: 1 }), isInvalidInput);
  });
});
