/**
 * Generic labelled sources: TSV, CSV (RFC 4180 quoting), JSON Lines and JSON arrays, with named text and label
 * columns and a configurable label mapping.
 */
import { extname } from 'node:path';
import { describeValue, InvalidInputError } from '@ch8/errors';
import { forEachLine, readText, stripBom, type LabelledRow } from './rows.ts';

export type { LabelledRow } from './rows.ts';

export type LabelledFormat = 'tsv' | 'csv' | 'jsonl' | 'json';

export interface LabelledSourceOptions {
  /** File format; default from the extension (.tsv, .csv, .jsonl/.ndjson, .json). */
  format?: LabelledFormat;
  /** Column or key holding the text. Default `text`. */
  textField?: string;
  /** Column or key holding the label. Default `label`. */
  labelField?: string;
  /**
   * Raw label value (as written in the file; JSON numbers and booleans as their text, e.g. `"1"`, `"true"`)
   * to 0/1. Default `{ '0': 0, '1': 1 }`. Any other value is an InvalidInputError.
   */
  labels?: Readonly<Record<string, 0 | 1>>;
}

const DEFAULT_LABELS: Readonly<Record<string, 0 | 1>> = { '0': 0, '1': 1 };

/** The format implied by a file name, or undefined. */
export function formatOf(file: string): LabelledFormat | undefined {
  switch (extname(file).toLowerCase()) {
    case '.tsv':
      return 'tsv';
    case '.csv':
      return 'csv';
    case '.jsonl':
    case '.ndjson':
      return 'jsonl';
    case '.json':
      return 'json';
    default:
      return undefined;
  }
}

interface Resolved {
  file: string;
  textField: string;
  labelField: string;
  labels: Readonly<Record<string, 0 | 1>>;
}

const show = describeValue;

function mapLabel(raw: unknown, r: Resolved, where: { line?: number; entry?: number }): 0 | 1 {
  const key =
    typeof raw === 'string'
      ? raw.trim()
      : typeof raw === 'number' || typeof raw === 'boolean'
        ? String(raw)
        : undefined;
  const label = key === undefined || !Object.hasOwn(r.labels, key) ? undefined : r.labels[key];
  if (label !== 0 && label !== 1) {
    throw new InvalidInputError(
      `label ${show(raw)} is not one of ${Object.keys(r.labels)
        .map((k) => JSON.stringify(k))
        .join(', ')}`,
      { file: r.file, ...where, field: r.labelField },
    );
  }
  return label;
}

function empty(file: string): never {
  throw new InvalidInputError('file is empty', { file, line: 1 });
}

/** Column positions of the text and label fields in a header row. */
function locate(header: string[], r: Resolved): [number, number] {
  const names = header.map((h) => h.trim());
  const t = names.indexOf(r.textField);
  const l = names.indexOf(r.labelField);
  if (t < 0 || l < 0) {
    const missing = t < 0 ? r.textField : r.labelField;
    throw new InvalidInputError(`header has no column ${JSON.stringify(missing)} (columns: ${names.join(', ')})`, {
      file: r.file,
      line: 1,
      field: missing,
    });
  }
  return [t, l];
}

function fromRecords(records: Iterable<[string[], number]>, r: Resolved): LabelledRow[] {
  const rows: LabelledRow[] = [];
  let cols: [number, number] | undefined;
  let width = 0;
  for (const [fields, line] of records) {
    if (cols === undefined) {
      cols = locate(fields, r);
      width = fields.length;
      continue;
    }
    if (fields.length === 1 && fields[0] === '') continue; // blank line
    if (fields.length !== width) {
      throw new InvalidInputError(`row has ${fields.length} field(s), expected ${width}`, {
        file: r.file,
        line,
        field: fields.length < width ? r.labelField : undefined,
      });
    }
    rows.push({ text: fields[cols[0]] as string, label: mapLabel(fields[cols[1]], r, { line }) });
  }
  if (cols === undefined) empty(r.file);
  return rows;
}

function tsvRecords(text: string): Array<[string[], number]> {
  const out: Array<[string[], number]> = [];
  forEachLine(stripBom(text), (line, n) => out.push([line.split('\t'), n]));
  return out;
}

