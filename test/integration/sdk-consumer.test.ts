/**
 * The SDK's consumer side (`subscribe`) against a real RMS, RabbitMQ and Redis: messages
 * are produced through RMS (prepare + confirm as the `orders` app) and consumed as the
 * `inventory` app. RMS runs with a 300 ms ack deadline so redeliveries happen within a
 * test; topics that must not see redeliveries get a 30 s deadline through
 * RMS_TOPIC_SCHEDULES. Every test consumes its own topic and deletes its queue afterwards;
 * RabbitMQ faults come from the TCP fault proxy, never from touching the broker.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test, type TestContext } from 'node:test';
import amqp, { type ChannelModel } from 'amqplib';
import { Redis } from 'ioredis';
import { type Delivery, RmsHttpClient, rabbitMqQueueName, type SdkLogger, type SubscribeOptions, type Subscription, subscribe } from '@rms/client-sdk';
import { brokerBehindProxy, TEST_RABBITMQ_URL } from '../support/rabbitmq.js';
import { startTestServer, TEST_APPS, type TestServer } from '../support/rms-server.js';
import { waitUntil } from '../support/wait.js';

const REDIS_URL = process.env['TEST_REDIS_URL'] ?? process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const ACK_TIMEOUT_MS = 300;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const newTopic = (name: string) => `sdk-consumer.${name}.${randomUUID().slice(0, 8)}`;

// Topics whose messages must not be redelivered while a test runs: a long ack deadline.
const patient = {
  bulk: newTopic('bulk'),
  close: newTopic('close'),
  cut: newTopic('cut'),
  cancel: newTopic('cancel'),
  dup: newTopic('dup'),
  bad: newTopic('bad'),
  nack: newTopic('nack'),
  pause: newTopic('pause'),
};

const ENV = {
  RMS_POLL_INTERVAL_MS: '20',
  RMS_ACK_TIMEOUT_MS: String(ACK_TIMEOUT_MS),
  RMS_RETRY_MAX: '20',
  RMS_CHECK_DELAY_MS: '60000',
  RMS_CHECK_TIMEOUT_MS: '500',
  RMS_PUBLISH_TIMEOUT_MS: '1000',
  RMS_LEASE_MS: '5000',
  RMS_TOPIC_SCHEDULES: JSON.stringify(Object.fromEntries(Object.values(patient).map((topic) => [topic, { ackTimeoutMs: 30_000 }]))),
};

/** A logger that keeps every line, for assertions on what was reported. */
function recordingLogger(): SdkLogger & { lines: { level: string; msg: string; obj: object }[] } {
  const lines: { level: string; msg: string; obj: object }[] = [];
  const at = (level: string) => (obj: object, msg = '') => void lines.push({ level, msg, obj });
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

describe('subscribe: handling, acking and redelivery against a real RMS', { timeout: 60_000 }, () => {
  let rms: TestServer;
  let producer: RmsHttpClient;
  let admin: ChannelModel;
  let redis: Redis;
  const topics: string[] = [];
  const groups: string[] = [];
  const subscriptions: Subscription[] = [];

  const topic = (name: string) => {
    const t = newTopic(name);
    topics.push(t);
    return t;
  };
  const group = () => {
    const g = `g-${randomUUID().slice(0, 8)}`;
    groups.push(g);
    return g;
  };

  before(async () => {
    rms = await startTestServer({ env: ENV });
    producer = new RmsHttpClient({ url: rms.baseUrl, token: TEST_APPS.orders.token });
    admin = await amqp.connect(TEST_RABBITMQ_URL);
    admin.on('error', () => undefined);
    redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    topics.push(...Object.values(patient));
  });
  after(async () => {
    for (const subscription of subscriptions) await subscription.close();
    await rms?.stop();
    const channel = await admin.createChannel();
    channel.on('error', () => undefined);
    for (const t of topics) await channel.deleteQueue(`rms.${t}`).catch(() => undefined);
    await admin.close().catch(() => undefined);
    for (const g of groups) {
      const keys = await redis.keys(`rms:idem:${g}:*`);
      if (keys.length > 0) await redis.del(...keys);
    }
    await redis.quit();
  });

  async function produce(t: string, payload: unknown = { n: 1 }): Promise<string> {
    const prepared = await producer.prepare(t, payload);
    await producer.confirm(prepared.id);
    return prepared.id;
  }

  async function consume<T>(t: string, handler: (delivery: Delivery<T>) => Promise<void>, extra: Partial<SubscribeOptions> = {}): Promise<Subscription> {
    const subscription = await subscribe<T>(t, handler, {
      rms: { url: rms.baseUrl, token: TEST_APPS.inventory.token },
      amqpUrl: TEST_RABBITMQ_URL,
      group: group(),
      ...extra,
    });
    subscriptions.push(subscription);
    return subscription;
  }

  async function message(id: string): Promise<{ status: string; deliveryAttempts: number }> {
    const answer = await rms.call('ops', 'GET', `/v1/messages/${id}`);
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    return answer.body;
  }

  /** The queue's counts, or null when it does not exist (a failed check closes its channel, hence one per call). */
  async function queueInfo(t: string): Promise<{ messageCount: number; consumerCount: number } | null> {
    const channel = await admin.createChannel();
    channel.on('error', () => undefined);
    try {
      return await channel.checkQueue(`rms.${t}`);
    } catch {
      return null;
    } finally {
      await channel.close().catch(() => undefined);
    }
  }

  const completed = (id: string, timeoutMs = 10_000) =>
    waitUntil(async () => (await message(id)).status === 'COMPLETED', `message ${id} is COMPLETED`, timeoutMs);

  test('100 messages: the handler runs once per message, all end COMPLETED, and the acks go out in batches', async () => {
    const t = patient.bulk;
    const calls = new Map<string, number>();
    const subscription = await consume<{ n: number }>(
      t,
      async (delivery) => {
        calls.set(delivery.id, (calls.get(delivery.id) ?? 0) + 1);
        await sleep(5);
      },
      { concurrency: 16, ackBatchMs: 20 },
    );
    const ids: string[] = [];
    for (let start = 0; start < 100; start += 20) {
      ids.push(...(await Promise.all(Array.from({ length: 20 }, (_, i) => produce(t, { n: start + i })))));
    }
    await waitUntil(() => subscription.stats().acked === 100, 'all 100 acks are taken by RMS', 20_000);
    assert.deepEqual(new Set(calls.keys()), new Set(ids));
    assert.ok([...calls.values()].every((n) => n === 1), 'every message was handled exactly once');
    const listed = await rms.call('ops', 'GET', `/v1/messages?topic=${t}&status=COMPLETED&limit=500`);
    assert.equal(listed.body.messages.length, 100);
    const stats = subscription.stats();
    assert.equal(stats.handled, 100);
    assert.equal(stats.failed, 0);
    assert.ok(stats.ackRequests <= 50, `acks were batched: ${stats.ackRequests} POST /v1/acks for 100 messages`);
  });

  test("a delivery carries the producer's messageId when it gave one, and none when it prepared over plain HTTP without one", async () => {
    const t = topic('message-id');
    const seen = new Map<string, string | undefined>();
    await consume(t, async (delivery) => void seen.set(delivery.id, delivery.messageId));
    const keyed = await producer.prepare(t, { n: 1 }, { messageId: 'order-77' });
    await producer.confirm(keyed.id);
    const bare = await rms.call('orders', 'POST', '/v1/messages', { topic: t, payload: { n: 2 } });
    assert.equal(bare.status, 201);
    assert.equal(bare.body.messageId, null);
    await producer.confirm(bare.body.id);
    await waitUntil(() => seen.size === 2, 'both messages are handled');
    assert.equal(seen.get(keyed.id), 'order-77');
    assert.ok(seen.has(bare.body.id));
    assert.equal(seen.get(bare.body.id), undefined);
  });

  test('a failing handler: the failure is reported to RMS (a nack), which redelivers at once with the next attempt, not a broker requeue; it completes', async () => {
    const t = topic('retry');
    const seen: { attempt: number; at: number }[] = [];
    const logger = recordingLogger();
    const subscription = await consume(
      t,
      async (delivery) => {
        seen.push({ attempt: delivery.attempt, at: Date.now() });
        if (delivery.attempt < 3) throw new Error(`attempt ${delivery.attempt} fails on purpose`);
      },
      { logger },
    );
    const id = await produce(t);
    await completed(id);
    await sleep(2 * ACK_TIMEOUT_MS); // nothing else may arrive
    assert.deepEqual(
      seen.map((s) => s.attempt),
      [1, 2, 3],
      'each delivery came from RMS (attempt counts up), none from a broker requeue (same attempt again)',
    );
    assert.deepEqual(
      { handled: subscription.stats().handled, failed: subscription.stats().failed, acked: subscription.stats().acked },
      { handled: 1, failed: 2, acked: 1 },
    );
    const history = await rms.call('ops', 'GET', `/v1/messages/${id}/history`);
    const failures = history.body.events.filter((e: { type: string }) => e.type === 'consumer-failure');
    assert.deepEqual(
      failures.map((e: { app: string; attempt: number; reason: string }) => [e.app, e.attempt, e.reason]),
      [
        ['inventory', 1, 'Error: attempt 1 fails on purpose'],
        ['inventory', 2, 'Error: attempt 2 fails on purpose'],
      ],
      'RMS holds each failure with the error message',
    );
    assert.equal(logger.lines.filter((line) => line.level === 'warn' && line.msg.startsWith('handler failed')).length, 2, 'each failure is logged');
  });

  test('a failure is reported at once: on a topic with a 30 s ack deadline the next delivery still comes within a moment; without a logger, it is logged to stderr', async (t: TestContext) => {
    const written: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    t.mock.method(process.stderr, 'write', (chunk: string | Uint8Array, ...rest: never[]) => {
      if (String(chunk).includes('handler failed')) return written.push(String(chunk)) > 0;
      return write(chunk, ...rest);
    });
    const seen: number[] = [];
    await consume(patient.nack, async (delivery) => {
      seen.push(delivery.attempt);
      if (delivery.attempt === 1) throw new TypeError('x'.repeat(5000));
    });
    const id = await produce(patient.nack);
    await completed(id, 5000);
    assert.deepEqual(seen, [1, 2]);
    assert.equal(written.length, 1, 'the default logger is not silent about a failing handler');
    const line = JSON.parse(written[0] as string);
    assert.deepEqual([line.level, line.id, line.attempt, line.err.name], ['warn', id, 1, 'TypeError']);
    const { body } = await rms.call('ops', 'GET', `/v1/messages/${id}/history`);
    const failure = body.events.find((e: { type: string }) => e.type === 'consumer-failure');
    assert.equal(failure.reason.length, 1000, 'a long error message is cut to what RMS takes');
    assert.ok(failure.reason.startsWith('TypeError: xxx') && failure.reason.endsWith('…'));
  });

  test('a handler error carrying retryAfterMs asks RMS to wait that long before the next delivery', async () => {
    const seen: number[] = [];
    await consume(
      patient.pause,
      async (delivery) => {
        seen.push(delivery.attempt);
        throw Object.assign(new Error('rate limited downstream'), { retryAfterMs: 60_000 });
      },
      { logger: recordingLogger() },
    );
    const id = await produce(patient.pause);
    const failed = await waitUntil(async () => {
      const m = (await rms.call('ops', 'GET', `/v1/messages/${id}`)).body;
      return m.lastError ? m : null;
    }, 'the failure reached RMS');
    assert.equal(failed.lastError, 'consumer inventory: Error: rate limited downstream');
    const due = Date.parse(failed.nextAttemptAt) - Date.parse(failed.updatedAt);
    assert.ok(due >= 59_000 && due <= 61_000, `next delivery about 60 s later, got ${due} ms`);
    assert.deepEqual(seen, [1]);
  });

  test('a slow handler that sends heartbeats is not redelivered while it runs', async () => {
    const t = topic('slow-hb');
    let calls = 0;
    await consume(t, async () => {
      calls += 1;
      await sleep(4 * ACK_TIMEOUT_MS);
    }, { heartbeatIntervalMs: 80 });
    const id = await produce(t);
    await completed(id);
    await sleep(ACK_TIMEOUT_MS);
    assert.equal(calls, 1);
    assert.equal((await message(id)).deliveryAttempts, 1, 'RMS published it once');
  });

  test('a slow handler without heartbeats is redelivered under itself', async () => {
    const t = topic('slow-nohb');
    let calls = 0;
    await consume(t, async () => {
      calls += 1;
      await sleep(4 * ACK_TIMEOUT_MS);
    }, { heartbeatIntervalMs: 0, concurrency: 4 });
    const id = await produce(t);
    await completed(id);
    assert.ok(calls >= 2, `the handler ran ${calls} times`);
    assert.ok((await message(id)).deliveryAttempts >= 2);
  });

  test('with Redis idempotency, a redelivery of a message still running is skipped: the handler runs once', async () => {
    const t = topic('slow-idem');
    let calls = 0;
    const subscription = await consume(t, async () => {
      calls += 1;
      await sleep(4 * ACK_TIMEOUT_MS);
    }, { heartbeatIntervalMs: 0, concurrency: 4, idempotency: { redis } });
    const id = await produce(t);
    await completed(id);
    await sleep(ACK_TIMEOUT_MS);
    assert.equal(calls, 1);
    assert.ok((await message(id)).deliveryAttempts >= 2, 'RMS did redeliver');
    const stats = subscription.stats();
    assert.ok(stats.inProgressSkipped + stats.duplicatesSkipped >= 1, JSON.stringify(stats));
    assert.equal(stats.handled, 1);
  });

  test('with Redis idempotency, two workers of one group sharing the queue run each message once despite redeliveries', async () => {
    const t = topic('idem-group');
    const calls = new Map<string, number>();
    const handler = async (delivery: Delivery) => {
      calls.set(delivery.id, (calls.get(delivery.id) ?? 0) + 1);
      await sleep(3 * ACK_TIMEOUT_MS); // the ack is withheld past the deadline: RMS redelivers
    };
    const g = group();
    const options = { heartbeatIntervalMs: 0, concurrency: 8, idempotency: { redis }, group: g };
    const one = await consume(t, handler, options);
    const two = await consume(t, handler, options);
    const ids = await Promise.all(Array.from({ length: 6 }, (_, n) => produce(t, { n })));
    for (const id of ids) await completed(id);
    await sleep(ACK_TIMEOUT_MS);
    assert.deepEqual(new Set(calls.keys()), new Set(ids));
    assert.deepEqual([...calls.values()], ids.map(() => 1), 'each message ran once in the group');
    const skipped = [one, two].reduce((sum, s) => sum + s.stats().inProgressSkipped + s.stats().duplicatesSkipped, 0);
    assert.ok(skipped >= 1, `redeliveries were skipped (${skipped})`);
    for (const id of ids) assert.ok((await message(id)).deliveryAttempts >= 2, 'RMS redelivered every message');
  });

  test('a copy of a message the group already finished is skipped as a duplicate, acked again and not handled', async () => {
    const t = patient.dup;
    let calls = 0;
    const subscription = await consume(t, async () => void (calls += 1), { idempotency: { redis } });
    const id = await produce(t, { sku: 'A' });
    await completed(id);
    await waitUntil(() => subscription.stats().acked === 1, 'the first delivery is acked');
    // The broker hands out a second copy (as after a requeue, or a redelivery racing the ack).
    const channel = await admin.createConfirmChannel();
    channel.publish('rms', rabbitMqQueueName(t), Buffer.from(JSON.stringify({ sku: 'A' })), { messageId: id, headers: { 'x-rms-attempt': 2, 'x-rms-producer': 'orders' } });
    await channel.waitForConfirms();
    await channel.close();
    await waitUntil(() => subscription.stats().duplicatesSkipped === 1, 'the copy is recognised as a duplicate');
    await waitUntil(() => subscription.stats().acked === 2, 'the duplicate is acked to RMS again');
    assert.equal(calls, 1);
    await waitUntil(async () => (await queueInfo(t))?.messageCount === 0, 'the copy left the queue');
  });

  test('deliveries with a body that is not JSON or without a messageId are rejected and logged; consuming goes on', async () => {
    const t = patient.bad;
    const logger = recordingLogger();
    const handled: string[] = [];
    await consume(t, async (delivery) => void handled.push(delivery.id), { logger });
    const channel = await admin.createConfirmChannel();
    channel.publish('rms', rabbitMqQueueName(t), Buffer.from('not json {'), { messageId: 'bad-body' });
    channel.publish('rms', rabbitMqQueueName(t), Buffer.from('{"ok":true}'), {});
    await channel.waitForConfirms();
    await channel.close();
    const id = await produce(t);
    await completed(id);
    assert.deepEqual(handled, [id]);
    const rejected = logger.lines.filter((line) => line.level === 'error' && line.msg.startsWith('rejected a RabbitMQ delivery'));
    assert.deepEqual(rejected.map((line) => line.msg).sort(), ['rejected a RabbitMQ delivery because it has no messageId', 'rejected a RabbitMQ delivery because its body is not JSON']);
    assert.equal((await queueInfo(t))?.messageCount, 0, 'rejected deliveries are not requeued');
  });

  test('deliveries RMS will not ack (unknown id, cancelled message, malformed id) are rejected with the reason; their batch-mates are acked', async () => {
    const t = topic('refused');
    const logger = recordingLogger();
    const arrived: string[] = [];
    let allArrived: () => void = () => undefined;
    const barrier = new Promise<void>((resolve) => (allArrived = resolve));
    const subscription = await consume(
      t,
      async (delivery) => {
        arrived.push(delivery.id);
        if (arrived.length === 4) allArrived();
        await barrier; // all four acks then share one batch
      },
      { logger, ackBatchMs: 50 },
    );
    const cancelled = await producer.prepare(t, { n: 0 });
    await producer.cancel(cancelled.id);
    const unknown = randomUUID();
    const channel = await admin.createConfirmChannel();
    for (const id of [unknown, cancelled.id, 'not-a-uuid']) {
      channel.publish('rms', rabbitMqQueueName(t), Buffer.from('{}'), { messageId: id, headers: { 'x-rms-attempt': 1, 'x-rms-producer': 'orders' } });
    }
    await channel.waitForConfirms();
    await channel.close();
    const real = await produce(t);
    await completed(real);
    await waitUntil(() => logger.lines.filter((line) => line.msg === 'RMS did not take the ack; rejecting the delivery').length >= 3, 'three acks are refused');
    const refused = Object.fromEntries(
      logger.lines
        .filter((line) => line.msg === 'RMS did not take the ack; rejecting the delivery')
        .map((line) => [(line.obj as { id: string }).id, (line.obj as { code: string }).code]),
    );
    assert.deepEqual(Object.keys(refused).sort(), [unknown, cancelled.id, 'not-a-uuid'].sort(), 'only those three were refused');
    assert.equal(refused[unknown], 'NOT_FOUND');
    assert.equal(refused[cancelled.id], 'STATE_CONFLICT');
    assert.ok(refused['not-a-uuid'], 'the malformed id is refused on its own');
    assert.equal(subscription.stats().acked, 1);
    assert.equal((await message(cancelled.id)).status, 'CANCELLED');
    await waitUntil(async () => (await queueInfo(t))?.messageCount === 0, 'refused deliveries are rejected, not requeued');
  });

  test('close() while handlers run waits for them and sends their acks before it resolves', async () => {
    const t = patient.close;
    let started = 0;
    let finished = 0;
    const subscription = await subscribe(t, async () => {
      started += 1;
      await sleep(500);
      finished += 1;
    }, {
      rms: { url: rms.baseUrl, token: TEST_APPS.inventory.token },
      amqpUrl: TEST_RABBITMQ_URL,
      group: group(),
      ackBatchMs: 10_000, // only close() can get these acks out in time
    });
    const ids = await Promise.all(Array.from({ length: 4 }, (_, n) => produce(t, { n })));
    await waitUntil(() => started === 4, 'all four handlers run');
    const closing = Date.now();
    await subscription.close();
    const tookMs = Date.now() - closing;
    assert.equal(finished, 4, 'close waited for the handlers');
    assert.ok(tookMs < 5000, `close took ${tookMs} ms: it must not wait out the ack batch window`);
    for (const id of ids) assert.equal((await message(id)).status, 'COMPLETED', 'the acks went out before close resolved');
    assert.equal(subscription.stats().acked, 4);
    const extra = await produce(t);
    await sleep(300);
    assert.equal(started, 4, 'a closed subscription takes no more deliveries');
    assert.equal((await message(extra)).status, 'SENDING');
  });

  test('a cut RabbitMQ connection: the consumer reconnects by itself and keeps consuming, without crashing', async (t: TestContext) => {
    const topicName = patient.cut;
    const { proxy, url: throughUrl } = await brokerBehindProxy(t);
    const logger = recordingLogger();
    const handled = new Map<string, number>();
    const gate: { release?: () => void } = {};
    const subscription = await consume<{ n: number }>(
      topicName,
      async (delivery) => {
        handled.set(delivery.id, (handled.get(delivery.id) ?? 0) + 1);
        if (delivery.payload.n === 1 && handled.get(delivery.id) === 1) {
          // Still running when the connection is cut: its broker ack lands on a dead channel.
          await new Promise<void>((resolve) => (gate.release = resolve));
        }
      },
      { amqpUrl: throughUrl, logger },
    );
    const first = await produce(topicName, { n: 0 });
    await completed(first);
    const slow = await produce(topicName, { n: 1 });
    await waitUntil(() => gate.release !== undefined, 'a handler is in flight');
    proxy.cut();
    await waitUntil(() => logger.lines.some((line) => line.msg === 'lost the RabbitMQ consumer; reconnecting'), 'the loss is noticed');
    const duringOutage = await Promise.all([produce(topicName, { n: 2 }), produce(topicName, { n: 3 })]);
    await sleep(700);
    proxy.restore();
    await waitUntil(() => logger.lines.some((line) => line.msg === 'consuming from RabbitMQ again'), 'the consumer says it is back', 15_000);
    // The handler from before the cut finishes now, on a new channel's watch: its broker ack
    // must not go to the new channel, where its delivery tag means nothing (or another message).
    gate.release?.();
    for (const id of [slow, ...duringOutage]) await completed(id, 15_000);
    const after = await produce(topicName, { n: 4 });
    await completed(after);
    assert.ok(duringOutage.every((id) => handled.has(id)) && handled.has(after));
    const losses = logger.lines.filter((line) => line.msg === 'lost the RabbitMQ consumer; reconnecting');
    assert.equal(losses.length, 1, 'the new channel was never closed by the broker (no stale delivery tag acked on it)');
    assert.ok(subscription.stats().acked >= 5);
  });

  test('the broker cancelling the consumer (its queue was deleted) makes it declare the queue and consume again', async () => {
    const t = patient.cancel;
    const logger = recordingLogger();
    const handled: string[] = [];
    await consume(t, async (delivery) => void handled.push(delivery.id), { logger });
    const channel = await admin.createChannel();
    await channel.deleteQueue(`rms.${t}`);
    await channel.close();
    await waitUntil(() => logger.lines.some((line) => line.msg.startsWith('RabbitMQ cancelled the consumer')), 'the cancel notification arrives');
    await waitUntil(async () => (await queueInfo(t))?.consumerCount === 1, 'the queue is back with our consumer');
    const id = await produce(t);
    await completed(id);
    assert.deepEqual(handled, [id]);
  });
});
