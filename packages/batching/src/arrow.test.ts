import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type FixedSizeList,
  Float32,
  Int32,
  makeData,
  makeTable,
  RecordBatch,
  RecordBatchReader,
  RecordBatchStreamWriter,
  Struct,
  Table,
  tableFromArrays,
  tableToIPC,
} from 'apache-arrow';
import { isInvalidInput } from '@ch8/errors';
import {
  BATCH_FORMAT_VERSION,
  BATCH_METADATA_KEY,
  batchSchema,
  decodeBatch,
  decodeBatchWithReader,
  encodeBatch,
  encodeBatchWithWriter,
} from './arrow.ts';
import { collate, type Batch } from './collate.ts';

function plain(b: Batch): unknown {
  return {
    batchSize: b.batchSize,
    maxLength: b.maxLength,
    inputIds: [...b.inputIds],
    labels: [...b.labels],
    lengths: [...b.lengths],
    indices: [...b.indices],
  };
}

function randomBatch(bs: number, maxLen: number, seed: number): Batch {
  let s = seed;
  const next = (): number => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return s >>> 8;
  };
  return collate(
    Array.from({ length: bs }, (_, i) => ({
      inputIds: Int32Array.from({ length: 1 + (next() % maxLen) }, () => 1 + (next() % 400000)),
      label: next() % 2,
      index: 1000 + i,
    })),
  );
}

