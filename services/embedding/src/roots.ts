/**
 * Which files a gRPC caller may name: only those whose real path (symlinks resolved, `..` collapsed) lies inside one
 * of the configured data roots.
 */
import { realpath, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { NotFoundError, PermissionDeniedError } from '@ch8/errors';

/** True when `path` is `root` or below it (both absolute and normalized). */
export function isInside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel === '' || (!isAbsolute(rel) && rel !== '..' && !rel.startsWith(`..${sep}`));
}

async function real(path: string): Promise<string | undefined> {
  try {
    return await realpath(path);
  } catch (e) {
    const code = (e as { code?: unknown } | null)?.code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw e;
  }
}

/** The real path of a path that may not exist: its deepest existing ancestor resolved, the rest appended. */
async function realOfMissing(path: string): Promise<string> {
  let rest = '';
  let p = path;
  for (;;) {
    const r = await real(p);
    if (r !== undefined) return rest === '' ? r : join(r, rest);
    const up = dirname(p);
    if (up === p) return path;
    rest = rest === '' ? basename(p) : join(basename(p), rest);
    p = up;
  }
}

export interface DataRoots {
  /** The real path of a file the caller named, checked against the roots. */
  resolve(source: string): Promise<string>;
}

/**
 * @param roots directories sources may be read from; relative ones resolve against `cwd`. Roots that do not exist
 *   are ignored (nothing can be read from them).
 */
export function dataRoots(roots: readonly string[], cwd: string): DataRoots {
  let realRoots: Promise<string[]> | undefined;
  const loadRoots = async () => {
    const out: string[] = [];
    for (const r of roots) {
      const p = await real(resolve(cwd, r));
      if (p !== undefined) out.push(p);
    }
    return out;
  };
  return {
    /**
     * `source` is absolute, or relative to a root (tried in order). A path that leaves every root (by `..`, an
     * absolute path elsewhere or a symlink pointing out) is refused with PermissionDeniedError, whether or not it
     * exists, so callers cannot probe the rest of the file system; a path inside a root that does not exist is
     * NotFoundError.
     */
    async resolve(source) {
      realRoots ??= loadRoots();
      const rootList = await realRoots;
      const inAny = (p: string) => rootList.some((r) => isInside(r, p));
      const candidates = isAbsolute(source) ? [resolve(source)] : rootList.map((r) => resolve(r, source));
      let missingInside = false;
      for (const c of candidates) {
        const p = await real(c);
        if (p === undefined) {
          if (inAny(await realOfMissing(c))) missingInside = true;
          continue;
        }
        if (!inAny(p)) continue;
        const st = await stat(p);
        if (st.isDirectory()) continue;
        return p;
      }
      if (missingInside) throw new NotFoundError('no such file', { file: source, field: 'source' });
      throw new PermissionDeniedError('the source is outside the data roots this server may read', {
        file: source,
        field: 'source',
      });
    },
  };
}
