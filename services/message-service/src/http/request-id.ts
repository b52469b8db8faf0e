/**
 * The request id: taken from the caller's `X-Request-Id` when it is safe to log and echo
 * (1 to 128 of `[A-Za-z0-9._:-]`), generated (a UUID) otherwise, so a hostile value never
 * reaches a log line or a response header, and never fails the request. It is echoed in
 * the answer's `X-Request-Id` and carried by the request's logger, so every log line of a
 * request names it.
 */
import { randomUUID } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import type { Logger } from 'pino';

/** The request and response header. */
export const REQUEST_ID_HEADER = 'X-Request-Id';

/** What a caller's request id may look like to be kept. */
export const REQUEST_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;

/** The caller's request id if it is acceptable, else a new one. */
export function requestIdFrom(header: string | string[] | undefined): string {
  return typeof header === 'string' && REQUEST_ID_PATTERN.test(header) ? header : randomUUID();
}

/**
 * Middleware: assigns the request id, echoes it, gives the request its own logger, and
 * logs the answer at debug level. Mount first.
 */
export function assignRequestId(logger: Logger) {
  return (request: Request, response: Response, next: NextFunction): void => {
    const requestId = requestIdFrom(request.headers['x-request-id']);
    const log = logger.child({ requestId });
    const startedAt = performance.now();
    response.setHeader(REQUEST_ID_HEADER, requestId);
    response.locals['requestId'] = requestId;
    response.locals['logger'] = log;
    response.once('finish', () => {
      log.debug({ method: request.method, path: request.path, status: response.statusCode, durationMs: Math.round(performance.now() - startedAt) }, 'request answered');
    });
    next();
  };
}

/** The logger of a request, carrying its request id (the app's logger before `assignRequestId` ran). */
export function requestLogger(response: Response, fallback: Logger): Logger {
  return (response.locals['logger'] as Logger | undefined) ?? fallback;
}
