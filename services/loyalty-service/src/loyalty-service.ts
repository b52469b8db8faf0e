/**
 * The loyalty service: a second consumer group on the same topic as the inventory service.
 * Every paid order reduces stock (group `inventory`) and awards points (group `loyalty`):
 * RMS delivers each message to both groups, each with its own queue, retries and ack.
 */
import { type Delivery, type Subscription, ZooKeeperDegradeSwitch, subscribe } from '@rms/client-sdk';
import { PointsStore } from './points-store.js';

/** The part of an order message the loyalty service reads. */
export interface PaidOrder {
  orderId: string;
  qty: number;
}

/** Configuration of the loyalty service. */
export interface LoyaltyServiceOptions {
  databaseUrl: string;
  schema: string;
  rmsUrl: string;
  /** The token of an app whose registry entry subscribes to `topic` in `group`. */
  rmsToken: string;
  amqpUrl: string;
  topic: string;
  /** The consumer group. @defaultValue 'loyalty' */
  group?: string;
  /** Points per ordered unit. @defaultValue 10 */
  pointsPerUnit?: number;
  /** Parallel handlers. @defaultValue 16 */
  concurrency?: number;
  /** The MQ-outage fallback, as the inventory service's. @defaultValue none (RabbitMQ only) */
  fallback?: { zkConnect: string; zkRoot: string; redisUrl: string };
}

/** Counters of what the handler saw. */
export interface LoyaltyStats {
  deliveries: number;
  awarded: number;
  duplicatesSuppressed: number;
}

/** A running loyalty service. */
export class LoyaltyService {
  readonly stats: LoyaltyStats = { deliveries: 0, awarded: 0, duplicatesSuppressed: 0 };
  private subscription: Subscription | undefined;
  private degradeSwitch: ZooKeeperDegradeSwitch | undefined;

  private constructor(readonly store: PointsStore) {}

  /** Creates the table and subscribes to the topic in its group. */
  static async start(options: LoyaltyServiceOptions): Promise<LoyaltyService> {
    const store = new PointsStore(options.databaseUrl, options.schema);
    await store.init();
    const service = new LoyaltyService(store);
    const group = options.group ?? 'loyalty';
    const pointsPerUnit = options.pointsPerUnit ?? 10;
    if (options.fallback) {
      service.degradeSwitch = new ZooKeeperDegradeSwitch({ connect: options.fallback.zkConnect, root: options.fallback.zkRoot });
      await service.degradeSwitch.start();
    }
    service.subscription = await subscribe<PaidOrder>({ topic: options.topic, group }, async (delivery: Delivery<PaidOrder>) => {
      service.stats.deliveries += 1;
      const outcome = await store.award(group, delivery.id, delivery.payload.orderId, delivery.payload.qty * pointsPerUnit);
      if (outcome === 'awarded') service.stats.awarded += 1;
      else service.stats.duplicatesSuppressed += 1;
    }, {
      ...(service.degradeSwitch &&
        options.fallback && { fallback: { degradeSwitch: service.degradeSwitch, redis: options.fallback.redisUrl } }),
      rms: { url: options.rmsUrl, token: options.rmsToken },
      amqpUrl: options.amqpUrl,
      concurrency: options.concurrency ?? 16,
    });
    return service;
  }

  /** Stops consuming (finishing in-flight messages) and closes the pool. */
  async stop(): Promise<void> {
    await this.subscription?.close();
    await this.degradeSwitch?.close();
    await this.store.close();
  }
}
