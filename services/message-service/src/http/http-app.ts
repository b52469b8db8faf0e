/**
 * The express application: the request id, admission control and authentication of the
 * API, the message API (each route reads its body only after the caller is authenticated
 * and authorised, with the limit of that route), health, metrics, the OpenAPI document,
 * the dashboard, the operator's routes, and the one error handler that maps failures to
 * the design's error body.
 *
 * Ordered for the per-message path: a prepare, confirm, cancel, ack, heartbeat or nack
 * passes one middleware for its id and metrics (one `finish` listener), admission control,
 * authentication, and is matched among the message routes (its own first) before express
 * looks at anything else; no ETag is computed for an API answer (they are not cached, and
 * hashing every body cost CPU and a second socket write per answer).
 */
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import type { DegradeSwitch } from '@rms/client-sdk';
import type { MessageService } from '../application/message-service.js';
import type { MessageStats } from '../application/message-stats.js';
import type { AppRegistry } from '../config/app-registry.js';
import { DEFAULT_ADMISSION_TARGET_MS, DEFAULT_MAX_INFLIGHT_REQUESTS } from '../config/config.js';
import { RmsError } from '../domain/errors.js';
import type { Metrics } from '../observability/metrics.js';
import { AdmissionControl } from './admission-control.js';
import { authenticate } from './authentication.js';
import { toHttpError } from './error-mapping.js';
import { buildOpenApiDocument } from './openapi.js';
import { assignRequestId, requestLogger } from './request-id.js';
import { healthRoutes, type ReadinessCheck } from './routes/health-routes.js';
import { dashboardRoutes } from './routes/dashboard-routes.js';
import { messageRoutes } from './routes/message-routes.js';
import { operationsRoutes } from './routes/operations-routes.js';

/** Dependencies of the HTTP application. */
export interface HttpAppOptions {
  service: MessageService;
  registry: AppRegistry;
  readinessChecks: ReadinessCheck[];
  /** Largest payload, in bytes of its JSON; the body limit adds room for the envelope. */
  maxPayloadBytes: number;
  /** Deepest nesting of arrays and objects in a payload. */
  maxPayloadDepth: number;
  /** Largest `extendMs` of a heartbeat. */
  maxHeartbeatExtendMs: number;
  logger: Logger;
  metrics: Metrics;
  /** The counts behind `/v1/stats` and the dashboard. */
  stats: MessageStats;
  /** The degrade switch the dashboard shows and forces; absent when RMS runs with a transport of its own. */
  degradeSwitch?: DegradeSwitch | undefined;
  /** The failover transport's state for `/v1/stats`; absent without one. */
  failoverStatus?: (() => Record<string, unknown>) | undefined;
  /** Most API requests handled at once (`RMS_MAX_INFLIGHT_REQUESTS`), the adaptive limit's ceiling. @defaultValue 512 */
  maxInFlightRequests?: number;
  /** The latency the adaptive admission limit holds admitted API requests to, ms; 0: the fixed bound alone (`RMS_ADMISSION_TARGET_MS`). @defaultValue 1000 */
  admissionTargetMs?: number;
}


/** A route of an express application: its method (lower case) and path pattern. */
export interface RouteEntry {
  method: string;
  path: string;
}

/** Every route `app` answers, read from its router (mounted routers included). */
export function routesOf(app: express.Express): RouteEntry[] {
  interface Layer {
    route?: { path: string; methods: Record<string, boolean> };
    handle?: { stack?: Layer[] };
  }
  const walk = (stack: Layer[]): RouteEntry[] =>
    stack.flatMap((layer) => {
      if (layer.route) return Object.keys(layer.route.methods).filter((method) => method !== '_all').map((method) => ({ method, path: layer.route?.path ?? '' }));
      return layer.handle?.stack ? walk(layer.handle.stack) : [];
    });
  return walk((app as unknown as { router: { stack: Layer[] } }).router.stack);
}

/** Builds the express application. */
export function createHttpApp(options: HttpAppOptions): express.Express {
  const { logger } = options;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');
  const admission = new AdmissionControl({
    maxInFlight: options.maxInFlightRequests ?? DEFAULT_MAX_INFLIGHT_REQUESTS,
    targetMs: options.admissionTargetMs ?? DEFAULT_ADMISSION_TARGET_MS,
    onRefused: () => options.metrics.http.refused.inc(),
  });
  options.metrics.http.watchInFlight(() => admission.inFlight);
  options.metrics.http.watchAdmissionLimit(() => admission.limit);
  app.use(assignRequestId(logger, options.metrics.http));
  // Only the API is bounded and authenticated; `/v1` is all a path needs to be told apart.
  app.use('/v1', admission.middleware());
  app.use('/v1', authenticate(options.registry));
  app.use(
    messageRoutes({
      service: options.service,
      maxPayloadBytes: options.maxPayloadBytes,
      maxPayloadDepth: options.maxPayloadDepth,
      maxHeartbeatExtendMs: options.maxHeartbeatExtendMs,
    }),
  );
  app.use(healthRoutes({ checks: options.readinessChecks }));
  const openApiDocument = buildOpenApiDocument({ maxHeartbeatExtendMs: options.maxHeartbeatExtendMs });
  app.get('/openapi.json', (_request, response) => {
    response.json(openApiDocument);
  });
  app.get('/metrics', async (_request, response) => {
    response.type(options.metrics.registry.contentType).send(await options.metrics.registry.metrics());
  });
  app.use(dashboardRoutes());
  app.use(operationsRoutes({ stats: options.stats, degradeSwitch: options.degradeSwitch, failoverStatus: options.failoverStatus }));
  app.use((request: Request) => {
    throw new RmsError('NOT_FOUND', `no route ${request.method} ${request.path}`);
  });
  app.use((error: unknown, request: Request, response: Response, next: NextFunction) => {
    if (response.headersSent) {
      next(error);
      return;
    }
    const answer = toHttpError(error);
    const log = requestLogger(response, logger);
    if (answer.unexpected) {
      log.error({ err: error, method: request.method, path: request.path }, 'request failed unexpectedly');
    } else if (answer.status === 503) {
      log.warn({ err: error, method: request.method, path: request.path }, 'dependency unavailable');
    }
    response.status(answer.status).set(answer.headers).json(answer.body);
  });
  return app;
}
