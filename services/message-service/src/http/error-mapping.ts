/**
 * The one place where errors become HTTP answers: `RmsError` codes map to statuses, body
 * parser failures to 400/413/415, any other error that carries a 4xx `status` (express's
 * router refusing a malformed percent-escape, zlib refusing a corrupt gzip body) to that
 * status, and anything unexpected to a bare 500 with no stack trace (the stack goes to
 * the log instead).
 */
import { RmsError, type RmsErrorCode } from '../domain/errors.js';

/** Seconds a client should wait after a 503 before retrying. */
export const RETRY_AFTER_SECONDS = 5;

/**
 * Seconds a client should wait after a 503 `OVERLOADED`: RMS refused the request at once,
 * with nothing of it done, and requests in flight finish in well under a second.
 */
export const OVERLOADED_RETRY_AFTER_SECONDS = 1;

const STATUS_BY_CODE: Record<RmsErrorCode, number> = {
  INVALID_REQUEST: 400,
  INVALID_JSON: 400,
  PAYLOAD_TOO_LARGE: 413,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  STATE_CONFLICT: 409,
  MESSAGE_ID_REUSED: 409,
  DEPENDENCY_UNAVAILABLE: 503,
  OVERLOADED: 503,
  CONFIGURATION_INVALID: 500,
};

/** An error as the client will see it. */
export interface HttpErrorAnswer {
  status: number;
  headers: Record<string, string>;
  body: { error: { code: string; message: string; [detail: string]: unknown } };
  /** `true` when the error is a server fault worth logging with its stack. */
  unexpected: boolean;
}

/** What body-parser attaches to its errors. */
interface BodyParserError {
  type: string;
  status?: number;
  limit?: number;
}

function isBodyParserError(error: unknown): error is BodyParserError {
  return typeof error === 'object' && error !== null && typeof (error as { type?: unknown }).type === 'string';
}

/** An error of the http-errors family (express, body-parser, raw-body) that blames the request: a 4xx `status`. */
function clientErrorStatus(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const { status, statusCode } = error as { status?: unknown; statusCode?: unknown };
  const code = typeof status === 'number' ? status : statusCode;
  return typeof code === 'number' && Number.isInteger(code) && code >= 400 && code < 500 ? code : undefined;
}

/** The message of a client error, when it is meant to be shown (http-errors' `expose`), else a generic one. */
function clientErrorMessage(error: unknown, status: number): string {
  const { expose, message } = error as { expose?: unknown; message?: unknown };
  if (expose !== false && typeof message === 'string' && message) return message;
  return `the request was refused (HTTP ${status})`;
}

/** Maps any thrown value to the answer the client gets. */
export function toHttpError(error: unknown): HttpErrorAnswer {
  if (error instanceof RmsError) {
    const status = STATUS_BY_CODE[error.code];
    const headers: Record<string, string> =
      status === 503 ? { 'Retry-After': String(error.code === 'OVERLOADED' ? OVERLOADED_RETRY_AFTER_SECONDS : RETRY_AFTER_SECONDS) } : status === 401 ? { 'WWW-Authenticate': 'Bearer' } : {};
    return {
      status,
      headers,
      body: { error: { ...error.details, code: error.code, message: error.message } },
      unexpected: status >= 500 && status !== 503,
    };
  }
  if (isBodyParserError(error)) {
    if (error.type === 'entity.too.large') {
      return answer(413, 'PAYLOAD_TOO_LARGE', `request body exceeds the limit of ${error.limit ?? '?'} bytes`, { limitBytes: error.limit });
    }
    if (error.type === 'entity.parse.failed') {
      return answer(400, 'INVALID_JSON', `request body is not valid JSON: ${(error as unknown as Error).message}`);
    }
    if (error.type === 'encoding.unsupported' || error.type === 'charset.unsupported') {
      return answer(415, 'INVALID_REQUEST', (error as unknown as Error).message);
    }
  }
  const status = clientErrorStatus(error);
  if (status !== undefined) {
    return answer(status, status === 413 ? 'PAYLOAD_TOO_LARGE' : 'INVALID_REQUEST', clientErrorMessage(error, status));
  }
  return { ...answer(500, 'INTERNAL', 'internal error; it has been logged'), unexpected: true };
}

function answer(status: number, code: string, message: string, details: Record<string, unknown> = {}): HttpErrorAnswer {
  return { status, headers: {}, body: { error: { ...details, code, message } }, unexpected: false };
}
