/**
 * Open Inference Protocol (KServe v2) tensors of the gateway's signature: input TEXT (BYTES, [-1]) in typed
 * `contents.bytes_contents` or in `raw_input_contents` (each element a 4-byte little-endian length then its
 * bytes); outputs PROBABILITY (FP32, [-1], P(positive)) and LABEL (BYTES, [-1]) answered, as Triton's gRPC
 * endpoint does, in `raw_output_contents` (FP32 little-endian; BYTES length-prefixed), the tensors' `contents`
 * left empty.
 */
import { InvalidInputError } from '@ch8/errors';
import type { InferTensorContents, ModelInferRequest } from '@ch8/contracts/inference';
import type { TextPrediction } from './loaded.ts';

export const PLATFORM = 'ch8_tfjs';
export const INPUT_NAME = 'TEXT';
export const OUTPUT_NAMES = ['PROBABILITY', 'LABEL'] as const;
export type OutputName = (typeof OUTPUT_NAMES)[number];

const utf8 = new TextDecoder('utf-8', { fatal: true });

function decodeUtf8(bytes: Uint8Array, field: string): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new InvalidInputError('is not valid UTF-8', { field });
  }
}

/** Splits a raw BYTES tensor: 4-byte little-endian length, then that many bytes, repeated to the end exactly. */
export function decodeRawBytes(raw: Uint8Array, expected: number, field: string): Uint8Array[] {
  const out: Uint8Array[] = [];
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  let at = 0;
  while (at < raw.length) {
    if (at + 4 > raw.length) {
      throw new InvalidInputError(
        `element ${out.length} at byte ${at}: ${raw.length - at} bytes left, too few for a 4-byte length prefix`,
        { field },
      );
    }
    const n = view.getUint32(at, true);
    if (at + 4 + n > raw.length) {
      throw new InvalidInputError(
        `element ${out.length} at byte ${at}: length prefix ${n} runs past the end of the ${raw.length}-byte buffer`,
        { field },
      );
    }
    out.push(raw.subarray(at + 4, at + 4 + n));
    at += 4 + n;
  }
  if (out.length !== expected) {
    throw new InvalidInputError(`holds ${out.length} elements, the shape says ${expected}`, { field });
  }
  return out;
}

/** Length-prefixed BYTES elements. */
export function encodeRawBytes(items: readonly (string | Uint8Array)[]): Uint8Array {
  const parts = items.map((s) => (typeof s === 'string' ? Buffer.from(s, 'utf8') : s));
  const out = Buffer.allocUnsafe(parts.reduce((n, p) => n + 4 + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.writeUInt32LE(p.length, at);
    out.set(p, at + 4);
    at += 4 + p.length;
  }
  return out;
}

/** Contents of any kind but bytes_contents (which a BYTES input never holds). */
function hasTypedContents(c: InferTensorContents): boolean {
  return (
    c.boolContents.length > 0 ||
    c.intContents.length > 0 ||
    c.int64Contents.length > 0 ||
    c.uintContents.length > 0 ||
    c.uint64Contents.length > 0 ||
    c.fp32Contents.length > 0 ||
    c.fp64Contents.length > 0
  );
}

/** The texts of a ModelInfer request (checks the input's name, datatype, shape and data). */
export function textsOf(req: ModelInferRequest): string[] {
  if (req.inputs.length !== 1) {
    throw new InvalidInputError(`expected exactly one input (${INPUT_NAME}), got ${req.inputs.length}`, {
      field: 'inputs',
    });
  }
  const input = req.inputs[0]!;
  const field = `inputs[0] (${input.name})`;
  if (input.name !== INPUT_NAME) {
    throw new InvalidInputError(`unknown input ${JSON.stringify(input.name)}; the model's input is ${INPUT_NAME}`, {
      field: 'inputs[0].name',
    });
  }
  if (input.datatype !== 'BYTES') {
    throw new InvalidInputError(`datatype must be BYTES, got ${JSON.stringify(input.datatype)}`, {
      field: `${field}.datatype`,
    });
  }
  if (input.shape.length !== 1 || input.shape[0]! < 0n) {
    throw new InvalidInputError(`shape must be [N] (one dimension, N >= 0), got [${input.shape.join(', ')}]`, {
      field: `${field}.shape`,
    });
  }
  const n = Number(input.shape[0]!);
  let elements: Uint8Array[];
  if (req.rawInputContents.length > 0) {
    if (req.rawInputContents.length !== req.inputs.length) {
      throw new InvalidInputError(
        `${req.rawInputContents.length} raw buffers for ${req.inputs.length} input(s); one per input`,
        { field: 'raw_input_contents' },
      );
    }
    const c = input.contents;
    if (c !== undefined && (c.bytesContents.length > 0 || hasTypedContents(c))) {
      throw new InvalidInputError('an input may not carry contents when raw_input_contents is used', {
        field: `${field}.contents`,
      });
    }
    elements = decodeRawBytes(req.rawInputContents[0]!, n, 'raw_input_contents[0]');
  } else {
    const c = input.contents;
    if (c !== undefined && hasTypedContents(c)) {
      throw new InvalidInputError('a BYTES input carries its data in contents.bytes_contents', {
        field: `${field}.contents`,
      });
    }
    elements = c?.bytesContents ?? [];
    if (elements.length !== n) {
      throw new InvalidInputError(`holds ${elements.length} elements, the shape says ${n}`, {
        field: `${field}.contents.bytes_contents`,
      });
    }
  }
  return elements.map((e, i) => decodeUtf8(e, `${field}[${i}]`));
}

/** Which outputs to answer, in order: the requested ones, or all when none is named. */
export function requestedOutputs(req: ModelInferRequest): OutputName[] {
  if (req.outputs.length === 0) return [...OUTPUT_NAMES];
  return req.outputs.map((o, i) => {
    if (!(OUTPUT_NAMES as readonly string[]).includes(o.name)) {
      throw new InvalidInputError(`unknown output ${JSON.stringify(o.name)}; outputs: ${OUTPUT_NAMES.join(', ')}`, {
        field: `outputs[${i}].name`,
      });
    }
    return o.name as OutputName;
  });
}

/** Output tensors and their raw contents. */
export function encodeOutputs(
  names: readonly OutputName[],
  predictions: readonly TextPrediction[],
): { outputs: { name: string; datatype: string; shape: bigint[] }[]; raw: Uint8Array[] } {
  const shape = [BigInt(predictions.length)];
  const outputs: { name: string; datatype: string; shape: bigint[] }[] = [];
  const raw: Uint8Array[] = [];
  for (const name of names) {
    if (name === 'PROBABILITY') {
      const buf = Buffer.allocUnsafe(4 * predictions.length);
      predictions.forEach((p, i) => buf.writeFloatLE(p.probability, 4 * i));
      outputs.push({ name, datatype: 'FP32', shape });
      raw.push(buf);
    } else {
      outputs.push({ name, datatype: 'BYTES', shape });
      raw.push(encodeRawBytes(predictions.map((p) => p.label)));
    }
  }
  return { outputs, raw };
}
