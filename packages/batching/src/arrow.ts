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
  RecordBatch,
  RecordBatchReader,
  RecordBatchStreamWriter,
  Schema,
  Struct,
  type Data,
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

/** Encode a batch as Arrow IPC stream bytes (one record batch). Inconsistent arrays -> InvalidInputError. */
export function encodeBatch(batch: Batch): Uint8Array {
  checkBatch(batch);
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

function bad(message: string, field?: string): never {
  throw new InvalidInputError(message, field === undefined ? {} : { field });
}

/** The typed values of a primitive column, exactly `n` long (Arrow pads buffers to 8 bytes). */
function values<T extends Int32Array | Float32Array>(data: Data, n: number, name: string): T {
  if (data.nullCount > 0) bad(`column ${name} has nulls`, name);
  const v = data.values as T;
  if (v.length < data.offset + n) bad(`column ${name} is shorter than the batch`, name);
  return v.subarray(data.offset, data.offset + n) as T;
}

/**
 * Decode bytes made by `encodeBatch`. `inputIds` is a zero-copy Int32Array view into `bytes` when
 * `bytes.byteOffset` is a multiple of 4 (Arrow copies otherwise); the other columns likewise.
 * Not an Arrow stream, another schema, or not exactly one record batch -> InvalidInputError.
 */
export function decodeBatch(bytes: Uint8Array): Batch {
  let batches: RecordBatch[];
  try {
    const reader = RecordBatchReader.from(bytes);
    batches = [];
    for (const rb of reader) batches.push(rb);
  } catch (e) {
    throw new InvalidInputError(`not an Arrow IPC stream: ${(e as Error).message}`, {}, { cause: e });
  }
  if (batches.length !== 1) bad(`expected exactly one record batch, got ${batches.length}`);
  const rb = batches[0] as RecordBatch;
  const fields = rb.schema.fields;
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

  const b = rb.numRows;
  const t = listType.listSize;
  const [idsD, labelD, lengthD, indexD] = rb.data.children as [Data, Data, Data, Data];
  if (idsD.nullCount > 0) bad('column input_ids has nulls', 'input_ids');
  const child = idsD.children[0] as Data;
  let inputIds: Int32Array = new Int32Array(0);
  if (b * t > 0) {
    const all = child.values as Int32Array;
    const start = child.offset + idsD.offset * t;
    if (child.nullCount > 0) bad('column input_ids has null ids', 'input_ids');
    if (all.length < start + b * t) bad('column input_ids is shorter than the batch', 'input_ids');
    inputIds = all.subarray(start, start + b * t);
  }
  return {
    inputIds,
    batchSize: b,
    maxLength: t,
    labels: values<Float32Array>(labelD, b, 'label'),
    lengths: values<Int32Array>(lengthD, b, 'length'),
    indices: values<Int32Array>(indexD, b, 'index'),
  };
}
