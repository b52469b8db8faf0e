import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, describe, test } from 'node:test';
import { RmsHttpClient, type Subscription, ZooKeeperDegradeSwitch, fallbackKeys, subscribe } from '@rms/client-sdk';
import { PostgresMessageStore } from '@rms/message-service';
import { Redis } from 'ioredis';
import { FAILOVER_TEST_ENV } from '../support/failover-env.js';
import { FaultProxy } from '../support/fault-proxy.js';
import { TEST_APPS, startTestServer, type TestServer } from '../support/rms-server.js';
import { waitUntil } from '../support/wait.js';

const ENV = FAILOVER_TEST_ENV;

/** Everything one scenario starts, stopped in reverse. */
class Scenario {
  readonly closers: (() => Promise<unknown>)[] = [];
  readonly handled = new Map<string, number>();
  topic = `deps.${randomUUID().slice(0, 8)}`;
  rms!: TestServer;
  store!: PostgresMessageStore;

  async produce(count: number, label: string): Promise<string[]> {
    const producer = new RmsHttpClient({ url: this.rms.baseUrl, token: TEST_APPS.orders.token });
    const ids: string[] = [];
    for (let i = 0; i < count; i++) {
      const m = await producer.prepare(this.topic, { label, i }, { messageId: `${label}-${i}` });
      await producer.confirm(m.id);
      ids.push(m.id);
    }
    return ids;
  }

  async statuses(ids: string[]): Promise<string[]> {
    return Promise.all(ids.map(async (id) => (await this.store.findById(id))?.status ?? 'MISSING'));
  }

  async allCompleted(ids: string[], what: string, timeoutMs = 30_000): Promise<void> {
    await waitUntil(async () => (await this.statuses(ids)).every((s) => s === 'COMPLETED'), what, timeoutMs, 100);
  }

  /** Deletes the topic's fallback lists. */
  async deleteLists(): Promise<void> {
    const redis = new Redis('redis://127.0.0.1:6379');
    await redis.del(...fallbackKeys(this.topic, 100));
    redis.disconnect();
  }

  async close(): Promise<void> {
    for (const close of this.closers.reverse()) await close().catch(() => undefined);
  }
}

