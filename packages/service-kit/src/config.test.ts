import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InvalidInputError } from '@ch8/errors';
import { ch8Home, parseConfig, type FieldSpec } from './config.ts';

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
      (e: unknown) =>
        e instanceof InvalidInputError && e.field !== undefined && e.message.startsWith(`field ${e.field}`),
    );
  }
});

test('ch8Home: CH8_HOME wins; else .cache in the workspace root, found from a package folder', async () => {
  const { mkdtemp, mkdir, writeFile, rm } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const root = await mkdtemp(join(tmpdir(), 'ch8-home-'));
  try {
    await writeFile(join(root, 'pnpm-workspace.yaml'), 'packages: []\n');
    await mkdir(join(root, 'services', 'trainer'), { recursive: true });
    assert.equal(ch8Home({}, join(root, 'services', 'trainer')), join(root, '.cache'));
    assert.equal(ch8Home({ CH8_HOME: 'state' }, join(root, 'services')), join(root, 'services', 'state'));
    assert.equal(ch8Home({ CH8_HOME: '/srv/ch8' }, root), '/srv/ch8');
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
