/**
 * Property-based fuzzing of the model manifest loader: valid formatVersion 2 (and 1) manifests with every field
 * removed, retyped, tweaked or joined by unknown ones, and manifest.json files cut or bit-flipped, through
 * `validateManifest` and `readManifest`. A manifest is either accepted unchanged (the typed result is the JSON it
 * read, and the invariants the format promises hold, checked here independently) or refused with the project's
 * typed error naming the file and the field; never another error or a silently changed value.
 *
 * Seeded and bounded; `CH8_FUZZ_RUNS=<factor>` multiplies the runs, `CH8_FUZZ_SEED` changes the seed.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { FailedPreconditionError, InvalidInputError, VocabularyMismatchError, isKnownError } from '@ch8/errors';
import { vocabularyHash } from '@ch8/embeddings/vocabulary';
import { resolveConfig, type ModelKind } from '@ch8/models/config';
import { validateManifest, type ModelManifest } from './manifest.ts';
import { readManifest } from './repository.ts';
import { applyMutations, byteMutationArb } from '@ch8/fuzz/mutate';

const FACTOR = Number(process.env.CH8_FUZZ_RUNS ?? '1');
const SEED = Number(process.env.CH8_FUZZ_SEED ?? '8073');
const runs = (n: number): number => Math.max(1, Math.round(n * FACTOR));
const params = (numRuns: number): fc.Parameters<unknown> => ({ seed: SEED, numRuns: runs(numRuns), timeout: 10_000 });

const FILE = '/models/m/3/manifest.json';
const TOKENS = ['<pad>', 'good', 'bad', 'movie', 'not', 'great', 'dull', 'fun'];
const V = TOKENS.length;
const D = 4;

/** A valid formatVersion 2 manifest, written out by hand. */
function sample(kind: ModelKind): ModelManifest {
  return {
    format: 'ch8-sentiment-model',
    formatVersion: 2,
    name: 'm',
    version: 3,
    model: resolveConfig({ kind, vocabSize: V, dim: D, hidden: 4, filters: 3, widths: [2, 3], heads: 2, seed: 5 }),
    vocabulary: { size: V, dim: D, hash: vocabularyHash(TOKENS, D), tokens: [...TOKENS] },
    tokenizer: { training: { kind: 'chapter', version: 1 }, raw: { kind: 'raw', version: 1 } },
    labels: ['negative', 'positive'],
    signature: {
      inputs: [{ name: 'TEXT', datatype: 'BYTES', shape: [-1] }],
      outputs: [
        { name: 'PROBABILITY', datatype: 'FP32', shape: [-1] },
        { name: 'LABEL', datatype: 'BYTES', shape: [-1] },
      ],
    },
    training: { epochs: 2, data: { source: 'fixture', rows: [1, 'two', null] } },
    metrics: {
      epochs: [
        { epoch: 1, trainLoss: 0.7, trainAccuracy: 0.5, trainExamplesPerSecond: 100, seconds: 1 },
        {
          epoch: 2,
          trainLoss: 0.6,
          trainAccuracy: 0.75,
          devLoss: 0.65,
          devAccuracy: 0.7,
          trainExamplesPerSecond: 120,
          seconds: 1.5,
          trainSeconds: 1.2,
          dataWaitShare: 0.1,
          learningRate: 0.001,
        },
      ],
      bestEpoch: 2,
      devAccuracy: 0.7,
      splits: {
        dev: {
          examples: 10,
          dropped: 1,
          loss: 0.6,
          accuracy: 0.7,
          precision: 0.8,
          recall: 4 / 6,
          f1: 8 / 11,
          confusion: [
            [3, 1],
            [2, 4],
          ],
        },
      },
    },
    backend: { backend: 'cpu', device: 'cpu' },
    timings: { totalSeconds: 3.5, trainSeconds: 3 },
    createdAt: '2025-06-01T12:34:56.789Z',
    runId: 'r1',
    weights: {
      file: 'weights.bin',
      byteLength: 4 * (D + 1 + V * D),
      sha256: 'ab'.repeat(32),
      dtype: 'float32',
      entries: [
        { name: 'w', shape: [D], offset: 0, length: D },
        { name: 'b', shape: [], offset: 4 * D, length: 1 },
        { name: 'embeddings', shape: [V, D], offset: 4 * (D + 1), length: V * D },
      ],
    },
  };
}

