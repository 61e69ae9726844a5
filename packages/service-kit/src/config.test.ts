import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InvalidInputError } from '@ch8/errors';
import { parseConfig, type FieldSpec } from './config.ts';

const specs = {
  port: { env: 'X_PORT', kind: 'int', min: 0, max: 65535, default: 50051, doc: 'port' },
  roots: { env: 'X_ROOTS', kind: 'list', default: [], doc: 'data roots' },
  verbose: { env: 'X_VERBOSE', kind: 'bool', default: false, doc: 'verbose' },
  level: { env: 'X_LEVEL', kind: 'enum', values: ['info', 'debug'] as const, default: 'info', doc: 'level' },
  name: { env: 'X_NAME', kind: 'string', doc: 'required name' },
} satisfies Record<string, FieldSpec>;

test('defaults and parsed values, typed', () => {
  const c = parseConfig(specs, { X_NAME: 'a', X_ROOTS: '/a, /b', X_VERBOSE: 'yes' });
  assert.deepEqual(c, { port: 50051, roots: ['/a', '/b'], verbose: true, level: 'info', name: 'a' });
});

test('bad values name the variable', () => {
  for (const env of [
    { X_NAME: 'a', X_PORT: 'eighty' },
    { X_NAME: 'a', X_PORT: '70000' },
    { X_NAME: 'a', X_PORT: '1.5' },
    { X_NAME: 'a', X_VERBOSE: 'maybe' },
    { X_NAME: 'a', X_LEVEL: 'trace' },
    {},
  ]) {
    assert.throws(
      () => parseConfig(specs, env),
      (e: unknown) => e instanceof InvalidInputError && e.field !== undefined && e.message.startsWith(`field ${e.field}`),
    );
  }
});
