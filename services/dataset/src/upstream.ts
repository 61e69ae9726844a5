/**
 * A dependency's failed call as one of our typed errors, chosen by the status code the dependency answered, so a
 * handler throws only typed errors and the one table in @ch8/service-kit/status turns them into codes:
 * UNAVAILABLE / DEADLINE_EXCEEDED -> DependencyUnavailableError, NOT_FOUND -> NotFoundError, INVALID_ARGUMENT /
 * OUT_OF_RANGE -> InvalidInputError, PERMISSION_DENIED -> PermissionDeniedError, FAILED_PRECONDITION ->
 * FailedPreconditionError, RESOURCE_EXHAUSTED -> OverloadedError, ALREADY_EXISTS -> AlreadyExistsError, CANCELLED
 * -> CancelledError. Anything else (INTERNAL, UNKNOWN, UNIMPLEMENTED, ...) is a plain Error: INTERNAL, with the
 * dependency's answer logged, not sent.
 */
import {
  AlreadyExistsError,
  CancelledError,
  DependencyUnavailableError,
  FailedPreconditionError,
  InvalidInputError,
  NotFoundError,
  OverloadedError,
  PermissionDeniedError,
} from '@ch8/errors';
import { Code, codeName, isGrpcError } from '@ch8/service-kit/status';

/** `service`: e.g. "embedding service"; `rpc`: the method called, e.g. "LoadTable". */
export function dependencyError(service: string, rpc: string, e: unknown): Error {
  if (!isGrpcError(e)) return e instanceof Error ? e : new Error(String(e));
  const cause = { cause: e };
  const message = `${service} ${rpc}: ${e.details}`;
  switch (e.code) {
    case Code.UNAVAILABLE:
    case Code.DEADLINE_EXCEEDED:
      return new DependencyUnavailableError(
        `${service} unavailable (${rpc}, ${codeName(e.code)}): ${e.details}`,
        {},
        cause,
      );
    case Code.NOT_FOUND:
      return new NotFoundError(message, {}, cause);
    case Code.INVALID_ARGUMENT:
    case Code.OUT_OF_RANGE:
      return new InvalidInputError(message, {}, cause);
    case Code.PERMISSION_DENIED:
      return new PermissionDeniedError(message, {}, cause);
    case Code.FAILED_PRECONDITION:
      return new FailedPreconditionError(message, {}, cause);
    case Code.RESOURCE_EXHAUSTED:
      return new OverloadedError(message, {}, cause);
    case Code.ALREADY_EXISTS:
      return new AlreadyExistsError(message, {}, cause);
    case Code.CANCELLED:
      return new CancelledError(message, {}, cause);
    default:
      return new Error(`${service} ${rpc} failed with ${codeName(e.code)}: ${e.details}`, cause);
  }
}
