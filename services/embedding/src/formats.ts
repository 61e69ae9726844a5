/**
 * The proto's VectorFormat enum <-> the library's format names, both ways.
 */
import { VectorFormat as ProtoFormat } from '@ch8/contracts/embedding';
import { InvalidInputError } from '@ch8/errors';
import type { VectorFormat } from '@ch8/embeddings/format';

const TO_LIBRARY: ReadonlyMap<ProtoFormat, VectorFormat> = new Map([
  [ProtoFormat.WORD2VEC_BINARY, 'word2vec-binary'],
  [ProtoFormat.WORD2VEC_TEXT, 'word2vec-text'],
  [ProtoFormat.GLOVE_TEXT, 'glove-text'],
  [ProtoFormat.FASTTEXT_VEC, 'fasttext-vec'],
  [ProtoFormat.WINK_JSON, 'wink-json'],
]);

const TO_PROTO: ReadonlyMap<string, ProtoFormat> = new Map([...TO_LIBRARY].map(([p, l]) => [l, p]));

/**
 * The library format a request names; undefined for UNSPECIFIED (detect from the content).
 *
 * @throws InvalidInputError for a number the enum does not define.
 */
export function libraryFormat(format: ProtoFormat): VectorFormat | undefined {
  if (format === ProtoFormat.UNSPECIFIED) return undefined;
  const f = TO_LIBRARY.get(format);
  if (f === undefined) throw new InvalidInputError(`unknown vector format ${format as number}`, { field: 'format' });
  return f;
}

/** The enum value of a library format; UNSPECIFIED for anything else (an in-memory table). */
export function protoFormat(format: string): ProtoFormat {
  return TO_PROTO.get(format) ?? ProtoFormat.UNSPECIFIED;
}
