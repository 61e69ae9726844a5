/**
 * Paths named over gRPC may only point inside the configured data roots (CH8_DATA_ROOTS), as with the embedding
 * service: a relative path is taken relative to the first root holding it, an absolute one must lie inside a root,
 * and symbolic links may not lead out of the roots.
 */
import { realpath, stat } from 'node:fs/promises';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import type { DatasetSpec } from '@ch8/datasets/dataset';
import { InvalidInputError, NotFoundError, PermissionDeniedError } from '@ch8/errors';

function inside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel));
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

async function real(path: string): Promise<string> {
  try {
    return await realpath(path);
  } catch {
    return resolve(path);
  }
}

/**
 * The real absolute path of `path` (a request field named `field`), checked against `roots`. Outside every root,
 * or no roots configured -> PermissionDeniedError; missing -> NotFoundError; empty -> InvalidInputError.
 */
export async function resolveDataPath(path: string, roots: readonly string[], field: string): Promise<string> {
  if (path.trim() === '') throw new InvalidInputError('path is empty', { field });
  if (path.includes('\0')) throw new InvalidInputError('path contains a NUL byte', { field });
  if (roots.length === 0) {
    throw new PermissionDeniedError(
      `no data roots are configured (CH8_DATA_ROOTS): ${JSON.stringify(path)} may not be read`,
      { field },
    );
  }
  const realRoots = await Promise.all(roots.map((r) => real(resolve(r))));
  let candidate: string | undefined;
  if (isAbsolute(path)) {
    candidate = resolve(path);
    if (
      !roots.some((r) => inside(resolve(r), candidate as string)) &&
      !realRoots.some((r) => inside(r, candidate as string))
    ) {
      throw new PermissionDeniedError(`${JSON.stringify(path)} is outside the data roots`, { field });
    }
  } else {
    const options = realRoots.map((r) => resolve(r, path)).filter((p, i) => inside(realRoots[i] as string, p));
    if (options.length === 0)
      throw new PermissionDeniedError(`${JSON.stringify(path)} is outside the data roots`, { field });
    for (const o of options) {
      if (await exists(o)) {
        candidate = o;
        break;
      }
    }
    candidate ??= options[0] as string;
  }
  let resolved: string;
  try {
    resolved = await realpath(candidate);
  } catch (e) {
    if ((e as { code?: unknown }).code === 'ENOENT')
      throw new NotFoundError('no such file or directory', { file: path, field }, { cause: e });
    throw new PermissionDeniedError('cannot be read', { file: path, field }, { cause: e });
  }
  if (!realRoots.some((r) => inside(r, resolved))) {
    throw new PermissionDeniedError(`${JSON.stringify(path)} leads outside the data roots`, { field });
  }
  return resolved;
}

/**
 * The spec with every path it names resolved and checked by `resolveDataPath` (SST-2: field `source.sst2.dir`;
 * tabular: `source.tabular.files.path`). The builtin review sets name no path and are always allowed.
 */
export async function resolveSpecPaths(spec: DatasetSpec, roots: readonly string[]): Promise<DatasetSpec> {
  switch (spec.kind) {
    case 'sst2':
      return { ...spec, dir: await resolveDataPath(spec.dir, roots, 'source.sst2.dir') };
    case 'tabular': {
      const paths = await Promise.all(
        spec.files.map((f) => resolveDataPath(f.path, roots, 'source.tabular.files.path')),
      );
      return { ...spec, files: spec.files.map((f, i) => ({ split: f.split, path: paths[i] as string })) };
    }
    case 'builtin':
      return spec;
  }
}
