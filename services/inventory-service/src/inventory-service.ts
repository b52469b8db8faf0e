/**
 * The inventory service: a downstream business service that consumes "reduce stock"
 * through the SDK's `subscribe` and applies each message exactly once, by recording its id
 * in the same database transaction as the stock change.
 *
 * `GET /stock/:sku` and `GET /stats` show the result. For the demo it can be made slow on
 * purpose (`slowRate`, `slowMs`): a handler slower than RMS's ack deadline, with heartbeats
 * off, gets the message redelivered while it still works, which is how the demo produces
 * real duplicates for the dedupe to absorb.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Delivery, type Subscription, ZooKeeperDegradeSwitch, subscribe } from '@rms/client-sdk';
import express from 'express';
import { StockStore } from './stock-store.js';

/** The message inventory consumes. */
export interface ReduceStock {
  orderId: string;
  sku: string;
  qty: number;
}

/** Configuration of the inventory service. */
export interface InventoryServiceOptions {
  port: number;
  databaseUrl: string;
  schema: string;
  rmsUrl: string;
  rmsToken: string;
  amqpUrl: string;
  /** The topic to consume. @defaultValue 'stock.reduce' */
  topic?: string;
  /**
   * The consumer group: its queue is consumed, its delivery acked, and it scopes "already
   * applied". RMS's app registry must subscribe the app to `topic` in this group.
   * @defaultValue 'inventory'
   */
  group?: string;
  /** Parallel handlers. @defaultValue 16 */
  concurrency?: number;
  /** Heartbeat interval while a handler runs; 0 disables. @defaultValue 30000 */
  heartbeatIntervalMs?: number;
  /**
   * The MQ-outage fallback: watch the degrade flag at `zkConnect`/`zkRoot` and pop the Redis
   * lists at `redisUrl` while it is on. @defaultValue none (RabbitMQ only)
   */
  fallback?: { zkConnect: string; zkRoot: string; redisUrl: string };
  /** Demo only: the share of deliveries (0..1) whose handler first sleeps `slowMs`. @defaultValue 0 */
  slowRate?: number;
  /** Demo only. @defaultValue 0 */
  slowMs?: number;
}

/** Counters of what the handler saw. */
export interface InventoryStats {
  deliveries: number;
  applied: number;
  duplicatesSuppressed: number;
}

/** A running inventory service. */
export class InventoryService {
  readonly stats: InventoryStats = { deliveries: 0, applied: 0, duplicatesSuppressed: 0 };
  private http: Server | undefined;
  private subscription: Subscription | undefined;
  private degradeSwitch: ZooKeeperDegradeSwitch | undefined;

  private constructor(readonly store: StockStore) {}

  /** The port it listens on. */
  get port(): number {
    return (this.http?.address() as AddressInfo).port;
  }

  /** Creates the tables, subscribes to the topic and starts listening. */
  static async start(options: InventoryServiceOptions): Promise<InventoryService> {
    const store = new StockStore(options.databaseUrl, options.schema);
    await store.init();
    const service = new InventoryService(store);
    const group = options.group ?? 'inventory';
    const handle = async (delivery: Delivery<ReduceStock>) => {
      service.stats.deliveries += 1;
      if (options.slowRate && Math.random() < options.slowRate) await new Promise((resolve) => setTimeout(resolve, options.slowMs ?? 0));
      const { sku, qty } = delivery.payload;
      const outcome = await store.reduce(group, delivery.id, sku, qty);
      if (outcome === 'applied') service.stats.applied += 1;
      else service.stats.duplicatesSuppressed += 1;
    };
    if (options.fallback) {
      service.degradeSwitch = new ZooKeeperDegradeSwitch({ connect: options.fallback.zkConnect, root: options.fallback.zkRoot });
      await service.degradeSwitch.start();
    }
    service.subscription = await subscribe<ReduceStock>({ topic: options.topic ?? 'stock.reduce', group }, handle, {
      ...(service.degradeSwitch &&
        options.fallback && { fallback: { degradeSwitch: service.degradeSwitch, redis: options.fallback.redisUrl } }),
      rms: { url: options.rmsUrl, token: options.rmsToken },
      amqpUrl: options.amqpUrl,
      concurrency: options.concurrency ?? 16,
      heartbeatIntervalMs: options.heartbeatIntervalMs ?? 30_000,
    });
    const app = express();
    app.get('/stock/:sku', async (request, response) => {
      const qty = await store.stockOf(request.params.sku);
      if (qty === null) response.status(404).json({ error: { code: 'NOT_FOUND', message: `no sku ${request.params.sku}` } });
      else response.json({ sku: request.params.sku, qty });
    });
    app.get('/stats', async (_request, response) => {
      response.json({ ...service.stats, ...(await store.appliedTotals()) });
    });
    service.http = await new Promise<Server>((resolve) => {
      const server = app.listen(options.port, () => resolve(server));
    });
    return service;
  }

  /** Stops consuming (finishing in-flight messages), stops listening, closes the pool. */
  async stop(): Promise<void> {
    await this.subscription?.close();
    await this.degradeSwitch?.close();
    if (this.http) {
      this.http.closeAllConnections();
      await new Promise<void>((resolve) => this.http?.close(() => resolve()));
    }
    await this.store.close();
  }
}
