/**
 * A small, strict reader of the Prometheus text exposition format (version 0.0.4), for tests that scrape a
 * service's /metrics: written from the format's description, independent of the prom-client that writes it.
 * Malformed input throws an Error naming the line.
 */

export interface Sample {
  /** As written, e.g. `ch8_trainer_request_duration_seconds_bucket`. */
  name: string;
  labels: Readonly<Record<string, string>>;
  value: number;
}

export interface Family {
  name: string;
  help?: string;
  /** counter, gauge, histogram, summary or untyped. */
  type?: string;
  samples: Sample[];
}

export interface Exposition {
  /** By family name (a histogram's `_bucket`, `_sum` and `_count` samples are in its family). */
  readonly families: ReadonlyMap<string, Family>;
  readonly samples: readonly Sample[];
  /** The value of the sample with exactly these labels, or undefined. */
  value(name: string, labels?: Readonly<Record<string, string>>): number | undefined;
  /** The sum over the samples of `name` whose labels include `match` (0 when none). */
  sum(name: string, match?: Readonly<Record<string, string>>): number;
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

function unescape(s: string, quotes: boolean, where: string): string {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c !== '\\') {
      out += c;
      continue;
    }
    const next = s[++i];
    if (next === '\\') out += '\\';
    else if (next === 'n') out += '\n';
    else if (next === '"' && quotes) out += '"';
    else throw new Error(`${where}: bad escape \\${next ?? ''}`);
  }
  return out;
}

/** A float as Prometheus reads one (Go's ParseFloat): NaN and Inf in any case (prom-client writes `Nan`). */
function parseValue(s: string, where: string): number {
  const special = /^([-+]?)(inf|infinity|nan)$/i.exec(s);
  if (special !== null) {
    if (special[2]!.toLowerCase() === 'nan') return NaN;
    return special[1] === '-' ? -Infinity : Infinity;
  }
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(s)) throw new Error(`${where}: not a number: ${s}`);
  return Number(s);
}

/** `{a="x",b="y\"z"}` starting at `text[start]` === '{': the labels and the index after `}`. */
function parseLabels(text: string, start: number, where: string): { labels: Record<string, string>; end: number } {
  const labels: Record<string, string> = {};
  let i = start + 1;
  for (;;) {
    while (text[i] === ' ') i++;
    if (text[i] === '}') return { labels, end: i + 1 };
    const eq = text.indexOf('=', i);
    if (eq < 0) throw new Error(`${where}: label without =`);
    const name = text.slice(i, eq).trim();
    if (!LABEL_NAME.test(name)) throw new Error(`${where}: bad label name ${JSON.stringify(name)}`);
    if (name in labels) throw new Error(`${where}: label ${name} twice`);
    i = eq + 1;
    if (text[i] !== '"') throw new Error(`${where}: label value not quoted`);
    let j = i + 1;
    while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
    if (j >= text.length) throw new Error(`${where}: unterminated label value`);
    labels[name] = unescape(text.slice(i + 1, j), true, where);
    i = j + 1;
    while (text[i] === ' ') i++;
    if (text[i] === ',') i++;
    else if (text[i] !== '}') throw new Error(`${where}: expected , or } after a label`);
  }
}

function familyOf(name: string, families: Map<string, Family>): string {
  if (families.has(name)) return name;
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (name.endsWith(suffix)) {
      const base = name.slice(0, -suffix.length);
      const f = families.get(base);
      if (f !== undefined && (f.type === 'histogram' || f.type === 'summary')) return base;
    }
  }
  return name;
}

export function parseExposition(text: string): Exposition {
  const families = new Map<string, Family>();
  const samples: Sample[] = [];
  const family = (name: string): Family => {
    let f = families.get(name);
    if (f === undefined) families.set(name, (f = { name, samples: [] }));
    return f;
  };
  text.split('\n').forEach((line, n) => {
    const where = `line ${n + 1}`;
    if (line.trim() === '') return;
    if (line.startsWith('#')) {
      const m = /^#\s+(HELP|TYPE)\s+(\S+)(?:\s(.*))?$/.exec(line);
      if (m === null) return; // a plain comment
      const [, kind, name, rest = ''] = m;
      if (!METRIC_NAME.test(name!)) throw new Error(`${where}: bad metric name ${name}`);
      const f = family(name!);
      if (kind === 'HELP') {
        if (f.help !== undefined) throw new Error(`${where}: second HELP for ${name}`);
        f.help = unescape(rest, false, where);
      } else {
        if (f.type !== undefined) throw new Error(`${where}: second TYPE for ${name}`);
        if (f.samples.length > 0) throw new Error(`${where}: TYPE for ${name} after its samples`);
        if (!TYPES.has(rest.trim())) throw new Error(`${where}: unknown type ${rest}`);
        f.type = rest.trim();
      }
      return;
    }
    const nameEnd = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line);
    if (nameEnd === null) throw new Error(`${where}: no metric name: ${line}`);
    const name = nameEnd[0];
    let i = name.length;
    let labels: Record<string, string> = {};
    if (line[i] === '{') ({ labels, end: i } = parseLabels(line, i, where));
    const rest = line.slice(i).trim().split(/\s+/);
    if (rest.length < 1 || rest.length > 2 || rest[0] === '') throw new Error(`${where}: expected a value: ${line}`);
    const sample: Sample = { name, labels, value: parseValue(rest[0]!, where) };
    samples.push(sample);
    family(familyOf(name, families)).samples.push(sample);
  });
  const same = (a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>) => {
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
  };
  const includes = (a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>) =>
    Object.entries(b).every(([k, v]) => a[k] === v);
  return {
    families,
    samples,
    value: (name, labels = {}) => samples.find((s) => s.name === name && same(s.labels, labels))?.value,
    sum: (name, match = {}) =>
      samples.filter((s) => s.name === name && includes(s.labels, match)).reduce((t, s) => t + s.value, 0),
  };
}
