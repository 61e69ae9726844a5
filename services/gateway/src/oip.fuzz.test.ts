/**
 * Property-based fuzzing of the gateway's Open Inference Protocol v2 tensor decoding (`textsOf`, typed
 * `contents.bytes_contents` and `raw_input_contents`, and `requestedOutputs`): requests with mismatched shapes,
 * datatypes, names and contents, raw buffers of the wrong length, cut or flipped, lying length prefixes, negative
 * and huge shapes, non-UTF-8 texts, and whole requests garbled on the wire. Each either gives exactly the texts of
 * the reference decoding below (written from the KServe v2 protocol and the model's signature) or throws an
 * InvalidInputError naming the request field; never another error, and nothing sized by the shape is allocated
 * before the data is checked.
 *
 * Seeded and bounded; `CH8_FUZZ_RUNS=<factor>` multiplies the runs, `CH8_FUZZ_SEED` changes the seed.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { create, fromBinary, toBinary, type MessageInitShape } from '@bufbuild/protobuf';
import {
  ModelInferRequestSchema,
  type InferTensorContentsSchema,
  type ModelInferRequest,
} from '@ch8/contracts/inference';
import { isInvalidInput, isKnownError } from '@ch8/errors';
import fc from 'fast-check';
import { requestedOutputs, textsOf } from './oip.ts';

const FACTOR = Number(process.env.CH8_FUZZ_RUNS ?? '1');
const SEED = Number(process.env.CH8_FUZZ_SEED ?? '8074');
const runs = (n: number): number => Math.max(1, Math.round(n * FACTOR));
const params = (numRuns: number): fc.Parameters<unknown> => ({ seed: SEED, numRuns: runs(numRuns), timeout: 10_000 });

// ---------------------------------------------------------------------------------------------------------------
// The reference: what a v2 server whose only input is TEXT (BYTES, [-1]) and whose outputs are PROBABILITY and
// LABEL must accept.

class Refused extends Error {}
const refuse = (): never => {
  throw new Refused();
};
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

function refTexts(req: ModelInferRequest): string[] {
  if (req.inputs.length !== 1) refuse();
  const input = req.inputs[0]!;
  if (input.name !== 'TEXT' || input.datatype !== 'BYTES') refuse();
  if (input.shape.length !== 1 || input.shape[0]! < 0n) refuse();
  const n = input.shape[0]!;
  const c = input.contents;
  const typed =
    c === undefined ? 0 : Object.entries(c).filter(([k, v]) => k.endsWith('Contents') && (v as unknown[]).length > 0);
  let elements: Uint8Array[];
  if (req.rawInputContents.length > 0) {
    // One raw buffer per input; the input itself then carries no contents of any kind.
    if (req.rawInputContents.length !== 1 || (typed !== 0 && typed.length > 0)) refuse();
    const raw = req.rawInputContents[0]!;
    elements = [];
    for (let at = 0; at < raw.length; ) {
      if (raw.length - at < 4) refuse();
      const len = raw[at]! + raw[at + 1]! * 2 ** 8 + raw[at + 2]! * 2 ** 16 + raw[at + 3]! * 2 ** 24;
      if (raw.length - at - 4 < len) refuse();
      elements.push(raw.subarray(at + 4, at + 4 + len));
      at += 4 + len;
    }
  } else {
    // A BYTES tensor's data is in bytes_contents, nothing else.
    if (typed !== 0 && typed.some(([k]) => k !== 'bytesContents')) refuse();
    elements = c?.bytesContents ?? [];
  }
  if (BigInt(elements.length) !== n) refuse();
  return elements.map((e) => {
    try {
      return strictUtf8.decode(e);
    } catch {
      return refuse();
    }
  });
}

function refOutputs(req: ModelInferRequest): string[] {
  if (req.outputs.length === 0) return ['PROBABILITY', 'LABEL'];
  return req.outputs.map((o) => (o.name === 'PROBABILITY' || o.name === 'LABEL' ? o.name : refuse()));
}

function check<T>(actual: () => T, expected: () => T, what: string): void {
  let want: { ok: true; value: T } | { ok: false };
  try {
    want = { ok: true, value: expected() };
  } catch (e) {
    if (!(e instanceof Refused)) throw e;
    want = { ok: false };
  }
  let got: T;
  try {
    got = actual();
  } catch (e) {
    assert.ok(isKnownError(e), `${what}: not a typed error: ${String((e as Error)?.stack ?? e)}`);
    assert.ok(isInvalidInput(e), `${what}: expected InvalidInputError, got ${e.name}: ${e.message}`);
    assert.ok(typeof e.field === 'string' && e.field !== '', `${what}: the error names the request field`);
    assert.ok(!want.ok, `${what}: the reference accepts it, the gateway refused: ${e.message}`);
    return;
  }
  assert.ok(want.ok, `${what}: the reference refuses it, the gateway returned ${JSON.stringify(got)}`);
  assert.deepEqual(got, want.value, what);
}

// ---------------------------------------------------------------------------------------------------------------
// Generators.

const textArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 10, arbitrary: fc.string({ maxLength: 30 }).map((s) => new Uint8Array(Buffer.from(s, 'utf8'))) },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 8 }).map((s) => new Uint8Array(Buffer.from(s))) },
  // Not UTF-8 (lone continuation bytes, truncated sequences, overlong forms, surrogates), now and then.
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 6 }) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(Uint8Array.of(0xc0, 0xaf), Uint8Array.of(0xed, 0xa0, 0x80), Uint8Array.of(0xe2, 0x82)),
  },
);

/** Length-prefixed BYTES (little-endian uint32, then the bytes), written here from the protocol. */
function lengthPrefixed(items: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(items.reduce((n, b) => n + 4 + b.length, 0));
  const view = new DataView(out.buffer);
  let at = 0;
  for (const b of items) {
    view.setUint32(at, b.length, true);
    out.set(b, at + 4);
    at += 4 + b.length;
  }
  return out;
}

