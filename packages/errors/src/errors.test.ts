import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InvalidInputError, NotFoundError, isInvalidInput, isKnownError, isNotFound } from './errors.ts';

test('location is part of the message and kept as fields', () => {
  const e = new InvalidInputError('label must be 0 or 1, got "2"', { file: 'train.tsv', line: 7, field: 'label' });
  assert.equal(e.message, 'train.tsv, line 7, field label: label must be 0 or 1, got "2"');
  assert.equal(e.detail, 'label must be 0 or 1, got "2"');
  assert.equal(e.file, 'train.tsv');
  assert.equal(e.line, 7);
  assert.equal(e.name, 'InvalidInputError');
});

test('guards tell the kinds apart and reject plain errors', () => {
  const bad = new InvalidInputError('x');
  const missing = new NotFoundError('no such model', { field: 'model_name' });
  assert.ok(isInvalidInput(bad) && !isNotFound(bad));
  assert.ok(isNotFound(missing) && !isInvalidInput(missing));
  assert.ok(isKnownError(bad) && isKnownError(missing));
  assert.ok(!isKnownError(new Error('plain')));
  assert.ok(!isKnownError({ name: 'InvalidInputError' }));
});