const KINDS: ModelKind[] = ['bow-frozen', 'bow-finetune', 'mlp', 'cnn', 'bilstm', 'attention'];

// ---------------------------------------------------------------------------------------------------------------
// Paths into a JSON value, written as the validator names fields: `metrics.epochs[1].trainLoss`.

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Step = string | number;

function pathName(path: readonly Step[]): string {
  let s = '';
  for (const p of path) s += typeof p === 'number' ? `[${p}]` : s === '' ? p : `.${p}`;
  return s;
}

function allPaths(v: Json, prefix: Step[] = []): Step[][] {
  const out: Step[][] = [];
  if (Array.isArray(v)) v.forEach((x, i) => out.push([...prefix, i], ...allPaths(x, [...prefix, i])));
  else if (v !== null && typeof v === 'object') {
    for (const k of Object.keys(v)) out.push([...prefix, k], ...allPaths(v[k] as Json, [...prefix, k]));
  }
  return out;
}

/** The container holding the last step of `path`. */
function parentOf(root: Json, path: readonly Step[]): Json {
  let v = root;
  for (const p of path.slice(0, -1)) v = (v as Record<string | number, Json>)[p] as Json;
  return v;
}

/** Sets own property `key` (also "__proto__", which plain assignment would not create). */
function setOwn(obj: Json, key: Step, value: Json): void {
  if (Array.isArray(obj) && typeof key === 'number') obj[key] = value;
  else Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

/** Values of every JSON kind, including ones just outside what the fields allow. */
const valueArb: fc.Arbitrary<Json> = fc.oneof(
  fc.constantFrom<Json>(null, true, false, 0, -1, 1, 2, 0.5, 1.5, -0.25, 1e300, -1e300, 2 ** 53, 1e-320, '', 'x'),
  fc.constantFrom<Json>('<pad>', 'negative', '2025-02-30T12:00:00Z', 'ab'.repeat(32), 'AB'.repeat(32), [], {}, [1], {
    a: 1,
  }),
  fc.constantFrom<Json>(
    [-1],
    [
      [3, 1],
      [2, 4],
    ],
    { kind: 'chapter', version: 1 },
    { kind: 'raw', version: 99 },
  ),
  fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<Json>,
);

type Mutation =
  | { kind: 'remove'; path: number }
  | { kind: 'set'; path: number; value: Json }
  | { kind: 'tweak'; path: number; by: number }
  | { kind: 'add'; path: number; key: string; value: Json };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('remove' as const), path: fc.nat() }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('set' as const), path: fc.nat(), value: valueArb }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('tweak' as const),
      path: fc.nat(),
      by: fc.constantFrom(1, -1, 0.5, 1e-12, 2 ** 32, -3),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('add' as const),
      path: fc.nat(),
      key: fc.constantFrom('__proto__', 'extra', 'constructor', 'toString', 'runId', 'devLoss', ''),
      value: valueArb,
    }),
  },
);

