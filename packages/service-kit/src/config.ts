/**
 * Typed configuration parsing: each service declares its settings once (config.ts) and parses them from the
 * environment at start. A bad value fails the start with an error naming the variable.
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve as resolvePath } from 'node:path';
import { InvalidInputError } from '@ch8/errors';

type Kind = 'string' | 'int' | 'number' | 'bool' | 'list' | 'enum';

interface BaseSpec<T> {
  /** Environment variable name. */
  env: string;
  doc: string;
  default?: T;
}
export interface StringSpec extends BaseSpec<string> {
  kind: 'string';
}
export interface IntSpec extends BaseSpec<number> {
  kind: 'int';
  min?: number;
  max?: number;
}
export interface NumberSpec extends BaseSpec<number> {
  kind: 'number';
  min?: number;
  max?: number;
}
export interface BoolSpec extends BaseSpec<boolean> {
  kind: 'bool';
}
export interface ListSpec extends BaseSpec<string[]> {
  kind: 'list';
}
export interface EnumSpec<E extends string = string> extends BaseSpec<E> {
  kind: 'enum';
  values: readonly E[];
}

export type FieldSpec = StringSpec | IntSpec | NumberSpec | BoolSpec | ListSpec | EnumSpec;

type ValueOf<S> = S extends StringSpec
  ? string
  : S extends IntSpec | NumberSpec
    ? number
    : S extends BoolSpec
      ? boolean
      : S extends ListSpec
        ? string[]
        : S extends { kind: 'enum'; values: readonly (infer E)[] }
          ? E
          : never;

export type ConfigOf<T extends Record<string, FieldSpec>> = { readonly [K in keyof T]: ValueOf<T[K]> };

function parseOne(spec: FieldSpec, raw: string): unknown {
  const fail = (why: string): never => {
    throw new InvalidInputError(`${why}, got ${JSON.stringify(raw)}`, { field: spec.env });
  };
  switch (spec.kind as Kind) {
    case 'string':
      return raw;
    case 'int':
    case 'number': {
      const s = spec as IntSpec | NumberSpec;
      const n = Number(raw);
      if (raw.trim() === '' || !Number.isFinite(n)) fail('expected a number');
      if (spec.kind === 'int' && !Number.isInteger(n)) fail('expected an integer');
      if (s.min !== undefined && n < s.min) fail(`must be >= ${s.min}`);
      if (s.max !== undefined && n > s.max) fail(`must be <= ${s.max}`);
      return n;
    }
    case 'bool': {
      const v = raw.trim().toLowerCase();
      if (['1', 'true', 'yes', 'on'].includes(v)) return true;
      if (['0', 'false', 'no', 'off', ''].includes(v)) return false;
      return fail('expected true or false');
    }
    case 'list':
      return raw
        .split(/[,:]/)
        .map((s) => s.trim())
        .filter((s) => s.length > 0);
    case 'enum': {
      const s = spec as EnumSpec;
      if (!s.values.includes(raw)) fail(`expected one of ${s.values.join(', ')}`);
      return raw;
    }
  }
}

/** Parses `env` (normally process.env, passed in by main.ts) against the specs. */
export function parseConfig<T extends Record<string, FieldSpec>>(
  specs: T,
  env: Record<string, string | undefined>,
): ConfigOf<T> {
  const out: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(specs)) {
    const raw = env[spec.env];
    if (raw === undefined) {
      if (spec.default === undefined) {
        throw new InvalidInputError(`required setting is missing (${spec.doc})`, { field: spec.env });
      }
      out[key] = spec.default;
    } else {
      out[key] = parseOne(spec, raw);
    }
  }
  return out as ConfigOf<T>;
}

/** One line per setting, for --help and READMEs. */
export function describeConfig(specs: Record<string, FieldSpec>): string {
  return Object.values(specs)
    .map((s) => `${s.env}${s.default !== undefined ? ` (default ${JSON.stringify(s.default)})` : ''}: ${s.doc}`)
    .join('\n');
}

/**
 * The directory under which the stack keeps its state (model repository, trainer state, caches): `CH8_HOME` when
 * set, else `.cache` in the workspace root (the nearest ancestor of `cwd` holding pnpm-workspace.yaml), else `.cache`
 * in `cwd`. Services resolve their default paths from it, never from their package folder, so under `turbo run dev`
 * the trainer writes where the gateway reads.
 */
export function ch8Home(env: Record<string, string | undefined>, cwd: string = process.cwd()): string {
  const given = env['CH8_HOME'];
  if (given !== undefined && given !== '') return resolvePath(cwd, given);
  for (let dir = resolvePath(cwd); ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'pnpm-workspace.yaml'))) return join(dir, '.cache');
    if (dirname(dir) === dir) return resolvePath(cwd, '.cache');
  }
}
