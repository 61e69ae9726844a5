/**
 * GLUE SST-2 TSV reader: header `sentence<TAB>label`, one sentence per line, label 0 or 1.
 *
 * Accepts CRLF line ends and a UTF-8 BOM (both stripped). Rejects, with an InvalidInputError naming the file,
 * the 1-based line and the field: an empty file, a missing or wrong header, a row without a tab (or with more
 * fields than the header), a label other than 0/1. A missing file is a NotFoundError.
 */
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { InvalidInputError } from '@ch8/errors';
import { fsError, forEachLine, readText, stripBom, type LabelledRow } from './rows.ts';

export type { LabelledRow } from './rows.ts';

/** The SST-2 splits with labels, as GLUE ships them. */
export interface Sst2Splits {
  train: LabelledRow[];
  dev: LabelledRow[];
}

/** Parses one SST-2 file line by line; shared by the whole-file and the streaming readers. */
class Sst2LineParser {
  private columns = 0;
  private sentenceAt = -1;
  private labelAt = -1;

  constructor(private readonly file: string) {}

  get sawHeader(): boolean {
    return this.columns > 0;
  }

  header(raw: string): void {
    const line = stripBom(raw);
    const names = line.split('\t').map((s) => s.trim());
    this.sentenceAt = names.indexOf('sentence');
    this.labelAt = names.indexOf('label');
    if (this.sentenceAt < 0 || this.labelAt < 0) {
      throw new InvalidInputError(
        `expected the header "sentence<TAB>label", got ${JSON.stringify(line.slice(0, 80))}`,
        { file: this.file, line: 1, field: this.sentenceAt < 0 ? 'sentence' : 'label' },
      );
    }
    this.columns = names.length;
  }

  row(line: string, lineNumber: number): LabelledRow {
    let sentence: string;
    let label: string;
    if (this.columns === 2) {
      // Fast path for the GLUE layout.
      const tab = line.indexOf('\t');
      if (tab < 0 || line.indexOf('\t', tab + 1) >= 0) this.badFieldCount(line, lineNumber);
      const first = line.slice(0, tab);
      const second = line.slice(tab + 1);
      sentence = this.sentenceAt === 0 ? first : second;
      label = this.labelAt === 0 ? first : second;
    } else {
      const fields = line.split('\t');
      if (fields.length !== this.columns) this.badFieldCount(line, lineNumber);
      sentence = fields[this.sentenceAt] as string;
      label = fields[this.labelAt] as string;
    }
    const l = label.trim();
    if (l === '0') return { text: sentence, label: 0 };
    if (l === '1') return { text: sentence, label: 1 };
    throw new InvalidInputError(`label must be 0 or 1, got ${JSON.stringify(label.slice(0, 40))}`, {
      file: this.file,
      line: lineNumber,
      field: 'label',
    });
  }

  private badFieldCount(line: string, lineNumber: number): never {
    const found = line.split('\t').length;
    throw new InvalidInputError(
      found < this.columns
        ? `row has ${found} tab-separated field(s), expected ${this.columns} (no tab before the label?)`
        : `row has ${found} tab-separated fields, expected ${this.columns}`,
      { file: this.file, line: lineNumber, field: 'label' },
    );
  }

  private firstLineBlank = false;
  private pendingEmpty = 0; // first of a run of empty lines not yet known to be trailing

  /** Feed one line (line end removed); returns the row it holds, if any. */
  feed(line: string, lineNumber: number): LabelledRow | undefined {
    if (lineNumber === 1) {
      if (stripBom(line).trim() === '') this.firstLineBlank = true;
      else this.header(line);
      return undefined;
    }
    if (line === '') {
      if (this.pendingEmpty === 0) this.pendingEmpty = lineNumber;
      return undefined;
    }
    if (this.firstLineBlank) this.header(''); // throws: content after a blank first line
    if (this.pendingEmpty !== 0) this.row('', this.pendingEmpty); // throws: an empty line between rows
    return this.row(line, lineNumber);
  }

  /** Call at the end of input. */
  finish(): void {
    if (!this.sawHeader) this.empty();
  }

  empty(): never {
    throw new InvalidInputError('file is empty (expected the header "sentence<TAB>label")', {
      file: this.file,
      line: 1,
    });
  }
}

/**
 * Parse the text of an SST-2 TSV file. `file` names the source in errors. Trailing empty lines are ignored; an
 * empty line between rows is an error (a row without a tab).
 */
export function parseSst2Tsv(text: string, file = '<sst2>'): LabelledRow[] {
  const parser = new Sst2LineParser(file);
  const rows: LabelledRow[] = [];
  forEachLine(text, (line, n) => {
    const row = parser.feed(line, n);
    if (row !== undefined) rows.push(row);
  });
  parser.finish();
  return rows;
}

/** Read a whole SST-2 TSV file (fast: one read, one pass). Missing file -> NotFoundError. */
export async function readSst2Tsv(file: string): Promise<LabelledRow[]> {
  return parseSst2Tsv(await readText(file), file);
}

/**
 * Stream the rows of an SST-2 TSV file without holding the whole file. Same checks and errors as
 * `readSst2Tsv`; errors surface when the offending line is reached.
 */
export async function* streamSst2Tsv(file: string): AsyncGenerator<LabelledRow> {
  const parser = new Sst2LineParser(file);
  const stream = createReadStream(file, { encoding: 'utf8', highWaterMark: 1 << 16 });
  let carry = '';
  let n = 0;
  const handle = (raw: string): LabelledRow | undefined => {
    n += 1;
    return parser.feed(raw.endsWith('\r') ? raw.slice(0, -1) : raw, n);
  };
  try {
    for await (const chunk of stream as AsyncIterable<string>) {
      const text = carry + chunk;
      let start = 0;
      for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n', start)) {
        const row = handle(text.slice(start, nl));
        start = nl + 1;
        if (row !== undefined) yield row;
      }
      carry = text.slice(start);
    }
  } catch (e) {
    throw fsError(e, file);
  } finally {
    stream.destroy();
  }
  if (carry !== '') {
    const row = handle(carry);
    if (row !== undefined) yield row;
  }
  parser.finish();
}

/** Read `train.tsv` and `dev.tsv` from a GLUE SST-2 directory. */
export async function readSst2Dir(dir: string): Promise<Sst2Splits> {
  const [train, dev] = await Promise.all([readSst2Tsv(join(dir, 'train.tsv')), readSst2Tsv(join(dir, 'dev.tsv'))]);
  return { train, dev };
}
