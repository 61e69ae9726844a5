/**
 * Arrow IPC for batches: one record batch in the IPC stream format (schema message, record batch message,
 * end-of-stream marker).
 *
 * Schema (all fields non-nullable; schema metadata `ch8.batch.version` = "1"):
 *   input_ids  FixedSizeList<item: Int32 not null>[T]   the [B, T] ids as ONE contiguous int32 buffer
 *   label      Float32                                  1.0 / 0.0
 *   length     Int32                                    real (unpadded) length of the row
 *   index      Int32                                    example index
 */
import {
  Field,
  FixedSizeList,
  Float32,
  Int32,
  makeData,
  Message,
  RecordBatch,
  RecordBatchReader,
  RecordBatchStreamWriter,
  type Data,
  Schema,
  Struct,
  type MessageHeader,
} from 'apache-arrow';
import { InvalidInputError } from '@ch8/errors';
import { checkBatch, type Batch } from './collate.ts';

export const BATCH_FORMAT_VERSION = '1';
export const BATCH_METADATA_KEY = 'ch8.batch.version';
export const COLUMNS = ['input_ids', 'label', 'length', 'index'] as const;

interface Shape {
  listType: FixedSizeList<Int32>;
  fields: Field[];
  schema: Schema;
  struct: Struct;
}

const INT32 = new Int32();
const FLOAT32 = new Float32();
const shapes = new Map<number, Shape>();

/** Schema (and types) for row width T, cached: schemas are immutable. */
function shapeOf(t: number): Shape {
  let s = shapes.get(t);
  if (s === undefined) {
    const listType = new FixedSizeList(t, new Field('item', INT32, false));
    const fields = [
      new Field('input_ids', listType, false),
      new Field('label', FLOAT32, false),
      new Field('length', INT32, false),
      new Field('index', INT32, false),
    ];
    s = {
      listType,
      fields,
      schema: new Schema(fields, new Map([[BATCH_METADATA_KEY, BATCH_FORMAT_VERSION]])),
      struct: new Struct(fields),
    };
    if (shapes.size > 4096) shapes.clear();
    shapes.set(t, s);
  }
  return s;
}

/** The Arrow schema of a batch whose rows are `maxLength` long. */
export function batchSchema(maxLength: number): Schema {
  return shapeOf(maxLength).schema;
}

/** Encode with arrow-js's writer (the reference path; also builds the templates). */
function encodeWithWriter(batch: Batch): Uint8Array {
  const { batchSize: b, maxLength: t } = batch;
  const shape = shapeOf(t);
  const child = makeData({ type: INT32, length: b * t, nullCount: 0, data: batch.inputIds });
  const ids = makeData({ type: shape.listType, length: b, nullCount: 0, child });
  const label = makeData({ type: FLOAT32, length: b, nullCount: 0, data: batch.labels });
  const length = makeData({ type: INT32, length: b, nullCount: 0, data: batch.lengths });
  const index = makeData({ type: INT32, length: b, nullCount: 0, data: batch.indices });
  const data = makeData({ type: shape.struct, length: b, nullCount: 0, children: [ids, label, length, index] });
  return RecordBatchStreamWriter.writeAll([new RecordBatch(shape.schema, data)]).toUint8Array(true);
}

// ---------------------------------------------------------------------------------------------------------------
// IPC framing. A stream is a sequence of messages: 0xFFFFFFFF, int32 metadata length, the Message flatbuffer
// (padded to 8 bytes), then the body; it ends with 0xFFFFFFFF 0x00000000 (or just ends). Metadata is decoded by
// arrow-js (`Message.decode`); the body buffers are located from the record batch's buffer regions.

interface Framed {
  message: Message;
  /** Absolute offset of the body in the bytes. */
  bodyStart: number;
  /** Offset of the next message. */
  next: number;
}

/**
 * The vectors of a Message flatbuffer must lie inside it. arrow-js decodes a vector by looping over the count it
 * reads, with no check: a garbled count (2^31 field nodes) made decodeBatch allocate until the process died. Reads
 * mirror flatbuffers' (signed 32-bit offsets, 16-bit vtable entries); nested schema fields are counted (a garbled
 * offset can point back at a parent).
 */
