import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { type Notification, PostgresMessageStore } from '@rms/message-service';
import { QueueWatcher, type SeenDelivery } from '../support/rabbitmq.js';
import { startTestServer, type TestServer } from '../support/rms-server.js';
import { waitUntil } from '../support/wait.js';
import { FAST_DELIVERY_ENV } from '../support/delivery-env.js';

// A topic with an ack timeout longer than the lease (3 s): its round 1 is recorded by the confirm.
const ONE_WRITE_TOPIC = `onewrite.${randomUUID().slice(0, 8)}`;

// The heartbeat test's topic: an ack timeout of 1 s, so that a heartbeat every 250 ms
// keeps the deadline ahead even when a loaded box delays one by most of a second (at
// 150 ms, a beat every 75 ms left 75 ms of slack).
const SLOW_TOPIC = `slow.${randomUUID().slice(0, 8)}`;
const SLOW_ACK_TIMEOUT_MS = 1000;

// Real PostgreSQL and RabbitMQ; the schedules are the real ones, in milliseconds.
const ENV = {
  ...FAST_DELIVERY_ENV,
  RMS_ACK_TIMEOUT_MS: '150',
  RMS_RETRY_MAX: '3',
  // Wide enough that the 20 messages of the burst test die within one window on a loaded
  // box (at 1.5 s, one of them died after the window had closed: 18 in the follow-up).
  RMS_ALERT_WINDOW_MS: '6000',
  RMS_TOPIC_SCHEDULES: JSON.stringify({ [ONE_WRITE_TOPIC]: { ackTimeoutMs: 60_000 }, [SLOW_TOPIC]: { ackTimeoutMs: SLOW_ACK_TIMEOUT_MS } }),
};

