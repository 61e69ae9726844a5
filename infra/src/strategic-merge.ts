/**
 * Strategic merge patches (the Kubernetes flavour of a JSON merge patch), for the fields this project's
 * kustomizations patch: maps merge key by key, `null` deletes a key, lists of objects that the Kubernetes API
 * declares with a merge key (containers by name, env by name, volumeMounts by mountPath, ...) merge item by item
 * (see mergeList for the order), every other list is replaced whole.
 *
 * Patch directives (`$patch`, `$retainKeys`, `$setElementOrder/...`, `$deleteFromPrimitiveList/...`) are not
 * supported and are refused rather than ignored.
 */
import { InvalidInputError } from '@ch8/errors';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Lists of the pod template and of a Service that merge by a key (from the Kubernetes API's patchMergeKey). */
const POD_SPEC_LISTS: Record<string, string> = {
  containers: 'name',
  initContainers: 'name',
  ephemeralContainers: 'name',
  volumes: 'name',
  imagePullSecrets: 'name',
  hostAliases: 'ip',
};
const CONTAINER_LISTS: Record<string, string> = {
  env: 'name',
  volumeMounts: 'mountPath',
  volumeDevices: 'devicePath',
  ports: 'containerPort',
};

/**
 * The merge key of the list at `path` (field names from the object's root, list positions left out), or undefined
 * when the list is replaced whole.
 */
export function mergeKeyOf(path: readonly string[]): string | undefined {
  const field = path[path.length - 1];
  if (field === undefined) return undefined;
  const parent = path[path.length - 2];
  if (parent === 'containers' || parent === 'initContainers' || parent === 'ephemeralContainers')
    return CONTAINER_LISTS[field];
  // A pod spec (at spec, spec.template.spec, spec.jobTemplate.spec.template.spec) or a Service's spec.ports.
  if (parent === 'spec') return field === 'ports' ? 'port' : POD_SPEC_LISTS[field];
  return undefined;
}

function refuseDirectives(patch: JsonObject, where: string): void {
  for (const key of Object.keys(patch)) {
    if (key.startsWith('$')) {
      throw new InvalidInputError(`strategic merge directive ${key} is not supported`, { field: `${where}${key}` });
    }
  }
}

/**
 * An associative list patched as kustomize does: the patch's items first, in the patch's order (each merged into
 * the base item with the same key, if any), then the base items the patch does not name, in their order.
 */
function mergeList(base: Json[], patch: Json[], key: string, path: readonly string[]): Json[] {
  const out: Json[] = [];
  const used = new Set<number>();
  for (const item of patch) {
    if (!isObject(item) || item[key] === undefined) {
      throw new InvalidInputError(`every item of ${path.join('.')} must be an object with "${key}"`, {
        field: path.join('.'),
      });
    }
    const at = base.findIndex((b) => isObject(b) && b[key] === item[key]);
    if (at === -1) {
      out.push(stripNulls(item));
    } else {
      used.add(at);
      out.push(mergeObject(base[at] as JsonObject, item, path));
    }
  }
  base.forEach((item, i) => {
    if (!used.has(i)) out.push(item);
  });
  return out;
}

/** A value added where the base has nothing: its nulls mean "absent". */
function stripNulls(v: Json): Json {
  if (Array.isArray(v)) return v.map(stripNulls);
  if (!isObject(v)) return v;
  const out: JsonObject = {};
  for (const [k, x] of Object.entries(v)) if (x !== null) out[k] = stripNulls(x);
  return out;
}

function mergeObject(base: JsonObject, patch: JsonObject, path: readonly string[]): JsonObject {
  refuseDirectives(patch, path.length === 0 ? '' : `${path.join('.')}.`);
  const out: JsonObject = { ...base };
  for (const [key, value] of Object.entries(patch)) {
    const here = [...path, key];
    const current = out[key];
    if (value === null) {
      delete out[key];
    } else if (isObject(value) && isObject(current)) {
      out[key] = mergeObject(current, value, here);
    } else if (Array.isArray(value) && Array.isArray(current)) {
      const mergeKey = mergeKeyOf(here);
      out[key] = mergeKey === undefined ? stripNulls(value) : mergeList(current, value, mergeKey, here);
    } else {
      out[key] = stripNulls(value);
    }
  }
  return out;
}

/** `base` with the strategic merge patch `patch` applied; neither is modified. */
export function strategicMerge(base: JsonObject, patch: JsonObject): JsonObject {
  return mergeObject(structuredClone(base), patch, []);
}
