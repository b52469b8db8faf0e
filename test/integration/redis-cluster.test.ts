/**
 * The Redis fallback on a local Redis Cluster (3 masters, 3 replicas, started here on
 * loopback ports): shard keys spread over the masters, publishers and consumer workers use
 * no command that spans slots, and a master's failover loses no entry a publish reported
 * as done (`WAIT` for a replica).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { fallbackKey, fallbackKeys, fallbackShardOf, RedisListSource, RedisListTransport, type OutgoingMessage } from '@rms/client-sdk';
import { redisClusterUnavailableReason, RedisCluster } from '../support/redis-cluster.js';
import { waitUntil } from '../support/wait.js';

const message = (topic: string, n: number): OutgoingMessage => ({ id: randomUUID(), topic, payload: { n }, headers: {}, attempt: 1, producer: 'orders' });

/** Publishes, retrying while the cluster fails over (as RMS's failover transport and redelivery would). */
async function publishSurely(transport: RedisListTransport, outgoing: OutgoingMessage): Promise<void> {
  await waitUntil(async () => {
    try {
      await transport.publish(outgoing);
      return true;
    } catch {
      return false;
    }
  }, `publishing ${outgoing.id}`, 20_000, 100);
}

const skip = redisClusterUnavailableReason();

describe('the Redis fallback on a Redis Cluster', { skip: skip ?? false, timeout: 180_000 }, () => {
  let cluster: RedisCluster;

  before(async () => {
    cluster = await RedisCluster.start(1000);
  });
  after(async () => {
    await cluster?.close();
  });

  test('a topic’s 100 shard keys spread over all three masters', async () => {
    const masters = new Set<number>();
    for (const key of fallbackKeys('orders.paid', 100)) masters.add(await cluster.masterOf(key));
    assert.equal(masters.size, 3);
  });

  test('what publishers push to the cluster, consumer workers pop, each entry once, and drainUntilEmpty sees the lists empty', async (t) => {
    const topic = `cluster.${randomUUID().slice(0, 8)}`;
    const transport = new RedisListTransport({ url: cluster.url });
    t.after(() => transport.close());
    const sent = Array.from({ length: 300 }, (_, n) => message(topic, n));
    await Promise.all(sent.map((outgoing) => transport.publish(outgoing)));

    const seen: string[] = [];
    const source = new RedisListSource({ url: cluster.url, topic, workers: 2, clusterIdleMs: 20 }, (delivery) => void seen.push(delivery.id));
    t.after(() => source.stop());
    await source.start();
    await source.drainUntilEmpty();
    assert.equal(seen.length, 300, 'every entry was popped');
    assert.equal(new Set(seen).size, 300, 'none twice');
    assert.deepEqual(new Set(seen), new Set(sent.map((outgoing) => outgoing.id)));

    // Idle workers sweep and pause; a late entry is still picked up promptly.
    const late = message(topic, 300);
    await transport.publish(late);
    await waitUntil(() => seen.includes(late.id), 'an entry pushed to idle workers is popped', 5000);
  });

  test('a delivery to three groups reaches each group’s lists (one push per key: a transaction cannot span slots)', async (t) => {
    const topic = `groups.${randomUUID().slice(0, 8)}`;
    const transport = new RedisListTransport({ url: cluster.url, waitReplicas: 1 });
    t.after(() => transport.close());
    const sent = Array.from({ length: 30 }, (_, n) => ({ ...message(topic, n), groups: ['inventory', 'loyalty', 'shipping'] }));
    for (const outgoing of sent) await transport.publish(outgoing);
    for (const group of ['inventory', 'loyalty', 'shipping']) {
      const seen: string[] = [];
      const source = new RedisListSource({ url: cluster.url, topic, group, workers: 1, clusterIdleMs: 20 }, (delivery) => void seen.push(delivery.id));
      await source.start();
      await source.drainUntilEmpty();
      await source.stop();
      assert.deepEqual(seen.sort(), sent.map((outgoing) => outgoing.id).sort(), `group ${group} got every message once`);
    }
  });

  test('a master killed after publishes were confirmed by a replica (WAIT): its replica takes over and no entry is lost', async (t) => {
    const topic = `failover.${randomUUID().slice(0, 8)}`;
    const transport = new RedisListTransport({ url: cluster.url, waitReplicas: 1, commandTimeoutMs: 1500 });
    t.after(() => transport.close());
    const sent = Array.from({ length: 200 }, (_, n) => message(topic, n));
    await Promise.all(sent.map((outgoing) => transport.publish(outgoing)));

    // A message whose shard list lives on the master about to die.
    const victim = await cluster.masterOf(fallbackKeys(topic, 100)[0] as string);
    let onVictim = message(topic, -1);
    while ((await cluster.masterOf(fallbackKey(topic, fallbackShardOf(onVictim.id, 100), 100))) !== victim) onVictim = message(topic, -1);

    await cluster.kill(victim);
    // Until the others notice, they still call the cluster ok: wait for the replica's promotion.
    const victimKey = fallbackKey(topic, fallbackShardOf(onVictim.id, 100), 100);
    await waitUntil(async () => (await cluster.masterOf(victimKey).catch(() => victim)) !== victim, 'a replica is promoted in the dead master’s place', 30_000, 200);
    await cluster.waitOk(30_000);
    // The promoted replica has no replica of its own: a publish to its slots cannot be
    // made durable, and says so rather than succeeding unreplicated.
    // (The first try may also fail on the stale slot map, MOVED, which ioredis then refreshes.)
    const refusal = await waitUntil(async () => {
      try {
        await transport.publish(onVictim);
        return 'published without a replica';
      } catch (error) {
        return /replicas confirmed/.test(String(error)) ? String(error) : undefined;
      }
    }, 'a publish to the promoted master is refused for want of a replica', 10_000, 100);
    assert.match(refusal, /only 0 of 1 replicas confirmed the entry/);

    // The old master comes back as a replica of the new one; durable publishes go on.
    await cluster.restart(victim);
    await waitUntil(async () => {
      const promoted = await cluster.masterOf(fallbackKey(topic, fallbackShardOf(onVictim.id, 100), 100));
      return (await cluster.replicasOf(promoted)) >= 1;
    }, 'the old master rejoins as a replica', 30_000, 200);
    const afterFailover = [onVictim, ...Array.from({ length: 20 }, (_, n) => message(topic, 200 + n))];
    for (const outgoing of afterFailover) await publishSurely(transport, outgoing);

    const seen = new Set<string>();
    const source = new RedisListSource({ url: cluster.url, topic, workers: 2, clusterIdleMs: 20 }, (delivery) => void seen.add(delivery.id));
    t.after(() => source.stop());
    await source.start();
    await source.drainUntilEmpty();
    const missing = [...sent, ...afterFailover].filter((outgoing) => !seen.has(outgoing.id));
    assert.deepEqual(missing, [], 'every acknowledged entry survived the failover');
    assert.equal(seen.size, sent.length + afterFailover.length);
  });
});
