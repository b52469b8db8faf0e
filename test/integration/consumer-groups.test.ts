/**
 * Consumer groups end to end: real PostgreSQL, RabbitMQ and SDK consumers. Three groups
 * (`stock`, `points`, `shipping`) subscribe to every `groups.*` topic in the test
 * registry; each has its own queue `rms.<topic>.<group>` and its own delivery.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import amqp from 'amqplib';
import { type Delivery, type Subscription, groupQueueName, subscribe } from '@rms/client-sdk';
import { TEST_RABBITMQ_URL } from '../support/rabbitmq.js';
import { TEST_APPS, startTestServer, type TestServer } from '../support/rms-server.js';
import { waitUntil } from '../support/wait.js';
import { FAST_DELIVERY_ENV } from '../support/delivery-env.js';

const GROUPS = ['stock', 'points', 'shipping'] as const;
type Group = (typeof GROUPS)[number];

/** A topic whose `points` group gives up after two rounds (a per-group schedule override). */
const DEAD_END_TOPIC = `groups.deadend${randomUUID().slice(0, 8)}`;

const ENV = {
  ...FAST_DELIVERY_ENV,
  // Redeliveries here come from nacks (due at once), not from missed deadlines: a deadline
  // long enough that a loaded machine's slow ack is never taken for a missing one.
  RMS_ACK_TIMEOUT_MS: '3000',
  RMS_RETRY_MAX: '10',
  RMS_TOPIC_SCHEDULES: JSON.stringify({ [DEAD_END_TOPIC]: { groups: { points: { retryMax: 2, ackTimeoutMs: 150 } } } }),
};

