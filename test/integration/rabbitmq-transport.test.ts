/**
 * The RabbitMQ transport against the real broker, with outages injected by the TCP fault
 * proxy (the broker itself is never stopped or reconfigured). Every test publishes to its
 * own topic and deletes its queues afterwards.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test, type TestContext } from 'node:test';
import amqp, { type Channel, type ChannelModel, type GetMessage } from 'amqplib';
import {
  RabbitMqTransport,
  TransportError,
  groupQueueName,
  rabbitMqQueueName,
  type OutgoingMessage,
  type RabbitMqTransportOptions,
} from '@rms/client-sdk';
import { EventLoopLag } from '../support/event-loop-lag.js';
import { brokerBehindProxy, TEST_RABBITMQ_URL } from '../support/rabbitmq.js';
import { waitUntil } from '../support/wait.js';

/** A separate connection that inspects and deletes queues, as an operator would. */
let admin: ChannelModel;

async function withChannel<T>(work: (channel: Channel) => Promise<T>): Promise<T> {
  // A fresh channel per call: a failed check (e.g. NOT_FOUND) closes the channel it ran on.
  const channel = await admin.createChannel();
  channel.on('error', () => undefined);
  try {
    return await work(channel);
  } finally {
    await channel.close().catch(() => undefined);
  }
}

/** Messages in the topic's queue, or `undefined` when the queue does not exist. */
function queueDepth(topic: string): Promise<number | undefined> {
  return withChannel(async (channel) => (await channel.checkQueue(rabbitMqQueueName(topic))).messageCount).catch(() => undefined);
}

/** Takes everything in the topic's queue. */
function takeAll(topic: string, queue: string = rabbitMqQueueName(topic)): Promise<GetMessage[]> {
  return withChannel(async (channel) => {
    const taken: GetMessage[] = [];
    for (;;) {
      const message = await channel.get(queue, { noAck: true });
      if (message === false) return taken;
      taken.push(message);
    }
  });
}

/** A fresh topic whose queue is deleted when the test ends. */
function newTopic(t: TestContext): string {
  const topic = `t.${randomUUID()}`;
  t.after(() => withChannel((channel) => channel.deleteQueue(rabbitMqQueueName(topic))));
  return topic;
}

/** A transport closed when the test ends. */
function newTransport(t: TestContext, options: Partial<RabbitMqTransportOptions> = {}): RabbitMqTransport {
  const transport = new RabbitMqTransport({ url: TEST_RABBITMQ_URL, connectionName: `rms-test ${t.name}`, ...options });
  t.after(() => transport.close());
  return transport;
}

/** A fault proxy in front of the broker, closed when the test ends, and its AMQP URL. */
const newProxy = brokerBehindProxy;

function message(topic: string, overrides: Partial<OutgoingMessage> = {}): OutgoingMessage {
  return { id: randomUUID(), topic, payload: { n: 1 }, headers: {}, attempt: 1, producer: 'orders', ...overrides };
}

