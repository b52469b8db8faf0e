/**
 * The request id: taken from the caller's `X-Request-Id` when it is safe to log and echo
 * (1 to 128 of `[A-Za-z0-9._:-]`), generated (a UUID) otherwise, so a hostile value never
 * reaches a log line or a response header, and never fails the request. It is echoed in
 * the answer's `X-Request-Id` and carried by the request's logger, so every log line of a
 * request names it.
 *
 * This is the one middleware every request passes before routing, so it is kept cheap:
 * the request's child logger is made only when something logs, and the answer is timed
 * (HTTP duration metric) and logged (at debug level) from a single `finish` listener.
 */
import { randomUUID } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import type { Logger } from 'pino';
import type { HttpMetrics } from '../observability/http-metrics.js';

/** The request and response header. */
export const REQUEST_ID_HEADER = 'X-Request-Id';

/** What a caller's request id may look like to be kept. */
export const REQUEST_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;

/** The caller's request id if it is acceptable, else a new one. */
export function requestIdFrom(header: string | string[] | undefined): string {
  return typeof header === 'string' && REQUEST_ID_PATTERN.test(header) ? header : randomUUID();
}

/**
 * Middleware: assigns the request id and echoes it, and, once the answer is sent, observes
 * its duration in `metrics` and logs it at debug level (whether `logger` logs at debug is
 * read once, here: RMS sets its level at start-up only). Mount first.
 */
export function assignRequestId(logger: Logger, metrics: HttpMetrics) {
  const logAnswers = logger.isLevelEnabled('debug');
  return (request: Request, response: Response, next: NextFunction): void => {
    const startedAt = performance.now();
    const requestId = requestIdFrom(request.headers['x-request-id']);
    response.setHeader(REQUEST_ID_HEADER, requestId);
    response.locals['requestId'] = requestId;
    response.once('finish', () => {
      const durationMs = performance.now() - startedAt;
      metrics.observe(request, response, durationMs / 1000);
      if (logAnswers) {
        requestLogger(response, logger).debug({ method: request.method, path: request.path, status: response.statusCode, durationMs: Math.round(durationMs) }, 'request answered');
      }
    });
    next();
  };
}

/**
 * The logger of a request, carrying its request id (made on first use); `fallback` itself
 * before `assignRequestId` ran.
 */
export function requestLogger(response: Response, fallback: Logger): Logger {
  const locals = response.locals;
  let log = locals['logger'] as Logger | undefined;
  if (!log) {
    const requestId = locals['requestId'] as string | undefined;
    if (requestId === undefined) return fallback;
    log = fallback.child({ requestId });
    locals['logger'] = log;
  }
  return log;
}