describe('consumer groups: every group gets every message, each redelivered and settled on its own', { timeout: 120_000 }, () => {
  let rms: TestServer;
  const subscriptions: Subscription[] = [];
  const queues: string[] = [];
  /** Handler runs per group and message id. */
  const runs = new Map<string, number>();
  /** What each group's handler does with a delivery; succeeds by default. */
  const behaviour: Record<Group, (delivery: Delivery) => Promise<void>> = {
    stock: async () => undefined,
    points: async () => undefined,
    shipping: async () => undefined,
  };
  const count = (group: Group, id: string) => runs.get(`${group}:${id}`) ?? 0;

  async function subscribeAll(topic: string): Promise<void> {
    for (const group of GROUPS) {
      queues.push(groupQueueName(topic, group));
      subscriptions.push(
        await subscribe({ topic, group }, async (delivery) => {
          runs.set(`${group}:${delivery.id}`, count(group, delivery.id) + 1);
          await behaviour[group](delivery);
        }, {
          rms: { url: rms.baseUrl, token: TEST_APPS[group].token },
          amqpUrl: TEST_RABBITMQ_URL,
          heartbeatIntervalMs: 0,
          ackBatchMs: 1,
          closeTimeoutMs: 1000,
        }),
      );
    }
  }

  async function send(topic: string, payload: unknown = { n: 1 }): Promise<string> {
    const prepared = await rms.call('payments', 'POST', '/v1/messages', { topic, payload });
    assert.equal(prepared.status, 201, JSON.stringify(prepared.body));
    const confirmed = await rms.call('payments', 'POST', `/v1/messages/${prepared.body.id}/confirm`);
    assert.equal(confirmed.status, 200, JSON.stringify(confirmed.body));
    return prepared.body.id as string;
  }

  const statusOf = async (id: string) => (await rms.call('ops', 'GET', `/v1/messages/${id}`)).body;
  const deliveryOf = (message: { deliveries: { group: string }[] }, group: Group) => message.deliveries.find((delivery) => delivery.group === group) as any;

  before(async () => {
    rms = await startTestServer({ env: ENV });
  });
  after(async () => {
    for (const subscription of subscriptions) await subscription.close();
    await rms?.stop();
    const connection = await amqp.connect(TEST_RABBITMQ_URL);
    const channel = await connection.createChannel();
    for (const queue of queues) await channel.deleteQueue(queue);
    await connection.close();
  });

  test('three groups on one topic: each group gets every message exactly once, and the message completes', async () => {
    const topic = `groups.normal${randomUUID().slice(0, 8)}`;
    await subscribeAll(topic);
    const ids = await Promise.all(Array.from({ length: 6 }, (_, n) => send(topic, { n })));
    for (const id of ids) {
      await waitUntil(async () => (await statusOf(id)).status === 'COMPLETED', `message ${id} completes`);
    }
    for (const id of ids) {
      const message = await statusOf(id);
      assert.deepEqual(message.deliveries.map((delivery: { group: string }) => delivery.group).sort(), [...GROUPS].sort());
      for (const group of GROUPS) {
        assert.equal(count(group, id), 1, `${group} ran ${id} once`);
        assert.equal(deliveryOf(message, group).status, 'ACKED');
        assert.equal(deliveryOf(message, group).attempts, 1);
      }
    }
    // The SDK took every ack as its group's (an ack answered SENDING, other groups pending, is still taken).
    await waitUntil(() => subscriptions.every((subscription) => subscription.stats().acked === ids.length), 'each group\'s consumer counts its six acks');
  });

  test('one group failing for a while is redelivered alone, and the message completes only after that slowest group acks', async () => {
    const topic = `groups.flaky${randomUUID().slice(0, 8)}`;
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    behaviour.points = async (delivery) => {
      if (delivery.topic !== topic) return;
      if (delivery.attempt < 3) throw new Error('points service is down');
      await released;
    };
    await subscribeAll(topic);
    const id = await send(topic);
    const pointsThirdRun = await waitUntil(() => count('points', id) >= 3, 'points gets its third delivery');
    assert.ok(pointsThirdRun);
    // Waited on: nothing orders the other groups' acks before points' third round (on a
    // loaded box, points' fail-and-redeliver cycles can outrun stock's one ack request).
    // Points is held in its handler, so its delivery cannot be acked meanwhile.
    const waiting = await waitUntil(async () => {
      const message = await statusOf(id);
      return deliveryOf(message, 'stock').status === 'ACKED' && deliveryOf(message, 'shipping').status === 'ACKED' ? message : null;
    }, 'stock and shipping ack');
    assert.equal(deliveryOf(waiting, 'points').status, 'SENDING');
    assert.equal(waiting.status, 'SENDING', 'not complete while one group has not acked');
    release();
    await waitUntil(async () => (await statusOf(id)).status === 'COMPLETED', 'the message completes once points acks');
    // Points can get round 3 and ack it before RMS has recorded the round (the publish
    // confirm returns after the consumer has the message): the ack completes the message at
    // 2 attempts, and the round's record, landing just after, counts the third.
    const done = await waitUntil(async () => {
      const message = await statusOf(id);
      return deliveryOf(message, 'points').attempts >= 3 ? message : null;
    }, 'the three rounds are counted', 5000);
    assert.equal(done.status, 'COMPLETED');
    assert.equal(deliveryOf(done, 'points').attempts, 3);
    assert.equal(count('stock', id), 1, 'stock was not redelivered');
    assert.equal(count('shipping', id), 1, 'shipping was not redelivered');
    assert.equal(count('points', id), 3);
    behaviour.points = async () => undefined;
  });

  test('a group that never acks ends DEAD (named), and an admin resend of its delivery completes the message', async () => {
    behaviour.points = async (delivery) => {
      if (delivery.topic === DEAD_END_TOPIC) throw new Error('points cannot handle this');
    };
    await subscribeAll(DEAD_END_TOPIC);
    const id = await send(DEAD_END_TOPIC);
    const dead = await waitUntil(async () => {
      const message = await statusOf(id);
      return message.status === 'DEAD' ? message : null;
    }, 'the message goes DEAD when points is out of rounds');
    assert.equal(dead.deadReason, 'DELIVERY_EXHAUSTED');
    assert.equal(deliveryOf(dead, 'points').status, 'DEAD');
    assert.equal(deliveryOf(dead, 'points').attempts, 2, 'the per-group retryMax override applies');
    await waitUntil(async () => {
      const message = await statusOf(id);
      return deliveryOf(message, 'stock').status === 'ACKED' && deliveryOf(message, 'shipping').status === 'ACKED';
    }, 'the other groups ack as usual');

    behaviour.points = async () => undefined;
    const resent = await rms.call('ops', 'POST', `/v1/messages/${id}/resend`, { group: 'points' });
    assert.equal(resent.status, 200, JSON.stringify(resent.body));
    assert.equal(resent.body.status, 'SENDING');
    await waitUntil(async () => (await statusOf(id)).status === 'COMPLETED', 'the resent delivery is acked and the message completes');
    assert.equal(count('stock', id), 1, 'a resend of one group does not reach the others');
    assert.equal(count('shipping', id), 1);
  });
});

