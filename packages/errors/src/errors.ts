/**
 * Typed errors shared by every library and service.
 *
 * Libraries throw these; the service kit maps each `name` to one gRPC status code in a single table
 * (see `@ch8/service-kit/status`). Each error names what was wrong: the file, line and field where it applies.
 */

/** Where in an input the problem is. All fields optional: give what is known. */
export interface ErrorLocation {
  /** File (or source) the problem was found in. */
  file?: string;
  /** 1-based line number, for line-oriented sources. */
  line?: number;
  /** 1-based entry number, for record-oriented sources (word2vec binary). */
  entry?: number;
  /** Field, column or request field that is wrong. */
  field?: string;
}

function describe(message: string, where: ErrorLocation): string {
  const parts: string[] = [];
  if (where.file !== undefined) parts.push(where.file);
  if (where.line !== undefined) parts.push(`line ${where.line}`);
  if (where.entry !== undefined) parts.push(`entry ${where.entry}`);
  if (where.field !== undefined) parts.push(`field ${where.field}`);
  return parts.length > 0 ? `${parts.join(', ')}: ${message}` : message;
}

/**
 * A value from an input, for an error message: primitives as JSON (cut at 40 characters), lists and objects by kind
 * only (they may be huge, nested deeper than JSON.stringify's stack allows, or have a hostile toString).
 */
export function describeValue(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'function') return 'a function';
  if (typeof v === 'symbol') return 'a symbol';
  const s = typeof v === 'bigint' ? `${v}n` : JSON.stringify(v);
  return s.length > 40 ? `${s.slice(0, 40)}...` : s;
}

abstract class Ch8Error extends Error {
  readonly file: string | undefined;
  readonly line: number | undefined;
  readonly entry: number | undefined;
  readonly field: string | undefined;
  /** The message without the location prefix. */
  readonly detail: string;

  constructor(message: string, where: ErrorLocation = {}, options?: { cause?: unknown }) {
    super(describe(message, where), options);
    this.detail = message;
    this.file = where.file;
    this.line = where.line;
    this.entry = where.entry;
    this.field = where.field;
  }
}

/** The caller sent or named something malformed: a bad file, a bad value, an out-of-range argument. */
export class InvalidInputError extends Ch8Error {
  override readonly name = 'InvalidInputError' as const;
}

/** A named thing (file, model, data set, run, table) does not exist. */
export class NotFoundError extends Ch8Error {
  override readonly name = 'NotFoundError' as const;
}

/** The caller may not read or do this (for example a path outside the configured data roots). */
export class PermissionDeniedError extends Ch8Error {
  override readonly name = 'PermissionDeniedError' as const;
}

/** The system is not in the state the call needs: a vocabulary hash mismatch, a model not loaded yet. */
export class FailedPreconditionError extends Ch8Error {
  override readonly name = 'FailedPreconditionError' as const;
}

/** A vocabulary (or tokenizer) of a model and of the data or server do not match. */
export class VocabularyMismatchError extends Ch8Error {
  override readonly name = 'VocabularyMismatchError' as const;
}

/** Too much load: a queue is full, a limit reached. */
export class OverloadedError extends Ch8Error {
  override readonly name = 'OverloadedError' as const;
}

/** A service this one depends on cannot be reached. */
export class DependencyUnavailableError extends Ch8Error {
  override readonly name = 'DependencyUnavailableError' as const;
}

/** The work was cancelled by its caller. */
export class CancelledError extends Ch8Error {
  override readonly name = 'CancelledError' as const;
}

/** The caller's deadline passed before the work could be done (for example while a request waited in a queue). */
export class DeadlineExceededError extends Ch8Error {
  override readonly name = 'DeadlineExceededError' as const;
}

/** A thing being created already exists. */
export class AlreadyExistsError extends Ch8Error {
  override readonly name = 'AlreadyExistsError' as const;
}

export type KnownError =
  | InvalidInputError
  | NotFoundError
  | PermissionDeniedError
  | FailedPreconditionError
  | VocabularyMismatchError
  | OverloadedError
  | DependencyUnavailableError
  | CancelledError
  | DeadlineExceededError
  | AlreadyExistsError;

export type KnownErrorName = KnownError['name'];

const KNOWN: ReadonlySet<string> = new Set<KnownErrorName>([
  'InvalidInputError',
  'NotFoundError',
  'PermissionDeniedError',
  'FailedPreconditionError',
  'VocabularyMismatchError',
  'OverloadedError',
  'DependencyUnavailableError',
  'CancelledError',
  'DeadlineExceededError',
  'AlreadyExistsError',
]);

/** True for any of the typed errors above. */
export function isKnownError(e: unknown): e is KnownError {
  return e instanceof Ch8Error && KNOWN.has(e.name);
}

export function isInvalidInput(e: unknown): e is InvalidInputError {
  return e instanceof InvalidInputError;
}

export function isNotFound(e: unknown): e is NotFoundError {
  return e instanceof NotFoundError;
}

/** A typed error as plain data, to cross a thread or process boundary (structured clone, JSON). */
export interface PlainError {
  name: string;
  /** The message without the location prefix (for our errors), or the whole message. */
  message: string;
  file?: string;
  line?: number;
  entry?: number;
  field?: string;
}

const CLASSES: Record<KnownErrorName, new (message: string, where?: ErrorLocation) => KnownError> = {
  InvalidInputError,
  NotFoundError,
  PermissionDeniedError,
  FailedPreconditionError,
  VocabularyMismatchError,
  OverloadedError,
  DependencyUnavailableError,
  CancelledError,
  DeadlineExceededError,
  AlreadyExistsError,
};

export function errorToPlain(e: unknown): PlainError {
  if (!isKnownError(e))
    return { name: e instanceof Error ? e.name : 'Error', message: e instanceof Error ? e.message : String(e) };
  const where: ErrorLocation = {};
  if (e.file !== undefined) where.file = e.file;
  if (e.line !== undefined) where.line = e.line;
  if (e.entry !== undefined) where.entry = e.entry;
  if (e.field !== undefined) where.field = e.field;
  return { name: e.name, message: e.detail, ...where };
}

/** The error `errorToPlain` describes: the same class with its location for our errors, a plain Error otherwise. */
export function errorFromPlain(p: PlainError): Error {
  const Kind = CLASSES[p.name as KnownErrorName];
  const { name: _name, message, ...where } = p;
  if (Kind !== undefined) return new Kind(message, where);
  const e = new Error(message);
  e.name = p.name;
  return e;
}
