/**
 * The one table that maps typed errors to gRPC status codes, and the error type clients see.
 *
 * bad input INVALID_ARGUMENT, unknown thing NOT_FOUND, forbidden path PERMISSION_DENIED, vocabulary mismatch and
 * wrong state FAILED_PRECONDITION, overload RESOURCE_EXHAUSTED, dependency down UNAVAILABLE. Anything else is
 * INTERNAL: its message is logged by the server, never sent to the client.
 */
import { status as grpcStatus } from '@grpc/grpc-js';
import {
  AlreadyExistsError,
  CancelledError,
  DependencyUnavailableError,
  FailedPreconditionError,
  InvalidInputError,
  NotFoundError,
  OverloadedError,
  PermissionDeniedError,
  isKnownError,
  type KnownErrorName,
} from '@ch8/errors';

export const Code = grpcStatus;
export type Code = grpcStatus;

export const STATUS_BY_ERROR: Readonly<Record<KnownErrorName, Code>> = {
  InvalidInputError: Code.INVALID_ARGUMENT,
  NotFoundError: Code.NOT_FOUND,
  PermissionDeniedError: Code.PERMISSION_DENIED,
  FailedPreconditionError: Code.FAILED_PRECONDITION,
  VocabularyMismatchError: Code.FAILED_PRECONDITION,
  OverloadedError: Code.RESOURCE_EXHAUSTED,
  DependencyUnavailableError: Code.UNAVAILABLE,
  CancelledError: Code.CANCELLED,
  DeadlineExceededError: Code.DEADLINE_EXCEEDED,
  AlreadyExistsError: Code.ALREADY_EXISTS,
};

/** An error with a gRPC status: thrown by clients for a failed call, and accepted from handlers as is. */
export class GrpcError extends Error {
  override readonly name = 'GrpcError' as const;
  constructor(
    readonly code: Code,
    readonly details: string,
    options?: { cause?: unknown },
  ) {
    super(`${Code[code] ?? code}: ${details}`, options);
  }
}

export function isGrpcError(e: unknown): e is GrpcError {
  return e instanceof GrpcError;
}

export interface StatusOf {
  code: Code;
  details: string;
  /** True when the error was not one of ours: log it, do not leak its message. */
  internal: boolean;
}

/** Maps anything a handler throws to the status sent to the client. */
export function statusOf(error: unknown): StatusOf {
  if (isGrpcError(error)) return { code: error.code, details: error.details, internal: false };
  if (isKnownError(error)) return { code: STATUS_BY_ERROR[error.name], details: error.message, internal: false };
  return { code: Code.INTERNAL, details: 'internal error', internal: true };
}

export function codeName(code: Code): string {
  return Code[code] ?? String(code);
}

/**
 * The typed error for a failed call to another service (the inverse of the table above), so a handler that calls a
 * dependency fails with the cause's meaning: the dependency unreachable or timing out is UNAVAILABLE to our caller,
 * its bad-input and not-found answers keep their codes. `what` names the call, e.g. "dataset service StreamBatches".
 */
export function dependencyError(e: unknown, what: string): Error {
  if (!isGrpcError(e)) return e instanceof Error ? e : new Error(String(e));
  const message = `${what}: ${e.details}`;
  const options = { cause: e };
  switch (e.code) {
    case Code.UNAVAILABLE:
    case Code.DEADLINE_EXCEEDED:
      return new DependencyUnavailableError(message, {}, options);
    case Code.INVALID_ARGUMENT:
    case Code.OUT_OF_RANGE:
      return new InvalidInputError(message, {}, options);
    case Code.NOT_FOUND:
      return new NotFoundError(message, {}, options);
    case Code.PERMISSION_DENIED:
      return new PermissionDeniedError(message, {}, options);
    case Code.FAILED_PRECONDITION:
      return new FailedPreconditionError(message, {}, options);
    case Code.RESOURCE_EXHAUSTED:
      return new OverloadedError(message, {}, options);
    case Code.CANCELLED:
      return new CancelledError(message, {}, options);
    case Code.ALREADY_EXISTS:
      return new AlreadyExistsError(message, {}, options);
    default:
      return new DependencyUnavailableError(`${message} (${codeName(e.code)})`, {}, options);
  }
}