describe('topic permissions: producers write their topics, consumers settle their own groups', { timeout: 60_000 }, () => {
  let rms: TestServer;
  before(async () => {
    rms = await startTestServer({ env: { RMS_CHECK_DELAY_MS: '60000', RMS_POLL_INTERVAL_MS: '50' } });
  });
  after(async () => {
    await rms?.stop();
  });

  test('a producer with a topic list gets 403 naming a topic outside it, and writes the topics it matches', async () => {
    const refused = await rms.call('payments', 'POST', '/v1/messages', { topic: 'orders.created', payload: 1 });
    assert.equal(refused.status, 403);
    assert.match(refused.body.error.message, /orders\.created/);
    const batch = await rms.call('payments', 'POST', '/v1/messages/batch', {
      messages: [{ topic: 'orders.created', payload: 1, messageId: 'p-1' }, { topic: 'payments.capture', payload: 2, messageId: 'p-2' }],
    });
    assert.deepEqual(batch.body.results.map((result: { status: number }) => result.status), [403, 201]);
    const allowed = await rms.call('payments', 'POST', '/v1/messages', { topic: 'payments.eu.capture', payload: 1 });
    assert.equal(allowed.status, 201, 'the pattern payments.* matches across dots');
  });

  test('a producer without a topic list writes any topic, as before', async () => {
    const anyTopic = await rms.call('orders', 'POST', '/v1/messages', { topic: `anything.${randomUUID().slice(0, 8)}`, payload: 1 });
    assert.equal(anyTopic.status, 201);
  });

  async function confirmed(topic: string): Promise<string> {
    const prepared = await rms.call('payments', 'POST', '/v1/messages', { topic, payload: 1 });
    await rms.call('payments', 'POST', `/v1/messages/${prepared.body.id}/confirm`);
    return prepared.body.id as string;
  }

  test('a consumer gets 403 naming the topic it does not read, and naming another group it is not in', async () => {
    const other = await confirmed(`payments.x${randomUUID().slice(0, 8)}`);
    const notSubscribed = await rms.call('stock', 'POST', `/v1/messages/${other}/ack`);
    assert.equal(notSubscribed.status, 403);
    assert.match(notSubscribed.body.error.message, /does not subscribe to topic payments\.x/);

    const id = await confirmed(`groups.perm${randomUUID().slice(0, 8)}`);
    const otherGroup = await rms.call('stock', 'POST', `/v1/messages/${id}/ack`, { group: 'points' });
    assert.equal(otherGroup.status, 403);
    assert.match(otherGroup.body.error.message, /in group points/);
    const batch = await rms.call('stock', 'POST', '/v1/acks', { ids: [id], group: 'points' });
    assert.equal(batch.status, 200);
    assert.equal(batch.body.results[0].error.code, 'FORBIDDEN');
    const heartbeat = await rms.call('stock', 'POST', `/v1/messages/${id}/heartbeat`, { group: 'shipping' });
    assert.equal(heartbeat.status, 403);

    const own = await rms.call('stock', 'POST', `/v1/messages/${id}/ack`);
    assert.equal(own.status, 200, 'its own group (the app name by default) is acked');
    assert.equal(own.body.deliveries.find((delivery: { group: string }) => delivery.group === 'stock').status, 'ACKED');
    assert.equal(own.body.status, 'SENDING', 'the other groups have not acked');
  });

  test('a consumer without subscriptions may settle any group, naming it when a message has several', async () => {
    const id = await confirmed(`groups.legacy${randomUUID().slice(0, 8)}`);
    const ambiguous = await rms.call('inventory', 'POST', `/v1/messages/${id}/ack`);
    assert.equal(ambiguous.status, 400);
    assert.match(ambiguous.body.error.message, /name yours in "group"/);
    const named = await rms.call('inventory', 'POST', `/v1/messages/${id}/ack`, { group: 'points' });
    assert.equal(named.status, 200);
    const undeclared = await confirmed(`payments.y${randomUUID().slice(0, 8)}`);
    const single = await rms.call('inventory', 'POST', `/v1/messages/${undeclared}/ack`);
    assert.equal(single.body.status, 'COMPLETED', 'a topic nobody subscribes to has one delivery, to the default group');
    assert.equal(single.body.deliveries[0].group, 'default');
  });
});
