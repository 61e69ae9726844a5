import test from 'node:test';
import assert from 'node:assert/strict';
import { isInvalidInput } from '@ch8/errors';
import { resolveConfig } from './config.ts';

test('resolveConfig refuses values whose own toString would throw, naming the field', () => {
  assert.throws(
    () => resolveConfig({ kind: 'mlp', vocabSize: 10, dim: 4, hidden: { toString: [] } as never }),
    (e: unknown) => isInvalidInput(e) && e.field === 'hidden' && /got an object/.test(e.message),
  );
  assert.throws(
    () => resolveConfig({ kind: { toString: [] } as never, vocabSize: 10, dim: 4 }),
    (e: unknown) => isInvalidInput(e) && e.field === 'kind',
  );
});
