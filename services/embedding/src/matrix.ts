/**
 * Reassembling the chunks of StreamMatrix into one Float32Array (client side), with the checks that catch a
 * broken stream: a first chunk with the table's size, rows in order, no gap, no overlap, no overrun.
 */
import { endianness } from 'node:os';
import type { StreamMatrixResponse } from '@ch8/contracts/embedding';
import { InvalidInputError } from '@ch8/errors';

const LITTLE_ENDIAN = endianness() === 'LE';

export interface AssembledMatrix {
  /** vocabSize x dim, row-major. */
  matrix: Float32Array;
  vocabSize: number;
  dim: number;
  vocabHash: string;
  chunks: number;
}

/** Reads a StreamMatrix response stream to its end into one Float32Array (one allocation, one copy per chunk). */
export async function assembleMatrix(chunks: AsyncIterable<StreamMatrixResponse>): Promise<AssembledMatrix> {
  let out: Float32Array | undefined;
  let bytes: Uint8Array | undefined;
  let vocabSize = 0;
  let dim = 0;
  let vocabHash = '';
  let next = 0;
  let n = 0;
  for await (const c of chunks) {
    if (out === undefined || bytes === undefined) {
      if (c.dim === 0) throw new InvalidInputError('the first chunk has no dim', { field: 'dim' });
      vocabSize = c.vocabSize;
      dim = c.dim;
      vocabHash = c.vocabHash;
      out = new Float32Array(vocabSize * dim);
      bytes = new Uint8Array(out.buffer);
    }
    n++;
    if (
      c.dim !== dim ||
      c.rowStart !== next ||
      c.rowStart + c.rowCount > vocabSize ||
      c.data.length !== 4 * c.rowCount * dim
    ) {
      throw new InvalidInputError(
        `chunk ${n} (rows ${c.rowStart}+${c.rowCount}, ${c.data.length} bytes) does not continue the matrix at row ${next}`,
        {
          entry: n,
        },
      );
    }
    bytes.set(c.data, 4 * c.rowStart * dim);
    next += c.rowCount;
  }
  if (out === undefined) throw new InvalidInputError('the stream had no chunks');
  if (next !== vocabSize) throw new InvalidInputError(`the stream ended at row ${next} of ${vocabSize}`);
  if (!LITTLE_ENDIAN) {
    const view = new DataView(out.buffer);
    for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(4 * i, true);
  }
  return { matrix: out, vocabSize, dim, vocabHash, chunks: n };
}
