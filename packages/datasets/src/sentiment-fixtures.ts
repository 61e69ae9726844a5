/**
 * The three labelled sentence sets shipped by npm `sentiment` under `test/fixtures/` (the UCI "Sentiment Labelled
 * Sentences" data: Amazon product, IMDb movie and Yelp restaurant reviews; JSON arrays of `{text, class}`, 500
 * positive + 500 negative each, plus one trailing `{"text": "", "class": null}` entry). Raw text: tokenize it
 * with `rawTokenize`.
 *
 * The default offline data set when no SST-2 directory is given. Split, deterministically from `seed`:
 * - entries without text or with a class other than 0/1 are dropped (`droppedInvalid`);
 * - repeated texts (exact match after trimming, across all sources) keep their first occurrence only
 *   (`droppedDuplicates`), so no sentence is in two splits;
 * - stratified by (source, label): each stratum is shuffled with the seed and cut into train/dev/test by the
 *   fractions (default 0.8 / 0.1 / 0.1, rounded per stratum), so every split has the same mix;
 * - within each split rows are in source order (amazon, imdb, yelp as given), then file order.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { InvalidInputError } from '@ch8/errors';
import { readText, type LabelledRow } from './rows.ts';
import { seededRandom, shuffleInPlace } from './rng.ts';

export type { LabelledRow } from './rows.ts';

export const FIXTURE_SOURCES = ['amazon', 'imdb', 'yelp'] as const;
export type FixtureSource = (typeof FIXTURE_SOURCES)[number];

/** A fixture sentence: a labelled row that knows where it came from. */
export interface FixtureRow extends LabelledRow {
  source: FixtureSource;
  /** 1-based position in the source's JSON array. */
  entry: number;
}

export interface FixtureSplitOptions {
  /** Seed of the split. Default 0. */
  seed?: number;
  /** Fraction for train and for dev; test gets the rest. Default { train: 0.8, dev: 0.1 }. */
  fractions?: { train: number; dev: number };
  /** Which sets to use. Default all three. */
  sources?: readonly FixtureSource[];
}

export interface FixtureSplits {
  train: FixtureRow[];
  dev: FixtureRow[];
  test: FixtureRow[];
  info: {
    seed: number;
    sources: FixtureSource[];
    /** Entries in the files. */
    read: number;
    droppedInvalid: number;
    droppedDuplicates: number;
  };
}

/** Directory holding amazon.json, imdb.json, yelp.json of the installed `sentiment` package. */
export function sentimentFixturesDir(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('sentiment/package.json')), 'test', 'fixtures');
}

/** Read one fixture file (all entries, invalid ones dropped; duplicates kept). */
export async function readSentimentFixture(
  source: FixtureSource,
  dir: string = sentimentFixturesDir(),
): Promise<{ rows: FixtureRow[]; read: number; droppedInvalid: number }> {
  if (!FIXTURE_SOURCES.includes(source)) {
    throw new InvalidInputError(`unknown fixture set ${JSON.stringify(source)}`, { field: 'sources' });
  }
  const file = join(dir, `${source}.json`);
  let data: unknown;
  try {
    data = JSON.parse(await readText(file));
  } catch (e) {
    if (e instanceof SyntaxError) throw new InvalidInputError(`not valid JSON: ${e.message}`, { file }, { cause: e });
    throw e;
  }
  if (!Array.isArray(data)) throw new InvalidInputError('expected a JSON array', { file });
  const rows: FixtureRow[] = [];
  data.forEach((item: unknown, k) => {
    const { text, class: cls } = (item ?? {}) as { text?: unknown; class?: unknown };
    if (typeof text === 'string' && text.trim() !== '' && (cls === 0 || cls === 1)) {
      rows.push({ text, label: cls, source, entry: k + 1 });
    }
  });
  return { rows, read: data.length, droppedInvalid: data.length - rows.length };
}

function checkFraction(x: unknown, field: string): number {
  if (typeof x !== 'number' || !(x >= 0 && x <= 1)) {
    throw new InvalidInputError(`fraction must be within [0, 1], got ${String(x)}`, { field });
  }
  return x;
}

/** Load the fixture sets and split them (see the module comment for the exact rule). */
export async function loadSentimentFixtures(options: FixtureSplitOptions = {}): Promise<FixtureSplits> {
  const seed = options.seed ?? 0;
  if (!Number.isSafeInteger(seed))
    throw new InvalidInputError(`seed must be an integer, got ${seed}`, { field: 'seed' });
  const fTrain = checkFraction(options.fractions?.train ?? 0.8, 'fractions.train');
  const fDev = checkFraction(options.fractions?.dev ?? 0.1, 'fractions.dev');
  if (fTrain + fDev > 1 + 1e-9) {
    throw new InvalidInputError('fractions.train + fractions.dev must not exceed 1', { field: 'fractions' });
  }
  const sources = [...(options.sources ?? FIXTURE_SOURCES)];
  if (sources.length === 0) throw new InvalidInputError('no fixture sets chosen', { field: 'sources' });
  const dir = sentimentFixturesDir();
  const loaded = await Promise.all(sources.map((s) => readSentimentFixture(s, dir)));

  const seen = new Set<string>();
  const strata = new Map<string, FixtureRow[]>();
  let read = 0;
  let droppedInvalid = 0;
  let droppedDuplicates = 0;
  for (const { rows, read: r, droppedInvalid: d } of loaded) {
    read += r;
    droppedInvalid += d;
    for (const row of rows) {
      const key = row.text.trim();
      if (seen.has(key)) {
        droppedDuplicates += 1;
        continue;
      }
      seen.add(key);
      const stratum = `${row.source}/${row.label}`;
      const list = strata.get(stratum);
      if (list === undefined) strata.set(stratum, [row]);
      else list.push(row);
    }
  }

  const random = seededRandom(seed);
  const train: FixtureRow[] = [];
  const dev: FixtureRow[] = [];
  const test: FixtureRow[] = [];
  for (const key of [...strata.keys()].sort()) {
    const rows = shuffleInPlace([...(strata.get(key) as FixtureRow[])], random);
    const nTrain = Math.round(rows.length * fTrain);
    const nDev = Math.min(rows.length - nTrain, Math.round(rows.length * fDev));
    train.push(...rows.slice(0, nTrain));
    dev.push(...rows.slice(nTrain, nTrain + nDev));
    test.push(...rows.slice(nTrain + nDev));
  }
  const order = (a: FixtureRow, b: FixtureRow): number =>
    sources.indexOf(a.source) - sources.indexOf(b.source) || a.entry - b.entry;
  train.sort(order);
  dev.sort(order);
  test.sort(order);
  return { train, dev, test, info: { seed, sources, read, droppedInvalid, droppedDuplicates } };
}
