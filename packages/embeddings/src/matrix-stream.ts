/**
 * Reassembling a matrix sent in row chunks (the embedding service's StreamMatrix) into one Float32Array, with the
 * checks that catch a broken stream: a first chunk with the table's size, rows in order, no gap, no overlap, no
 * overrun. The chunk type is structural, so a StreamMatrixResponse fits without this package knowing the contracts.
 */
import { endianness } from 'node:os';
import { InvalidInputError } from '@ch8/errors';

const LITTLE_ENDIAN = endianness() === 'LE';

/** One chunk: rows [rowStart, rowStart + rowCount) as little-endian float32 bytes. */
export interface MatrixChunk {
  rowStart: number;
  rowCount: number;
  dim: number;
  /** 4 * rowCount * dim bytes. */
  data: Uint8Array;
  /** Rows of the whole matrix; read from the first chunk only. */
  vocabSize: number;
  /** Vocabulary hash of the table; read from the first chunk only. */
  vocabHash: string;
}

export interface AssembledMatrix {
  /** vocabSize x dim, row-major. */
  matrix: Float32Array;
  vocabSize: number;
  dim: number;
  vocabHash: string;
  /** Chunks read. */
  chunks: number;
}

/**
 * Reads a chunk stream to its end into one Float32Array (one allocation, one copy per chunk). A first chunk without
 * dim, a chunk that does not continue the matrix (wrong dim, rows out of order, a gap, an overlap, an overrun, a
 * byte count that is not its rows), no chunk at all or a stream that ends early -> InvalidInputError.
 */
export async function assembleMatrix(
  chunks: AsyncIterable<MatrixChunk> | Iterable<MatrixChunk>,
): Promise<AssembledMatrix> {
  let out: Float32Array | undefined;
  let bytes: Uint8Array | undefined;
  let vocabSize = 0;
  let dim = 0;
  let vocabHash = '';
  let next = 0;
  let n = 0;
  for await (const c of chunks) {
    if (out === undefined || bytes === undefined) {
      if (c.dim === 0) throw new InvalidInputError('the first chunk has no dim', { entry: 1, field: 'dim' });
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
        { entry: n },
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
