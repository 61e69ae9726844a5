/**
 * Raw text to what the model reads: the manifest's raw-text tokenizer, then the vocabulary. Tokens the
 * vocabulary lacks are dropped and reported; a text left with no known token is answered without the model.
 */
import { InvalidInputError } from '@ch8/errors';
import type { Tokenize } from '@ch8/tokenizer';

export interface TextLimits {
  maxTexts: number;
  maxTextBytes: number;
}

/**
 * Refuses a call the gateway will not compute: no text, too many texts, an empty or white-space-only text, a text
 * over the size limit. `field` names the request field in messages (`texts`, `inputs[0]`).
 */
export function checkTexts(texts: readonly string[], limits: TextLimits, field: string): void {
  if (texts.length === 0) throw new InvalidInputError('no text given: send at least one', { field });
  if (texts.length > limits.maxTexts) {
    throw new InvalidInputError(`${texts.length} texts in one call, the limit is ${limits.maxTexts}`, { field });
  }
  for (let i = 0; i < texts.length; i++) {
    const t = texts[i]!;
    if (t.trim() === '') {
      throw new InvalidInputError(`text ${i} is ${t === '' ? 'empty' : 'white space only'}`, {
        field: `${field}[${i}]`,
      });
    }
    // UTF-16 length bounds the UTF-8 length from below (x1) and above (x3): count only when it matters.
    if (t.length * 3 > limits.maxTextBytes) {
      const bytes = Buffer.byteLength(t, 'utf8');
      if (bytes > limits.maxTextBytes) {
        throw new InvalidInputError(`text ${i} has ${bytes} bytes (UTF-8), the limit is ${limits.maxTextBytes}`, {
          field: `${field}[${i}]`,
        });
      }
    }
  }
}

export interface EncodedText {
  /** Tokens found in the vocabulary, in order. */
  tokens: string[];
  /** Their ids. */
  ids: Int32Array;
  /** Tokens the vocabulary lacks, in order. */
  oov: string[];
}

/** Tokenizes `text` and maps the tokens to ids (`ids.get`), keeping the known ones. */
export function encodeText(text: string, tokenize: Tokenize, ids: ReadonlyMap<string, number>): EncodedText {
  const tokens: string[] = [];
  const oov: string[] = [];
  const out: number[] = [];
  for (const token of tokenize(text)) {
    const id = ids.get(token);
    // Id 0 is <pad>: a text containing the literal "<pad>" must not feed padding to the model.
    if (id === undefined || id === 0) oov.push(token);
    else {
      tokens.push(token);
      out.push(id);
    }
  }
  return { tokens, ids: Int32Array.from(out), oov };
}
