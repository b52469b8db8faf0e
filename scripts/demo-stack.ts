/**
 * The whole orders → inventory system in one process, for `npm run demo` and the
 * end-to-end tests: RMS (on PostgreSQL, RabbitMQ), the order service and the inventory
 * service, each a real HTTP server on its own port, each with its own database schema.
 */
import { groupQueueName } from '@rms/client-sdk';
import { RmsServer, createLogger, loadConfig } from '@rms/message-service';
import { InventoryService } from '@rms/inventory-service';
import { LoyaltyService } from '@rms/loyalty-service';
import { OrderService, type Simulation } from '@rms/order-service';
import { clusterPort } from './loopback-ports.js';

/** Where the stack's services keep their data, and how RMS reaches its dependencies. */
export interface DemoStackOptions {
  /** PostgreSQL for RMS and both examples. @defaultValue postgres://postgres@127.0.0.1:5432/test */
  databaseUrl?: string;
  /** RabbitMQ. @defaultValue amqp://guest:guest@127.0.0.1:5672 */
  amqpUrl?: string;
  /** Redis, or a Redis Cluster's seed nodes comma-separated (RMS and both consumers). @defaultValue `REDIS_URL`, else redis://127.0.0.1:6379 */
  redisUrl?: string;
  /** ZooKeeper, or an ensemble's servers comma-separated. @defaultValue `ZK_CONNECT`, else 127.0.0.1:2181 */
  zkConnect?: string;
  /** Suffix of the four schemas (`rms_<s>`, `orders_<s>`, `inventory_<s>`, `loyalty_<s>`). */
  schemaSuffix: string;
  /** RMS environment overrides (schedules in ms). */
  rmsEnv?: Record<string, string>;
  /** Inventory handler knobs (see `InventoryServiceOptions`). */
  inventory?: { slowRate?: number; slowMs?: number; heartbeatIntervalMs?: number; concurrency?: number };
  /** Stock to start with, per SKU. */
  initialStock: Record<string, number>;
  logLevel?: string;
}

const TOKENS = {
  orders: 'demo-orders-token-0000000',
  inventory: 'demo-inventory-token-000',
  loyalty: 'demo-loyalty-token-00000',
  ops: 'demo-ops-admin-token-0000',
  secret: 'demo-orders-check-secret-000',
};

/** A running stack. */
export interface DemoStack {
  rms: RmsServer;
  orders: OrderService;
  inventory: InventoryService;
  /** The second consumer group on the same topic: loyalty points per paid order. */
  loyalty: LoyaltyService;
  rmsUrl: string;
  ordersUrl: string;
  /** The run's topic. */
  topic: string;
  /** Places one order through the order service's HTTP API; resolves with its HTTP status. */
  placeOrder(sku: string, qty: number, simulate: Simulation): Promise<number>;
  /** Counts RMS's messages by status through the admin API. */
  messagesByStatus(): Promise<Record<string, number>>;
  /** Counts RMS's messages by the transport of their last delivery (read from the history when the message does not record it; `none` when never delivered). */
  messagesByTransport(): Promise<Record<string, number>>;
  /** The ZooKeeper root of the run's degrade flag. */
  zkRoot: string;
  /** The ZooKeeper (or ensemble) the stack uses. */
  zkConnect: string;
  /** Sums one of RMS's Prometheus counters over the label sets that contain `labels` (all when omitted). */
  rmsCounter(name: string, labels?: string): Promise<number>;
  /** Stops everything and drops the schemas. */
  stop(options?: { keepData?: boolean }): Promise<void>;
}

/**
 * A free TCP port on 127.0.0.1 for a server to take a little later (RMS binds only once
 * its dependencies answer). Drawn below the kernel's ephemeral range: a port `listen(0)`
 * handed out and released could meanwhile become some outgoing connection's local port,
 * and the server's bind then fails (see `scripts/loopback-ports.ts`).
 */
export function freePort(): Promise<number> {
  return clusterPort();
}

