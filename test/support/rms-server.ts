/**
 * Starts a real RMS server in the test process, on an ephemeral port, against a fresh
 * PostgreSQL schema, and gives tests a small typed HTTP client for it.
 */
import {
  type AppRegistration,
  type NotificationSink,
  PostgresMessageStore,
  RmsServer,
  createLogger,
  loadConfig,
} from '@rms/message-service';
import { dropSchema, freshSchemaUrl } from './postgres.js';
import { TEST_RABBITMQ_URL } from './rabbitmq.js';

/** The apps every test server registers. */
export const TEST_APPS = {
  orders: { app: 'orders', token: 'orders-token-0123456789', roles: ['producer'], checkUrl: 'http://127.0.0.1:9/check', secret: 'orders-secret-0123456789' },
  billing: { app: 'billing', token: 'billing-token-0123456789', roles: ['producer'], checkUrl: 'http://127.0.0.1:9/check', secret: 'billing-secret-0123456789' },
  inventory: { app: 'inventory', token: 'inventory-token-0123456789', roles: ['consumer'] },
  ops: { app: 'ops', token: 'ops-token-0123456789abc', roles: ['admin'] },
  // Consumer groups: three apps read every `groups.*` topic, each in its own group.
  stock: { app: 'stock', token: 'stock-token-0123456789ab', roles: ['consumer'], subscriptions: [{ topic: 'groups.*' }] },
  points: { app: 'points', token: 'points-token-0123456789a', roles: ['consumer'], subscriptions: [{ topic: 'groups.*', group: 'points' }] },
  shipping: { app: 'shipping', token: 'shipping-token-012345678', roles: ['consumer'], subscriptions: [{ topic: 'groups.*', group: 'shipping' }] },
  // A producer that may write only `payments.*` and `groups.*` topics.
  payments: {
    app: 'payments',
    token: 'payments-token-01234567',
    roles: ['producer'],
    checkUrl: 'http://127.0.0.1:9/check',
    secret: 'payments-secret-0123456789',
    topics: ['payments.*', 'groups.*'],
  },
} satisfies Record<string, AppRegistration>;

/** An HTTP answer: status, headers and parsed JSON body. */
export interface Answer<Body = any> {
  status: number;
  headers: Headers;
  body: Body;
}

/** A running test server and its handles. */
export interface TestServer {
  server: RmsServer;
  baseUrl: string;
  /** The schema's store URL, for a second store handle on the same data. */
  storeUrl: string;
  /** The PostgreSQL schema holding this server's messages. */
  schema: string;
  /** Sends a request as `app` (or with no token when `app` is null). */
  call(app: keyof typeof TEST_APPS | null, method: string, path: string, body?: unknown, init?: RequestInit): Promise<Answer>;
  stop(): Promise<void>;
}

/** Options of `startTestServer`. */
export interface TestServerOptions {
  /** Share another server's schema (several instances on one store); it is then not dropped on stop. */
  shareSchemaOf?: TestServer;
  /** The producers' check URL. @defaultValue a port nothing listens on */
  checkUrl?: string;
  /** Sinks for grouped alerts. */
  notificationSinks?: NotificationSink[];
  /** Overrides of the environment the configuration is read from. */
  env?: Record<string, string>;
  /** Connect the store through this URL (a fault proxy) instead of straight to PostgreSQL. */
  storeUrlThrough?: (url: string) => string;
  /** Store options, e.g. short timeouts for fault tests. */
  storeTimeouts?: { connectTimeoutMs?: number; statementTimeoutMs?: number };
}

/** Starts RMS on port 0 with a fresh schema. */
export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
  const shared = options.shareSchemaOf;
  const { url, schema } = shared ? { url: shared.storeUrl, schema: shared.schema } : freshSchemaUrl();
  const apps = Object.values(TEST_APPS).map((app) => ('checkUrl' in app && options.checkUrl ? { ...app, checkUrl: options.checkUrl } : app));
  const config = loadConfig({
    PORT: '0',
    STORE_URL: url,
    RMS_APPS: JSON.stringify(apps),
    LOG_LEVEL: process.env['TEST_LOG_LEVEL'] ?? 'silent',
    RMS_SHUTDOWN_GRACE_MS: '1000',
    RABBITMQ_URL: TEST_RABBITMQ_URL,
    // A degrade flag of its own: one test's failover never moves another's traffic.
    RMS_ZK_ROOT: `/rms-test/${schema}`,
    ...options.env,
  });
  const storeUrl = options.storeUrlThrough ? options.storeUrlThrough(url) : url;
  const store = new PostgresMessageStore({ url: storeUrl, ...options.storeTimeouts });
  const server = await RmsServer.start({
    config,
    store,
    logger: createLogger(config.logLevel),
    storeStartupTimeoutMs: 5000,
    ...(options.notificationSinks && { notificationSinks: options.notificationSinks }),
  });
  const baseUrl = `http://127.0.0.1:${server.port}`;
  return {
    server,
    baseUrl,
    storeUrl: url,
    schema,
    async call(app, method, path, body, init = {}) {
      const headers = new Headers(init.headers);
      if (app) headers.set('authorization', `Bearer ${TEST_APPS[app].token}`);
      if (body !== undefined && !headers.has('content-type')) headers.set('content-type', 'application/json');
      const response = await fetch(`${baseUrl}${path}`, {
        ...init,
        method,
        headers,
        body: body === undefined ? null : typeof body === 'string' ? body : JSON.stringify(body),
        signal: AbortSignal.timeout(15_000),
      });
      const text = await response.text();
      return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : null };
    },
    async stop() {
      await server.stop();
      if (!shared) await dropSchema(schema);
    },
  };
}
