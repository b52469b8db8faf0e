/**
 * HTTP request durations by method, route pattern and status. The route is express's
 * pattern (`/v1/messages/:id`), never the raw path, so ids do not explode the label set;
 * a request no route matched is labelled `unmatched`. And admission control's figures:
 * the API requests in flight, its current (adaptive) limit on them, and those refused
 * because the limit was reached.
 */
import type { Request, Response } from 'express';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** The label of requests that matched no route (404s, refused before routing). */
export const UNMATCHED_ROUTE = 'unmatched';

/** The HTTP request duration histogram, registered in `registry`. */
export class HttpMetrics {
  /** Seconds from the first byte of the request to the end of the answer. */
  readonly requestDuration: Histogram<'method' | 'route' | 'status'>;
  /** API requests answered 503 `OVERLOADED` at once because the admission limit's worth were in flight. */
  readonly refused: Counter;
  #inFlight: () => number = () => 0;
  #admissionLimit: () => number = () => 0;

  constructor(registry: Registry) {
    this.refused = new Counter({
      name: 'rms_http_requests_refused_total',
      help: 'API requests refused with 503 OVERLOADED, unread, because the admission limit (rms_http_admission_limit) was reached',
      registers: [registry],
    });
    const inFlight = () => this.#inFlight();
    new Gauge({
      name: 'rms_http_requests_in_flight',
      help: 'API requests (/v1) being handled now, the figure admission control bounds',
      registers: [registry],
      collect() {
        this.set(inFlight());
      },
    });
    const admissionLimit = () => this.#admissionLimit();
    new Gauge({
      name: 'rms_http_admission_limit',
      help: 'API requests admitted at once now: the adaptive limit (RMS_ADMISSION_TARGET_MS), at most RMS_MAX_INFLIGHT_REQUESTS',
      registers: [registry],
      collect() {
        this.set(admissionLimit());
      },
    });
    this.requestDuration = new Histogram({
      name: 'rms_http_request_duration_seconds',
      help: 'HTTP request duration by method, route pattern and status',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    });
  }

  /** Reads the in-flight gauge from `read` (admission control's count) at each scrape. */
  watchInFlight(read: () => number): void {
    this.#inFlight = read;
  }

  /** Reads the admission-limit gauge from `read` (admission control's current limit) at each scrape. */
  watchAdmissionLimit(read: () => number): void {
    this.#admissionLimit = read;
  }

  /** Observes one answered request, `seconds` after it arrived (called once per request, on `finish`). */
  observe(request: Request, response: Response, seconds: number): void {
    this.requestDuration.observe({ method: knownMethod(request.method), route: routePattern(request), status: String(response.statusCode) }, seconds);
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
