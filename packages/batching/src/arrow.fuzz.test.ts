/**
 * Property-based fuzzing of the Arrow batch decoder: encoded batches, truncated and garbled IPC bytes, batches of
 * other schemas and types written by arrow-js, all placed at any offset inside larger buffers full of other bytes
 * (as a gRPC message hands them over). `decodeBatch` must return exactly what arrow-js's own IPC reader (the
 * reference below) reads from a copy of the same bytes, as a consistent batch, or throw an InvalidInputError; never
 * another error, and never values from outside the bytes it was given.
 *
 * Seeded and bounded; `CH8_FUZZ_RUNS=<factor>` multiplies the runs, `CH8_FUZZ_SEED` changes the seed.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  Field,
  FixedSizeList,
  Float32,
  Float64,
  Int32,
  Int64,
  Int8,
  List,
  makeData,
  RecordBatch,
  RecordBatchReader,
  Schema,
  Struct,
  Table,
  tableToIPC,
  Utf8,
  vectorFromArray,
  type DataType,
} from 'apache-arrow';
import fc from 'fast-check';
import { isInvalidInput, isKnownError } from '@ch8/errors';
import { decodeBatch, encodeBatch } from './arrow.ts';
import { checkBatch, type Batch } from './collate.ts';
import { applyMutations, byteMutationArb } from '@ch8/fuzz/mutate';

const FACTOR = Number(process.env.CH8_FUZZ_RUNS ?? '1');
const SEED = Number(process.env.CH8_FUZZ_SEED ?? '8072');
const runs = (n: number): number => Math.max(1, Math.round(n * FACTOR));
const params = (numRuns: number): fc.Parameters<unknown> => ({ seed: SEED, numRuns: runs(numRuns), timeout: 10_000 });

interface Plain {
  batchSize: number;
  maxLength: number;
  inputIds: number[];
  labels: number[];
  lengths: number[];
  indices: number[];
}

function plain(b: Batch): Plain {
  return {
    batchSize: b.batchSize,
    maxLength: b.maxLength,
    inputIds: [...b.inputIds],
    labels: [...b.labels],
    lengths: [...b.lengths],
    indices: [...b.indices],
  };
}

/**
 * The reference: arrow-js's IPC reader on a fresh copy of the bytes. A batch when the stream holds the schema
 * `input_ids: FixedSizeList<Int32>[T], label: Float32, length: Int32, index: Int32` (in that order) and exactly one
 * record batch without nulls; undefined when arrow-js refuses the bytes or they hold anything else.
 */
function reference(bytes: Uint8Array): Plain | undefined {
  let batches: RecordBatch[];
  try {
    batches = [...RecordBatchReader.from(new Uint8Array(bytes))];
  } catch {
    return undefined;
  }
  if (batches.length !== 1) return undefined;
  const table = batches[0] as RecordBatch;
  const fields = table.schema.fields;
  const types = fields.map((f) => String(f.type));
  if (fields.map((f) => f.name).join() !== 'input_ids,label,length,index') return undefined;
  const ids = fields[0]?.type as DataType;
  if (!(ids instanceof FixedSizeList) || String(ids.children[0]?.type) !== 'Int32') return undefined;
  if (types.slice(1).join() !== 'Float32,Int32,Int32') return undefined;
  const t = ids.listSize;
  const b = table.numRows;
  const cols = ['input_ids', 'label', 'length', 'index'].map((n) => table.getChild(n));
  if (cols.some((c) => c === null || c.nullCount > 0 || c.length !== b)) return undefined;
  const out: Plain = { batchSize: b, maxLength: t, inputIds: [], labels: [], lengths: [], indices: [] };
  try {
    for (let r = 0; r < b; r++) {
      const row = cols[0]?.get(r) as { toArray(): Int32Array; nullCount: number; length: number } | null;
      if (row === null || row.nullCount > 0 || row.length !== t) return undefined;
      out.inputIds.push(...row.toArray());
      out.labels.push(cols[1]?.get(r) as number);
      out.lengths.push(cols[2]?.get(r) as number);
      out.indices.push(cols[3]?.get(r) as number);
    }
  } catch {
    return undefined;
  }
  return out;
}

/** `bytes` copied into a bigger buffer at `offset`, every other byte 0xAB: a view like a gRPC message field. */
function embedded(bytes: Uint8Array, offset: number, after: number): Uint8Array {
  const frame = Buffer.alloc(offset + bytes.length + after, 0xab);
  frame.set(bytes, offset);
  return frame.subarray(offset, offset + bytes.length);
}

