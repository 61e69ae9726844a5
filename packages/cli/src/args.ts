/**
 * A small, strict argument parser: `--flag value`, `--flag=value`, boolean switches, repeated flags, positionals.
 * Unknown flags are errors (exit code 2), never silently ignored.
 */
import { InvalidInputError } from '@ch8/errors';

export interface FlagSpec {
  /** Takes a value (string) or is a switch (boolean). */
  type: 'string' | 'boolean';
  /** May be given several times, or with several values after it (`--words-from a.tsv b.tsv`). */
  multiple?: boolean;
  help: string;
}

export type Flags = Record<string, FlagSpec>;

export interface Parsed {
  flags: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
}

export function parseArgs(argv: readonly string[], spec: Flags): Parsed {
  const flags: Parsed['flags'] = {};
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('--')) {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    const s = spec[name];
    if (!s) throw new InvalidInputError(`unknown option --${name}`, { field: name });
    if (s.type === 'boolean') {
      if (eq >= 0) throw new InvalidInputError(`--${name} takes no value`, { field: name });
      flags[name] = true;
      continue;
    }
    const values: string[] = [];
    if (eq >= 0) values.push(arg.slice(eq + 1));
    else {
      // A multi-valued flag takes every following word up to the next option.
      while (i + 1 < argv.length && !argv[i + 1]!.startsWith('--')) {
        values.push(argv[++i]!);
        if (!s.multiple) break;
      }
    }
    if (values.length === 0) throw new InvalidInputError(`--${name} needs a value`, { field: name });
    if (s.multiple) flags[name] = [...((flags[name] as string[] | undefined) ?? []), ...values];
    else flags[name] = values[0];
  }
  return { flags, positionals };
}

export function str(p: Parsed, name: string): string | undefined {
  const v = p.flags[name];
  return typeof v === 'string' ? v : undefined;
}

export function list(p: Parsed, name: string): string[] {
  const v = p.flags[name];
  return Array.isArray(v) ? v : typeof v === 'string' ? [v] : [];
}

export function bool(p: Parsed, name: string): boolean {
  return p.flags[name] === true;
}

export function int(p: Parsed, name: string, fallback: number, min = -Infinity): number {
  const v = str(p, name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min)
    throw new InvalidInputError(`--${name} must be an integer >= ${min}, got ${JSON.stringify(v)}`, { field: name });
  return n;
}

export function helpText(usage: string, spec: Flags): string {
  const lines = [usage, ''];
  for (const [name, s] of Object.entries(spec)) {
    lines.push(`  --${name}${s.type === 'string' ? (s.multiple ? ' VALUE...' : ' VALUE') : ''}`.padEnd(30) + s.help);
  }
  return lines.join('\n');
}
