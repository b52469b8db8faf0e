/**
 * The express application: health routes, authentication, the message API (each route
 * reads its body only after the caller is authenticated and authorised, with the limit
 * of that route), and the one error handler that maps failures to the design's error body.
 */
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import type { MessageService } from '../application/message-service.js';
import type { AppRegistry } from '../config/app-registry.js';
import { RmsError } from '../domain/errors.js';
import type { Metrics } from '../observability/metrics.js';
import { authenticate } from './authentication.js';
import { toHttpError } from './error-mapping.js';
import { healthRoutes, type ReadinessCheck } from './routes/health-routes.js';
import { messageRoutes } from './routes/message-routes.js';

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
}

/** Builds the express application. */
export function createHttpApp(options: HttpAppOptions): express.Express {
  const { logger } = options;
  const app = express();
  app.disable('x-powered-by');
  app.set('query parser', 'simple');
  app.use(healthRoutes({ checks: options.readinessChecks }));
  app.get('/metrics', async (_request, response) => {
    response.type(options.metrics.registry.contentType).send(await options.metrics.registry.metrics());
  });
  app.use('/v1', authenticate(options.registry));
  app.use(
    messageRoutes({
      service: options.service,
      maxPayloadBytes: options.maxPayloadBytes,
      maxPayloadDepth: options.maxPayloadDepth,
      maxHeartbeatExtendMs: options.maxHeartbeatExtendMs,
    }),
  );
  app.use((request: Request) => {
    throw new RmsError('NOT_FOUND', `no route ${request.method} ${request.path}`);
  });
  app.use((error: unknown, request: Request, response: Response, next: NextFunction) => {
    if (response.headersSent) {
      next(error);
      return;
    }
    const answer = toHttpError(error);
    if (answer.unexpected) {
      logger.error({ err: error, method: request.method, path: request.path }, 'request failed unexpectedly');
    } else if (answer.status === 503) {
      logger.warn({ err: error, method: request.method, path: request.path }, 'dependency unavailable');
    }
    response.status(answer.status).set(answer.headers).json(answer.body);
  });
  return app;
}
