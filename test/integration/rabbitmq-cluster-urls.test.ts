/**
 * RabbitMQ as a cluster of nodes (`RABBITMQ_URL` with several URLs): two fault proxies in
 * front of the one local broker stand for two nodes. Losing the node in use moves the
 * publisher and the consumer to the other, and publishes keep being confirmed.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import amqp from 'amqplib';
import { RabbitMqConsumer, RabbitMqTransport, queueArgumentsFor, rabbitMqQueueName } from '@rms/client-sdk';
// Not part of the package's surface: how the SDK reads a RABBITMQ_URL.
import { brokerUrls, redactUrl } from '../../client-sdk/src/transport/amqp-connection.js';
import { brokerBehindProxy, TEST_RABBITMQ_URL } from '../support/rabbitmq.js';
import { waitUntil } from '../support/wait.js';

/** Removes the topic's queue, as an operator would. */
async function deleteQueue(topic: string): Promise<void> {
  const connection = await amqp.connect(TEST_RABBITMQ_URL);
  try {
    const channel = await connection.createChannel();
    await channel.deleteQueue(rabbitMqQueueName(topic));
  } finally {
    await connection.close();
  }
}

/** A "node": a fault proxy in front of the broker, and its URL. */
const node = brokerBehindProxy;

describe('RabbitMQ nodes tried in turn', () => {
  test('brokerUrls reads a comma-separated list and adds the heartbeat to each', () => {
    const urls = brokerUrls('amqp://u:p@a:5672, amqp://u:p@b:5672?heartbeat=9', 5);
    assert.deepEqual(urls, ['amqp://u:p@a:5672?heartbeat=5', 'amqp://u:p@b:5672?heartbeat=9']);
    assert.equal(redactUrl(urls[0] as string), 'amqp://u:***@a:5672?heartbeat=5');
    assert.throws(() => brokerUrls(' , ', 5), TypeError);
  });

  test('the publisher connects to the first node that accepts, and moves to the other when its node is lost', async (t) => {
    const [first, second] = [await node(t), await node(t)];
    const transport = new RabbitMqTransport({ url: [first.url, second.url].join(','), confirmTimeoutMs: 2000, connectTimeoutMs: 2000 });
    t.after(() => transport.close());
    const topic = `cluster.${randomUUID()}`;
    t.after(() => deleteQueue(topic));
    const message = () => ({ id: randomUUID(), topic, payload: { n: 1 }, headers: {}, attempt: 1, producer: 'orders' });

    first.proxy.cut(); // node 1 is down from the start
    await transport.publish(message());
    assert.equal(second.proxy.connectionCount, 1, 'connected through node 2');

    first.proxy.restore();
    second.proxy.cut(); // now node 2 is lost
    await waitUntil(async () => {
      try {
        await transport.publish(message());
        return true;
      } catch {
        return false; // the publish in flight when the node died fails; RMS retries it
      }
    }, 'a publish is confirmed through node 1', 15_000, 100);
    assert.equal(first.proxy.connectionCount, 1, 'reconnected through node 1');
  });

  test('a consumer moves to the other node too', async (t) => {
    const [first, second] = [await node(t), await node(t)];
    const topic = `cluster.${randomUUID()}`;
    const seen: string[] = [];
    const consumer = new RabbitMqConsumer({ url: [first.url, second.url], topic, reconnectDelayMs: 100 }, (delivery, settlement) => {
      seen.push(delivery.id);
      settlement.ack();
    });
    t.after(() => consumer.close());
    t.after(() => deleteQueue(topic));
    await consumer.start();
    const publisher = new RabbitMqTransport({ url: TEST_RABBITMQ_URL });
    t.after(() => publisher.close());
    await publisher.publish({ id: 'before', topic, payload: 1, headers: {}, attempt: 1, producer: 'orders' });
    await waitUntil(() => seen.includes('before'), 'the first message is consumed');
    first.proxy.cut();
    await waitUntil(() => second.proxy.connectionCount === 1, 'the consumer reconnected through node 2', 15_000);
    await publisher.publish({ id: 'after', topic, payload: 1, headers: {}, attempt: 1, producer: 'orders' });
    await waitUntil(() => seen.includes('after'), 'a message published after the loss is consumed');
  });
});

describe('quorum queues (RMS_QUEUE_TYPE=quorum)', () => {
  test('publisher and consumer declare the topic’s queue as a quorum queue and messages flow through it', async (t) => {
    const topic = `quorum.${randomUUID()}`;
    t.after(() => deleteQueue(topic));
    const seen: string[] = [];
    const consumer = new RabbitMqConsumer({ url: TEST_RABBITMQ_URL, topic, queueType: 'quorum' }, (delivery, settlement) => {
      seen.push(delivery.id);
      settlement.ack();
    });
    t.after(() => consumer.close());
    await consumer.start();
    const publisher = new RabbitMqTransport({ url: TEST_RABBITMQ_URL, queueType: 'quorum' });
    t.after(() => publisher.close());
    for (const id of ['q-1', 'q-2', 'q-3']) await publisher.publish({ id, topic, payload: { id }, headers: {}, attempt: 1, producer: 'orders' });
    await waitUntil(() => seen.length === 3, 'the three messages are consumed');
    assert.deepEqual(seen.sort(), ['q-1', 'q-2', 'q-3']);

    // The broker holds it as a quorum queue: declaring it as a classic one is refused.
    const connection = await amqp.connect(TEST_RABBITMQ_URL);
    t.after(() => connection.close());
    const channel = await connection.createChannel();
    channel.on('error', () => undefined);
    await assert.rejects(
      channel.assertQueue(rabbitMqQueueName(topic), { durable: true, arguments: { 'x-queue-type': 'classic' } }),
      /PRECONDITION_FAILED.*x-queue-type/,
    );
  });

  test('queueArgumentsFor: classic adds nothing (queues declared before the setting stay equivalent), quorum adds x-queue-type, the caller’s own arguments win', () => {
    assert.equal(queueArgumentsFor('classic'), undefined);
    assert.equal(queueArgumentsFor(undefined), undefined);
    assert.deepEqual(queueArgumentsFor('quorum'), { 'x-queue-type': 'quorum' });
    assert.deepEqual(queueArgumentsFor('quorum', { 'x-max-length': 10 }), { 'x-queue-type': 'quorum', 'x-max-length': 10 });
  });
});
