/**
 * Checks that a parsed `results.json` is a `ChapterResults`, field by field, and returns a fresh copy holding the
 * known fields only. A problem throws `InvalidInputError` whose `field` is the path of the bad value, e.g.
 * `models[2].epochs[0].train_loss`. An optional field may be absent or `null` (JSON.stringify writes NaN as null);
 * both read as absent.
 */
import { InvalidInputError } from '@ch8/errors';
import type { ChapterEpoch, ChapterModelResult, ChapterResults, ChapterSample, ChapterSplit } from './results.ts';

type Obj = Record<string, unknown>;
interface Range {
  min?: number;
  max?: number;
  integer?: boolean;
}

class Reader {
  constructor(readonly file: string | undefined) {}

  fail(field: string, message: string): never {
    throw new InvalidInputError(message, { file: this.file, field });
  }

  describe(value: unknown): string {
    if (value === undefined) return 'nothing (missing)';
    if (value === null) return 'null';
    if (typeof value === 'object' && !Array.isArray(value)) return 'an object';
    if (Array.isArray(value)) return 'an array';
    if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
    return typeof value === 'string' ? `the string ${JSON.stringify(value.slice(0, 40))}` : `a ${typeof value}`;
  }

  object(value: unknown, field: string): Obj {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      this.fail(field, `expected an object, got ${this.describe(value)}`);
    }
    return value as Obj;
  }

  array(value: unknown, field: string): unknown[] {
    if (!Array.isArray(value)) this.fail(field, `expected an array, got ${this.describe(value)}`);
    return value;
  }

  string(o: Obj, key: string, path: string): string {
    const v = o[key];
    if (typeof v !== 'string') this.fail(join(path, key), `expected a string, got ${this.describe(v)}`);
    return v;
  }

  boolean(o: Obj, key: string, path: string): boolean {
    const v = o[key];
    if (typeof v !== 'boolean') this.fail(join(path, key), `expected true or false, got ${this.describe(v)}`);
    return v;
  }

  /** A finite number, optionally within [min, max] and whole. */
  number(o: Obj, key: string, path: string, range: Range = {}): number {
    return this.numberAt(o[key], join(path, key), range);
  }

  numberAt(v: unknown, field: string, range: Range = {}): number {
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(field, `expected a number, got ${this.describe(v)}`);
    if (range.integer === true && !Number.isInteger(v)) this.fail(field, `expected a whole number, got ${v}`);
    if (range.min !== undefined && v < range.min) this.fail(field, `expected at least ${range.min}, got ${v}`);
    if (range.max !== undefined && v > range.max) this.fail(field, `expected at most ${range.max}, got ${v}`);
    return v;
  }

  has(o: Obj, key: string): boolean {
    return o[key] !== undefined && o[key] !== null;
  }
}

function join(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

const FRACTION = { min: 0, max: 1 };
const COUNT = { min: 0, integer: true };
const NON_NEGATIVE = { min: 0 };

function epoch(r: Reader, value: unknown, path: string): ChapterEpoch {
  const o = r.object(value, path);
  const e: ChapterEpoch = {
    epoch: r.number(o, 'epoch', path, { min: 1, integer: true }),
    train_loss: r.number(o, 'train_loss', path),
    train_accuracy: r.number(o, 'train_accuracy', path, FRACTION),
    train_examples_per_second: r.number(o, 'train_examples_per_second', path, NON_NEGATIVE),
    seconds: r.number(o, 'seconds', path, NON_NEGATIVE),
  };
  if (r.has(o, 'dev_loss')) e.dev_loss = r.number(o, 'dev_loss', path);
  if (r.has(o, 'dev_accuracy')) e.dev_accuracy = r.number(o, 'dev_accuracy', path, FRACTION);
  if (r.has(o, 'learning_rate')) e.learning_rate = r.number(o, 'learning_rate', path, NON_NEGATIVE);
  return e;
}

function split(r: Reader, value: unknown, path: string): ChapterSplit {
  const o = r.object(value, path);
  const s = {
    split: r.string(o, 'split', path),
    examples: r.number(o, 'examples', path, COUNT),
    accuracy: r.number(o, 'accuracy', path, FRACTION),
    precision: r.number(o, 'precision', path, FRACTION),
    recall: r.number(o, 'recall', path, FRACTION),
    f1: r.number(o, 'f1', path, FRACTION),
  };
  const cPath = join(path, 'confusion');
  const rows = r.array(o.confusion, cPath);
  if (rows.length !== 2) r.fail(cPath, `expected 2 rows [[tn, fp], [fn, tp]], got ${rows.length}`);
  const confusion = rows.map((row, t) => {
    const rowPath = `${cPath}[${t}]`;
    const cells = r.array(row, rowPath);
    if (cells.length !== 2) r.fail(rowPath, `expected 2 columns, got ${cells.length}`);
    return [0, 1].map((p) => r.numberAt(cells[p], `${rowPath}[${p}]`, COUNT)) as [number, number];
  }) as [[number, number], [number, number]];
  return { ...s, confusion };
}

function model(r: Reader, value: unknown, path: string): ChapterModelResult {
  const o = r.object(value, path);
  const m: ChapterModelResult = {
    problem: r.string(o, 'problem', path),
    model: r.string(o, 'model', path),
    name: r.string(o, 'name', path),
    finetune: r.boolean(o, 'finetune', path),
    backend: r.string(o, 'backend', path),
    dev_accuracy: r.number(o, 'dev_accuracy', path, FRACTION),
    best_epoch: r.number(o, 'best_epoch', path, COUNT),
    train_examples_per_second: r.number(o, 'train_examples_per_second', path, NON_NEGATIVE),
    epochs: r.array(o.epochs, join(path, 'epochs')).map((e, i) => epoch(r, e, `${path}.epochs[${i}]`)),
    seconds: r.number(o, 'seconds', path, NON_NEGATIVE),
    model_dir: r.string(o, 'model_dir', path),
  };
  if (r.has(o, 'batch_size')) m.batch_size = r.number(o, 'batch_size', path, COUNT);
  if (r.has(o, 'run_id')) m.run_id = r.string(o, 'run_id', path);
  if (r.has(o, 'splits')) {
    m.splits = r.array(o.splits, join(path, 'splits')).map((s, i) => split(r, s, `${path}.splits[${i}]`));
  }
  return m;
}

function sample(r: Reader, value: unknown, path: string): ChapterSample {
  const o = r.object(value, path);
  return {
    text: r.string(o, 'text', path),
    model: r.string(o, 'model', path),
    label: r.string(o, 'label', path),
    probability: r.number(o, 'probability', path, FRACTION),
  };
}

/**
 * `value` as `ChapterResults`, or an `InvalidInputError` naming the first bad field (`file`, when given, is the
 * source named in the error).
 */
export function validateChapterResults(value: unknown, file?: string): ChapterResults {
  const r = new Reader(file);
  const o = r.object(value, '(results)');
  const results: ChapterResults = {
    models: r.array(o.models, 'models').map((m, i) => model(r, m, `models[${i}]`)),
  };
  if (r.has(o, 'data')) results.data = r.string(o, 'data', '');
  if (r.has(o, 'vectors')) results.vectors = r.string(o, 'vectors', '');
  if (r.has(o, 'samples')) {
    results.samples = r.array(o.samples, 'samples').map((s, i) => sample(r, s, `samples[${i}]`));
  }
  if (r.has(o, 'started_at')) results.started_at = r.string(o, 'started_at', '');
  if (r.has(o, 'seconds')) results.seconds = r.number(o, 'seconds', '', NON_NEGATIVE);
  return results;
}