/** Applies `m`; returns the path it touched and whether it removed an object's key. */
function apply(root: Json, m: Mutation): { path: Step[]; removedKey: boolean } {
  const paths = allPaths(root);
  const path = paths[m.path % paths.length] as Step[];
  const parent = parentOf(root, path);
  const key = path[path.length - 1] as Step;
  const current = (parent as Record<string | number, Json>)[key] as Json;
  switch (m.kind) {
    case 'remove':
      if (Array.isArray(parent)) parent.splice(key as number, 1);
      else delete (parent as Record<string, Json>)[key as string];
      return { path, removedKey: !Array.isArray(parent) };
    case 'set':
      setOwn(parent, key, structuredClone(m.value));
      return { path, removedKey: false };
    case 'tweak':
      if (typeof current === 'number') setOwn(parent, key, current + m.by);
      return { path, removedKey: false };
    case 'add': {
      const target = current !== null && typeof current === 'object' && !Array.isArray(current) ? current : parent;
      if (target !== null && typeof target === 'object' && !Array.isArray(target)) {
        setOwn(target, m.key, structuredClone(m.value));
      }
      return { path, removedKey: false };
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The invariants of an accepted manifest, checked independently of the validator.

function checkInvariants(m: ModelManifest): void {
  const v = m.vocabulary;
  assert.equal(v.tokens[0], '<pad>');
  assert.equal(new Set(v.tokens).size, v.tokens.length, 'tokens are unique');
  assert.equal(v.size, v.tokens.length);
  assert.equal(v.size, m.model.vocabSize);
  assert.equal(v.dim, m.model.dim);
  assert.equal(v.hash, vocabularyHash(v.tokens, v.dim));
  assert.deepEqual(resolveConfig(m.model), m.model, 'the model config is in resolved form');
  let offset = 0;
  for (const e of m.weights.entries) {
    assert.equal(e.offset, offset);
    assert.equal(
      e.length,
      e.shape.reduce((a, b) => a * b, 1),
    );
    offset += 4 * e.length;
  }
  assert.equal(offset, m.weights.byteLength);
  const emb = m.weights.entries.find((e) => e.name === 'embeddings');
  assert.deepEqual(emb?.shape, [m.model.vocabSize, m.model.dim]);
  for (const [name, s] of Object.entries(m.metrics.splits)) {
    const [[tn, fp], [fn, tp]] = s.confusion;
    assert.equal(tn + fp + fn + tp, s.examples, name);
    const ratio = (a: number, b: number): number => (b > 0 ? a / b : 0);
    assert.ok(Math.abs(s.accuracy - ratio(tn + tp, s.examples)) < 1e-9, name);
    assert.ok(Math.abs(s.f1 - ratio(2 * tp, 2 * tp + fp + fn)) < 1e-9, name);
  }
  m.metrics.epochs.forEach((e, i) => {
    if (i > 0) assert.ok(e.epoch > (m.metrics.epochs[i - 1]?.epoch as number));
  });
  if (m.metrics.bestEpoch !== null) assert.ok(m.metrics.epochs.some((e) => e.epoch === m.metrics.bestEpoch));
}

type Outcome = { ok: true; manifest: ModelManifest } | { ok: false; error: Error & { field?: string; file?: string } };

function outcome(run: () => ModelManifest): Outcome {
  try {
    return { ok: true, manifest: run() };
  } catch (e) {
    assert.ok(isKnownError(e), `not a typed error: ${String((e as Error)?.stack ?? e)}`);
    assert.ok(
      e instanceof InvalidInputError || e instanceof VocabularyMismatchError || e instanceof FailedPreconditionError,
      `unexpected ${e.name}: ${e.message}`,
    );
    return { ok: false, error: e };
  }
}

/** JSON as written to a file and read back (what a reader of manifest.json sees). */
const roundTrip = (v: unknown): Json => JSON.parse(JSON.stringify(v)) as Json;

describe('model manifest: mutated manifests are accepted unchanged or refused naming the field', () => {
  test('validateManifest on manifests with fields removed, retyped, tweaked and added', () => {
    fc.assert(
      fc.property(fc.constantFrom(...KINDS), fc.array(mutationArb, { minLength: 1, maxLength: 3 }), (kind, ms) => {
        const m = roundTrip(sample(kind));
        const touched = ms.map((x) => apply(m, x));
        const input = roundTrip(m); // what the JSON text holds ("__proto__" an own key, as JSON.parse makes it)
        const got = outcome(() => validateManifest(input, FILE));
        if (got.ok) {
          assert.deepEqual(roundTrip(got.manifest), roundTrip(m), 'accepted: the same JSON comes back');
          checkInvariants(got.manifest);
          return;
        }
        assert.equal(got.error.file, FILE);
        assert.ok(
          typeof got.error.field === 'string' && got.error.field !== '',
          `a field is named: ${got.error.message}`,
        );
        // One required key removed: that key is the field named.
        const only = touched.length === 1 ? touched[0] : undefined;
        if (only?.removedKey === true) {
          const name = pathName(only.path);
          assert.equal(got.error.field, name.startsWith('signature.') ? 'signature' : name, got.error.message);
        }
      }),
      params(1500),
    );
  });

  test('every field of a manifest removed, one at a time', () => {
    for (const kind of ['cnn', 'attention'] as const) {
      const base = roundTrip(sample(kind));
      allPaths(base).forEach((_, i) => {
        const m = roundTrip(base);
        const { path, removedKey } = apply(m, { kind: 'remove', path: i });
        const name = pathName(path);
        const got = outcome(() => validateManifest(m, FILE));
        const optional =
          /^(runId|training\..*|timings\..*|metrics\.splits\.dev|metrics\.epochs\[\d\]\.(devLoss|devAccuracy|trainSeconds|dataWaitShare|learningRate))$/;
        if (optional.test(name) && removedKey) {
          assert.ok(got.ok, `${name} is optional: ${got.ok ? '' : got.error.message}`);
        } else if (removedKey) {
          assert.ok(!got.ok, `${name} is required`);
          // The signature is one constant, checked whole.
          assert.equal(got.error.field, name.startsWith('signature.') ? 'signature' : name, got.error.message);
        }
      });
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------
// manifest.json files, through readManifest.

let root = '';
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'ch8-manifest-fuzz-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});
let dirNo = 0;

async function writeManifest(bytes: Uint8Array, name = 'm', version = 3): Promise<string> {
  const dir = join(root, `r${dirNo++}`, name, String(version));
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'manifest.json'), bytes);
  return dir;
}

async function readOutcome(dir: string): Promise<Outcome> {
  try {
    return { ok: true, manifest: await readManifest(dir) };
  } catch (e) {
    return outcome(() => {
      throw e;
    });
  }
}

/** Byte mutations of a manifest's JSON text: cuts, bit flips (3x as often), single JSON-relevant bytes inserted. */
const manifestMutationArb = byteMutationArb({
  interesting: [0x22, 0x2c, 0x7d, 0x5d, 0x30, 0xff, 0x20],
  flipWeight: 3,
  insertRandomMax: 0,
  deleteMax: 0,
});

/** A valid formatVersion 1 manifest (what `ch8 train --out` wrote). */
const v1 = (): Json =>
  roundTrip({
    format: 'ch8-sentiment-model',
    formatVersion: 1,
    config: sample('cnn').model,
    vocabHash: vocabularyHash(TOKENS, D),
    metadata: {
      vocabulary: TOKENS,
      tokenizer: 'chapter@1',
      data: { source: 'sst2' },
      backend: { backend: 'wasm', device: 'wasm (SIMD)' },
      epochs: [
        { epoch: 1, train_loss: 0.7, train_accuracy: 0.5, train_seconds: 1.5, examples_per_second: 66.7 },
        {
          epoch: 2,
          train_loss: 0.6,
          train_accuracy: 0.7,
          train_seconds: 1.25,
          examples_per_second: 80,
          dev_loss: 0.6,
          dev_accuracy: 0.65,
        },
      ],
    },
    weights: { ...sample('cnn').weights, sha256: createHash('sha256').update('w').digest('hex') },
  });

describe('manifest.json files: cut and bit-flipped', () => {
  test('readManifest returns the JSON the bytes hold, or a typed error naming the file', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...KINDS),
        fc.boolean(),
        fc.array(manifestMutationArb, { minLength: 1, maxLength: 2 }),
        async (kind, pretty, ms) => {
          const text = JSON.stringify(sample(kind), null, pretty ? 2 : undefined);
          const bytes = applyMutations(Buffer.from(text), ms);
          const dir = await writeManifest(bytes);
          const got = await readOutcome(dir);
          if (got.ok) {
            // Only what the bytes say (a flipped digit may make another valid manifest): nothing changed silently.
            assert.deepEqual(roundTrip(got.manifest), JSON.parse(new TextDecoder().decode(bytes)));
            checkInvariants(got.manifest);
          } else assert.equal(got.error.file, join(dir, 'manifest.json'));
        },
      ),
      params(300),
    );
  });

  test('formatVersion 1 manifests with fields removed or retyped: converted, or refused with a typed error', async () => {
    const clean = await readOutcome(await writeManifest(Buffer.from(JSON.stringify(v1())), 'legacy', 1));
    assert.ok(clean.ok, clean.ok ? '' : clean.error.message);
    await fc.assert(
      fc.asyncProperty(fc.array(mutationArb, { minLength: 1, maxLength: 3 }), async (ms) => {
        const m = v1();
        for (const x of ms) apply(m, x);
        const got = await readOutcome(await writeManifest(Buffer.from(JSON.stringify(m)), 'legacy', 1));
        if (got.ok) checkInvariants(got.manifest);
        else assert.ok(got.error.file?.endsWith('manifest.json'), got.error.message);
      }),
      params(300),
    );
  });
});

describe('regressions: counterexamples the fuzzing found, kept as plain tests', () => {
  const refused = (m: Json, field: string, re: RegExp): void => {
    const got = outcome(() => validateManifest(m, FILE));
    assert.ok(!got.ok, 'refused');
    assert.equal(got.error.field, field, got.error.message);
    assert.match(got.error.message, re);
  };

  test('an unknown model field named "__proto__", "constructor" or "toString" is refused (was dropped: `in` saw the inherited ones)', () => {
    for (const key of ['__proto__', 'constructor', 'toString']) {
      const m = roundTrip(sample('cnn'));
      setOwn((m as Record<string, Json>).model as Json, key, 1);
      refused(roundTrip(m), `model.${key}`, /unknown field/);
    }
  });

  test('a model field holding an object is refused (resolveConfig threw TypeError putting it in its message)', () => {
    const m = roundTrip(sample('bow-frozen'));
    ((m as Record<string, Json>).model as Record<string, Json>).dropout = JSON.parse('{"toString":[1],"__proto__":[]}');
    refused(roundTrip(m), 'model.dropout', /must be a number, string or boolean, got an object/);
    ((m as Record<string, Json>).model as Record<string, Json>).dropout = 0.5;
    ((m as Record<string, Json>).model as Record<string, Json>).widths = [2, { toString: [] }];
    refused(roundTrip(m), 'model.widths[1]', /must be a number, string or boolean/);
  });

  test('a model field set to null is refused (resolveConfig took it for "use the default" and the default came back)', () => {
    const m = roundTrip(sample('cnn'));
    ((m as Record<string, Json>).model as Record<string, Json>).dropout = null;
    refused(m, 'model.dropout', /must be the resolved value 0.5, got null/);
  });

  test('"__proto__" in timings and metrics.splits is kept as a key (was dropped, or became the prototype)', () => {
    const m = roundTrip(sample('cnn'));
    const root = m as Record<string, Record<string, Json>>;
    setOwn(root.timings as Json, '__proto__', 2);
    setOwn(
      (root.metrics as Record<string, Json>).splits as Json,
      '__proto__',
      structuredClone(sample('cnn').metrics.splits.dev) as unknown as Json,
    );
    const got = validateManifest(roundTrip(m), FILE);
    assert.deepEqual(roundTrip(got), roundTrip(m));
    assert.ok(Object.hasOwn(got.timings, '__proto__') && Object.hasOwn(got.metrics.splits, '__proto__'));
    assert.equal(Object.getPrototypeOf(got.metrics.splits), Object.prototype);
  });

  test('a formatVersion 1 manifest with deeply nested metadata is converted (JSON.stringify threw RangeError)', async () => {
    const text =
      `{"format":"ch8-sentiment-model","formatVersion":1,"config":${JSON.stringify(sample('cnn').model)},` +
      `"vocabHash":null,"metadata":{"vocabulary":${JSON.stringify(TOKENS)},"tokenizer":"chapter@1",` +
      `"deep":${'['.repeat(20000)}${']'.repeat(20000)}},"weights":${JSON.stringify(sample('cnn').weights)}}`;
    const got = await readOutcome(await writeManifest(Buffer.from(text), 'legacy', 1));
    assert.ok(got.ok, got.ok ? '' : got.error.message);
    assert.equal(got.manifest.name, 'legacy');
  });

  test('every field of a formatVersion 1 manifest file replaced by a list nested 20000 deep: a typed error or converted', async () => {
    const objectTokenizer = v1();
    ((objectTokenizer as Record<string, Json>).metadata as Record<string, Json>).tokenizer = {
      kind: 'chapter',
      version: 1,
    };
    for (const [base, path] of [v1(), objectTokenizer].flatMap((b) => allPaths(b).map((p) => [b, p] as const))) {
      const m = roundTrip(base);
      setOwn(parentOf(m, path), path[path.length - 1] as Step, '__DEEP__');
      const text = JSON.stringify(m).replace('"__DEEP__"', `${'['.repeat(20000)}${']'.repeat(20000)}`);
      const got = await readOutcome(await writeManifest(Buffer.from(text), 'legacy', 1));
      if (got.ok) checkInvariants(got.manifest);
    }
  });

  test('every field replaced by a list nested 20000 deep: accepted where anything goes, else a typed error', () => {
    const base = roundTrip(sample('attention'));
    allPaths(base).forEach((path) => {
      const m = roundTrip(base);
      // Built by JSON.parse (iterative); the test must not JSON.stringify it (recursive) either.
      setOwn(parentOf(m, path), path[path.length - 1] as Step, JSON.parse(`${'['.repeat(20000)}${']'.repeat(20000)}`));
      const got = outcome(() => validateManifest(m, FILE));
      const name = pathName(path);
      if (got.ok) assert.match(name, /^training\./, `${name}: only free-form training data may hold anything`);
      else assert.equal(got.error.file, FILE);
    });
  });
});