describe('MQ-outage fallback when ZooKeeper or Redis fail too', { timeout: 170_000 }, () => {
  const scenarios: Scenario[] = [];
  after(async () => {
    for (const scenario of scenarios) await scenario.close();
  });

  test('ZooKeeper cut past its session timeout while RabbitMQ is down: publishing falls back locally, nothing is lost, the switch recovers', async () => {
    const s = new Scenario();
    scenarios.push(s);
    const rabbit = await FaultProxy.start({ targetHost: '127.0.0.1', targetPort: 5672 });
    const zk = await FaultProxy.start({ targetHost: '127.0.0.1', targetPort: 2181 });
    s.closers.push(() => rabbit.close(), () => zk.close());
    const amqpUrl = `amqp://guest:guest@127.0.0.1:${rabbit.port}`;
    s.rms = await startTestServer({ env: { ...ENV, RABBITMQ_URL: amqpUrl, ZK_CONNECT: `127.0.0.1:${zk.port}` } });
    s.closers.push(() => s.rms.stop());
    s.store = new PostgresMessageStore({ url: s.rms.storeUrl });
    s.closers.push(() => s.store.close());
    const consumerSwitch = new ZooKeeperDegradeSwitch({ connect: `127.0.0.1:${zk.port}`, root: `/rms-test/${s.rms.schema}`, sessionTimeoutMs: 2000 });
    await consumerSwitch.start();
    s.closers.push(() => consumerSwitch.close());
    const subscription: Subscription = await subscribe(s.topic, async (d) => void s.handled.set(d.id, (s.handled.get(d.id) ?? 0) + 1), {
      rms: { url: s.rms.baseUrl, token: TEST_APPS.inventory.token },
      amqpUrl,
      group: 'deps',
      fallback: { degradeSwitch: consumerSwitch, redis: 'redis://127.0.0.1:6379', workers: 2 },
    });
    s.closers.push(() => subscription.close());
    s.closers.push(() => s.deleteLists());

    await s.allCompleted(await s.produce(20, 'before'), 'warm-up messages completed');

    zk.cut();
    await waitUntil(async () => (await s.rms.call(null, 'GET', '/readyz')).body.dependencies.zookeeper.status === 'down', 'RMS sees ZooKeeper down');
    await new Promise((resolve) => setTimeout(resolve, 2500)); // past the 2 s session timeout
    rabbit.cut();
    const during = await s.produce(100, 'during');
    await s.allCompleted(during, 'every message delivered with RabbitMQ and ZooKeeper both cut', 40_000);
    const ready = await s.rms.call(null, 'GET', '/readyz');
    assert.equal(ready.body.dependencies.transport.mode, 'redis');
    assert.equal(ready.body.dependencies.transport.locallyDegraded, true, 'degraded locally: the flag could not be written');
    assert.equal(ready.body.dependencies.zookeeper.status, 'down');
    assert.equal(ready.status, 200, 'still ready: it delivers through Redis');

    zk.restore();
    rabbit.restore();
    await waitUntil(async () => {
      const body = (await s.rms.call(null, 'GET', '/readyz')).body;
      return body.dependencies.zookeeper.status === 'up' && body.dependencies.transport.mode === 'rabbitmq';
    }, 'ZooKeeper reconnected (new session) and the probe brought publishing back to RabbitMQ', 30_000);
    await waitUntil(() => consumerSwitch.connected, "the consumer's switch rebuilt its session too", 20_000);
    const after = await s.produce(20, 'after');
    await s.allCompleted(after, 'messages after recovery completed');
    assert.ok((await Promise.all(after.map((id) => s.store.findById(id)))).every((m) => m?.lastTransport === 'rabbitmq'));
    assert.deepEqual(new Set(s.handled.keys()).size, 140);
  });

  test('Redis cut while degraded: messages stay SENDING, and are delivered once Redis is back', async () => {
    const s = new Scenario();
    scenarios.push(s);
    const redisProxy = await FaultProxy.start({ targetHost: '127.0.0.1', targetPort: 6379 });
    s.closers.push(() => redisProxy.close());
    s.rms = await startTestServer({ env: { ...ENV, REDIS_URL: `redis://127.0.0.1:${redisProxy.port}` } });
    s.closers.push(() => s.rms.stop());
    s.store = new PostgresMessageStore({ url: s.rms.storeUrl });
    s.closers.push(() => s.store.close());
    const root = `/rms-test/${s.rms.schema}`;
    const sre = new ZooKeeperDegradeSwitch({ connect: '127.0.0.1:2181', root });
    await sre.start();
    s.closers.push(() => sre.close());
    const consumerSwitch = new ZooKeeperDegradeSwitch({ connect: '127.0.0.1:2181', root });
    await consumerSwitch.start();
    s.closers.push(() => consumerSwitch.close());
    const subscription = await subscribe(s.topic, async (d) => void s.handled.set(d.id, (s.handled.get(d.id) ?? 0) + 1), {
      rms: { url: s.rms.baseUrl, token: TEST_APPS.inventory.token },
      amqpUrl: 'amqp://guest:guest@127.0.0.1:5672',
      group: 'deps-redis',
      fallback: { degradeSwitch: consumerSwitch, redis: 'redis://127.0.0.1:6379', workers: 2 },
    });
    s.closers.push(() => subscription.close());
    s.closers.push(() => s.deleteLists());

    await sre.setMode('on', 'drill: Redis will fail too', 'test');
    await waitUntil(async () => (await s.rms.call(null, 'GET', '/readyz')).body.dependencies.transport.mode === 'redis', 'RMS publishes to Redis');
    redisProxy.cut();
    const ids = await s.produce(30, 'redis-cut');
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const stuck = await Promise.all(ids.map((id) => s.store.findById(id)));
    assert.ok(stuck.every((m) => m?.status === 'SENDING'), 'nothing is lost: every message is still SENDING in the store');
    assert.ok(stuck.every((m) => (m?.lastError ?? '').startsWith('redis')), 'each records why its delivery failed');
    redisProxy.restore();
    await s.allCompleted(ids, 'delivered once Redis came back');
    const done = await Promise.all(ids.map((id) => s.store.findById(id)));
    assert.ok(done.every((m) => m?.lastTransport === 'redis'));
    await sre.setMode('auto', 'test clean-up', 'test');
  });
});