function checkMetadata(meta: Uint8Array): void {
  const view = new DataView(meta.buffer, meta.byteOffset, meta.byteLength);
  const garbled = (): never => bad('garbled Arrow message metadata');
  const i32 = (at: number): number => (at >= 0 && at + 4 <= meta.length ? view.getInt32(at, true) : garbled());
  const i16 = (at: number): number => (at >= 0 && at + 2 <= meta.length ? view.getInt16(at, true) : garbled());
  /** Position of field `i` of the table at `t`, or -1 when absent. */
  const field = (t: number, i: number): number => {
    const vt = t - i32(t);
    const o = 4 + 2 * i;
    if (o >= i16(vt)) return -1;
    const off = i16(vt + o);
    return off === 0 ? -1 : t + off;
  };
  const table = (t: number, i: number): number => {
    const p = field(t, i);
    return p < 0 ? -1 : p + i32(p);
  };
  /** Start and length of vector field `i` of `t` (elements of `size` bytes), checked to fit. */
  const vector = (t: number, i: number, size: number): { start: number; n: number } => {
    const p = field(t, i);
    if (p < 0) return { start: 0, n: 0 };
    const v = p + i32(p);
    const n = i32(v);
    if (n > 0 && v + 4 + n * size > meta.length) garbled();
    return { start: v + 4, n: Math.max(0, n) };
  };
  const tables = (t: number, i: number, each: (t: number) => void): void => {
    const { start, n } = vector(t, i, 4);
    for (let k = 0; k < n; k++) each(start + 4 * k + i32(start + 4 * k));
  };
  const keyValues = (t: number, i: number): void =>
    tables(t, i, (kv) => {
      vector(kv, 0, 1);
      vector(kv, 1, 1);
    });
  const recordBatch = (rb: number): void => {
    vector(rb, 1, 16); // nodes
    vector(rb, 2, 16); // buffers
    vector(rb, 4, 8); // variadicBufferCounts
  };
  let fields = 0;
  const schemaField = (f: number): void => {
    if (++fields > MAX_SCHEMA_FIELDS) garbled();
    vector(f, 0, 1); // name
    tables(f, 5, schemaField); // children
    keyValues(f, 6);
  };
  const root = i32(0);
  keyValues(root, 4);
  const header = table(root, 2);
  if (header < 0) return;
  const type = meta[field(root, 1)] ?? 0;
  if (type === 1) {
    tables(header, 1, schemaField);
    keyValues(header, 2);
    vector(header, 3, 8); // features
  } else if (type === 2) {
    const data = table(header, 1);
    if (data >= 0) recordBatch(data);
  } else if (type === 3) recordBatch(header);
}

/** Schema fields (nested ones included) a message may declare: a batch has 5. */
const MAX_SCHEMA_FIELDS = 1024;

function readMessageAt(bytes: Uint8Array, view: DataView, pos: number): Framed | null {
  if (pos + 4 > bytes.length) return null;
  let len = view.getInt32(pos, true);
  let metaStart = pos + 4;
  if (len === -1) {
    if (pos + 8 > bytes.length) bad('truncated Arrow message');
    len = view.getInt32(pos + 4, true);
    metaStart = pos + 8;
  }
  if (len === 0) return null; // end-of-stream marker
  if (len < 0 || metaStart + len > bytes.length) bad('truncated or garbled Arrow message');
  checkMetadata(bytes.subarray(metaStart, metaStart + len));
  const message = Message.decode(bytes.subarray(metaStart, metaStart + len));
  const bodyStart = metaStart + len;
  const next = bodyStart + Number(message.bodyLength);
  if (next > bytes.length) bad('truncated Arrow message body');
  return { message, bodyStart, next };
}

/** Where the four data buffers of our record batch are (absolute byte offsets), given the body regions. */
function dataBuffers(
  batch: MessageRecordBatch,
  bodyStart: number,
  bodyLength: number,
  b: number,
  t: number,
): [number, number, number, number] {
  const nodes = batch.nodes;
  const buffers = batch.buffers;
  if (nodes.length !== 5 || buffers.length !== 9) {
    bad(`expected 5 field nodes and 9 buffers, got ${nodes.length} and ${buffers.length}`);
  }
  if (nodes.some((n) => n.nullCount !== 0)) bad('nulls are not allowed in a batch');
  // Field nodes: input_ids (B lists), its items (B*T), label, length, index (B each).
  const rows = [b, b * t, b, b, b];
  nodes.forEach((n, k) => {
    if (n.length !== rows[k])
      bad(`field node ${k} has ${n.length} values, the batch ${rows[k]}`, COLUMNS[k === 0 ? 0 : k - 1]);
  });
  const need = [b * t * 4, b * 4, b * 4, b * 4];
  const at: number[] = [];
  for (let k = 0; k < 4; k++) {
    const region = buffers[2 + 2 * k] as { offset: number; length: number };
    if (region.length < (need[k] as number)) bad(`column ${COLUMNS[k]} is shorter than the batch`, COLUMNS[k]);
    // The buffer must lie inside the message body (a garbled offset must not read other bytes), 8-byte aligned as
    // the IPC format requires.
    if (!(region.offset >= 0 && region.offset % 8 === 0 && region.offset + (need[k] as number) <= bodyLength)) {
      bad(`column ${COLUMNS[k]} lies outside the message body`, COLUMNS[k]);
    }
    at.push(bodyStart + region.offset);
  }
  return at as [number, number, number, number];
}