/** Settles `promise`, noting how long it took; fails the test if it takes longer than `limitMs`. */
async function timed<T>(promise: Promise<T>, limitMs: number): Promise<{ ms: number; lagMs: number; result: PromiseSettledResult<T> }> {
  const started = Date.now();
  // How long this process could not run meanwhile: a bound on `ms` excuses that, and only that.
  const lag = EventLoopLag.start();
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still pending after ${limitMs} ms`)), limitMs);
  });
  try {
    const [result] = await Promise.race([Promise.allSettled([promise]), hung]);
    return { ms: Date.now() - started, lagMs: lag.stop(), result: result! };
  } finally {
    lag.stop();
    clearTimeout(timer);
  }
}

/** Asserts the settled result is a `TransportError` with one of `codes`, and returns it. */
function assertTransportError(result: PromiseSettledResult<unknown>, codes: string[]): TransportError {
  assert.equal(result.status, 'rejected', 'the publish should have failed');
  const error = (result as PromiseRejectedResult).reason;
  assert.ok(error instanceof TransportError, `expected a TransportError, got ${String(error)}`);
  assert.equal(error.transport, 'rabbitmq');
  assert.ok(codes.includes(error.code), `expected one of ${codes.join(', ')}, got ${error.code}: ${error.message}`);
  return error;
}

/** Publishes until one gets through (the transport reconnects on demand), failing after `timeoutMs`. */
async function publishUntilAccepted(transport: RabbitMqTransport, outgoing: () => OutgoingMessage, timeoutMs = 4000): Promise<string> {
  return waitUntil(
    async () => {
      const next = outgoing();
      try {
        await transport.publish(next);
        return next.id;
      } catch (error) {
        assert.ok(error instanceof TransportError, `only TransportErrors while reconnecting, got ${String(error)}`);
        return undefined;
      }
    },
    'a publish gets through again',
    timeoutMs,
    50,
  );
}

describe('RabbitMQ transport', () => {
  before(async () => {
    admin = await amqp.connect(TEST_RABBITMQ_URL);
    admin.on('error', () => undefined);
  });
  after(async () => {
    await admin.close().catch(() => undefined);
  });

  test('a delivery to several groups is one publish copied into each group\'s queue; a delivery to one group reaches only its queue', async (t) => {
    const topic = newTopic(t);
    const queues = ['inventory', 'loyalty', 'shipping'].map((group) => groupQueueName(topic, group));
    t.after(() => withChannel(async (channel) => void (await Promise.all(queues.map((queue) => channel.deleteQueue(queue))))));
    const transport = newTransport(t);
    const first = message(topic, { groups: ['inventory', 'loyalty', 'shipping'] });
    await transport.publish(first);
    for (const queue of queues) {
      const taken = await takeAll(topic, queue);
      assert.deepEqual(taken.map((m) => m.properties.messageId), [first.id], `${queue} holds the one copy`);
      assert.equal(taken[0]?.properties.headers?.['BCC'], undefined, 'the blind copies are not shown to consumers');
    }
    const redelivery = message(topic, { groups: ['loyalty'], attempt: 2 });
    await transport.publish(redelivery);
    assert.deepEqual((await takeAll(topic, queues[1])).map((m) => m.properties.messageId), [redelivery.id]);
    assert.deepEqual(await takeAll(topic, queues[0]), [], 'a group that acked gets no redelivery');
    assert.deepEqual(await takeAll(topic, queues[2]), []);
    await assert.rejects(
      withChannel((channel) => channel.checkQueue(rabbitMqQueueName(topic))),
      /NOT_FOUND/,
      'the default group\'s shared queue is not even declared',
    );
  });

  test('two deployments with different queue prefixes on one broker and exchange never see each other\'s deliveries', async (t) => {
    const topic = newTopic(t);
    const other = new RabbitMqTransport({ url: TEST_RABBITMQ_URL, queuePrefix: 'rms-b.', confirmTimeoutMs: 2000, connectTimeoutMs: 2000 });
    t.after(async () => {
      await other.close();
      await withChannel((channel) => channel.deleteQueue(groupQueueName(topic, 'inventory', 'rms-b.')));
    });
    t.after(() => withChannel((channel) => channel.deleteQueue(groupQueueName(topic, 'inventory'))));
    const transport = newTransport(t);
    const ours = message(topic, { groups: ['inventory'] });
    const theirs = message(topic, { groups: ['inventory'] });
    await transport.publish(ours);
    await other.publish(theirs);
    assert.deepEqual((await takeAll(topic, groupQueueName(topic, 'inventory'))).map((m) => m.properties.messageId), [ours.id]);
    assert.deepEqual((await takeAll(topic, groupQueueName(topic, 'inventory', 'rms-b.'))).map((m) => m.properties.messageId), [theirs.id]);
  });

  test('a published message is in rms.<topic> with its id, JSON body, persistence, content type and x-rms headers', async (t) => {
    const topic = newTopic(t);
    const transport = newTransport(t);
    const outgoing = message(topic, {
      payload: { orderId: 'o-1', amount: 12.5, items: ['a', 'b'] },
      headers: { 'trace-id': 'abc', tenant: 't1' },
      attempt: 3,
      producer: 'orders',
    });

    await transport.publish(outgoing);

    const [received, ...rest] = await takeAll(topic);
    assert.equal(rest.length, 0);
    assert.ok(received);
    assert.equal(received.fields.exchange, 'rms');
    // Each queue is bound under its own name, so the routing key is the queue's name.
    assert.equal(received.fields.routingKey, rabbitMqQueueName(topic));
    assert.equal(received.properties.messageId, outgoing.id);
    assert.equal(received.properties.contentType, 'application/json');
    assert.equal(received.properties.deliveryMode, 2);
    assert.equal(typeof received.properties.timestamp, 'number');
    assert.deepEqual(received.properties.headers, {
      'trace-id': 'abc',
      tenant: 't1',
      'x-rms-topic': topic,
      'x-rms-attempt': 3,
      'x-rms-producer': 'orders',
    });
    assert.deepEqual(JSON.parse(received.content.toString('utf8')), outgoing.payload);
  });

  test('the queue is declared before the first publish: 500 concurrent publishes to a never-seen topic all resolve and all are queued', async (t) => {
    const topic = newTopic(t);
    const transport = newTransport(t);
    assert.equal(await queueDepth(topic), undefined, 'the queue does not exist before the first publish');

    await Promise.all(Array.from({ length: 500 }, (_, n) => transport.publish(message(topic, { payload: { n } }))));

    assert.equal(await queueDepth(topic), 500);
  });

  test('publishes beyond the channel write buffer wait for drain and are all confirmed', async (t) => {
    const topic = newTopic(t);
    const transport = newTransport(t);
    // More than amqplib's channel buffer (1024 frames) in one tick, so publish() returns false.
    const count = 3000;
    const { result } = await timed(
      Promise.all(Array.from({ length: count }, (_, n) => transport.publish(message(topic, { payload: { n } })))),
      10_000,
    );
    assert.equal(result.status, 'fulfilled');
    assert.equal(await queueDepth(topic), count);
  });

  test('concurrent first publishes share one connection', async (t) => {
    const topic = newTopic(t);
    const { proxy, url } = await newProxy(t);
    const transport = newTransport(t, { url });

    await Promise.all(Array.from({ length: 50 }, () => transport.publish(message(topic))));

    assert.equal(proxy.connectionCount, 1);
  });

  test('a broker nack is reported as NACKED, and the channel keeps publishing', async (t) => {
    const full = newTopic(t);
    const open = newTopic(t);
    // Queues of one message that reject publishes beyond it; `full` already holds one, so
    // the broker nacks what is published to it, while `open` still takes one.
    const queueArguments = { 'x-max-length': 1, 'x-overflow': 'reject-publish' };
    await withChannel(async (channel) => {
      for (const topic of [full, open]) await channel.assertQueue(rabbitMqQueueName(topic), { durable: true, arguments: queueArguments });
      channel.sendToQueue(rabbitMqQueueName(full), Buffer.from('{}'));
    });
    await waitUntil(async () => (await queueDepth(full)) === 1, 'the full queue holds its one message', 2000);
    const transport = newTransport(t, { queueArguments });

    const { result } = await timed(transport.publish(message(full)), 3000);

    const error = assertTransportError(result, ['NACKED']);
    assert.ok(error.cause instanceof Error, 'the nack is attached as the cause');
    await transport.publish(message(open));
    assert.equal(await queueDepth(open), 1);
  });

  test('a queue declared elsewhere with other arguments fails its publish with CHANNEL_CLOSED, and other topics keep publishing', async (t) => {
    const mismatched = newTopic(t);
    const fine = newTopic(t);
    await withChannel((channel) => channel.assertQueue(rabbitMqQueueName(mismatched), { durable: true, arguments: { 'x-max-length': 5 } }));
    const { proxy, url } = await newProxy(t);
    const transport = newTransport(t, { url });

    // The broker answers the declaration with PRECONDITION_FAILED and closes the channel.
    const { result } = await timed(transport.publish(message(mismatched)), 3000);
    const error = assertTransportError(result, ['CHANNEL_CLOSED']);
    assert.match(String((error.cause as Error | undefined)?.message), /PRECONDITION_FAILED/);

    await transport.publish(message(fine));
    assert.equal(await queueDepth(fine), 1);
    assert.equal(proxy.connectionCount, 1, 'a new channel on the same connection, not a new connection');
  });

  test('a cut connection makes publishes fail fast with a TransportError, and after restore publishing works again', async (t) => {
    const topic = newTopic(t);
    const { proxy, url } = await newProxy(t);
    // A long confirm timeout, so failing fast cannot be the timeout's doing.
    const transport = newTransport(t, { url, confirmTimeoutMs: 3000, connectTimeoutMs: 1000, reconnectDelayMs: 100 });
    await transport.publish(message(topic));

    proxy.cut();
    // Across the loss, the back-off and a failed reconnect: each one fails, and fast.
    for (let i = 0; i < 5; i++) {
      const { ms, lagMs, result } = await timed(transport.publish(message(topic)), 3000);
      assertTransportError(result, ['CHANNEL_CLOSED', 'UNAVAILABLE']);
      assert.ok(ms < 1000 + lagMs, `publish ${i} failed after ${ms} ms (event loop held up ${lagMs} ms at most), not quickly`);
      await new Promise((resolve) => setTimeout(resolve, 40));
    }

    proxy.restore();
    const id = await publishUntilAccepted(transport, () => message(topic));
    const queued = (await takeAll(topic)).map((m) => m.properties.messageId);
    assert.ok(queued.includes(id), 'the publish after restore is in the queue');
  });

  test('a stalled broker fails a publish with CONFIRM_TIMEOUT or UNAVAILABLE within about confirmTimeoutMs, and publishing resumes after restore', async (t) => {
    const topic = newTopic(t);
    const { proxy, url } = await newProxy(t);
    const transport = newTransport(t, { url, confirmTimeoutMs: 300, connectTimeoutMs: 500, reconnectDelayMs: 100 });
    await transport.publish(message(topic));

    proxy.stall();
    const first = await timed(transport.publish(message(topic)), 3000);
    assertTransportError(first.result, ['CONFIRM_TIMEOUT']);
    assert.ok(first.ms >= 250 && first.ms < 1000 + first.lagMs, `the stalled publish failed after ${first.ms} ms (event loop held up ${first.lagMs} ms at most)`);
    // The stalled connection was dropped; a new one cannot open through the stall either.
    const second = await timed(transport.publish(message(topic)), 3000);
    assertTransportError(second.result, ['CONFIRM_TIMEOUT', 'UNAVAILABLE']);
    assert.ok(second.ms < 1000 + second.lagMs, `the next publish failed after ${second.ms} ms (event loop held up ${second.lagMs} ms at most)`);

    proxy.restore();
    const id = await publishUntilAccepted(transport, () => message(topic));
    const queued = (await takeAll(topic)).map((m) => m.properties.messageId);
    assert.ok(queued.includes(id), 'the publish after restore is in the queue');
    await waitUntil(() => proxy.connectionCount === 1, `only the live connection is left (have ${proxy.connectionCount})`, 3000);
  });

  test('a cut in the middle of 200 concurrent publishes: each resolves or rejects with a TransportError, and every resolved one is queued', async (t) => {
    const topic = newTopic(t);
    const { proxy, url } = await newProxy(t);
    const transport = newTransport(t, { url, confirmTimeoutMs: 1000, connectTimeoutMs: 1000, reconnectDelayMs: 100 });
    await transport.publish(message(topic)); // the queue is declared: the waves only publish
    // 10 ms each way, so a confirm takes 20 ms and several waves are unconfirmed at the cut.
    proxy.delay(10);

    // 20 waves of 10, 5 ms apart, cut right after the 10th is issued: some are confirmed
    // before the cut, some are on the wire or awaiting their confirm, some start after it.
    const outcomes: Promise<{ id: string; result: PromiseSettledResult<unknown> }>[] = [];
    for (let wave = 0; wave < 20; wave++) {
      for (let i = 0; i < 10; i++) {
        const outgoing = message(topic, { payload: { wave, i } });
        outcomes.push(timed(transport.publish(outgoing), 5000).then(({ result }) => ({ id: outgoing.id, result })));
      }
      if (wave === 9) proxy.cut();
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const settled = await Promise.all(outcomes);

    const confirmed = settled.filter((o) => o.result.status === 'fulfilled').map((o) => o.id);
    const failed = settled.filter((o) => o.result.status === 'rejected');
    for (const { result } of failed) assertTransportError(result, ['CHANNEL_CLOSED', 'UNAVAILABLE', 'CONFIRM_TIMEOUT']);
    assert.ok(confirmed.length > 0, 'some publishes were confirmed before the cut');
    assert.ok(failed.length > 0, 'the cut failed some publishes');
    assert.equal(confirmed.length + failed.length, 200);

    proxy.restore();
    const queued = new Set((await takeAll(topic)).map((m) => m.properties.messageId));
    const lost = confirmed.filter((id) => !queued.has(id));
    assert.deepEqual(lost, [], 'every confirmed publish is in the queue');
  });

  test('close() is idempotent, fails publishes in flight and later ones with CLOSED, and does not hang on a stalled broker', async (t) => {
    const topic = newTopic(t);
    const { proxy, url } = await newProxy(t);
    const transport = newTransport(t, { url, confirmTimeoutMs: 5000, connectTimeoutMs: 500 });
    await transport.publish(message(topic));

    proxy.stall();
    const inFlight = timed(transport.publish(message(topic)), 3000);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const closing = timed(Promise.all([transport.close(), transport.close()]), 3000);

    assertTransportError((await inFlight).result, ['CLOSED']);
    const closed = await closing;
    assert.equal(closed.result.status, 'fulfilled');
    assert.ok(closed.ms < 1500 + closed.lagMs, `close() took ${closed.ms} ms (event loop held up ${closed.lagMs} ms at most; the confirm timeout is 5 s)`);
    await transport.close();
    assertTransportError((await timed(transport.publish(message(topic)), 1000)).result, ['CLOSED']);
    assertTransportError((await timed(transport.ping(), 1000)).result, ['CLOSED']);
    // A stalled proxy does not notice the client leaving until traffic flows again.
    proxy.restore();
    await waitUntil(() => proxy.connectionCount === 0, `the closed transport holds no connection (have ${proxy.connectionCount})`, 2000);
  });

  test('ping() resolves against the broker and rejects through a cut proxy', async (t) => {
    const direct = newTransport(t);
    await direct.ping();

    const { proxy, url } = await newProxy(t);
    const proxied = newTransport(t, { url, connectTimeoutMs: 500, reconnectDelayMs: 100 });
    await proxied.ping();
    proxy.cut();
    // The reset reaches the client on its next read; a ping after that must not pass.
    await new Promise((resolve) => setTimeout(resolve, 50));
    assertTransportError((await timed(proxied.ping(), 1000)).result, ['UNAVAILABLE']);

    const fresh = newTransport(t, { url, connectTimeoutMs: 500 });
    const { ms, lagMs, result } = await timed(fresh.ping(), 2000);
    assertTransportError(result, ['UNAVAILABLE']);
    // connectTimeoutMs (500) plus 100 ms, plus the longest stall of this process on a loaded box.
    assert.ok(ms < 600 + lagMs, `ping failed after ${ms} ms (event loop held up ${lagMs} ms at most)`);
  });
});
