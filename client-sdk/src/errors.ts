/**
 * Errors of calls to RMS, one class per thing the caller must do about it. Callers use
 * `instanceof`, never message text. Every class carries RMS's error `code` and the HTTP
 * `status` (0 when no answer came back).
 */

/** The statuses a message can be in, as RMS reports them. */
export type MessageStatus = 'PENDING' | 'SENDING' | 'COMPLETED' | 'CANCELLED' | 'DEAD';

/** Any failed call to RMS. */
export class RmsError extends Error {
  /** RMS's error code (`STATE_CONFLICT`, `NOT_FOUND`, ...), or `NETWORK` / `TIMEOUT` when no answer came. */
  readonly code: string;
  /** The HTTP status, or 0 when no answer came. */
  readonly status: number;
  /** The rest of RMS's error body (`field`, `status`, ...). */
  readonly details: Record<string, unknown>;

  constructor(code: string, status: number, message: string, details: Record<string, unknown> = {}, options?: ErrorOptions) {
    super(message, options);
    this.name = 'RmsError';
    this.code = code;
    this.status = status;
    this.details = details;
  }
}

/** 400 or 413: the request is malformed or too large; retrying it unchanged cannot help. */
export class RmsValidationError extends RmsError {
  /** The offending field, when RMS named one. */
  readonly field: string | undefined;
  constructor(code: string, status: number, message: string, details: Record<string, unknown> = {}) {
    super(code, status, message, details);
    this.name = 'RmsValidationError';
    this.field = typeof details['field'] === 'string' ? details['field'] : undefined;
  }
}

/** 401: no token, or a token RMS does not know. */
export class RmsUnauthorizedError extends RmsError {
  constructor(code: string, message: string, details: Record<string, unknown> = {}) {
    super(code, 401, message, details);
    this.name = 'RmsUnauthorizedError';
  }
}

/** 403: the app lacks the role, or the message belongs to another app. */
export class RmsForbiddenError extends RmsError {
  constructor(code: string, message: string, details: Record<string, unknown> = {}) {
    super(code, 403, message, details);
    this.name = 'RmsForbiddenError';
  }
}

/** 404: no message with that id. */
export class RmsNotFoundError extends RmsError {
  constructor(code: string, message: string, details: Record<string, unknown> = {}) {
    super(code, 404, message, details);
    this.name = 'RmsNotFoundError';
  }
}

/** 409: the call contradicts the message's state (`currentStatus`), or a reused `messageId`. */
export class RmsConflictError extends RmsError {
  /** The message's status when RMS refused. */
  readonly currentStatus: MessageStatus | undefined;
  constructor(code: string, message: string, details: Record<string, unknown> = {}) {
    super(code, 409, message, details);
    this.name = 'RmsConflictError';
    this.currentStatus = details['status'] as MessageStatus | undefined;
  }
}

/** 503, a network failure or a timeout, after the retries ran out: RMS could not be reached. Try again later. */
export class RmsUnavailableError extends RmsError {
  constructor(code: string, status: number, message: string, details: Record<string, unknown> = {}, options?: ErrorOptions) {
    super(code, status, message, details, options);
    this.name = 'RmsUnavailableError';
  }
}

/** Builds the error class that fits an HTTP error answer. */
export function errorFromAnswer(status: number, body: unknown): RmsError {
  const error = (body as { error?: { code?: unknown; message?: unknown } } | null)?.error;
  const code = typeof error?.code === 'string' ? error.code : `HTTP_${status}`;
  const message = typeof error?.message === 'string' ? error.message : `RMS answered HTTP ${status}`;
  const details = { ...(error as Record<string, unknown> | undefined) };
  delete details['code'];
  delete details['message'];
  if (status === 400 || status === 413 || status === 415) return new RmsValidationError(code, status, message, details);
  if (status === 401) return new RmsUnauthorizedError(code, message, details);
  if (status === 403) return new RmsForbiddenError(code, message, details);
  if (status === 404) return new RmsNotFoundError(code, message, details);
  if (status === 409) return new RmsConflictError(code, message, details);
  if (status === 503 || status === 502 || status === 504) return new RmsUnavailableError(code, status, message, details);
  return new RmsError(code, status, message, details);
}
