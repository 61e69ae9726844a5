import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  AlreadyExistsError,
  CancelledError,
  DeadlineExceededError,
  DependencyUnavailableError,
  FailedPreconditionError,
  InvalidInputError,
  NotFoundError,
  OverloadedError,
  PermissionDeniedError,
  VocabularyMismatchError,
} from '@ch8/errors';
import { Code, GrpcError, dependencyError, statusOf } from './status.ts';

test('every typed error maps to its status code', () => {
  const cases: [Error, Code][] = [
    [new InvalidInputError('x'), Code.INVALID_ARGUMENT],
    [new NotFoundError('x'), Code.NOT_FOUND],
    [new PermissionDeniedError('x'), Code.PERMISSION_DENIED],
    [new FailedPreconditionError('x'), Code.FAILED_PRECONDITION],
    [new VocabularyMismatchError('x'), Code.FAILED_PRECONDITION],
    [new OverloadedError('x'), Code.RESOURCE_EXHAUSTED],
    [new DependencyUnavailableError('x'), Code.UNAVAILABLE],
    [new CancelledError('x'), Code.CANCELLED],
    [new DeadlineExceededError('x'), Code.DEADLINE_EXCEEDED],
    [new AlreadyExistsError('x'), Code.ALREADY_EXISTS],
  ];
  for (const [err, code] of cases) {
    const s = statusOf(err);
    assert.equal(s.code, code, err.name);
    assert.equal(s.internal, false);
  }
});

test('details carry the location of bad input', () => {
  const s = statusOf(new InvalidInputError('label must be 0 or 1', { file: 'dev.tsv', line: 3 }));
  assert.equal(s.details, 'dev.tsv, line 3: label must be 0 or 1');
});

test('GrpcError passes through; anything else is INTERNAL without its message', () => {
  assert.deepEqual(statusOf(new GrpcError(Code.ABORTED, 'x')), { code: Code.ABORTED, details: 'x', internal: false });
  const s = statusOf(new TypeError('cannot read properties of undefined (secret)'));
  assert.equal(s.code, Code.INTERNAL);
  assert.equal(s.internal, true);
  assert.doesNotMatch(s.details, /secret/);
  assert.equal(statusOf('a string').code, Code.INTERNAL);
});

test('a failed call to a dependency becomes the typed error of its meaning, which maps back to the code', () => {
  const cases: [Code, string, Code][] = [
    [Code.UNAVAILABLE, 'DependencyUnavailableError', Code.UNAVAILABLE],
    [Code.DEADLINE_EXCEEDED, 'DependencyUnavailableError', Code.UNAVAILABLE],
    [Code.INVALID_ARGUMENT, 'InvalidInputError', Code.INVALID_ARGUMENT],
    [Code.NOT_FOUND, 'NotFoundError', Code.NOT_FOUND],
    [Code.PERMISSION_DENIED, 'PermissionDeniedError', Code.PERMISSION_DENIED],
    [Code.FAILED_PRECONDITION, 'FailedPreconditionError', Code.FAILED_PRECONDITION],
    [Code.RESOURCE_EXHAUSTED, 'OverloadedError', Code.RESOURCE_EXHAUSTED],
    [Code.CANCELLED, 'CancelledError', Code.CANCELLED],
    [Code.INTERNAL, 'DependencyUnavailableError', Code.UNAVAILABLE],
  ];
  for (const [code, name, back] of cases) {
    const e = dependencyError(new GrpcError(code, 'boom'), 'dataset service GetDataset');
    assert.equal(e.name, name, Code[code]);
    assert.match(e.message, /dataset service GetDataset: boom/);
    assert.equal(statusOf(e).code, back, Code[code]);
    assert.equal((e as Error & { cause?: unknown }).cause instanceof GrpcError, true);
  }
  const plain = new TypeError('x');
  assert.equal(dependencyError(plain, 'y'), plain);
});