function decodeOutcome(bytes: Uint8Array): Plain | { error: string } {
  let batch: Batch;
  try {
    batch = decodeBatch(bytes);
  } catch (e) {
    assert.ok(isKnownError(e), `not a typed error: ${String((e as Error)?.stack ?? e)}`);
    assert.ok(isInvalidInput(e), `expected InvalidInputError, got ${e.name}: ${e.message}`);
    return { error: e.message };
  }
  checkBatch(batch); // whatever it returns is consistent
  for (const a of [batch.inputIds, batch.labels, batch.lengths, batch.indices]) {
    // Views into the given bytes stay inside them (or are copies).
    if (a.buffer === bytes.buffer && a.byteLength > 0) {
      assert.ok(
        a.byteOffset >= bytes.byteOffset && a.byteOffset + a.byteLength <= bytes.byteOffset + bytes.byteLength,
        'a view reaches outside the bytes',
      );
    }
  }
  return plain(batch);
}

/**
 * A batch decodeBatch returns must be the one arrow-js reads; `valid`: the bytes are well formed (not mutated), so
 * when arrow-js reads a batch of the schema, decodeBatch must too. (Garbled bytes may be refused even where arrow-js,
 * lenient about garbage, reads something: a negative metadata length, for one.)
 */
function agrees(bytes: Uint8Array, offset: number, after: number, valid: boolean, what: string): void {
  const got = decodeOutcome(embedded(bytes, offset, after));
  if ('error' in got && !valid) return;
  const expected = reference(bytes);
  if (expected === undefined) {
    assert.ok('error' in got, `${what}: arrow-js refuses these bytes, decodeBatch returned a batch`);
  } else {
    assert.ok(
      !('error' in got),
      `${what}: arrow-js reads a batch, decodeBatch refused: ${'error' in got ? got.error : ''}`,
    );
    assert.deepEqual(got, expected, what);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Generators.

const batchArb: fc.Arbitrary<Batch> = fc
  .tuple(fc.integer({ min: 0, max: 6 }), fc.integer({ min: 0, max: 5 }))
  .chain(([b, t]) =>
    fc.record({
      batchSize: fc.constant(b),
      maxLength: fc.constant(t),
      inputIds: fc.array(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), { minLength: b * t, maxLength: b * t }),
      labels: fc.array(fc.oneof({ weight: 9, arbitrary: fc.constantFrom(0, 1) }, fc.float({ noNaN: true })), {
        minLength: b,
        maxLength: b,
      }),
      lengths: fc.array(fc.integer({ min: 0, max: t }), { minLength: b, maxLength: b }),
      indices: fc.array(fc.nat(), { minLength: b, maxLength: b }),
    }),
  )
  .map((r) => ({
    batchSize: r.batchSize,
    maxLength: r.maxLength,
    inputIds: Int32Array.from(r.inputIds),
    labels: Float32Array.from(r.labels),
    lengths: Int32Array.from(r.lengths),
    indices: Int32Array.from(r.indices),
  }));

/** Byte mutations of an IPC stream: bit flips three times as often as each other kind; aligned 32-bit words (lengths,
 * offsets, counts in the flatbuffer) set to extremes. */
const mutationArb = byteMutationArb({
  interesting: [0x00, 0xff, 0x7f, 0x80, 0x01],
  flipWeight: 3,
  insertRandomMax: 8,
  deleteMax: 8,
  int32Values: [0, -1, 1, 2 ** 31 - 1, -(2 ** 31), 0x10000, 8, 64],
});

const placeArb = fc.record({ offset: fc.integer({ min: 0, max: 40 }), after: fc.constantFrom(0, 0, 8, 4096) });

/** Batches written by arrow-js with another schema: names, types, nulls, extra or missing columns, lists. */
const otherArb: fc.Arbitrary<Uint8Array> = fc
  .record({
    b: fc.integer({ min: 0, max: 4 }),
    t: fc.integer({ min: 0, max: 3 }),
    names: fc.oneof(
      { weight: 4, arbitrary: fc.constant(['input_ids', 'label', 'length', 'index']) },
      fc.constantFrom(
        ['label', 'input_ids', 'length', 'index'],
        ['input_ids', 'label', 'length'],
        ['input_ids', 'label', 'length', 'index', 'extra'],
        ['input_ids', 'labels', 'length', 'index'],
      ),
    ),
    idsType: fc.constantFrom('fixed-int32', 'fixed-int32', 'fixed-int64', 'list-int32', 'int32', 'utf8'),
    scalarType: fc.constantFrom('ok', 'ok', 'ok', 'float64-label', 'int64-length', 'int8-index', 'utf8-label'),
    nulls: fc.oneof({ weight: 4, arbitrary: fc.constant(false) }, fc.constant(true)),
    seed: fc.nat(1000),
  })
  .map(({ b, t, names, idsType, scalarType, nulls, seed }) => {
    const ints = (n: number, k: number): number[] =>
      Array.from({ length: n }, (_, i) => (seed * 31 + i * 7 + k) % 1000);
    const validity = nulls && b > 0 ? Uint8Array.from([0b11111110]) : undefined;
    const scalar = (type: DataType, values: number[], nullable: boolean): ReturnType<typeof makeData> => {
      if (type instanceof Utf8)
        return vectorFromArray(values.map(String), new Utf8()).data[0] as ReturnType<typeof makeData>;
      const Kind =
        type instanceof Int64
          ? BigInt64Array
          : type instanceof Float64
            ? Float64Array
            : type instanceof Int8
              ? Int8Array
              : type instanceof Float32
                ? Float32Array
                : Int32Array;
      const data =
        Kind === BigInt64Array ? BigInt64Array.from(values.map(BigInt)) : (Kind as typeof Int32Array).from(values);
      return makeData({
        type: type as Int32,
        length: b,
        data: data as Int32Array,
        ...(nullable && validity !== undefined ? { nullBitmap: validity, nullCount: 1 } : {}),
      });
    };
    const idsChild = idsType === 'fixed-int64' ? new Int64() : new Int32();
    let idsTypeObj: DataType;
    let idsData: ReturnType<typeof makeData>;
    if (idsType === 'fixed-int32' || idsType === 'fixed-int64') {
      idsTypeObj = new FixedSizeList(t, new Field('item', idsChild, false));
      const childData = makeData({
        type: idsChild as Int32,
        length: b * t,
        data: (idsChild instanceof Int64
          ? BigInt64Array.from(ints(b * t, 1).map(BigInt))
          : Int32Array.from(ints(b * t, 1))) as Int32Array,
      });
      idsData = makeData({
        type: idsTypeObj as FixedSizeList<Int32>,
        length: b,
        child: childData,
        ...(nulls && validity !== undefined ? { nullBitmap: validity, nullCount: 1 } : {}),
      });
    } else if (idsType === 'list-int32') {
      idsTypeObj = new List(new Field('item', new Int32(), false));
      idsData = makeData({
        type: idsTypeObj as List<Int32>,
        length: b,
        valueOffsets: Int32Array.from({ length: b + 1 }, (_, i) => i * t),
        child: makeData({ type: new Int32(), length: b * t, data: Int32Array.from(ints(b * t, 1)) }),
      });
    } else {
      idsTypeObj = idsType === 'utf8' ? new Utf8() : new Int32();
      idsData = scalar(idsTypeObj, ints(b, 1), false);
    }
    const types: DataType[] = [
      idsTypeObj,
      scalarType === 'float64-label' ? new Float64() : scalarType === 'utf8-label' ? new Utf8() : new Float32(),
      scalarType === 'int64-length' ? new Int64() : new Int32(),
      scalarType === 'int8-index' ? new Int8() : new Int32(),
      new Int32(),
    ];
    const datas = [
      idsData,
      scalar(
        types[1] as DataType,
        ints(b, 2).map((v) => v % 2),
        nulls,
      ),
      scalar(
        types[2] as DataType,
        ints(b, 3).map((v) => v % (t + 1)),
        false,
      ),
      scalar(
        types[3] as DataType,
        ints(b, 4).map((v) => v % 100),
        false,
      ),
      scalar(types[4] as DataType, ints(b, 5), false),
    ];
    const order = names.map((n) => ['input_ids', 'label', 'length', 'index', 'extra', 'labels'].indexOf(n));
    const fields = names.map(
      (n, k) => new Field(n, types[order[k] === 5 ? 1 : (order[k] as number)] as DataType, true),
    );
    const children = names.map(
      (_, k) => datas[order[k] === 5 ? 1 : (order[k] as number)] as ReturnType<typeof makeData>,
    );
    const schema = new Schema(fields);
    const data = makeData({ type: new Struct(fields), length: b, nullCount: 0, children });
    return tableToIPC(new Table(new RecordBatch(schema, data)), 'stream');
  });

// ---------------------------------------------------------------------------------------------------------------
// Properties.

describe('Arrow batch decoder', () => {
  test('encoded batches decode to themselves, at any offset of a larger buffer', () => {
    fc.assert(
      fc.property(batchArb, placeArb, (batch, { offset, after }) => {
        const bytes = encodeBatch(batch);
        assert.deepEqual(decodeOutcome(embedded(bytes, offset, after)), plain(batch));
        assert.deepEqual(reference(bytes), plain(batch), 'arrow-js reads the same');
      }),
      params(300),
    );
  });

  test('truncated and garbled bytes: the reference batch or an InvalidInputError, never bytes from outside', () => {
    fc.assert(
      fc.property(
        batchArb,
        fc.array(mutationArb, { minLength: 1, maxLength: 3 }),
        placeArb,
        (batch, mutations, place) => {
          agrees(
            applyMutations(encodeBatch(batch), mutations),
            place.offset,
            place.after,
            false,
            JSON.stringify(mutations),
          );
        },
      ),
      params(1500),
    );
  });

  test('truncation at every byte of a batch', () => {
    const batch: Batch = {
      batchSize: 3,
      maxLength: 2,
      inputIds: Int32Array.from([5, 6, 7, 0, 8, 0]),
      labels: Float32Array.from([1, 0, 1]),
      lengths: Int32Array.from([2, 1, 1]),
      indices: Int32Array.from([10, 11, 12]),
    };
    const bytes = encodeBatch(batch);
    for (let cut = 0; cut < bytes.length; cut++) agrees(bytes.subarray(0, cut), 8, 64, false, `cut at ${cut}`);
    agrees(bytes, 8, 64, true, 'whole');
  });

  test('batches of other schemas, types and nulls written by arrow-js', () => {
    fc.assert(
      fc.property(
        otherArb,
        fc.option(fc.array(mutationArb, { maxLength: 2 }), { freq: 3 }),
        placeArb,
        (bytes, m, place) => {
          agrees(
            m === null ? bytes : applyMutations(bytes, m),
            place.offset,
            place.after,
            m === null,
            'other producer',
          );
        },
      ),
      params(300),
    );
  });
});

describe('regressions: counterexamples the fuzzing found, kept as plain tests', () => {
  const empty: Batch = {
    batchSize: 0,
    maxLength: 0,
    inputIds: new Int32Array(0),
    labels: new Float32Array(0),
    lengths: new Int32Array(0),
    indices: new Int32Array(0),
  };
  const refused = (bytes: Uint8Array, re: RegExp): void => {
    const got = decodeOutcome(embedded(bytes, 8, 4096));
    assert.ok('error' in got, `decoded: ${JSON.stringify(got)}`);
    assert.match(got.error, re);
  };

  test('one flipped bit in a vector count of the metadata: refused at once (arrow-js allocated until out of memory)', () => {
    const bytes = Buffer.from(encodeBatch(empty));
    assert.equal(bytes[356], 24, 'the byte the counterexample flipped');
    bytes[356] ^= 1;
    refused(bytes, /garbled Arrow message metadata/);
  });

  /** A batch of 2 rows whose record batch metadata holds `ints` (int64, little-endian) somewhere: their offset. */
  function withBatch(): { bytes: Buffer; at: (ints: bigint[]) => number } {
    const batch: Batch = {
      batchSize: 2,
      maxLength: 2,
      inputIds: Int32Array.from([1, 2, 3, 0]),
      labels: Float32Array.from([1, 0]),
      lengths: Int32Array.from([2, 1]),
      indices: Int32Array.from([7, 8]),
    };
    const bytes = Buffer.from(encodeBatch(batch));
    const at = (ints: bigint[]): number => {
      const pattern = Buffer.alloc(8 * ints.length);
      ints.forEach((v, k) => pattern.writeBigInt64LE(v, 8 * k));
      const i = bytes.indexOf(pattern);
      assert.ok(i >= 0 && bytes.indexOf(pattern, i + 1) < 0, 'found once');
      return i;
    };
    return { bytes, at };
  }

  test('a buffer offset beyond the message body is refused (values were read from the bytes after it)', () => {
    const { bytes, at } = withBatch();
    // Buffers (offset, length) of the record batch: validity and values per column; the label's values are 6th.
    const regions = at([0n, 0n, 0n, 0n, 0n, 16n, 16n, 0n, 16n, 8n, 24n, 0n, 24n, 8n, 32n, 0n, 32n, 8n]);
    const label = regions + 16 * 4;
    bytes.writeBigInt64LE(4096n, label);
    refused(bytes, /label lies outside the message body/);
    bytes.writeBigInt64LE(20n, label); // misaligned, inside the body
    refused(bytes, /label lies outside the message body/);
  });

  test("a field node whose length is not the batch's is refused (the batch's length was used)", () => {
    const { bytes, at } = withBatch();
    const i = at([2n, 0n, 4n, 0n, 2n, 0n, 2n, 0n, 2n, 0n]);
    bytes.writeBigInt64LE(1n, i + 32); // the label column claims 1 value
    refused(bytes, /field node 2 has 1 values, the batch 2/);
  });
});
