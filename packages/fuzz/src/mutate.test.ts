import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { applyMutations, byteMutationArb, mutationsArb, type ByteMutation } from './mutate.ts';

const bytes = (s: string) => new Uint8Array(Buffer.from(s, 'latin1'));
const text = (b: Uint8Array) => Buffer.from(b).toString('latin1');

test('each mutation kind does what it says, positions wrap, the input is left alone', () => {
  const input = bytes('abcdefgh');
  const cases: [ByteMutation[], string][] = [
    [[{ kind: 'cut', at: 3 }], 'abc'],
    [[{ kind: 'cut', at: 9 + 3 }], 'abc'], // 12 % 9
    [[{ kind: 'flip', at: 0, bit: 5 }], 'Abcdefgh'],
    [[{ kind: 'set', at: 7, byte: 0x21 }], 'abcdefg!'],
    [[{ kind: 'set', at: 8, byte: 0x21 }], 'abcdefgh'], // the end: nothing to overwrite
    [[{ kind: 'insert', at: 2, bytes: bytes('XY') }], 'abXYcdefgh'],
    [[{ kind: 'insert', at: 8, bytes: bytes('!') }], 'abcdefgh!'],
    [[{ kind: 'delete', at: 6, n: 4 }], 'abcdef'],
    [[{ kind: 'int32', at: 6, value: 0x44434241 }], 'abcdABCD'], // aligned down to 4
    [[{ kind: 'int32', at: 8, value: 1 }], 'abcdefgh'], // no whole word there
    [
      [
        { kind: 'delete', at: 0, n: 1 },
        { kind: 'insert', at: 0, bytes: bytes('_') },
        { kind: 'cut', at: 4 },
      ],
      '_bcd',
    ],
  ];
  for (const [ms, want] of cases) assert.equal(text(applyMutations(input, ms)), want, JSON.stringify(ms));
  assert.equal(text(input), 'abcdefgh');
  assert.equal(applyMutations(new Uint8Array(0), [{ kind: 'flip', at: 5, bit: 1 }]).length, 0);
});

test('the arbitrary draws only the kinds and bytes asked for', () => {
  const interesting = [0x2c, 0x0a];
  const none = byteMutationArb({ interesting, insertRandomMax: 0, deleteMax: 0 });
  fc.assert(
    fc.property(none, (m) => {
      assert.notEqual(m.kind, 'delete');
      assert.notEqual(m.kind, 'int32');
      if (m.kind === 'set') assert.ok(interesting.includes(m.byte));
      if (m.kind === 'insert') assert.ok(m.bytes.length === 1 && interesting.includes(m.bytes[0]!));
    }),
    { seed: 7, numRuns: 300 },
  );
  const seen = new Set<string>();
  fc.assert(
    fc.property(byteMutationArb({ interesting, int32Values: [0, -1] }), (m) => {
      seen.add(m.kind);
      if (m.kind === 'int32') assert.ok([0, -1].includes(m.value));
    }),
    { seed: 7, numRuns: 500 },
  );
  assert.deepEqual([...seen].sort(), ['cut', 'delete', 'flip', 'insert', 'int32', 'set']);
  let empty = 0;
  fc.assert(
    fc.property(mutationsArb(none, 2), (ms) => {
      assert.ok(ms.length <= 2);
      if (ms.length === 0) empty++;
    }),
    { seed: 7, numRuns: 300 },
  );
  assert.ok(empty > 50 && empty < 170, `${empty} of 300 unmutated`);
});
