/**
 * RMS's typed errors. Each class says what the caller must do; the HTTP layer maps them
 * to status codes in one place (`http/error-mapping.ts`). Callers use `instanceof`,
 * never the message text.
 */
import type { MessageStatus } from './message.js';

/** Machine-readable error codes, as they appear in `{"error": {"code"}}`. */
export type RmsErrorCode =
  | 'INVALID_REQUEST'
  | 'INVALID_JSON'
  | 'PAYLOAD_TOO_LARGE'
  | 'UNAUTHORIZED'
  | 'FORBIDDEN'
  | 'NOT_FOUND'
  | 'STATE_CONFLICT'
  | 'MESSAGE_ID_REUSED'
  | 'DEPENDENCY_UNAVAILABLE'
  | 'OVERLOADED'
  | 'CONFIGURATION_INVALID';

/** The root of RMS's errors. */
export class RmsError extends Error {
  /** Stable machine-readable code. */
  readonly code: RmsErrorCode;
  /** Extra fields for the error body (`status`, `field`, ...). */
  readonly details: Record<string, unknown>;

  constructor(code: RmsErrorCode, message: string, details: Record<string, unknown> = {}, options?: ErrorOptions) {
    super(message, options);
    this.name = 'RmsError';
    this.code = code;
    this.details = details;
  }
}

/** The request is malformed: a field is missing, of the wrong type, or out of range. */
export class InvalidRequestError extends RmsError {
  constructor(message: string, details: Record<string, unknown> = {}, code: RmsErrorCode = 'INVALID_REQUEST') {
    super(code, message, details);
    this.name = 'InvalidRequestError';
  }
}

/**
 * The store refused a value the request carried (PostgreSQL's "data exception" class, for
 * instance a string jsonb cannot hold). The request's fault, so a 400 for that request —
 * or for that element of a batch — never a 500 for the whole call.
 */
export class ValueRefusedByStoreError extends InvalidRequestError {
  constructor(message: string, options?: ErrorOptions) {
    super(`the store refused a value of the request: ${message}`);
    if (options?.cause !== undefined) this.cause = options.cause;
    this.name = 'ValueRefusedByStoreError';
  }
}

/** The body is larger than the configured limit. */
export class PayloadTooLargeError extends RmsError {
  constructor(limitBytes: number) {
    super('PAYLOAD_TOO_LARGE', `request body exceeds the limit of ${limitBytes} bytes`, { limitBytes });
    this.name = 'PayloadTooLargeError';
  }
}

/** No token, or one that no registered app holds. */
export class UnauthorizedError extends RmsError {
  constructor(message: string) {
    super('UNAUTHORIZED', message);
    this.name = 'UnauthorizedError';
  }
}

/** The caller is known but may not do this (missing role, another app's message). */
export class ForbiddenError extends RmsError {
  constructor(message: string) {
    super('FORBIDDEN', message);
    this.name = 'ForbiddenError';
  }
}

/** No message with that id. */
export class NotFoundError extends RmsError {
  constructor(id: string) {
    super('NOT_FOUND', `no message with id ${id}`, { id });
    this.name = 'NotFoundError';
  }
}

/** The command contradicts the message's status; `status` is the current one. */
export class StateConflictError extends RmsError {
  /** The message's status at the time of the refusal. */
  readonly status: MessageStatus;

  constructor(message: string, status: MessageStatus, code: RmsErrorCode = 'STATE_CONFLICT') {
    super(code, message, { status });
    this.name = 'StateConflictError';
    this.status = status;
  }
}

/** A dependency (the store, the broker) is down: try again later. */
export class DependencyUnavailableError extends RmsError {
  /** Which dependency failed: `store`, `rabbitmq`, ... */
  readonly dependency: string;

  constructor(dependency: string, message: string, options?: ErrorOptions) {
    super('DEPENDENCY_UNAVAILABLE', message, { dependency }, options);
    this.name = 'DependencyUnavailableError';
    this.dependency = dependency;
  }
}

/**
 * RMS already has as many requests in flight as it admits now (the adaptive admission
 * limit, at most `RMS_MAX_INFLIGHT_REQUESTS`):
 * the request was refused before its body was read, so nothing of it happened. Try again
 * after the `Retry-After` of the answer.
 */
export class OverloadedError extends RmsError {
  constructor(maxInFlight: number) {
    super('OVERLOADED', `RMS is handling its maximum of ${maxInFlight} requests; nothing was done, try again later`, { maxInFlight });
    this.name = 'OverloadedError';
  }
}

/** A setting is missing or malformed: start-up stops. */
export class ConfigurationError extends RmsError {
  constructor(message: string) {
    super('CONFIGURATION_INVALID', message);
    this.name = 'ConfigurationError';
  }
}
