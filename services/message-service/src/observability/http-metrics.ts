/**
 * HTTP request durations by method, route pattern and status. The route is express's
 * pattern (`/v1/messages/:id`), never the raw path, so ids do not explode the label set;
 * a request no route matched is labelled `unmatched`.
 */
import type { NextFunction, Request, Response } from 'express';
import { Histogram, type Registry } from 'prom-client';

/** The label of requests that matched no route (404s, refused before routing). */
export const UNMATCHED_ROUTE = 'unmatched';

/** The HTTP request duration histogram, registered in `registry`. */
export class HttpMetrics {
  /** Seconds from the first byte of the request to the end of the answer. */
  readonly requestDuration: Histogram<'method' | 'route' | 'status'>;

  constructor(registry: Registry) {
    this.requestDuration = new Histogram({
      name: 'rms_http_request_duration_seconds',
      help: 'HTTP request duration by method, route pattern and status',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    });
  }

  /** Express middleware that times every request; mount it first. */
  middleware() {
    return (request: Request, response: Response, next: NextFunction): void => {
      const startedAt = process.hrtime.bigint();
      response.once('finish', () => {
        const seconds = Number(process.hrtime.bigint() - startedAt) / 1e9;
        this.requestDuration.observe({ method: knownMethod(request.method), route: routePattern(request), status: String(response.statusCode) }, seconds);
      });
      next();
    };
  }
}

/** The pattern of the route that answered: mount path plus the route's path. */
function routePattern(request: Request): string {
  const path = (request.route as { path?: unknown } | undefined)?.path;
  return typeof path === 'string' ? `${request.baseUrl}${path}` : UNMATCHED_ROUTE;
}

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/** A hostile client can send any method name; only the standard ones become label values. */
function knownMethod(method: string): string {
  return METHODS.has(method) ? method : 'OTHER';
}