describe('Arrow IPC', () => {
  it('round-trips batches of several shapes', () => {
    for (const [bs, maxLen, seed] of [
      [64, 50, 1],
      [1, 1, 2],
      [1, 30, 3],
      [7, 1, 4],
      [33, 3, 5],
    ] as const) {
      const b = randomBatch(bs, maxLen, seed);
      const bytes = encodeBatch(b);
      assert.deepEqual(plain(decodeBatch(bytes)), plain(b), `B=${bs}`);
      assert.deepEqual(plain(decodeBatchWithReader(bytes)), plain(b), `reader B=${bs}`);
    }
  });

  it('round-trips the empty-ish edge cases: B=0, T=0', () => {
    const none = collate([]);
    assert.deepEqual(plain(decodeBatch(encodeBatch(none))), plain(none));
    assert.deepEqual(plain(decodeBatchWithReader(encodeBatch(none))), plain(none));
    const blank = collate([
      { inputIds: [], label: 1, index: 9 },
      { inputIds: [], label: 0, index: 8 },
    ]);
    const back = decodeBatch(encodeBatch(blank));
    assert.deepEqual(plain(back), plain(blank));
    assert.equal(back.maxLength, 0);
    assert.deepEqual([...back.indices], [9, 8]);
  });

  it('input_ids is a zero-copy view into the bytes', () => {
    const bytes = encodeBatch(randomBatch(16, 20, 9));
    const d = decodeBatch(bytes);
    assert.equal(d.inputIds.buffer, bytes.buffer);
    assert.ok(
      d.inputIds.byteOffset >= bytes.byteOffset &&
        d.inputIds.byteOffset + d.inputIds.byteLength <= bytes.byteOffset + bytes.byteLength,
    );
    // Writing the bytes is seen through the view: nothing was copied.
    const view = new DataView(bytes.buffer, d.inputIds.byteOffset, 4);
    view.setInt32(0, 123456789, true);
    assert.equal(d.inputIds[0], 123456789);
    // Also inside a larger buffer at an 8-aligned offset (as a network stack hands it over).
    const big = new Uint8Array(bytes.length + 64);
    big.set(bytes, 24);
    const d2 = decodeBatch(big.subarray(24, 24 + bytes.length));
    assert.equal(d2.inputIds.buffer, big.buffer);
    assert.equal(d2.inputIds[0], 123456789);
  });

  it('decodes correctly (copying) from unaligned bytes', () => {
    const b = randomBatch(5, 9, 11);
    const bytes = encodeBatch(b);
    const big = new Uint8Array(bytes.length + 3);
    big.set(bytes, 3);
    assert.deepEqual(plain(decodeBatch(big.subarray(3))), plain(b));
  });

  it('decodes correctly from unaligned bytes inside a larger Node Buffer (a gRPC bytes field), whose slice is a view', () => {
    const b = randomBatch(7, 13, 21);
    const bytes = encodeBatch(b);
    const frame = Buffer.alloc(bytes.length + 64, 0xab);
    frame.set(bytes, 9);
    const field = frame.subarray(9, 9 + bytes.length);
    assert.ok(Buffer.isBuffer(field) && field.byteOffset % 4 !== 0);
    assert.deepEqual(plain(decodeBatch(field)), plain(b));
    assert.deepEqual(plain(decodeBatch(field)), plain(decodeBatchWithReader(field)));
  });

  it('writes the documented schema', () => {
    const bytes = encodeBatch(randomBatch(3, 4, 12));
    const reader = RecordBatchReader.from(bytes);
    const batches = [...reader];
    assert.equal(batches.length, 1);
    const schema = batches[0]!.schema;
    const t = schema.fields[0]!.type;
    assert.deepEqual(
      schema.fields.map((f) => [f.name, String(f.type), f.nullable]),
      [
        ['input_ids', `FixedSizeList[${String((t as { listSize: number }).listSize)}]<Int32>`, false],
        ['label', 'Float32', false],
        ['length', 'Int32', false],
        ['index', 'Int32', false],
      ],
    );
    assert.equal(schema.metadata.get(BATCH_METADATA_KEY), BATCH_FORMAT_VERSION);
    assert.equal(batchSchema(7).fields[0]?.type.toString(), 'FixedSizeList[7]<Int32>');
  });

  it('rejects what it did not write', () => {
    assert.throws(() => decodeBatch(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8])), isInvalidInput);
    assert.throws(() => decodeBatch(new Uint8Array(0)), isInvalidInput);
    // Other columns.
    const other = tableToIPC(tableFromArrays({ label: new Float32Array([1]), x: new Int32Array([1]) }), 'stream');
    assert.throws(() => decodeBatch(other), isInvalidInput);
    // Right names, wrong types.
    const wrong = tableToIPC(
      makeTable({
        input_ids: new Int32Array([1]),
        label: new Float32Array([1]),
        length: new Int32Array([1]),
        index: new Int32Array([0]),
      }),
      'stream',
    );
    assert.throws(
      () => decodeBatch(wrong),
      (e: unknown) => isInvalidInput(e) && e.field === 'input_ids',
    );
    // Two record batches.
    const b = randomBatch(2, 3, 13);
    const one = RecordBatchReader.from(encodeBatch(b)).next().value;
    const two = RecordBatchStreamWriter.writeAll([one, one]).toUint8Array(true);
    assert.throws(
      () => decodeBatch(two),
      (e: unknown) => isInvalidInput(e) && /exactly one/.test(e.message),
    );
    assert.throws(
      () => decodeBatchWithReader(two),
      (e: unknown) => isInvalidInput(e) && /exactly one/.test(e.message),
    );
    assert.throws(() => decodeBatchWithReader(other), isInvalidInput);
    assert.throws(() => decodeBatchWithReader(new Uint8Array([1, 2, 3])), isInvalidInput);
  });

  it("the template encoder writes exactly the bytes of arrow-js's writer", () => {
    for (const [bs, maxLen, seed] of [
      [64, 40, 21],
      [64, 40, 22], // same shape again: served from the template
      [3, 2, 23],
      [1, 1, 24],
    ] as const) {
      const b = randomBatch(bs, maxLen, seed);
      assert.deepEqual(encodeBatch(b), encodeBatchWithWriter(b));
    }
    const none = collate([]);
    assert.deepEqual(encodeBatch(none), encodeBatchWithWriter(none));
  });

  it('decodes the same schema written by arrow-js from a Table (another producer)', () => {
    const b = randomBatch(9, 6, 31);
    const schema = batchSchema(b.maxLength);
    const child = makeData({ type: new Int32(), length: b.inputIds.length, data: b.inputIds });
    const ids = makeData({ type: schema.fields[0]!.type as FixedSizeList<Int32>, length: b.batchSize, child });
    const data = makeData({
      type: new Struct(schema.fields),
      length: b.batchSize,
      children: [
        ids,
        makeData({ type: new Float32(), length: b.batchSize, data: b.labels }),
        makeData({ type: new Int32(), length: b.batchSize, data: b.lengths }),
        makeData({ type: new Int32(), length: b.batchSize, data: b.indices }),
      ],
    });
    const bytes = tableToIPC(new Table(new RecordBatch(schema, data)), 'stream');
    assert.deepEqual(plain(decodeBatch(bytes)), plain(b));
  });

  it('rejects truncated bytes and nulls', () => {
    const bytes = encodeBatch(randomBatch(4, 4, 41));
    for (const cut of [3, 7, 100, bytes.length - 20]) {
      assert.throws(() => decodeBatch(bytes.subarray(0, cut)), isInvalidInput, `cut at ${cut}`);
    }
    const schema = batchSchema(1);
    const nullBitmap = Uint8Array.from([0b01]);
    const data = makeData({
      type: new Struct(schema.fields),
      length: 2,
      children: [
        makeData({
          type: schema.fields[0]!.type as FixedSizeList<Int32>,
          length: 2,
          child: makeData({ type: new Int32(), length: 2, data: Int32Array.from([1, 2]) }),
        }),
        makeData({ type: new Float32(), length: 2, nullCount: 1, nullBitmap, data: Float32Array.from([1, 0]) }),
        makeData({ type: new Int32(), length: 2, data: Int32Array.from([1, 1]) }),
        makeData({ type: new Int32(), length: 2, data: Int32Array.from([0, 1]) }),
      ],
    });
    const withNull = tableToIPC(new Table(new RecordBatch(schema, data)), 'stream');
    assert.throws(
      () => decodeBatch(withNull),
      (e: unknown) => isInvalidInput(e) && /null/.test(e.message),
    );
    assert.throws(
      () => decodeBatchWithReader(withNull),
      (e: unknown) => isInvalidInput(e) && /null/.test(e.message),
    );
  });

  it('refuses to encode an inconsistent batch', () => {
    const b = randomBatch(4, 5, 14);
    assert.throws(() => encodeBatch({ ...b, inputIds: b.inputIds.subarray(1) }), isInvalidInput);
  });
});
