import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import {
  type DegradeState,
  RmsHttpClient,
  type Subscription,
  ZooKeeperDegradeSwitch,
  fallbackKeys,
  fallbackShardOf,
  subscribe,
} from '@rms/client-sdk';
import { PostgresMessageStore } from '@rms/message-service';
import { Redis } from 'ioredis';
import { FAILOVER_TEST_ENV } from '../support/failover-env.js';
import { FaultProxy } from '../support/fault-proxy.js';
import { TEST_APPS, startTestServer, type TestServer } from '../support/rms-server.js';
import { waitUntil } from '../support/wait.js';

const ZK = '127.0.0.1:2181';
const SHARDS = 100;

const ENV = FAILOVER_TEST_ENV;

/** Produces `count` messages (prepare + confirm) with `concurrency` producers; calls `onProgress` after each. */
async function produce(client: RmsHttpClient, topic: string, count: number, concurrency: number, onProgress: (done: number) => void | Promise<void>) {
  const ids: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      const message = await client.prepare(topic, { i }, { messageId: `${topic}-${i}` });
      await client.confirm(message.id);
      ids.push(message.id);
      await onProgress(ids.length);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return ids;
}

describe('MQ-outage fallback: RabbitMQ cut mid-stream with consumers running', { timeout: 170_000 }, () => {
  let rabbitProxy: FaultProxy;
  let rms: TestServer;
  let store: PostgresMessageStore;
  let redis: Redis;
  let observer: ZooKeeperDegradeSwitch;
  let consumerSwitch: ZooKeeperDegradeSwitch;
  let subscription: Subscription;
  const topic = `failover.${randomUUID().slice(0, 8)}`;
  const handled = new Map<string, number>();
  const flagHistory: { at: number; state: DegradeState }[] = [];

  before(async () => {
    rabbitProxy = await FaultProxy.start({ targetHost: '127.0.0.1', targetPort: 5672 });
    const amqpThroughProxy = `amqp://guest:guest@127.0.0.1:${rabbitProxy.port}`;
    rms = await startTestServer({ env: { ...ENV, RABBITMQ_URL: amqpThroughProxy } });
    const root = `/rms-test/${rms.schema}`;
    store = new PostgresMessageStore({ url: rms.storeUrl });
    redis = new Redis('redis://127.0.0.1:6379', { lazyConnect: false });
    observer = new ZooKeeperDegradeSwitch({ connect: ZK, root });
    await observer.start();
    observer.onChange((state) => flagHistory.push({ at: Date.now(), state }));
    consumerSwitch = new ZooKeeperDegradeSwitch({ connect: ZK, root });
    await consumerSwitch.start();
    subscription = await subscribe(
      topic,
      async (delivery) => {
        handled.set(delivery.id, (handled.get(delivery.id) ?? 0) + 1);
      },
      {
        rms: { url: rms.baseUrl, token: TEST_APPS.inventory.token },
        amqpUrl: amqpThroughProxy,
        group: 'failover-test',
        concurrency: 32,
        fallback: { degradeSwitch: consumerSwitch, redis: 'redis://127.0.0.1:6379', workers: 4, shards: SHARDS },
      },
    );
  });
  after(async () => {
    rabbitProxy?.restore();
    await subscription?.close();
    await rms?.stop();
    await consumerSwitch?.close();
    await observer?.close();
    if (redis) {
      await redis.del(...fallbackKeys(topic, SHARDS));
      redis.disconnect();
    }
    await store?.close();
    await rabbitProxy?.close();
  });

  test('2,000 messages: the flag turns on at the threshold, delivery goes on through Redis, and everything is COMPLETED after recovery', async () => {
    const producer = new RmsHttpClient({ url: rms.baseUrl, token: TEST_APPS.orders.token });
    let cutAt = 0;
    let restoredAt = 0;
    const ids = await produce(producer, topic, 2000, 16, async (done) => {
      if (done === 500) {
        rabbitProxy.cut();
        cutAt = Date.now();
      }
      if (done === 1500) {
        rabbitProxy.restore();
        restoredAt = Date.now();
      }
    });
    assert.ok(cutAt > 0 && restoredAt > 0);

    const on = await waitUntil(() => flagHistory.find((h) => h.state.degraded), 'the flag turned on', 20_000);
    assert.match(on.state.reason ?? '', /^10 consecutive RabbitMQ publish failures/);
    assert.equal(on.state.mode, 'auto');
    await waitUntil(() => flagHistory.some((h) => h.at > on.at && !h.state.degraded), 'the probe cleared the flag', 30_000);
    const clearedAt = Date.now();
    await waitUntil(
      async () => (await Promise.all(fallbackKeys(topic, SHARDS).map((key) => redis.llen(key)))).every((n) => n === 0),
      'the lists drained',
      30_000,
      20,
    );
    const drainMs = Date.now() - clearedAt;
    await waitUntil(async () => (await store.list({ topic, status: 'COMPLETED', limit: 2000 })).messages.length === 2000, 'all 2,000 COMPLETED', 90_000, 250);
    const lengths = await Promise.all(fallbackKeys(topic, SHARDS).map((key) => redis.llen(key)));
    assert.equal(lengths.reduce((a, b) => a + b, 0), 0, 'the Redis lists drained to empty');
    await waitUntil(() => observer.current().degraded === false, 'flag still clear');

    assert.deepEqual(new Set(handled.keys()), new Set(ids), 'every message reached the handler');
    const all = (await store.list({ topic, limit: 2000 })).messages;
    const viaRedis = all.filter((m) => m.lastTransport === 'redis');
    assert.ok(viaRedis.length > 0, 'some messages were carried by Redis');
    const perShard = new Array<number>(SHARDS).fill(0);
    for (const m of viaRedis) perShard[fallbackShardOf(m.id, SHARDS)] = (perShard[fallbackShardOf(m.id, SHARDS)] ?? 0) + 1;
    const allShards = new Array<number>(SHARDS).fill(0);
    for (const id of ids) allShards[fallbackShardOf(id, SHARDS)] = (allShards[fallbackShardOf(id, SHARDS)] ?? 0) + 1;
    assert.ok(Math.min(...allShards) > 0, 'the 2,000 ids map onto every one of the 100 shard lists');
    const duplicates = [...handled.values()].reduce((sum, n) => sum + n - 1, 0);
    const switchOverMs = on.at - cutAt;
    const off = flagHistory.find((h) => h.at > on.at && !h.state.degraded);
    console.log(
      `# failover: 2000 messages, ${viaRedis.length} via Redis, ${all.length - viaRedis.length} via RabbitMQ, ${duplicates} duplicate handler runs; ` +
        `flag on ${switchOverMs} ms after the cut, off ${(off?.at ?? 0) - restoredAt} ms after RabbitMQ returned, lists empty ≤${drainMs} ms after that; ` +
        `shard spread of all 2000 ids min ${Math.min(...allShards)} max ${Math.max(...allShards)}, ` +
        `of those carried by Redis min ${Math.min(...perShard)} max ${Math.max(...perShard)}`,
    );
  });

  test('an SRE "on" moves traffic to Redis with RabbitMQ healthy, "off" moves it back, "auto" resumes automation', async () => {
    const sre = new ZooKeeperDegradeSwitch({ connect: ZK, root: `/rms-test/${rms.schema}` });
    await sre.start();
    const producer = new RmsHttpClient({ url: rms.baseUrl, token: TEST_APPS.orders.token });
    const sendOne = async (i: number) => {
      const m = await producer.prepare(topic, { sre: i }, { messageId: `sre-${i}` });
      await producer.confirm(m.id);
      return waitUntil(async () => {
        const stored = await store.findById(m.id);
        return stored?.status === 'COMPLETED' ? stored : null;
      }, `sre message ${i} completed`, 20_000);
    };
    try {
      await sre.setMode('on', 'failover drill', 'sre@test');
      await waitUntil(() => observer.current().mode === 'on', 'RMS sees the forced flag');
      assert.equal((await sendOne(1)).lastTransport, 'redis');
      const ready = await rms.call(null, 'GET', '/readyz');
      assert.equal(ready.body.dependencies.transport.mode, 'redis');
      assert.equal(ready.body.dependencies.transport.degradeFlag.mode, 'on');
      await sre.setMode('off', 'drill over', 'sre@test');
      await waitUntil(() => observer.current().mode === 'off', 'RMS sees the forced off');
      assert.equal((await sendOne(2)).lastTransport, 'rabbitmq');
      await sre.setMode('auto', 'back to automation', 'sre@test');
      await waitUntil(() => observer.current().mode === 'auto', 'auto again');
      assert.equal((await sendOne(3)).lastTransport, 'rabbitmq');
    } finally {
      await sre.setMode('auto', 'test clean-up', 'sre@test').catch(() => undefined);
      await sre.close();
    }
  });
});