/** RFC 4180 CSV: `,` separated, fields optionally in double quotes with `""` as a quote; quoted newlines allowed. */
function* csvRecords(text: string, file: string): Generator<[string[], number]> {
  const s = stripBom(text);
  const len = s.length;
  let i = 0;
  let line = 1;
  while (i < len) {
    const startLine = line;
    const fields: string[] = [];
    for (;;) {
      let value = '';
      if (s.charCodeAt(i) === 34 /* " */) {
        i += 1;
        for (;;) {
          const q = s.indexOf('"', i);
          if (q < 0) throw new InvalidInputError('unterminated quoted field', { file, line: startLine });
          const chunk = s.slice(i, q);
          for (let k = chunk.indexOf('\n'); k >= 0; k = chunk.indexOf('\n', k + 1)) line += 1;
          value += chunk;
          if (s.charCodeAt(q + 1) === 34) {
            value += '"';
            i = q + 2;
          } else {
            i = q + 1;
            break;
          }
        }
        const c = s.charCodeAt(i);
        if (i < len && c !== 44 && c !== 10 && !(c === 13 && s.charCodeAt(i + 1) === 10)) {
          throw new InvalidInputError('unexpected character after a closing quote', { file, line });
        }
      } else {
        let j = i;
        while (j < len) {
          const c = s.charCodeAt(j);
          if (c === 44 || c === 10 || (c === 13 && s.charCodeAt(j + 1) === 10)) break;
          j += 1;
        }
        value = s.slice(i, j);
        i = j;
      }
      fields.push(value);
      if (i >= len) break;
      const c = s.charCodeAt(i);
      if (c === 44) {
        i += 1;
        continue;
      }
      i += c === 13 ? 2 : 1; // line end
      line += 1;
      break;
    }
    yield [fields, startLine];
  }
}

function fromJsonObject(value: unknown, r: Resolved, where: { line?: number; entry?: number }): LabelledRow {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidInputError('expected a JSON object', { file: r.file, ...where });
  }
  const obj = value as Record<string, unknown>;
  const text = obj[r.textField];
  if (typeof text !== 'string') {
    throw new InvalidInputError(`${r.textField} must be a string, got ${show(text)}`, {
      file: r.file,
      ...where,
      field: r.textField,
    });
  }
  return { text, label: mapLabel(obj[r.labelField], r, where) };
}

/**
 * Parse the text of a labelled source. `file` names it in errors (and gives the format if `format` is not set).
 * Bad input -> InvalidInputError with file, line (JSON: entry) and field.
 */
export function parseLabelled(text: string, file: string, options: LabelledSourceOptions = {}): LabelledRow[] {
  const format = options.format ?? formatOf(file);
  if (format === undefined) {
    throw new InvalidInputError('cannot tell the format from the file name; set format', { file, field: 'format' });
  }
  const r: Resolved = {
    file,
    textField: options.textField ?? 'text',
    labelField: options.labelField ?? 'label',
    labels: options.labels ?? DEFAULT_LABELS,
  };
  if (stripBom(text).trim() === '') empty(file);
  switch (format) {
    case 'tsv':
      return fromRecords(tsvRecords(text), r);
    case 'csv':
      return fromRecords(csvRecords(text, file), r);
    case 'jsonl': {
      const rows: LabelledRow[] = [];
      forEachLine(stripBom(text), (line, n) => {
        if (line.trim() === '') return;
        let value: unknown;
        try {
          value = JSON.parse(line);
        } catch (e) {
          throw new InvalidInputError(`not valid JSON: ${(e as Error).message}`, { file, line: n }, { cause: e });
        }
        rows.push(fromJsonObject(value, r, { line: n }));
      });
      return rows;
    }
    case 'json': {
      let value: unknown;
      try {
        value = JSON.parse(stripBom(text));
      } catch (e) {
        throw new InvalidInputError(`not valid JSON: ${(e as Error).message}`, { file }, { cause: e });
      }
      if (!Array.isArray(value)) throw new InvalidInputError('expected a JSON array of objects', { file });
      return value.map((v, k) => fromJsonObject(v, r, { entry: k + 1 }));
    }
    default:
      throw new InvalidInputError(`unknown format ${JSON.stringify(format)}`, { file, field: 'format' });
  }
}

/** Read a labelled file (see `parseLabelled`). Missing file -> NotFoundError. */
export async function readLabelled(file: string, options: LabelledSourceOptions = {}): Promise<LabelledRow[]> {
  return parseLabelled(await readText(file), file, options);
}
