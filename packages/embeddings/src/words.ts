/**
 * The words a data set needs, for pruning: the chapter's tokenization of a GLUE TSV's sentence column.
 */
import { readFile } from 'node:fs/promises';
import { InvalidInputError } from '@ch8/errors';
import { fsError } from './chunks.ts';

/** The chapter's tokenization of SST-2 (already tokenized text): lower-case, split on white space. */
export function chapterTokens(sentence: string): string[] {
  return sentence
    .toLowerCase()
    .split(/\s+/)
    .filter((t) => t.length > 0);
}

/**
 * The distinct tokens (first-seen order) of the `sentence` column of GLUE TSV files (header line first, e.g.
 * `sentence<TAB>label`), tokenized with {@link chapterTokens}.
 *
 * @throws NotFoundError for a missing file; InvalidInputError when the header has no `sentence` column or a row
 *   lacks it (naming file and line).
 */
export async function wordsFromTsv(paths: string | readonly string[]): Promise<Set<string>> {
  const words = new Set<string>();
  for (const path of typeof paths === 'string' ? [paths] : paths) {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (e) {
      fsError(path, e);
    }
    const lines = text.split('\n');
    const header = (lines[0] ?? '').replace(/\r$/, '').split('\t');
    const col = header.indexOf('sentence');
    if (col < 0) {
      throw new InvalidInputError(`the header has no "sentence" column (found: ${header.join(', ')})`, {
        file: path,
        line: 1,
        field: 'sentence',
      });
    }
    for (let i = 1; i < lines.length; i++) {
      const line = (lines[i] as string).replace(/\r$/, '');
      if (line.length === 0) continue;
      const sentence = line.split('\t')[col];
      if (sentence === undefined) {
        throw new InvalidInputError(`the row has no column ${col + 1} (sentence)`, {
          file: path,
          line: i + 1,
          field: 'sentence',
        });
      }
      for (const t of chapterTokens(sentence)) words.add(t);
    }
  }
  return words;
}