type MessageRecordBatch = ReturnType<Message<MessageHeader.RecordBatch>['header']>;

/**
 * Encoded bytes depend on the values only through the data buffers (no nulls, no statistics), so for each shape
 * (B, T) arrow-js writes one template and later batches of that shape are the template with their values copied in.
 */
interface Template {
  bytes: Uint8Array;
  at: [number, number, number, number];
}

const templates = new Map<string, Template>();

function templateOf(b: number, t: number): Template {
  const key = `${b}x${t}`;
  let tpl = templates.get(key);
  if (tpl === undefined) {
    const bytes = encodeWithWriter({
      inputIds: new Int32Array(b * t),
      batchSize: b,
      maxLength: t,
      labels: new Float32Array(b),
      lengths: new Int32Array(b),
      indices: new Int32Array(b),
    });
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const schemaMsg = readMessageAt(bytes, view, 0) as Framed;
    const rb = readMessageAt(bytes, view, schemaMsg.next) as Framed;
    const header = (rb.message as Message<MessageHeader.RecordBatch>).header();
    tpl = { bytes, at: dataBuffers(header, rb.bodyStart, rb.next - rb.bodyStart, b, t) };
    if (templates.size >= 512) templates.clear();
    templates.set(key, tpl);
  }
  return tpl;
}

function copyInto(out: Uint8Array, at: number, src: Int32Array | Float32Array): void {
  out.set(new Uint8Array(src.buffer, src.byteOffset, src.byteLength), at);
}

/** Encode a batch as Arrow IPC stream bytes (one record batch). Inconsistent arrays -> InvalidInputError. */
export function encodeBatch(batch: Batch): Uint8Array {
  checkBatch(batch);
  const tpl = templateOf(batch.batchSize, batch.maxLength);
  const out = tpl.bytes.slice();
  copyInto(out, tpl.at[0], batch.inputIds);
  copyInto(out, tpl.at[1], batch.labels);
  copyInto(out, tpl.at[2], batch.lengths);
  copyInto(out, tpl.at[3], batch.indices);
  return out;
}

/** Reference encoder through arrow-js's RecordBatchStreamWriter (same bytes as `encodeBatch`, slower). */
export function encodeBatchWithWriter(batch: Batch): Uint8Array {
  checkBatch(batch);
  return encodeWithWriter(batch);
}

function bad(message: string, field?: string): never {
  throw new InvalidInputError(message, field === undefined ? {} : { field });
}

function checkSchema(schema: Schema): number {
  const fields = schema.fields;
  const names = fields.map((f) => f.name);
  if (names.length !== COLUMNS.length || COLUMNS.some((c, i) => names[i] !== c)) {
    bad(`expected columns ${COLUMNS.join(', ')}, got ${names.join(', ')}`);
  }
  const [idsF, labelF, lengthF, indexF] = fields as [Field, Field, Field, Field];
  const listType = idsF.type as unknown;
  if (!(listType instanceof FixedSizeList) || String(listType.children[0]?.type) !== 'Int32') {
    bad(`input_ids must be FixedSizeList<Int32>, got ${String(idsF.type)}`, 'input_ids');
  }
  if (String(labelF.type) !== 'Float32') bad(`label must be Float32, got ${String(labelF.type)}`, 'label');
  if (String(lengthF.type) !== 'Int32') bad(`length must be Int32, got ${String(lengthF.type)}`, 'length');
  if (String(indexF.type) !== 'Int32') bad(`index must be Int32, got ${String(indexF.type)}`, 'index');
  return listType.listSize;
}

