/**
 * The express application: body parsing with a size limit, health routes, authentication,
 * the message API, and the one error handler that maps failures to the design's error body.
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
  logger: Logger;
  metrics: Metrics;
}

/** Room in a request body for the topic, headers and key around the payload. */
const ENVELOPE_ALLOWANCE_BYTES = 64 * 1024;

/**
 * Largest body of a batch request (`POST /v1/messages/batch`); each of its messages is
 * still held to the payload limit. The SDK keeps its batches under 1 MiB of payload.
 */
export const BATCH_BODY_LIMIT_BYTES = 4 * 1024 * 1024;

/** Builds the express application. */
export function createHttpApp(options: HttpAppOptions): express.Express {
  const { logger } = options;
  const app = express();
  app.disable('x-powered-by');
  app.set('query parser', 'simple');
  // Every body is read as JSON whatever its Content-Type: `curl -d` sends a form type by default.
  const bodyLimit = Math.max(options.maxPayloadBytes + ENVELOPE_ALLOWANCE_BYTES, BATCH_BODY_LIMIT_BYTES);
  app.use(express.json({ limit: bodyLimit, type: () => true, strict: false }));
  app.use(healthRoutes({ checks: options.readinessChecks }));
  app.get('/metrics', async (_request, response) => {
    response.type(options.metrics.registry.contentType).send(await options.metrics.registry.metrics());
  });
  app.use('/v1', authenticate(options.registry));
  app.use(messageRoutes({ service: options.service, maxPayloadBytes: options.maxPayloadBytes }));
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
