import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isInvalidInput } from '@ch8/errors';
import { assembleMatrix, type MatrixChunk } from './matrix-stream.ts';

const DIM = 3;
const ROWS = 11;
/** Row r, column c holds r + c / 4: exact in float32, so the expected matrix needs no rounding. */
const value = (r: number, c: number): number => r + c / 4;

/** Little-endian bytes of rows [start, start + count), written value by value with a DataView. */
function chunk(start: number, count: number, first = start === 0): MatrixChunk {
  const data = new Uint8Array(4 * count * DIM);
  const view = new DataView(data.buffer);
  for (let r = 0; r < count; r++)
    for (let c = 0; c < DIM; c++) view.setFloat32(4 * (r * DIM + c), value(start + r, c), true);
  return {
    rowStart: start,
    rowCount: count,
    dim: DIM,
    data,
    vocabSize: first ? ROWS : 0,
    vocabHash: first ? 'h'.repeat(64) : '',
  };
}

async function* stream(chunks: readonly MatrixChunk[]): AsyncGenerator<MatrixChunk> {
  yield* chunks;
}

const cut = (sizes: number[]): MatrixChunk[] => {
  let start = 0;
  return sizes.map((n) => {
    const c = chunk(start, n);
    start += n;
    return c;
  });
};

describe('assembleMatrix', () => {
  it('reassembles the rows of any chunking into one row-major matrix, size and hash from the first chunk', async () => {
    for (const sizes of [[11], [4, 4, 3], [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], [5, 0, 6]]) {
      const m = await assembleMatrix(stream(cut(sizes)));
      assert.deepEqual([m.vocabSize, m.dim, m.vocabHash, m.chunks], [ROWS, DIM, 'h'.repeat(64), sizes.length]);
      assert.deepEqual(
        Array.from(m.matrix),
        Array.from({ length: ROWS * DIM }, (_, i) => value(Math.floor(i / DIM), i % DIM)),
      );
    }
    // A plain iterable works too.
    assert.equal((await assembleMatrix(cut([6, 5]))).matrix[DIM * 10 + 2], 10.5);
  });

  it('rejects a broken stream with InvalidInputError naming the chunk', async () => {
    const [a, b, c] = cut([4, 4, 3]) as [MatrixChunk, MatrixChunk, MatrixChunk];
    const broken: Array<[MatrixChunk[], RegExp]> = [
      [[a, c], /entry 2: chunk 2 \(rows 8\+3, 36 bytes\) does not continue the matrix at row 4/], // gap
      [[a, chunk(2, 4), b, c], /chunk 2 .* at row 4/], // overlap
      [[a, b, chunk(8, 4)], /chunk 3 \(rows 8\+4/], // overrun
      [[a, { ...b, dim: DIM + 1 }, c], /chunk 2/], // another dim
      [[a, { ...b, data: b.data.subarray(4) }, c], /chunk 2 \(rows 4\+4, 44 bytes\)/], // bytes not its rows
      [[a, b], /the stream ended at row 8 of 11/],
      [[], /the stream had no chunks/],
      [[{ ...a, dim: 0 }, b, c], /the first chunk has no dim/],
    ];
    for (const [chunks, message] of broken) {
      await assert.rejects(
        assembleMatrix(stream(chunks)),
        (e: unknown) => isInvalidInput(e) && message.test(e.message),
      );
    }
  });

  it('passes on the error of the stream itself', async () => {
    const failing = (async function* () {
      yield chunk(0, 4);
      throw new Error('connection reset');
    })();
    await assert.rejects(assembleMatrix(failing), /connection reset/);
  });
});