/** Starts RMS and both examples. */
export async function startDemoStack(options: DemoStackOptions): Promise<DemoStack> {
  const databaseUrl = options.databaseUrl ?? 'postgres://postgres@127.0.0.1:5432/test';
  const amqpUrl = options.amqpUrl ?? 'amqp://guest:guest@127.0.0.1:5672';
  const [rmsPort, ordersPort] = [await freePort(), await freePort()];
  const rmsUrl = `http://127.0.0.1:${rmsPort}`;
  const ordersUrl = `http://127.0.0.1:${ordersPort}`;
  const zkRoot = `/rms-demo/${options.schemaSuffix}`;
  const redisUrl = options.redisUrl ?? process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
  const zkConnect = options.zkConnect ?? process.env['ZK_CONNECT'] ?? '127.0.0.1:2181';
  // A topic of the run's own, so nothing left in RabbitMQ by an earlier run is mixed in.
  const topic = `stock.reduce.${options.schemaSuffix}`;
  const storeUrl = new URL(databaseUrl);
  storeUrl.searchParams.set('schema', `rms_${options.schemaSuffix}`);
  const config = loadConfig({
    PORT: String(rmsPort),
    STORE_URL: storeUrl.toString(),
    RABBITMQ_URL: amqpUrl,
    REDIS_URL: redisUrl,
    ZK_CONNECT: zkConnect,
    LOG_LEVEL: options.logLevel ?? 'warn',
    RMS_SHUTDOWN_GRACE_MS: '2000',
    // The run's own degrade flag, watched by RMS and by the inventory service's fallback.
    RMS_ZK_ROOT: zkRoot,
    RMS_APPS: JSON.stringify([
      { app: 'orders', token: TOKENS.orders, roles: ['producer'], checkUrl: `${ordersUrl}/rms/check`, secret: TOKENS.secret, topics: ['stock.reduce.*'] },
      // Two consumer groups on the one topic: every paid order reduces stock and awards points.
      { app: 'inventory', token: TOKENS.inventory, roles: ['consumer'], subscriptions: [{ topic, group: 'inventory' }] },
      { app: 'loyalty', token: TOKENS.loyalty, roles: ['consumer'], subscriptions: [{ topic, group: 'loyalty' }] },
      { app: 'ops', token: TOKENS.ops, roles: ['admin'] },
    ]),
    ...options.rmsEnv,
  });
  const rms = await RmsServer.start({ config, logger: createLogger(config.logLevel) });
  const orders = await OrderService.start({
    port: ordersPort,
    databaseUrl,
    schema: `orders_${options.schemaSuffix}`,
    rmsUrl,
    rmsToken: TOKENS.orders,
    checkSecret: TOKENS.secret,
    topic,
  });
  // Both consumer groups pop the Redis lists while the run's degrade flag is on.
  const fallback = { zkConnect, zkRoot, redisUrl };
  const inventory = await InventoryService.start({
    port: 0,
    databaseUrl,
    schema: `inventory_${options.schemaSuffix}`,
    rmsUrl,
    rmsToken: TOKENS.inventory,
    amqpUrl,
    topic,
    fallback,
    ...options.inventory,
  });
  const loyalty = await LoyaltyService.start({
    databaseUrl,
    schema: `loyalty_${options.schemaSuffix}`,
    rmsUrl,
    rmsToken: TOKENS.loyalty,
    amqpUrl,
    topic,
    fallback,
  });
  for (const [sku, qty] of Object.entries(options.initialStock)) await inventory.store.setStock(sku, qty);

  const admin = async (path: string) => {
    const response = await fetch(`${rmsUrl}${path}`, { headers: { authorization: `Bearer ${TOKENS.ops}` }, signal: AbortSignal.timeout(10_000) });
    return (await response.json()) as unknown;
  };
  type ListedMessage = { id: string; status: string; lastTransport: string | null };
  const countBy = async (key: (message: ListedMessage) => string | Promise<string>, initial: Record<string, number>) => {
    const counts = { ...initial };
    let cursor: string | null = null;
    do {
      const page = (await admin(`/v1/messages?limit=500${cursor ? `&cursor=${cursor}` : ''}`)) as { messages: ListedMessage[]; nextCursor: string | null };
      for (const message of page.messages) {
        const bucket = await key(message);
        counts[bucket] = (counts[bucket] ?? 0) + 1;
      }
      cursor = page.nextCursor;
    } while (cursor);
    return counts;
  };
  // The message's last transport, or, when an ack got there before RMS recorded the round,
  // the transport its history's last delivery event names.
  const transportOf = async (message: ListedMessage): Promise<string> => {
    if (message.lastTransport) return message.lastTransport;
    const history = (await admin(`/v1/messages/${message.id}/history`)) as { events?: { type: string; transport: string | null }[] };
    const delivered = (history.events ?? []).filter((event) => event.type === 'delivery' && event.transport);
    return delivered.at(-1)?.transport ?? 'none';
  };

  return {
    rms,
    orders,
    inventory,
    loyalty,
    rmsUrl,
    ordersUrl,
    topic,
    async placeOrder(sku, qty, simulate) {
      const response = await fetch(`${ordersUrl}/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ sku, qty, simulate }),
        signal: AbortSignal.timeout(30_000),
      });
      await response.body?.cancel();
      return response.status;
    },
    zkRoot,
    zkConnect,
    messagesByStatus: () => countBy((m) => m.status, { PENDING: 0, SENDING: 0, COMPLETED: 0, CANCELLED: 0, DEAD: 0 }),
    messagesByTransport: () => countBy(transportOf, {}),
    async rmsCounter(name, labels = '') {
      const text = await (await fetch(`${rmsUrl}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
      let total = 0;
      for (const line of text.split('\n')) {
        const match = new RegExp(`^${name}(\\{[^}]*\\})? ([0-9.e+]+)$`).exec(line);
        if (match && (match[1] ?? '').includes(labels)) total += Number(match[2]);
      }
      return total;
    },
    async stop({ keepData = false } = {}) {
      await inventory.stop();
      await loyalty.stop();
      await orders.stop();
      await rms.stop();
      const { default: amqp } = await import('amqplib');
      const connection = await amqp.connect(amqpUrl);
      const channel = await connection.createChannel();
      for (const group of ['inventory', 'loyalty']) await channel.deleteQueue(groupQueueName(topic, group));
      await connection.close();
      if (!keepData) {
        const { default: pg } = await import('pg');
        const client = new pg.Client({ connectionString: databaseUrl });
        await client.connect();
        for (const schema of ['rms', 'orders', 'inventory', 'loyalty']) await client.query(`DROP SCHEMA IF EXISTS "${schema}_${options.schemaSuffix}" CASCADE`);
        await client.end();
      }
    },
  };
}
