/**
 * The one place text becomes tokens, for training and for inference.
 *
 * Two tokenizers:
 * - `chapterTokenize`: the chapter's rule for SST-2 (already tokenized text): lower-case, split on white space.
 * - `rawTokenize`: for raw user text; produces tokens in the style of SST-2 (Penn Treebank conventions,
 *   lower-cased), so that a model trained on SST-2 sees the same kind of tokens at prediction time.
 *
 * A model records the `TokenizerSpec` it was trained with; `getTokenizer(spec)` gives the function back and
 * refuses kinds or versions this package does not implement.
 */
import { describeValue, InvalidInputError, VocabularyMismatchError } from '@ch8/errors';

/** A function from text to tokens. Pure and deterministic. */
export type Tokenize = (text: string) => string[];

export type TokenizerKind = 'chapter' | 'raw';

/** What a model records about its preprocessing. */
export interface TokenizerSpec {
  kind: TokenizerKind;
  /** Bumped whenever the kind's output changes for some input. */
  version: number;
}

/** Current version of every tokenizer kind in this package. */
export const TOKENIZER_VERSION = 1;

export const CHAPTER_TOKENIZER: Readonly<TokenizerSpec> = Object.freeze({
  kind: 'chapter',
  version: TOKENIZER_VERSION,
});
export const RAW_TOKENIZER: Readonly<TokenizerSpec> = Object.freeze({ kind: 'raw', version: TOKENIZER_VERSION });

const WHITESPACE = /\s+/;

/** The chapter's tokenizer: `text.lower().split()`. Leading/trailing white space yields no empty tokens. */
export function chapterTokenize(text: string): string[] {
  const parts = text.toLowerCase().split(WHITESPACE);
  // split() yields '' at the ends when the text starts or ends with white space (SST-2 lines end with ' ').
  let start = 0;
  let end = parts.length;
  if (end > 0 && parts[0] === '') start = 1;
  if (end > start && parts[end - 1] === '') end -= 1;
  return start === 0 && end === parts.length ? parts : parts.slice(start, end);
}

// ---------------------------------------------------------------------------------------------------------------
// Raw text tokenizer (PTB style, as SST-2 was produced).

/** Words whose trailing period is part of the word (SST-2 keeps `mr.`, `vs.`, `etc.` ...). */
const ABBREVIATIONS: ReadonlySet<string> = new Set([
  'mr',
  'mrs',
  'ms',
  'dr',
  'jr',
  'sr',
  'st',
  'vs',
  'etc',
  'inc',
  'ltd',
  'co',
  'corp',
  'prof',
  'sen',
  'rep',
  'gov',
  'gen',
  'col',
  'bros',
  'wash',
  'calif',
  'mass',
  'lt',
  'sgt',
  'capt',
  'mt',
  'ft',
  'al',
  'approx',
  'dept',
  'est',
  'fig',
  'vol',
  'jan',
  'feb',
  'mar',
  'apr',
  'jun',
  'jul',
  'aug',
  'sep',
  'sept',
  'oct',
  'nov',
  'dec',
  'mon',
  'tue',
  'wed',
  'thu',
  'fri',
  'sat',
  'sun',
]);

/** Words that start with an apostrophe that is not an opening quote ('70s, 'em, 'til ...). */
const LEADING_APOSTROPHE_WORD = /^'(?:s|re|ve|ll|d|m|\d\ds?(?:-[a-z-]+)?|em|til|tis|twas|n'?|cause|bout|round)$/;

/** Words that end with an apostrophe that is part of the word. */
const KEPT_TRAILING_APOSTROPHE: ReadonlySet<string> = new Set(["ol'", "'n'", "o'", "y'"]);

