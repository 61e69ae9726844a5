import test from 'node:test';
import assert from 'node:assert/strict';
import { InvalidInputError } from '@ch8/errors';
import { MODEL_NAME_PATTERN, checkModelName, parseVersion } from './names.ts';

test('checkModelName accepts safe path segments and refuses the rest, naming the field', () => {
  for (const ok of ['a', '0', 'sst2-cnn', 'bow_frozen.v2', 'x'.repeat(64), 'a..b'])
    assert.equal(checkModelName(ok), ok);
  for (const bad of [
    '',
    '../x',
    '..',
    '.',
    'x/y',
    'x\\y',
    'A',
    'Cnn',
    '-x',
    '_x',
    '.tmp-1',
    'x'.repeat(65),
    'a b',
    'é',
  ]) {
    assert.throws(
      () => checkModelName(bad),
      (e: unknown) => e instanceof InvalidInputError && e.field === 'name' && e.message.includes(JSON.stringify(bad)),
      bad,
    );
  }
  assert.throws(
    () => checkModelName('../x', 'export_name'),
    (e: unknown) => e instanceof InvalidInputError && e.field === 'export_name',
  );
  assert.throws(() => checkModelName(7 as unknown as string), InvalidInputError);
  assert.equal(MODEL_NAME_PATTERN.test('..'), false);
});

test('parseVersion reads positive decimal integers only', () => {
  const cases: [string, number | undefined][] = [
    ['1', 1],
    ['2', 2],
    ['10', 10],
    ['9007199254740991', 9007199254740991],
    ['9007199254740992', undefined],
    ['0', undefined],
    ['01', undefined],
    ['+1', undefined],
    ['-1', undefined],
    ['1.0', undefined],
    ['1e3', undefined],
    [' 1', undefined],
    ['', undefined],
    ['.tmp-abc', undefined],
    ['latest', undefined],
    ['0x10', undefined],
  ];
  for (const [entry, expected] of cases) assert.equal(parseVersion(entry), expected, entry);
});