type RawMutation =
  | { kind: 'cut'; at: number }
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'append'; bytes: Uint8Array }
  | { kind: 'prefix'; at: number; value: number };

const rawMutationArb: fc.Arbitrary<RawMutation> = fc.oneof(
  fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.nat(7) }),
  fc.record({ kind: fc.constant('append' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 6 }) }),
  // A length prefix that lies: 0, huge, just past the end.
  fc.record({
    kind: fc.constant('prefix' as const),
    at: fc.nat(),
    value: fc.constantFrom(0, 1, 0xffffffff, 0x7fffffff, 0x80000000, 3),
  }),
);

function mutateRaw(raw: Uint8Array, ms: readonly RawMutation[]): Uint8Array {
  let b = Buffer.from(raw);
  for (const m of ms) {
    if (m.kind === 'cut') b = b.subarray(0, m.at % (b.length + 1));
    else if (m.kind === 'flip') {
      if (b.length > 0) b[m.at % b.length] = (b[m.at % b.length] as number) ^ (1 << m.bit);
    } else if (m.kind === 'append') b = Buffer.concat([b, m.bytes]);
    else if (b.length >= 4) b.writeUInt32LE(m.value, m.at % (b.length - 3));
  }
  return new Uint8Array(b);
}

/** [N] mostly; now and then a shape that does not match the data, or negative, or huge. */
function shapeArb(n: number): fc.Arbitrary<bigint[]> {
  const odd: bigint[][] = [
    [BigInt(n + 1)],
    [BigInt(n - 1)],
    [],
    [BigInt(n), 1n],
    [1n, BigInt(n)],
    [-1n],
    [-(2n ** 63n)],
    [2n ** 63n - 1n],
    [2n ** 32n + BigInt(n)],
    [4294967295n],
  ];
  return fc
    .oneof({ weight: 12, arbitrary: fc.constant(-1) }, fc.nat(odd.length - 1))
    .map((k) => (k < 0 ? [BigInt(n)] : (odd[k] as bigint[])));
}

/** Typed contents of other kinds, which a BYTES input may not carry. */
const OTHER_CONTENTS: MessageInitShape<typeof InferTensorContentsSchema>[] = [
  { boolContents: [true] },
  { intContents: [1] },
  { int64Contents: [1n] },
  { uintContents: [2] },
  { uint64Contents: [2n] },
  { fp32Contents: [0.5] },
  { fp64Contents: [0.25] },
];
const otherContentsArb: fc.Arbitrary<MessageInitShape<typeof InferTensorContentsSchema>> = fc
  .oneof({ weight: 8, arbitrary: fc.constant(-1) }, fc.nat(OTHER_CONTENTS.length - 1))
  .map((k) => (k < 0 ? {} : (OTHER_CONTENTS[k] as MessageInitShape<typeof InferTensorContentsSchema>)));

