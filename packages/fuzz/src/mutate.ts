/**
 * Byte mutations for the fuzz tests of the project's readers (SST-2 TSV/CSV/JSONL, vector files, Arrow IPC batches,
 * model manifests): a file written correctly, then cut, bit-flipped, overwritten, grown or shrunk at random places,
 * must either read back as the reference says or be refused with the reader's typed error. One mutation type, one
 * applier and one arbitrary, tuned per format by the bytes that matter to its parser.
 */
import fc from 'fast-check';

export type ByteMutation =
  /** The file ends at `at`. */
  | { kind: 'cut'; at: number }
  /** Bit `bit` of the byte at `at` flipped. */
  | { kind: 'flip'; at: number; bit: number }
  /** The byte at `at` replaced. */
  | { kind: 'set'; at: number; byte: number }
  /** The aligned 32-bit little-endian word at or before `at` replaced (lengths, offsets and counts of binary formats). */
  | { kind: 'int32'; at: number; value: number }
  /** Bytes inserted before `at`. */
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  /** `n` bytes removed from `at`. */
  | { kind: 'delete'; at: number; n: number };

/**
 * A mutated copy of `bytes` (never changed). Positions are taken modulo the current length + 1, so every mutation
 * applies to any file, an empty one included.
 */
export function applyMutations(bytes: Uint8Array, mutations: readonly ByteMutation[]): Uint8Array {
  let b = Buffer.from(bytes);
  for (const m of mutations) {
    const at = m.at % (b.length + 1);
    switch (m.kind) {
      case 'cut':
        b = b.subarray(0, at);
        break;
      case 'flip':
        if (at < b.length) b[at] = (b[at] as number) ^ (1 << m.bit);
        break;
      case 'set':
        if (at < b.length) b[at] = m.byte;
        break;
      case 'int32': {
        const a = at - (at % 4);
        if (a + 4 <= b.length) b.writeInt32LE(m.value, a);
        break;
      }
      case 'insert':
        b = Buffer.concat([b.subarray(0, at), m.bytes, b.subarray(at)]);
        break;
      case 'delete':
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.n)]);
        break;
    }
  }
  return new Uint8Array(b);
}

export interface MutationOptions {
  /** Bytes that mean something to the parser (delimiters, quotes, digits, 0x00, 0xff): what `set` writes, and what
   * `insert` writes when it does not insert random bytes. */
  interesting: readonly number[];
  /** Longest run of random bytes an insert adds (default 3); 0: inserts add one interesting byte only. */
  insertRandomMax?: number;
  /** Longest run a delete removes (default 4); 0: no deletes. */
  deleteMax?: number;
  /** Relative weight of bit flips among the kinds (default 1, each other kind 1). */
  flipWeight?: number;
  /** Values for aligned 32-bit words (binary formats); none: no int32 mutations. */
  int32Values?: readonly number[];
}

/** One mutation of the kinds and bytes `options` asks for. */
export function byteMutationArb(options: MutationOptions): fc.Arbitrary<ByteMutation> {
  const interesting = fc.constantFrom(...options.interesting);
  const insertRandomMax = options.insertRandomMax ?? 3;
  const deleteMax = options.deleteMax ?? 4;
  const kinds: fc.WeightedArbitrary<ByteMutation>[] = [
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }) },
    {
      weight: options.flipWeight ?? 1,
      arbitrary: fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.nat(7) }),
    },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('set' as const), at: fc.nat(), byte: interesting }) },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant('insert' as const),
        at: fc.nat(),
        bytes:
          insertRandomMax > 0
            ? fc.oneof(
                fc.uint8Array({ minLength: 1, maxLength: insertRandomMax }),
                interesting.map((c) => Uint8Array.of(c)),
              )
            : interesting.map((c) => Uint8Array.of(c)),
      }),
    },
  ];
  if (deleteMax > 0) {
    kinds.push({
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant('delete' as const),
        at: fc.nat(),
        n: fc.integer({ min: 1, max: deleteMax }),
      }),
    });
  }
  if (options.int32Values !== undefined && options.int32Values.length > 0) {
    kinds.push({
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant('int32' as const),
        at: fc.nat(),
        value: fc.constantFrom(...options.int32Values),
      }),
    });
  }
  return fc.oneof(...kinds);
}

/** One to `max` mutations (default 3), or none at all (the file as written must read back) about a third of the time. */
export function mutationsArb(one: fc.Arbitrary<ByteMutation>, max = 3): fc.Arbitrary<ByteMutation[]> {
  return fc.oneof(
    { weight: 1, arbitrary: fc.constant([] as ByteMutation[]) },
    { weight: 2, arbitrary: fc.array(one, { minLength: 1, maxLength: max }) },
  );
}
