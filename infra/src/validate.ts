/**
 * Validates Kubernetes objects offline against the API's schemas, as `kubectl apply --validate=strict` would,
 * with the npm package `kubernetes-models` (generated from the Kubernetes OpenAPI document, schemas bundled):
 *
 * - its model class's `validate()` checks types, required fields and formats (an `image: 1`, a probe without a
 *   handler port, `replicas: two`, a missing container name);
 * - its schemas accept fields they do not know, which the API server refuses (`readinesProbe:` would silently
 *   leave a container without a readiness probe), so every field is also looked up in the package's own type
 *   declarations, read with the TypeScript compiler: an unknown field is a problem naming its path.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type * as TS from 'typescript';
import { objectId, type K8sObject } from './kustomize.ts';

export interface Problem {
  /** `Kind/namespace/name`. */
  object: string;
  /** Where in the object (`spec.template.spec.containers[0].image`), '' for the object itself. */
  path: string;
  message: string;
}

type ModelClass = new (data: unknown) => { validate(): void };

/**
 * The kubernetes-models module of a kind: `apps/v1` Deployment -> kubernetes-models/apps/v1/Deployment (one kind's
 * module loads only the schemas it needs; a group's index loads them all, seconds more).
 */
function modulePath(apiVersion: string, kind: string): string | undefined {
  return /^([a-z0-9.-]+\/)?v[0-9]+((alpha|beta)[0-9]+)?$/.test(apiVersion) && /^[A-Z][A-Za-z0-9]*$/.test(kind)
    ? `kubernetes-models/${apiVersion}/${kind}`
    : undefined;
}

async function modelClass(o: K8sObject): Promise<ModelClass | undefined> {
  const path = modulePath(o.apiVersion, o.kind);
  if (path === undefined) return undefined;
  let mod: Record<string, unknown>;
  try {
    mod = (await import(path)) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const cls = mod[o.kind];
  return typeof cls === 'function' ? (cls as ModelClass) : undefined;
}

/** "data/spec/replicas must be integer" -> path spec.replicas. */
function schemaProblems(object: string, error: unknown): Problem[] {
  const message = error instanceof Error ? error.message : String(error);
  return message
    .split(/,\s*(?=data[/ ])|\n/)
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const m = /^data((?:\/[^ ]*)?) (.*)$/.exec(line.trim());
      if (m === null) return { object, path: '', message: line.trim() };
      const path = (m[1] ?? '')
        .split('/')
        .filter((p) => p !== '')
        .map((p) => (/^\d+$/.test(p) ? `[${p}]` : `.${p}`))
        .join('')
        .replace(/^\./, '');
      return { object, path, message: m[2] ?? line };
    });
}

// ---------------------------------------------------------------------------------------------------------------
// Unknown fields, from kubernetes-models' type declarations

/**
 * The TypeScript compiler, loaded on first use with require: an `import` of its 9 MB CommonJS file through tsx's
 * ESM hooks takes twice as long.
 */
let compiler: typeof TS | undefined;
function typescript(): typeof TS {
  compiler ??= createRequire(import.meta.url)('typescript') as typeof TS;
  return compiler;
}

interface TypeIndex {
  checker: TS.TypeChecker;
  /** The declared interface of each `apiVersion/kind`. */
  types: Map<string, TS.Type>;
}

const indexes = new Map<string, TypeIndex>();

