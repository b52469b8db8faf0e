/**
 * The composition root: builds the store, the message service and the HTTP app from the
 * configuration, starts listening, and shuts everything down gracefully.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { MessageService } from './application/message-service.js';
import { AppRegistry } from './config/app-registry.js';
import type { RmsConfig } from './config/config.js';
import { DependencyUnavailableError } from './domain/errors.js';
import { createHttpApp } from './http/http-app.js';
import { createLogger, type Logger } from './logging/logger.js';
import { createMessageStore } from './store/create-message-store.js';
import type { MessageStore } from './store/message-store.js';

/** How an `RmsServer` is started. */
export interface RmsServerOptions {
  config: RmsConfig;
  /** @defaultValue a pino logger at `config.logLevel` */
  logger?: Logger;
  /** @defaultValue the adapter `config.storeUrl` selects */
  store?: MessageStore;
  /**
   * How long start-up keeps retrying a store that is not reachable yet (containers start
   * in any order) before giving up.
   * @defaultValue 60000
   */
  storeStartupTimeoutMs?: number;
}

/** Initialises the store, retrying while it is unavailable, until `timeoutMs`. */
async function initStore(store: MessageStore, logger: Logger, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 1; ; attempt++) {
    try {
      await store.init();
      return;
    } catch (error) {
      if (!(error instanceof DependencyUnavailableError) || Date.now() >= deadline) throw error;
      const delayMs = Math.min(5000, 250 * 2 ** Math.min(attempt, 5));
      logger.warn({ err: error, attempt, delayMs }, `${store.kind} store not reachable yet; retrying`);
      await sleep(delayMs);
    }
  }
}

/** A running RMS server. */
export class RmsServer {
  /** The port it listens on (useful when configured with port 0). */
  readonly port: number;
  private stopping: Promise<void> | undefined;

  private constructor(
    private readonly http: Server,
    private readonly store: MessageStore,
    private readonly logger: Logger,
    private readonly shutdownGraceMs: number,
  ) {
    this.port = (http.address() as AddressInfo).port;
  }

  /** Initialises the store (creating or migrating its schema) and starts listening. */
  static async start(options: RmsServerOptions): Promise<RmsServer> {
    const { config } = options;
    const logger = options.logger ?? createLogger(config.logLevel);
    const store = options.store ?? createMessageStore(config.storeUrl);
    await initStore(store, logger, options.storeStartupTimeoutMs ?? 60_000);
    const service = new MessageService({ store, checkDelayMs: config.checkBack.delayMs });
    const app = createHttpApp({
      service,
      registry: new AppRegistry(config.apps),
      maxPayloadBytes: config.maxPayloadBytes,
      logger,
      readinessChecks: [
        {
          name: 'store',
          check: async () => {
            await store.ping();
            return { kind: store.kind };
          },
        },
      ],
    });
    const http = await new Promise<Server>((resolve, reject) => {
      const server = app.listen(config.port, (error?: Error) => (error ? reject(error) : resolve(server)));
    });
    // A client that stops sending mid-request must not hold a socket forever.
    http.requestTimeout = 30_000;
    http.headersTimeout = 10_000;
    http.keepAliveTimeout = 5_000;
    const server = new RmsServer(http, store, logger, config.shutdownGraceMs);
    logger.info({ port: server.port, store: store.kind, apps: config.apps.map((app) => app.app) }, 'RMS listening');
    return server;
  }

  /**
   * Stops accepting connections, lets in-flight requests finish (up to the grace period,
   * then closes what is left), and closes the store. Idempotent.
   */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.logger.info({ graceMs: this.shutdownGraceMs }, 'RMS shutting down');
      const closed = new Promise<void>((resolve) => this.http.close(() => resolve()));
      this.http.closeIdleConnections();
      const grace = setTimeout(() => this.http.closeAllConnections(), this.shutdownGraceMs);
      await closed;
      clearTimeout(grace);
      await this.store.close();
      this.logger.info('RMS stopped');
    })();
    return this.stopping;
  }
}
