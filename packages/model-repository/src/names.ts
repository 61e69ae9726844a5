/**
 * Names and versions of a model repository: what may appear as `<name>` and `<version>` in
 * `<root>/<name>/<version>/`. A name is one safe path segment (no `/`, no `..`, no upper case, no leading dot, so
 * temporary `.tmp-*` entries can never be mistaken for a model); a version is a positive decimal integer.
 */
import { InvalidInputError } from '@ch8/errors';

/** Lower-case letters, digits, `.`, `_`, `-`; starts with a letter or digit; at most 64 characters. */
export const MODEL_NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/;

/**
 * Returns `name` when it matches {@link MODEL_NAME_PATTERN}; otherwise throws InvalidInputError naming `field`
 * (default `name`), so `'../x'`, `'x/y'`, `'A'` and `''` are refused.
 */
export function checkModelName(name: string, field = 'name'): string {
  if (typeof name !== 'string' || !MODEL_NAME_PATTERN.test(name)) {
    // Not JSON.stringify of any value: a list nested deep (from a manifest) overflows its stack.
    const shown =
      typeof name === 'string'
        ? JSON.stringify(name.slice(0, 80))
        : Array.isArray(name)
          ? 'a list'
          : String(typeof name);
    throw new InvalidInputError(
      `model name ${shown} is not allowed: use 1-64 characters of a-z 0-9 . _ -, starting with a letter or digit`,
      { field },
    );
  }
  return name;
}

const VERSION = /^[1-9][0-9]*$/;

/**
 * The version number a directory entry stands for: `'1'`, `'2'`, ... (positive decimal integers without sign or
 * leading zero, up to 2^53 - 1). Anything else (`'0'`, `'01'`, `'+1'`, `'1.0'`, `'.tmp-x'`, `'latest'`) is undefined.
 */
export function parseVersion(entry: string): number | undefined {
  if (typeof entry !== 'string' || !VERSION.test(entry)) return undefined;
  const n = Number(entry);
  return Number.isSafeInteger(n) ? n : undefined;
}