describe('delivery: publish on confirm, redeliver until acked, DEAD and one alert when exhausted', { timeout: 120_000 }, () => {
  let rms: TestServer;
  let store: PostgresMessageStore;
  let watcher: QueueWatcher;
  const notifications: Notification[] = [];
  const topics: string[] = [];
  const topic = (name: string) => {
    const t = `${name}.${randomUUID().slice(0, 8)}`;
    topics.push(t);
    return t;
  };

  before(async () => {
    rms = await startTestServer({ env: ENV, notificationSinks: [{ send: async (n) => void notifications.push(n) }] });
    store = new PostgresMessageStore({ url: rms.storeUrl });
    watcher = await QueueWatcher.open();
  });
  after(async () => {
    await rms?.stop();
    await store?.close();
    await watcher?.deleteQueues(topics);
    await watcher?.close();
  });

  async function prepareAndConfirm(t: string, payload: unknown = { n: 1 }, headers: Record<string, string> = {}) {
    const prepared = await rms.call('orders', 'POST', '/v1/messages', { topic: t, payload, headers });
    assert.equal(prepared.status, 201, JSON.stringify(prepared.body));
    const confirmed = await rms.call('orders', 'POST', `/v1/messages/${prepared.body.id}/confirm`);
    assert.equal(confirmed.body.status, 'SENDING');
    return prepared.body.id as string;
  }

  test('confirm publishes to rms.<topic> with the id, attempt and producer headers; ack completes it', async () => {
    const t = topic('deliver');
    const seen: SeenDelivery[] = [];
    await watcher.consume(t, (delivery) => void seen.push(delivery));
    const id = await prepareAndConfirm(t, { sku: 'A-1', qty: 2 }, { 'trace-id': 'tr-1' });
    await waitUntil(() => seen.length >= 1, 'the message reaches the queue');
    const [delivery] = seen;
    assert.ok(delivery);
    assert.equal(delivery.id, id);
    assert.deepEqual(delivery.payload, { sku: 'A-1', qty: 2 });
    assert.equal(delivery.persistent, true);
    assert.equal(delivery.contentType, 'application/json');
    assert.equal(delivery.headers['x-rms-topic'], t);
    assert.equal(delivery.headers['x-rms-attempt'], 1);
    assert.equal(delivery.headers['x-rms-producer'], 'orders');
    assert.equal(delivery.headers['trace-id'], 'tr-1');
    // At least 1: unacked, the round is due again 150 ms later, and a loaded box's poll can
    // miss the moment it stood at exactly 1.
    const recorded = await waitUntil(async () => {
      const m = await store.findById(id);
      return (m?.deliveryAttempts ?? 0) >= 1 ? m : null;
    }, 'the delivery round is recorded');
    assert.equal(recorded.lastTransport, 'rabbitmq');
    const acked = await rms.call('inventory', 'POST', `/v1/messages/${id}/ack`);
    assert.equal(acked.body.status, 'COMPLETED');
  });

  test('a first delivery costs one write: the confirm records round 1, the publish that goes as recorded writes nothing', async () => {
    const t = ONE_WRITE_TOPIC;
    topics.push(t);
    const seen: SeenDelivery[] = [];
    await watcher.consume(t, (delivery) => void seen.push(delivery));
    const id = await prepareAndConfirm(t);
    const confirmed = await store.findById(id);
    assert.ok(confirmed);
    assert.equal(confirmed.version, 1, 'prepare and confirm: two writes');
    assert.equal(confirmed.deliveryAttempts, 1, 'round 1 is recorded by the confirm');
    assert.equal(confirmed.lastTransport, 'rabbitmq');
    assert.deepEqual(confirmed.lastPublishedAt, confirmed.confirmedAt);
    assert.ok(confirmed.nextAttemptAt && confirmed.confirmedAt);
    // The ack deadline: the topic's ack timeout (60 s) and the 1 s publish allowance after the confirm.
    assert.equal(confirmed.nextAttemptAt.getTime() - confirmed.confirmedAt.getTime(), 61_000);
    await waitUntil(() => seen.length >= 1, 'the message reaches the queue');
    assert.equal(seen[0]?.attempt, 1);
    const history = await waitUntil(async () => {
      const events = await store.history(id, 20);
      return events.some((event) => event.type === 'delivery') ? events : null;
    }, 'the publish is in the history');
    assert.deepEqual(history.find((event) => event.type === 'delivery')?.outcome, 'published');
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.deepEqual(await store.findById(id), confirmed, 'the publish wrote nothing to the message');
    const acked = await rms.call('inventory', 'POST', `/v1/messages/${id}/ack`);
    assert.equal(acked.body.status, 'COMPLETED');
    assert.equal((await store.findById(id))?.version, 2, 'prepare, confirm, ack: three writes in all');
  });

  test('an instance that died between the confirm (round 1 recorded) and its publish: the message is published as round 2 at the recorded deadline', async () => {
    const t = topic('crashwindow');
    const seen: { delivery: SeenDelivery; at: number }[] = [];
    await watcher.consume(t, (delivery) => void seen.push({ delivery, at: Date.now() }));
    const prepared = await rms.call('orders', 'POST', '/v1/messages', { topic: t, payload: { n: 1 } });
    const message = await store.findById(prepared.body.id);
    assert.ok(message);
    // What the dead instance's confirm wrote: round 1 recorded, due at its deadline; it never published.
    const at = new Date();
    const deadline = new Date(at.getTime() + 800);
    const delivery = { group: 'default', status: 'SENDING' as const, attempts: 1, nextAttemptAt: deadline, lastTransport: 'rabbitmq' as const, lastError: null, ackedAt: null };
    const confirmed = await store.transition({
      id: message.id,
      from: { status: 'PENDING', deadReason: null },
      to: 'SENDING',
      deadReason: null,
      at,
      version: message.version,
      set: { confirmedAt: at, nextAttemptAt: deadline, lastError: null, deliveries: [delivery], deliveryAttempts: 1, lastTransport: 'rabbitmq', lastPublishedAt: at },
    });
    assert.equal(confirmed?.status, 'SENDING');
    await waitUntil(() => seen.length >= 1, 'the redelivery loop publishes it');
    const [first] = seen;
    assert.ok(first);
    assert.equal(first.delivery.id, message.id);
    assert.equal(first.delivery.attempt, 2, 'the recorded round counts as spent');
    assert.ok(first.at >= deadline.getTime(), `published ${deadline.getTime() - first.at} ms before the recorded deadline`);
    const acked = await rms.call('inventory', 'POST', `/v1/messages/${message.id}/ack`);
    assert.equal(acked.body.status, 'COMPLETED');
  });

  test('a message never acked is redelivered on schedule with x-rms-attempt counting up, then DEAD', async () => {
    const t = topic('unacked');
    const seen: SeenDelivery[] = [];
    await watcher.consume(t, (delivery) => void seen.push(delivery));
    const id = await prepareAndConfirm(t);
    const dead = await waitUntil(async () => {
      const m = await store.findById(id);
      return m?.status === 'DEAD' ? m : null;
    }, 'the message is DEAD');
    assert.equal(dead.deadReason, 'DELIVERY_EXHAUSTED');
    assert.equal(dead.deliveryAttempts, 3);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.deepEqual(seen.map((d) => d.attempt), [1, 2, 3], 'exactly RMS_RETRY_MAX deliveries');
    assert.ok(seen.every((d) => d.id === id));
    // At least one ack deadline (150 ms) between rounds: none early. Timed by RMS's own
    // record of when each round started, not by arrivals at the test's consumer: a loaded
    // box can hand one delivery to the consumer late and the next on time, so arrival gaps
    // fell short of a gap that RMS kept (CI's 2 cores).
    const rounds = await waitUntil(async () => {
      const events = (await store.history(id, 50)).filter((event) => event.type === 'delivery');
      return events.length >= 3 ? events : null;
    }, 'the three rounds are in the history');
    const starts = rounds.map((event) => event.at.getTime()).sort((a, b) => a - b);
    assert.equal(starts.length, 3, 'one history event per round');
    for (let i = 1; i < starts.length; i++) {
      const gap = (starts[i] ?? 0) - (starts[i - 1] ?? 0);
      assert.ok(gap >= 150, `round ${i + 1} started ${gap} ms after the previous one`);
    }
  });

  test('20 messages exhausted on one topic page a person at once, then once more with the count and sample ids of the rest', async () => {
    const t = topic('burst');
    const ids = await Promise.all(Array.from({ length: 20 }, (_, i) => prepareAndConfirm(t, { i })));
    await waitUntil(async () => {
      const page = await store.list({ topic: t, status: 'DEAD', limit: 100 });
      return page.messages.length === 20;
    }, 'all 20 are DEAD');
    const forTopic = () => notifications.filter((n) => n.topic === t);
    // The window is 6 s: the first notification must not wait for it.
    const [first] = await waitUntil(() => (forTopic().length > 0 ? forTopic() : null), 'the first notification arrives', 3000);
    assert.equal(first?.kind, 'first');
    assert.equal(first?.count, 1);
    assert.ok(ids.includes(first?.sampleIds[0] ?? ''));
    const [, followUp] = await waitUntil(() => (forTopic().length > 1 ? forTopic() : null), 'the follow-up arrives when the window closes', 15_000);
    assert.equal(followUp?.kind, 'follow-up');
    assert.equal(followUp?.count, 19);
    assert.equal(followUp?.reason, 'DELIVERY_EXHAUSTED');
    assert.equal(followUp?.sampleIds.length, 10);
    for (const sample of followUp?.sampleIds ?? []) assert.ok(ids.includes(sample) && sample !== first?.sampleIds[0]);
  });

  test('a heartbeat keeps a slow handler from being redelivered under itself', async () => {
    const t = SLOW_TOPIC;
    topics.push(t);
    const seen: SeenDelivery[] = [];
    await watcher.consume(t, (delivery) => void seen.push(delivery));
    const id = await prepareAndConfirm(t);
    await waitUntil(() => seen.length >= 1, 'first delivery');
    // Heartbeat for 2.5 ack deadlines, each extending it by the topic's ack timeout (1 s).
    for (let i = 0; i < 10; i++) {
      const beat = await rms.call('inventory', 'POST', `/v1/messages/${id}/heartbeat`, {});
      assert.equal(beat.status, 200);
      await new Promise((resolve) => setTimeout(resolve, SLOW_ACK_TIMEOUT_MS / 4));
    }
    assert.equal(seen.length, 1, 'no redelivery while the consumer heartbeats');
    await rms.call('inventory', 'POST', `/v1/messages/${id}/ack`);
    const wrongState = await rms.call('inventory', 'POST', `/v1/messages/${(await prepareAndConfirmPending(t)).id}/heartbeat`);
    assert.equal(wrongState.status, 409);
  });

  async function prepareAndConfirmPending(t: string) {
    return (await rms.call('orders', 'POST', '/v1/messages', { topic: t, payload: 1 })).body as { id: string };
  }

  test('admin resend of a dead message delivers it again from attempt 1; resend by topic takes them all', async () => {
    const t = topic('resend');
    const ids = await Promise.all([prepareAndConfirm(t), prepareAndConfirm(t), prepareAndConfirm(t)]);
    await waitUntil(async () => (await store.list({ topic: t, status: 'DEAD', limit: 10 })).messages.length === 3, 'all 3 DEAD');
    await watcher.drain(t);
    const seen: SeenDelivery[] = [];
    await watcher.consume(t, async (delivery) => {
      seen.push(delivery);
      await rms.call('inventory', 'POST', `/v1/messages/${delivery.id}/ack`);
    });
    const single = await rms.call('ops', 'POST', `/v1/messages/${ids[0]}/resend`);
    assert.equal(single.body.status, 'SENDING');
    const byTopic = await rms.call('ops', 'POST', `/v1/topics/${t}/resend`, {});
    assert.equal(byTopic.status, 200);
    assert.equal(byTopic.body.resent, 2);
    await waitUntil(async () => (await store.list({ topic: t, status: 'COMPLETED', limit: 10 })).messages.length === 3, 'all 3 COMPLETED');
    assert.deepEqual(new Set(seen.map((d) => d.id)), new Set(ids));
    // Each message's first delivery after the resend is attempt 1. Later ones may follow: on
    // a loaded box an ack can land after the 150 ms ack timeout, and the round after it is
    // attempt 2 (CI's 2 cores; seen under load as a failure of "every delivery is attempt 1").
    for (const id of ids) assert.equal(seen.find((d) => d.id === id)?.attempt, 1, `attempts were reset for ${id}`);
  });
});
