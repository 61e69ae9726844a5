import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  DeadlineExceededError,
  describeValue,
  InvalidInputError,
  NotFoundError,
  errorFromPlain,
  errorToPlain,
  isInvalidInput,
  isKnownError,
  isNotFound,
} from './errors.ts';

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

test('an error survives being sent as plain data: same class, message and location; others stay plain Errors', () => {
  const e = new InvalidInputError('label must be 0 or 1', { file: 'train.tsv', line: 3, field: 'label' });
  const plain = errorToPlain(e);
  assert.deepEqual(JSON.parse(JSON.stringify(plain)), plain);
  const back = errorFromPlain(structuredClone(plain));
  assert.ok(back instanceof InvalidInputError);
  assert.equal(back.message, e.message);
  assert.equal((back as InvalidInputError).line, 3);
  assert.equal((back as InvalidInputError).field, 'label');
  const dead = errorFromPlain(errorToPlain(new DeadlineExceededError('too late')));
  assert.ok(dead instanceof DeadlineExceededError && isKnownError(dead));
  const other = errorFromPlain(errorToPlain(new TypeError('boom')));
  assert.equal(other.name, 'TypeError');
  assert.equal(other.message, 'boom');
  assert.equal(isKnownError(other), false);
});

test('describeValue shows primitives as JSON and never walks lists or objects', () => {
  assert.equal(describeValue('abc'), '"abc"');
  assert.equal(describeValue(3), '3');
  assert.equal(describeValue(undefined), 'nothing');
  assert.equal(describeValue(null), 'null');
  assert.equal(describeValue(12n), '12n');
  assert.equal(describeValue('x'.repeat(100)), `"${'x'.repeat(39)}...`);
  // A hostile toString and a nesting deeper than JSON.stringify's stack are described by kind only.
  assert.equal(describeValue({ toString: [] }), 'an object');
  let deep: unknown = 1;
  for (let i = 0; i < 100_000; i++) deep = [deep];
  assert.equal(describeValue(deep), 'a list');
});
