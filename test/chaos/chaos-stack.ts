/**
 * Everything a chaos run starts: a fault proxy in front of each dependency (PostgreSQL,
 * RabbitMQ, Redis, ZooKeeper), one or two RMS processes on one store, the producer's
 * check-back endpoint and producers, and the consumer process. All traffic to the
 * dependencies goes through the proxies, so a fault hits RMS and the consumer alike.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { type RmsProducer, createProducer, fallbackKeys } from '@rms/client-sdk';
import { Redis } from 'ioredis';
import pg from 'pg';
import { FaultProxy } from '../support/fault-proxy.js';
import { clusterPort } from '../../scripts/loopback-ports.js';
import { TEST_POSTGRES_URL, dropSchema } from '../support/postgres.js';
import { QueueWatcher, TEST_RABBITMQ_URL } from '../support/rabbitmq.js';
import { CHAOS_DURATIONS, CHAOS_RMS_SCHEDULE } from './chaos-settings.js';
import { ConsumerProcess, type ConsumerReport } from './consumer-process.js';
import { RmsInstance } from './rms-instance.js';
import { type CheckServer, Ledger, startCheckServer } from './workload.js';

const TOKENS = {
  producer: 'chaos-orders-token-000000',
  consumer: 'chaos-inventory-token-000',
  admin: 'chaos-ops-admin-token-000',
  checkSecret: 'chaos-orders-check-secret-0',
};

const REDIS_URL = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const ZK_CONNECT = process.env['ZK_CONNECT'] ?? '127.0.0.1:2181';

/** The four dependencies' proxies. */
export interface DependencyProxies {
  postgres: FaultProxy;
  rabbitmq: FaultProxy;
  redis: FaultProxy;
  zookeeper: FaultProxy;
}

/** What {@link ChaosStack.start} needs. */
export interface ChaosStackOptions {
  /** RMS instances on the one store. */
  instances: number;
  /** Where each RMS instance's log goes (`rms-<n>.log`). */
  logDir: string;
  /** How long each consumer handler works. */
  handlerMs: number;
  /** Receives what the consumer process reports. */
  onConsumerReport: (report: ConsumerReport) => void;
}

/** One row of the store, as the invariants read it. */
export interface StoredMessage {
  key: string;
  status: 'PENDING' | 'SENDING' | 'COMPLETED' | 'CANCELLED' | 'DEAD';
  deliveryAttempts: number;
  lastTransport: string | null;
}

function hostPort(url: string): { host: string; port: number } {
  const parsed = new URL(url);
  return { host: parsed.hostname, port: Number(parsed.port) };
}

/** The running system under test and its handles. */
export class ChaosStack {
  private constructor(
    readonly proxies: DependencyProxies,
    readonly instances: RmsInstance[],
    readonly consumer: ConsumerProcess,
    readonly checkServer: CheckServer,
    readonly producers: RmsProducer[],
    readonly ledger: Ledger,
    readonly topic: string,
    readonly schema: string,
    readonly zkRoot: string,
  ) {}