/** Clitics split off the end of a word, longest first. */
const CLITIC = /^(.+?)(n't|'s|'re|'ve|'ll|'d|'m)$/;

/** Colloquial fusions the PTB splits into two tokens (as SST-2 has `gon na`, `can not`). */
const FUSED: ReadonlyMap<string, readonly [string, string]> = new Map([
  ['cannot', ['can', 'not']],
  ['gonna', ['gon', 'na']],
  ['wanna', ['wan', 'na']],
  ['gotta', ['got', 'ta']],
  ['gimme', ['gim', 'me']],
  ['lemme', ['lem', 'me']],
]);

/**
 * Character-level rewrites applied to the whole text before splitting on white space. Each inserts spaces around
 * the pieces that become their own tokens.
 */
function normalize(text: string): string {
  let s = text.normalize('NFC');
  // A period glued between a lower-case word and a capitalized one is a missing space ("minutes.MAJOR").
  s = s.replace(/([a-z]{2,})\.([A-Z])/g, '$1 . $2');
  s = s.toLowerCase();
  s = s
    .replace(/[\u2018\u201b]/g, ' ` ') // left single quote
    .replace(/[\u2019\u02bc]/g, "'") // right single quote / apostrophe
    .replace(/[\u201c\u201f\u00ab]/g, ' `` ') // left double quote, «
    .replace(/[\u201d\u00bb]/g, " '' ") // right double quote, »
    .replace(/\u2026/g, ' ... ')
    .replace(/[\u2014\u2015]/g, ' -- ')
    .replace(/(\S)\u2013(\S)/g, '$1-$2') // en dash inside a word or range: a hyphen
    .replace(/\u2013/g, ' -- ')
    .replace(/\u00a0/g, ' ');
  // Straight double quotes: opening at the start or after space/bracket, closing otherwise.
  s = s.replace(/(^|[\s([{`])"/g, '$1 `` ').replace(/"/g, " '' ");
  s = s
    .replace(/\.{2,}/g, ' ... ')
    .replace(/-{2,}/g, ' -- ')
    .replace(/[!?]+/g, ' $& ') // runs such as "?!?" stay one token, as in SST-2
    .replace(/\*+/g, ' $& ')
    .replace(/[;()[\]{}$#%]/g, ' $& ')
    .replace(/,(?!\d)|(?<!\d),/g, ' , ') // commas, except inside numbers (1,000)
    .replace(/:(?!\d)|(?<!\d):/g, ' : '); // colons, except inside numbers (10:30)
  return s;
}

function splitWord(word: string, out: string[], next: string | undefined): void {
  if (word === '``' || word === "''") {
    out.push(word);
    return;
  }
  // Opening quotes glued to the front.
  let w = word;
  for (;;) {
    if (w.length > 2 && w.startsWith('``')) {
      out.push('``');
      w = w.slice(2);
    } else if (w.length > 1 && w.startsWith('`')) {
      out.push('`');
      w = w.slice(1);
    } else if (w.length > 1 && w.startsWith("'") && !w.startsWith("''") && !LEADING_APOSTROPHE_WORD.test(w)) {
      // "'hello" is a quote; "'s" / "'70s" / "'em" are words.
      out.push('`');
      w = w.slice(1);
    } else {
      break;
    }
  }
  // Closing quotes and the final period come off the back (in any order), then clitics.
  const tail: string[] = [];
  for (;;) {
    if (w.length > 2 && w.endsWith("''")) {
      tail.push("''");
      w = w.slice(0, -2);
    } else if (w.length > 1 && w.endsWith("'") && !KEPT_TRAILING_APOSTROPHE.has(w)) {
      tail.push("'");
      w = w.slice(0, -1);
    } else if (w.length > 1 && w.endsWith('.') && w !== '...' && !isAbbreviation(w, next)) {
      tail.push('.');
      w = w.slice(0, -1);
    } else {
      break;
    }
  }
  const fused = FUSED.get(w);
  if (fused !== undefined) {
    out.push(fused[0], fused[1]);
  } else {
    const m = w.length > 2 ? CLITIC.exec(w) : null;
    if (m !== null && m[1] !== undefined && m[2] !== undefined && !m[1].endsWith("'")) {
      const stem = FUSED.get(m[1]);
      if (stem !== undefined) out.push(stem[0], stem[1]);
      else out.push(m[1]);
      out.push(m[2]);
    } else if (w !== '') {
      out.push(w);
    }
  }
  for (let i = tail.length - 1; i >= 0; i--) out.push(tail[i] as string);
}

function isAbbreviation(w: string, next: string | undefined): boolean {
  const stem = w.slice(0, -1);
  // "no. 1" (number), but "the answer is no."
  if (stem === 'no') return next !== undefined && /^\d/.test(next);
  // Initials and dotted acronyms: "j.", "e.t.", "u.s.", "j.r.r.".
  if (/^(?:[a-z]\.)*[a-z]$/.test(stem)) return true;
  return ABBREVIATIONS.has(stem);
}

/**
 * Tokenize raw text the way SST-2 is tokenized (PTB conventions, lower-cased):
 * punctuation split off (`, . ! ? ; : ( ) $ % #`), straight double quotes to `` and '', opening single
 * quotes to `, clitics split (`don't` -> `do n't`, `can't` -> `ca n't`, `won't` -> `wo n't`, `it's` -> `it 's`,
 * `'re 've 'll 'd 'm`), `cannot` -> `can not`, `gonna` -> `gon na`; hyphenated words, numbers with decimals or
 * thousands separators, `and/or`, abbreviations (`mr.`, `e.t.`) kept whole; `...` and `--` one token each.
 *
 * Text that is already tokenized like SST-2 comes out as `chapterTokenize` would give it.
 */
export function rawTokenize(text: string): string[] {
  const out: string[] = [];
  const words = normalize(text).split(WHITESPACE);
  for (let i = 0; i < words.length; i++) {
    const word = words[i] as string;
    if (word !== '') splitWord(word, out, words[i + 1]);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Specs.

const KINDS: Readonly<Record<TokenizerKind, Tokenize>> = { chapter: chapterTokenize, raw: rawTokenize };

function isKind(k: unknown): k is TokenizerKind {
  return k === 'chapter' || k === 'raw';
}

/**
 * Validate something read from a model manifest or a request into a `TokenizerSpec`.
 * Unknown kind or a malformed version -> InvalidInputError (field `tokenizer.kind` / `tokenizer.version`).
 */
export function parseTokenizerSpec(value: unknown): TokenizerSpec {
  if (typeof value === 'string') {
    // Short form "raw@1" / "chapter" (the current version).
    const at = value.indexOf('@');
    const kind = at < 0 ? value : value.slice(0, at);
    const version = at < 0 ? TOKENIZER_VERSION : Number(value.slice(at + 1));
    return parseTokenizerSpec({ kind, version });
  }
  if (typeof value !== 'object' || value === null) {
    throw new InvalidInputError('tokenizer spec must be an object {kind, version}', { field: 'tokenizer' });
  }
  const { kind, version } = value as { kind?: unknown; version?: unknown };
  if (!isKind(kind)) {
    throw new InvalidInputError(`unknown tokenizer kind ${describeValue(kind)} (expected "chapter" or "raw")`, {
      field: 'tokenizer.kind',
    });
  }
  if (typeof version !== 'number' || !Number.isInteger(version) || version < 1) {
    throw new InvalidInputError(`tokenizer version must be a positive integer, got ${describeValue(version)}`, {
      field: 'tokenizer.version',
    });
  }
  return { kind, version };
}

/** "raw@1" */
export function formatTokenizerSpec(spec: TokenizerSpec): string {
  return `${spec.kind}@${spec.version}`;
}

/**
 * The tokenize function for a spec. Unknown kind -> InvalidInputError; a version this package does not
 * implement -> VocabularyMismatchError (a model trained with other tokens must not be fed these).
 */
export function getTokenizer(spec: TokenizerSpec): Tokenize {
  const checked = parseTokenizerSpec(spec);
  if (checked.version !== TOKENIZER_VERSION) {
    throw new VocabularyMismatchError(
      `tokenizer ${formatTokenizerSpec(checked)} is not available (this build has ${checked.kind}@${TOKENIZER_VERSION})`,
      { field: 'tokenizer.version' },
    );
  }
  return KINDS[checked.kind];
}

/**
 * The function to apply to raw user text for a model trained with `spec`. A model trained on pre-tokenized text
 * (`chapter`, e.g. SST-2) still receives raw text at prediction time, so both kinds map to `rawTokenize`, which
 * produces SST-2-style tokens and leaves already tokenized text as `chapterTokenize` would.
 */
export function tokenizerForRawText(spec: TokenizerSpec): Tokenize {
  getTokenizer(spec); // same validation
  return rawTokenize;
}