/** One TypeScript program over the declarations of `kinds` (`apiVersion/Kind`); about a second to build. */
function typeIndex(kinds: readonly string[]): TypeIndex {
  const ts = typescript();
  const key = [...kinds].sort().join(',');
  const cached = indexes.get(key);
  if (cached !== undefined) return cached;
  // A module beside this one, so that `kubernetes-models` resolves from this package.
  const fileName = fileURLToPath(new URL('./__kubernetes_kinds__.ts', import.meta.url));
  const lines = kinds.map(
    (k, i) => `import type { I${k.slice(k.lastIndexOf('/') + 1)} as T${i} } from 'kubernetes-models/${k}';`,
  );
  lines.push(`export interface Kinds { ${kinds.map((k, i) => `${JSON.stringify(k)}: T${i};`).join(' ')} }`);
  const text = lines.join('\n');
  const options: TS.CompilerOptions = {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    lib: ['lib.es2022.d.ts'],
    types: [],
    strict: true,
    skipLibCheck: true,
    noEmit: true,
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  const fileExists = host.fileExists.bind(host);
  host.getSourceFile = (f, language, ...rest) =>
    f === fileName ? ts.createSourceFile(f, text, language) : getSourceFile(f, language, ...rest);
  host.fileExists = (f) => f === fileName || fileExists(f);
  const program = ts.createProgram([fileName], options, host);
  const checker = program.getTypeChecker();
  const source = program.getSourceFile(fileName);
  const moduleSymbol = source === undefined ? undefined : checker.getSymbolAtLocation(source);
  const kindsSymbol = moduleSymbol && checker.getExportsOfModule(moduleSymbol).find((s) => s.name === 'Kinds');
  const types = new Map<string, TS.Type>();
  if (kindsSymbol !== undefined) {
    const kindsType = checker.getDeclaredTypeOfSymbol(kindsSymbol);
    for (const k of kinds) {
      const prop = checker.getPropertyOfType(kindsType, k);
      const type = prop === undefined ? undefined : checker.getTypeOfSymbol(prop);
      // An import that did not resolve gives the error type, which has no properties: leave that kind out.
      if (type !== undefined && checker.getPropertiesOfType(type).length > 0) types.set(k, type);
    }
  }
  const index = { checker, types };
  indexes.set(key, index);
  return index;
}

function unknownFields(checker: TS.TypeChecker, value: unknown, type: TS.Type, path: string, out: string[]): void {
  const ts = typescript();
  if (value === null || typeof value !== 'object') return;
  let t = checker.getNonNullableType(type);
  if (t.isUnion()) {
    const objects = t.types.filter((x) => (x.flags & ts.TypeFlags.Object) !== 0);
    if (objects.length !== 1) return; // int-or-string and the like: nothing to look into
    t = objects[0] as TS.Type;
  }
  if (Array.isArray(value)) {
    if (!checker.isArrayType(t)) return;
    const element = checker.getTypeArguments(t as TS.TypeReference)[0];
    if (element !== undefined) value.forEach((v, i) => unknownFields(checker, v, element, `${path}[${i}]`, out));
    return;
  }
  const index = checker.getIndexInfoOfType(t, ts.IndexKind.String);
  for (const [key, v] of Object.entries(value)) {
    const here = path === '' ? key : `${path}.${key}`;
    const prop = checker.getPropertyOfType(t, key);
    if (prop !== undefined) unknownFields(checker, v, checker.getTypeOfSymbol(prop), here, out);
    else if (index !== undefined) unknownFields(checker, v, index.type, here, out);
    else out.push(here);
  }
}

// ---------------------------------------------------------------------------------------------------------------

/**
 * Every problem of `objects` against the Kubernetes API schemas: kinds the schemas do not know, schema violations
 * and unknown fields. Empty when all are valid.
 */
export async function validateObjects(objects: readonly K8sObject[]): Promise<Problem[]> {
  const problems: Problem[] = [];
  const known: K8sObject[] = [];
  for (const o of objects) {
    const id = objectId(o);
    const cls = await modelClass(o);
    if (cls === undefined) {
      problems.push({ object: id, path: '', message: `unknown kind ${o.kind} in ${o.apiVersion}` });
      continue;
    }
    known.push(o);
    try {
      new cls(o).validate();
    } catch (e) {
      problems.push(...schemaProblems(id, e));
    }
  }
  const kinds = [...new Set(known.map((o) => `${o.apiVersion}/${o.kind}`))];
  if (kinds.length > 0) {
    const { checker, types } = typeIndex(kinds);
    for (const o of known) {
      const type = types.get(`${o.apiVersion}/${o.kind}`);
      if (type === undefined) {
        problems.push({ object: objectId(o), path: '', message: 'no type declarations for this kind' });
        continue;
      }
      const unknown: string[] = [];
      unknownFields(checker, o, type, '', unknown);
      for (const path of unknown) problems.push({ object: objectId(o), path, message: 'unknown field' });
    }
  }
  return problems;
}

/** One line per problem: `Deployment/gateway spec.replicas: must be integer`. */
export function formatProblems(problems: readonly Problem[]): string {
  return problems.map((p) => `${p.object}${p.path === '' ? '' : ` ${p.path}`}: ${p.message}`).join('\n');
}