  /** Starts everything and resolves once RMS listens and the consumer consumes. */
  static async start(options: ChaosStackOptions): Promise<ChaosStack> {
    const run = randomBytes(4).toString('hex');
    const topic = `chaos.${run}`;
    const schema = `rms_chaos_${run}`;
    const zkRoot = `/rms-chaos/${run}`;
    const zk = ZK_CONNECT.split(',')[0]?.split(':') ?? [];
    const proxies: DependencyProxies = {
      postgres: await FaultProxy.start({ targetHost: hostPort(TEST_POSTGRES_URL).host, targetPort: hostPort(TEST_POSTGRES_URL).port || 5432 }),
      rabbitmq: await FaultProxy.start({ targetHost: hostPort(TEST_RABBITMQ_URL).host, targetPort: hostPort(TEST_RABBITMQ_URL).port || 5672 }),
      redis: await FaultProxy.start({ targetHost: hostPort(REDIS_URL).host, targetPort: hostPort(REDIS_URL).port || 6379 }),
      zookeeper: await FaultProxy.start({ targetHost: zk[0] ?? '127.0.0.1', targetPort: Number(zk[1] ?? 2181) }),
    };
    const storeUrl = new URL(TEST_POSTGRES_URL);
    storeUrl.port = String(proxies.postgres.port);
    storeUrl.searchParams.set('schema', schema);
    const amqpUrl = new URL(TEST_RABBITMQ_URL);
    amqpUrl.port = String(proxies.rabbitmq.port);
    const redisUrl = new URL(REDIS_URL);
    redisUrl.port = String(proxies.redis.port);
    const zkConnect = `127.0.0.1:${proxies.zookeeper.port}`;

    const ledger = new Ledger();
    const checkServer = await startCheckServer(ledger, TOKENS.checkSecret);
    const env: Record<string, string> = {
      ...CHAOS_RMS_SCHEDULE,
      STORE_URL: storeUrl.toString(),
      RABBITMQ_URL: amqpUrl.toString(),
      REDIS_URL: redisUrl.toString(),
      ZK_CONNECT: zkConnect,
      RMS_ZK_ROOT: zkRoot,
      // spawnRms learns that RMS listens from the info-level 'RMS listening' line.
      LOG_LEVEL: 'info',
      RMS_APPS: JSON.stringify([
        { app: 'orders', token: TOKENS.producer, roles: ['producer'], checkUrl: checkServer.url, secret: TOKENS.checkSecret },
        { app: 'inventory', token: TOKENS.consumer, roles: ['consumer'] },
        { app: 'ops', token: TOKENS.admin, roles: ['admin'] },
      ]),
    };
    const instances: RmsInstance[] = [];
    for (let n = 0; n < options.instances; n++) {
      // Below the ephemeral range: the child binds it later, and binds it again after each
      // crash, when an ephemeral port could have become some connection's local port.
      instances.push(new RmsInstance(`rms-${n}`, await clusterPort(), env, join(options.logDir, `rms-${n}.log`)));
    }
    // One after the other: the first creates the schema.
    for (const instance of instances) await instance.start();
    const producers = instances.map((instance) =>
      createProducer({ url: instance.url, token: TOKENS.producer, timeoutMs: CHAOS_DURATIONS.clientTimeoutMs }),
    );
    const consumer = new ConsumerProcess(
      {
        topic,
        rmsUrl: (instances[0] as RmsInstance).url,
        token: TOKENS.consumer,
        amqpUrl: amqpUrl.toString(),
        redisUrl: redisUrl.toString(),
        zkConnect,
        zkRoot,
        zkSessionTimeoutMs: CHAOS_DURATIONS.zkSessionTimeoutMs,
        heartbeatIntervalMs: CHAOS_DURATIONS.heartbeatIntervalMs,
        clientTimeoutMs: CHAOS_DURATIONS.clientTimeoutMs,
        handlerMs: options.handlerMs,
      },
      options.onConsumerReport,
    );
    await consumer.start();
    return new ChaosStack(proxies, instances, consumer, checkServer, producers, ledger, topic, schema, zkRoot);
  }

  /** The origins of every RMS instance, for recording answers. */
  get rmsOrigins(): string[] {
    return this.instances.map((instance) => instance.url);
  }

  /** Every proxy forwarding, every RMS instance and the consumer running. */
  async heal(): Promise<void> {
    for (const proxy of Object.values(this.proxies)) proxy.restore();
    for (const instance of this.instances) await instance.heal();
    if (!this.consumer.running) await this.consumer.start();
  }

  /** The transport an instance publishes through now (`/readyz`), or undefined when it does not answer. */
  async transportMode(instance: RmsInstance): Promise<string | undefined> {
    try {
      const response = await fetch(`${instance.url}/readyz`, { signal: AbortSignal.timeout(1000) });
      const body = (await response.json()) as { dependencies?: { transport?: { mode?: string } } };
      return body.dependencies?.transport?.mode;
    } catch {
      return undefined;
    }
  }

  /** Reads the run's messages straight from PostgreSQL (not through the proxy). */
  async storedMessages(): Promise<StoredMessage[]> {
    const client = new pg.Client({ connectionString: TEST_POSTGRES_URL, connectionTimeoutMillis: 5000, query_timeout: 30_000 });
    await client.connect();
    try {
      const result = await client.query<StoredMessage>(
        `SELECT producer_message_id AS "key", status, delivery_attempts AS "deliveryAttempts", last_transport AS "lastTransport"
           FROM "${this.schema}".rms_messages WHERE topic = $1`,
        [this.topic],
      );
      return result.rows;
    } finally {
      await client.end();
    }
  }

  /** Stops the RMS processes (gracefully), so their logs are complete. */
  async stopRms(): Promise<void> {
    for (const instance of this.instances) await instance.stop();
  }

  /** Stops everything; unless `keepData`, drops the schema, the queue and the fallback lists. */
  async stop({ keepData = false } = {}): Promise<void> {
    await this.consumer.close();
    await this.stopRms();
    await this.checkServer.close();
    for (const proxy of Object.values(this.proxies)) await proxy.close();
    if (keepData) return;
    await dropSchema(this.schema);
    const watcher = await QueueWatcher.open();
    await watcher.deleteQueues([this.topic]).catch(() => undefined);
    await watcher.close();
    const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await redis.connect();
    await redis.del(...fallbackKeys(this.topic, Number(CHAOS_RMS_SCHEDULE.RMS_FALLBACK_SHARDS)));
    redis.disconnect();
  }
}