const requestArb: fc.Arbitrary<ModelInferRequest> = fc
  .array(textArb, { maxLength: 5 })
  .chain((texts) =>
    fc.record({
      texts: fc.constant(texts),
      raw: fc.boolean(),
      name: fc.oneof({ weight: 12, arbitrary: fc.constant('TEXT') }, fc.constantFrom('text', '', 'INPUT', 'TEXT ')),
      datatype: fc.oneof(
        { weight: 12, arbitrary: fc.constant('BYTES') },
        fc.constantFrom('FP32', 'bytes', '', 'STRING'),
      ),
      shape: shapeArb(texts.length),
      other: otherContentsArb,
      bytesToo: fc.oneof({ weight: 8, arbitrary: fc.constant(false) }, fc.constant(true)),
      rawMutations: fc.oneof(
        { weight: 3, arbitrary: fc.constant([] as RawMutation[]) },
        fc.array(rawMutationArb, { minLength: 1, maxLength: 2 }),
      ),
      inputs: fc.oneof({ weight: 12, arbitrary: fc.constant(1) }, fc.constantFrom(0, 2)),
      rawBuffers: fc.oneof({ weight: 12, arbitrary: fc.constant(1) }, fc.constantFrom(2, 0)),
      outputs: fc.oneof(
        { weight: 3, arbitrary: fc.constant<string[]>([]) },
        fc.array(fc.constantFrom<string>('PROBABILITY', 'LABEL', 'probability', '', 'SCORE'), { maxLength: 3 }),
      ),
    }),
  )
  .map((r) => {
    const bytesContents = r.raw && !r.bytesToo ? [] : r.texts;
    const input = {
      name: r.name,
      datatype: r.datatype,
      shape: r.shape,
      contents: { ...r.other, bytesContents },
    };
    const raw = mutateRaw(lengthPrefixed(r.texts), r.rawMutations);
    return create(ModelInferRequestSchema, {
      modelName: 'sst2',
      inputs: Array.from({ length: r.inputs }, () => input),
      rawInputContents: r.raw ? Array.from({ length: r.rawBuffers }, () => raw) : [],
      outputs: r.outputs.map((name) => ({ name })),
    });
  });

// ---------------------------------------------------------------------------------------------------------------
// Properties.

describe('Open Inference Protocol v2 tensor decoding', () => {
  test('requests: the texts of the reference decoding, or an InvalidInputError naming the field', () => {
    fc.assert(
      fc.property(requestArb, (req) => {
        check(
          () => textsOf(req),
          () => refTexts(req),
          'textsOf',
        );
        check(
          () => requestedOutputs(req),
          () => refOutputs(req),
          'requestedOutputs',
        );
      }),
      params(3000),
    );
  });

  test('requests garbled on the wire: whatever protobuf decodes, the gateway decodes as the reference or refuses', () => {
    fc.assert(
      fc.property(
        requestArb,
        fc.array(
          fc.oneof(
            fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.nat(7) }),
            fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
          ),
          { minLength: 1, maxLength: 3 },
        ),
        (req, ms) => {
          let wire = Buffer.from(toBinary(ModelInferRequestSchema, req));
          for (const m of ms) {
            if (m.kind === 'cut') wire = wire.subarray(0, m.at % (wire.length + 1));
            else if (wire.length > 0) wire[m.at % wire.length] = (wire[m.at % wire.length] as number) ^ (1 << m.bit);
          }
          let decoded: ModelInferRequest;
          try {
            decoded = fromBinary(ModelInferRequestSchema, wire);
          } catch {
            return; // refused by protobuf itself (the service kit answers INVALID_ARGUMENT/INTERNAL there)
          }
          check(
            () => textsOf(decoded),
            () => refTexts(decoded),
            'textsOf (wire)',
          );
        },
      ),
      params(1500),
    );
  });

  test('a shape of 2^63-1 texts with a few bytes of data is refused without allocating for the shape', () => {
    const before = process.memoryUsage().arrayBuffers;
    for (const raw of [true, false]) {
      const req = create(ModelInferRequestSchema, {
        inputs: [
          { name: 'TEXT', datatype: 'BYTES', shape: [2n ** 63n - 1n], contents: raw ? {} : { bytesContents: [] } },
        ],
        rawInputContents: raw ? [lengthPrefixed([Buffer.from('a')])] : [],
      });
      assert.throws(
        () => textsOf(req),
        (e: unknown) => isInvalidInput(e) && /holds [01] elements, the shape says/.test(e.message),
      );
    }
    assert.ok(process.memoryUsage().arrayBuffers - before < 64 << 20);
  });
});

describe('regressions: counterexamples the fuzzing found, kept as plain tests', () => {
  test('raw_input_contents with typed contents of another kind (bool, int64, uint, uint64, fp64) is refused (they were ignored)', () => {
    for (const other of [
      { boolContents: [true] },
      { int64Contents: [1n] },
      { uintContents: [2] },
      { uint64Contents: [2n] },
      { fp64Contents: [0.25] },
    ]) {
      const req = create(ModelInferRequestSchema, {
        inputs: [{ name: 'TEXT', datatype: 'BYTES', shape: [1n], contents: other }],
        rawInputContents: [lengthPrefixed([Buffer.from('great movie')])],
      });
      assert.throws(
        () => textsOf(req),
        (e: unknown) => isInvalidInput(e) && e.field === 'inputs[0] (TEXT).contents',
        JSON.stringify(Object.keys(other)),
      );
    }
  });
});
