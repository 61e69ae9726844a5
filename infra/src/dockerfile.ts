/**
 * Reads Dockerfiles and .dockerignore files far enough to check them without a container engine: instructions
 * (line continuations joined, comments dropped), build stages, COPY/ADD sources and flags, and the build context's
 * exclusion patterns (Docker's syntax: `*`, `?`, `**`, `!` exceptions, the last matching pattern wins).
 */
import { InvalidInputError } from '@ch8/errors';

export interface Instruction {
  /** Upper-cased: FROM, RUN, COPY, ... */
  keyword: string;
  /** Everything after the keyword, continuations joined with a space. */
  args: string;
  /** 1-based line of the keyword. */
  line: number;
}

export interface Stage {
  /** The image or stage it starts from (`node:20-bookworm-slim`, `${NODE_IMAGE}`). */
  from: string;
  /** `AS name`, if given. */
  name?: string;
  instructions: Instruction[];
}

export interface Dockerfile {
  /** ARG instructions before the first FROM (usable in FROM lines). */
  globalArgs: Instruction[];
  stages: Stage[];
}

export function parseDockerfile(text: string, file = 'Dockerfile'): Dockerfile {
  const instructions: Instruction[] = [];
  let pending: { keyword: string; parts: string[]; line: number } | undefined;
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, i) => {
    const trimmed = raw.trim();
    if (pending === undefined && (trimmed === '' || trimmed.startsWith('#'))) return;
    if (pending !== undefined && trimmed.startsWith('#')) return; // comments inside a continued instruction
    const continued = trimmed.endsWith('\\');
    const body = continued ? trimmed.slice(0, -1).trim() : trimmed;
    if (pending === undefined) {
      const m = /^([A-Za-z]+)(?:\s+(.*))?$/.exec(body);
      if (m === null) throw new InvalidInputError('expected an instruction', { file, line: i + 1 });
      pending = { keyword: (m[1] as string).toUpperCase(), parts: m[2] === undefined ? [] : [m[2]], line: i + 1 };
    } else if (body !== '') {
      pending.parts.push(body);
    }
    if (!continued) {
      instructions.push({ keyword: pending.keyword, args: pending.parts.join(' '), line: pending.line });
      pending = undefined;
    }
  });
  if (pending !== undefined) throw new InvalidInputError('the last instruction ends with a \\', { file });

  const out: Dockerfile = { globalArgs: [], stages: [] };
  for (const ins of instructions) {
    if (ins.keyword === 'FROM') {
      const m = /^(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      if (m === null) throw new InvalidInputError('expected FROM image [AS name]', { file, line: ins.line });
      out.stages.push({ from: m[1] as string, ...(m[2] === undefined ? {} : { name: m[2] }), instructions: [] });
    } else if (out.stages.length === 0) {
      if (ins.keyword !== 'ARG')
        throw new InvalidInputError(`${ins.keyword} before the first FROM`, { file, line: ins.line });
      out.globalArgs.push(ins);
    } else {
      (out.stages[out.stages.length - 1] as Stage).instructions.push(ins);
    }
  }
  return out;
}

export interface CopySpec {
  /** --from=STAGE, if given. */
  from?: string;
  /** --chown, --chmod, --link ... as given. */
  flags: Record<string, string>;
  sources: string[];
  destination: string;
}

/** The parts of a COPY or ADD instruction (shell form `COPY a b dest` or JSON form `COPY ["a", "dest"]`). */
export function parseCopy(ins: Instruction, file = 'Dockerfile'): CopySpec {
  const flags: Record<string, string> = {};
  let rest = ins.args.trim();
  for (;;) {
    const m = /^--([a-z-]+)(?:=(\S*))?\s+/.exec(rest);
    if (m === null) break;
    flags[m[1] as string] = m[2] ?? 'true';
    rest = rest.slice(m[0].length);
  }
  let words: string[];
  if (rest.startsWith('[')) {
    const parsed: unknown = JSON.parse(rest);
    if (!Array.isArray(parsed) || !parsed.every((w) => typeof w === 'string'))
      throw new InvalidInputError('expected a JSON array of strings', { file, line: ins.line });
    words = parsed;
  } else {
    words = rest.split(/\s+/).filter((w) => w !== '');
  }
  if (words.length < 2)
    throw new InvalidInputError(`${ins.keyword} needs a source and a destination`, { file, line: ins.line });
  return {
    ...(flags['from'] === undefined ? {} : { from: flags['from'] }),
    flags,
    sources: words.slice(0, -1),
    destination: words[words.length - 1] as string,
  };
}

/** The value of `ARG NAME=value` in `instructions`, if declared with a default. */
export function argDefault(instructions: readonly Instruction[], name: string): string | undefined {
  for (const ins of instructions) {
    if (ins.keyword !== 'ARG') continue;
    const m = /^([A-Za-z_][A-Za-z0-9_]*)(?:=(.*))?$/.exec(ins.args.trim());
    if (m !== null && m[1] === name) return m[2];
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// .dockerignore

interface IgnoreRule {
  exclude: boolean;
  regex: RegExp;
}

function globToRegex(pattern: string): RegExp {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === '*' && pattern[i + 1] === '*') {
      // `**/` matches any number of folders (none included), a final `**` anything.
      if (pattern[i + 2] === '/') {
        out += '(?:.*/)?';
        i += 2;
      } else {
        out += '.*';
        i += 1;
      }
    } else if (c === '*') out += '[^/]*';
    else if (c === '?') out += '[^/]';
    else out += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${out}$`);
}

/** The rules of a .dockerignore file. */
export function parseDockerignore(text: string): IgnoreRule[] {
  const rules: IgnoreRule[] = [];
  for (const raw of text.split(/\r?\n/)) {
    let line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const exclude = !line.startsWith('!');
    if (!exclude) line = line.slice(1).trim();
    line = line.replace(/^\/+/, '').replace(/^\.\//, '').replace(/\/+$/, '');
    if (line === '') continue;
    rules.push({ exclude, regex: globToRegex(line) });
  }
  return rules;
}

/**
 * Whether the context path `path` (relative to the context root, `/`-separated) is left out of the build context.
 */
export function isIgnored(rules: readonly IgnoreRule[], path: string): boolean {
  const parts = path
    .replace(/^\.\//, '')
    .split('/')
    .filter((p) => p !== '' && p !== '.');
  if (parts.length === 0) return false;
  const prefixes = parts.map((_, n) => parts.slice(0, n + 1).join('/'));
  let ignored = false;
  // A rule matching a parent folder matches everything below it; the last matching rule decides (Docker's order).
  for (const rule of rules) if (prefixes.some((p) => rule.regex.test(p))) ignored = rule.exclude;
  return ignored;
}
