import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InvalidInputError } from '@ch8/errors';
import { int, list, parseArgs, str, type Flags } from './args.ts';

const spec: Flags = {
  json: { type: 'boolean', help: '' },
  source: { type: 'string', help: '' },
  'words-from': { type: 'string', multiple: true, help: '' },
  n: { type: 'string', help: '' },
};

test('values, switches, multi-valued flags and positionals', () => {
  const p = parseArgs(
    ['--source', 'a.bin', '--words-from', 'x.tsv', 'y.tsv', '--json', '--n=4', '--', '--literal'],
    spec,
  );
  assert.equal(str(p, 'source'), 'a.bin');
  assert.deepEqual(list(p, 'words-from'), ['x.tsv', 'y.tsv']);
  assert.equal(p.flags['json'], true);
  assert.equal(int(p, 'n', 1), 4);
  assert.deepEqual(p.positionals, ['--literal']);
  const q = parseArgs(['lookup', 'good', '--json', 'bad'], spec);
  assert.deepEqual(q.positionals, ['lookup', 'good', 'bad']);
});

test('unknown options, missing values and bad integers are errors naming the option', () => {
  for (const argv of [['--nope'], ['--source'], ['--json=1']]) {
    assert.throws(() => parseArgs(argv, spec), InvalidInputError);
  }
  assert.throws(() => int(parseArgs(['--n', 'four'], spec), 'n', 1, 1), /--n must be an integer/);
  assert.throws(() => int(parseArgs(['--n', '0'], spec), 'n', 1, 1), /--n must be an integer >= 1/);
});
