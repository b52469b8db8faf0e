/**
 * Three RMS processes on one store, the SDK given all three URLs, one instance SIGKILLed
 * mid-stream: no confirmed message is lost, no message is delivered by two instances at
 * once (never two deliveries with the same attempt number), and the redelivery rate is
 * the schedule's, not three times it.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { createProducer, RmsHttpClient } from '@rms/client-sdk';
import { PostgresMessageStore } from '@rms/message-service';
import { dropSchema, freshSchemaUrl } from '../support/postgres.js';
import { QueueWatcher, type SeenDelivery } from '../support/rabbitmq.js';
import { FAST_PROCESS_ENV, type RmsProcess, spawnRms } from '../support/rms-process.js';
import { TEST_APPS } from '../support/rms-server.js';
import { waitUntil } from '../support/wait.js';

const TOTAL = 300;
/** Messages the consumer leaves unacked until their third delivery: they show the redelivery rate. */
const SLOW = 10;
const ACK_TIMEOUT_MS = Number(FAST_PROCESS_ENV.RMS_ACK_TIMEOUT_MS);

describe('three RMS instances on one store, one killed mid-stream', { timeout: 180_000 }, () => {
  const { url, schema } = freshSchemaUrl();
  const topic = `three.${randomUUID().slice(0, 8)}`;
  const env = { ...FAST_PROCESS_ENV, STORE_URL: url, RMS_APPS: JSON.stringify(Object.values(TEST_APPS)) };
  let store: PostgresMessageStore;
  let watcher: QueueWatcher;
  const instances: RmsProcess[] = [];

  before(async () => {
    store = new PostgresMessageStore({ url });
    watcher = await QueueWatcher.open();
  });
  after(async () => {
    for (const instance of instances) instance.child.kill('SIGKILL');
    await store?.close();
    await watcher?.deleteQueues([topic]);
    await watcher?.close();
    await dropSchema(schema);
  });

  test('no message is lost, none is delivered by two instances at once, and redeliveries follow the schedule once', async () => {
    // The first instance migrates the schema alone; the other two find it done.
    instances.push(spawnRms(env));
    const urls = [`http://127.0.0.1:${await instances[0]!.listening}`];
    for (let i = 1; i < 3; i++) {
      instances.push(spawnRms(env));
      urls.push(`http://127.0.0.1:${await instances[i]!.listening}`);
    }
    const retry = { retries: 8, baseDelayMs: 50, maxDelayMs: 500 };
    const producer = createProducer({ url: urls, token: TEST_APPS.orders.token, retry, timeoutMs: 2000, batching: false });
    const consumerClient = new RmsHttpClient({ url: [...urls].reverse(), token: TEST_APPS.inventory.token, retry, timeoutMs: 2000 });

    const deliveries: (SeenDelivery & { at: number })[] = [];
    const slowIds = new Set<string>();
    await watcher.consume(topic, async (delivery) => {
      deliveries.push({ ...delivery, at: Date.now() });
      if (slowIds.has(delivery.id) && delivery.attempt < 3) return; // left unacked: RMS must redeliver
      await consumerClient.ack(delivery.id).catch(() => undefined); // a lost ack is redelivered later
    });

    const confirmed: string[] = [];
    const producing = (async () => {
      for (let i = 0; i < TOTAL; i++) {
        const prepared = await producer.prepare(topic, { i }, { messageId: `order-${i}` });
        if (i < SLOW) slowIds.add(prepared.id);
        await producer.confirm(prepared.id);
        confirmed.push(prepared.id);
      }
    })();
    await waitUntil(() => confirmed.length >= 100, '100 confirmed before the kill', 60_000);
    instances[0]!.child.kill('SIGKILL');
    assert.equal(await instances[0]!.exited, 'SIGKILL');
    await producing;

    assert.equal(new Set(confirmed).size, TOTAL);
    await waitUntil(async () => (await store.list({ topic, status: 'COMPLETED', limit: 1000 })).messages.length === TOTAL, `all ${TOTAL} COMPLETED`, 90_000);

    // Never two deliveries of one message in the same round: no two instances delivered it at once.
    const rounds = new Map<string, number[]>();
    for (const delivery of deliveries) rounds.set(delivery.id, [...(rounds.get(delivery.id) ?? []), delivery.attempt]);
    const doubled = [...rounds].filter(([, attempts]) => new Set(attempts).size !== attempts.length);
    assert.deepEqual(doubled, [], 'a round delivered twice');

    // The slow messages were redelivered on the schedule: rounds 1, 2, 3, an ack timeout apart.
    for (const id of slowIds) {
      const own = deliveries.filter((delivery) => delivery.id === id);
      assert.deepEqual(own.map((delivery) => delivery.attempt), [1, 2, 3], `message ${id}: one delivery per round`);
      for (let i = 1; i < own.length; i++) {
        const gap = own[i]!.at - own[i - 1]!.at;
        assert.ok(gap >= ACK_TIMEOUT_MS * 0.9, `message ${id}: redelivered ${gap} ms after the previous round (ack timeout ${ACK_TIMEOUT_MS} ms)`);
      }
    }
    const extra = deliveries.length - TOTAL - SLOW * 2;
    console.log(`# three instances, one killed: ${TOTAL} confirmed, ${TOTAL} completed, ${deliveries.length} deliveries (${extra} beyond the slow messages' scheduled rounds)`);
    assert.ok(extra <= 10, `${extra} unscheduled redeliveries`);
  });
});