/** A typed view of `n` values at absolute offset `at` of `bytes`; a copy when `at` is not aligned. */
function viewAt<T extends Int32Array | Float32Array>(
  Kind: { new (buffer: ArrayBufferLike, byteOffset: number, length: number): T; BYTES_PER_ELEMENT: number },
  bytes: Uint8Array,
  at: number,
  n: number,
): T {
  const offset = bytes.byteOffset + at;
  if (offset % Kind.BYTES_PER_ELEMENT === 0) return new Kind(bytes.buffer, offset, n);
  // A copy into a fresh buffer. Not `bytes.slice`: on a Node Buffer (what a gRPC message's bytes field is) slice
  // returns a view into the same memory, still misaligned, and reading `copy.buffer` from 0 would read other bytes.
  const copy = new Uint8Array(bytes.subarray(at, at + n * Kind.BYTES_PER_ELEMENT));
  return new Kind(copy.buffer, 0, n);
}

/**
 * Decode bytes made by `encodeBatch` (or any Arrow writer using the same schema, uncompressed). `inputIds` is a
 * zero-copy Int32Array view into `bytes` when `bytes.byteOffset` is a multiple of 4 (copied otherwise); the other
 * columns likewise. Not an Arrow stream, another schema, nulls, compression, or not exactly one record batch ->
 * InvalidInputError.
 */
export function decodeBatch(bytes: Uint8Array): Batch {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let schemaMsg: Framed | null;
  let rb: Framed | null;
  let after: Framed | null;
  let t: number;
  let header: MessageRecordBatch;
  // arrow-js decodes the flatbuffers lazily (header()): garbage can make it throw anything, reported as bad input.
  try {
    schemaMsg = readMessageAt(bytes, view, 0);
    if (schemaMsg === null || !schemaMsg.message.isSchema()) bad('not an Arrow IPC stream: no schema message first');
    rb = readMessageAt(bytes, view, schemaMsg.next);
    after = rb === null ? null : readMessageAt(bytes, view, rb.next);
    t = checkSchema((schemaMsg.message as Message<MessageHeader.Schema>).header());
    if (rb === null || after !== null) {
      bad(`expected exactly one record batch, got ${rb === null ? 0 : 'more than one message after the schema'}`);
    }
    if (!rb.message.isRecordBatch()) bad('expected exactly one record batch, got another message (dictionary?)');
    header = rb.message.header();
  } catch (e) {
    if (e instanceof InvalidInputError) throw e;
    throw new InvalidInputError(`not an Arrow IPC stream: ${(e as Error).message}`, {}, { cause: e });
  }
  if (header.compression !== null && header.compression !== undefined) bad('compressed batches are not supported');
  const b = header.length;
  if (!Number.isSafeInteger(b) || b < 0) bad(`garbled batch length ${b}`);
  if (!Number.isSafeInteger(t) || t < 0) bad(`garbled input_ids width ${t}`, 'input_ids');
  const at = dataBuffers(header, rb.bodyStart, rb.next - rb.bodyStart, b, t);
  return {
    inputIds: viewAt(Int32Array, bytes, at[0], b * t),
    batchSize: b,
    maxLength: t,
    labels: viewAt(Float32Array, bytes, at[1], b),
    lengths: viewAt(Int32Array, bytes, at[2], b),
    indices: viewAt(Int32Array, bytes, at[3], b),
  };
}

/**
 * Reference decoder through arrow-js's RecordBatchReader (same result as `decodeBatch`, slower; views into the
 * bytes likewise when aligned).
 */
export function decodeBatchWithReader(bytes: Uint8Array): Batch {
  let batches: RecordBatch[];
  try {
    batches = [...RecordBatchReader.from(bytes)];
  } catch (e) {
    throw new InvalidInputError(`not an Arrow IPC stream: ${(e as Error).message}`, {}, { cause: e });
  }
  if (batches.length !== 1) bad(`expected exactly one record batch, got ${batches.length}`);
  const rb = batches[0] as RecordBatch;
  const t = checkSchema(rb.schema);
  const b = rb.numRows;
  const [idsD, labelD, lengthD, indexD] = rb.data.children as [Data, Data, Data, Data];
  const child = idsD.children[0] as Data;
  for (const d of [idsD, child, labelD, lengthD, indexD]) if (d.nullCount > 0) bad('nulls are not allowed in a batch');
  const column = <T extends Int32Array | Float32Array>(d: Data, start: number, n: number): T =>
    (n === 0 ? new (d.values.constructor as new (n: number) => T)(0) : (d.values as T).subarray(start, start + n)) as T;
  return {
    inputIds: column<Int32Array>(child, child.offset + idsD.offset * t, b * t),
    batchSize: b,
    maxLength: t,
    labels: column<Float32Array>(labelD, labelD.offset, b),
    lengths: column<Int32Array>(lengthD, lengthD.offset, b),
    indices: column<Int32Array>(indexD, indexD.offset, b),
  };
}
