/**
 * The producer's micro-batching against a real RMS (in-process, PostgreSQL, RabbitMQ):
 * concurrent prepares and confirms share batch requests, a lone call still uses the single
 * endpoints, each call still gets its own typed error, and `batching: false` turns it off.
 * The requests RMS sees are counted by a small HTTP proxy in front of it
 * (test/support/recording-proxy.ts).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import {
  type ProducerOptions,
  type RmsMessage,
  RmsConflictError,
  RmsNotFoundError,
  RmsUnavailableError,
  RmsValidationError,
  createProducer,
} from '@rms/client-sdk';
import { recordedRms } from '../support/recorded-rms.js';
import { TEST_APPS } from '../support/rms-server.js';
import { recordSdkRequests } from '../support/sdk-requests.js';
import { waitUntil } from '../support/wait.js';
import { closedPort } from '../../scripts/loopback-ports.js';

const RETRY = { retries: 2, baseDelayMs: 10, maxDelayMs: 40 };

/** How many of `requests` are `request`. */
const count = (requests: string[], request: string) => requests.filter((seen) => seen === request).length;

describe('producer SDK batching against a real RMS', { timeout: 120_000 }, () => {
  const suite = recordedRms();
  const producer = (app: 'orders' | 'billing' = 'orders', extra: Partial<ProducerOptions> = {}) =>
    createProducer({ url: suite.proxy.url, token: TEST_APPS[app].token, retry: RETRY, ...extra });

  test('200 concurrent sends all end confirmed and delivered, in far fewer than 400 requests', async () => {
    const topic = suite.freshTopic('sdk.batching');
    const delivered = new Set<string>();
    await suite.watcher.consume(topic, (delivery) => void delivered.add(delivery.id));
    const orders = producer();
    suite.proxy.reset();

    const sent = await Promise.all(
      Array.from({ length: 200 }, (_, i) => orders.send(topic, { i }, async (message) => ({ seen: message.status, i }))),
    );

    const requests = suite.proxy.seen();
    assert.ok(requests.length < 40, `200 sends took ${requests.length} requests: ${requests.join(', ')}`);
    assert.ok(count(requests, 'POST /v1/messages/batch') >= 1, 'prepares went out as batches');
    assert.ok(count(requests, 'POST /v1/confirms') >= 1, 'confirms went out as batches');
    for (const [i, result] of sent.entries()) {
      assert.equal(result.confirmed, true, `send ${i}`);
      assert.equal(result.message.status, 'SENDING', `send ${i}`);
      assert.deepEqual(result.message.payload, { i }, `send ${i} answers its own message`);
      assert.deepEqual(result.result, { seen: 'PENDING', i }, `send ${i} ran its own transaction on the prepared message`);
    }
    const ids = sent.map((result) => result.message.id);
    assert.equal(new Set(ids).size, 200, '200 distinct messages');

    const listed = await suite.rms.call('ops', 'GET', `/v1/messages?topic=${topic}&limit=500`);
    assert.equal(listed.body.messages.length, 200, 'no message stored twice');
    for (const message of listed.body.messages as RmsMessage[]) {
      assert.ok(message.status === 'SENDING' || message.status === 'COMPLETED', `${message.id} is ${message.status}`);
      assert.notEqual(message.confirmedAt, null);
    }
    await waitUntil(() => delivered.size === 200, 'all 200 messages reach the queue', 30_000);
    assert.deepEqual([...delivered].sort(), [...ids].sort());
  });

  test('a lone send still uses the single endpoints', async () => {
    const topic = suite.freshTopic('sdk.lone');
    const orders = producer();
    suite.proxy.reset();
    const sent = await orders.send(topic, { lone: true }, async () => 'done');
    assert.equal(sent.confirmed, true);
    assert.equal(sent.message.status, 'SENDING');
    assert.deepEqual(suite.proxy.requests, ['POST /v1/messages', `POST /v1/messages/${sent.message.id}/confirm`]);
  });

  test('a prepare that reuses a messageId with other content rejects alone with RmsConflictError; its batch mates are stored', async () => {
    const topic = suite.freshTopic('sdk.reuse');
    const orders = producer();
    const key = `reused-${randomUUID()}`;
    const original = await orders.prepare(topic, { version: 1 }, { messageId: key });
    suite.proxy.reset();

    const outcomes = await Promise.allSettled([
      orders.prepare(topic, { n: 0 }),
      orders.prepare(topic, { version: 2 }, { messageId: key }),
      orders.prepare(topic, { version: 1 }, { messageId: key }),
      orders.prepare(topic, { n: 3 }, { headers: { tenant: 'eu' } }),
    ]);

    assert.deepEqual(suite.proxy.seen(), ['POST /v1/messages/batch'], 'the four prepares went out as one batch');
    const [fresh, reused, repeat, withHeaders] = outcomes;
    assert.equal(reused?.status, 'rejected');
    const error = (reused as PromiseRejectedResult).reason;
    assert.ok(error instanceof RmsConflictError, String(error));
    assert.equal(error.code, 'MESSAGE_ID_REUSED');
    assert.equal(error.currentStatus, 'PENDING');
    assert.equal(fresh?.status, 'fulfilled');
    assert.deepEqual((fresh as PromiseFulfilledResult<RmsMessage>).value.payload, { n: 0 });
    assert.equal(repeat?.status, 'fulfilled');
    assert.equal((repeat as PromiseFulfilledResult<RmsMessage>).value.id, original.id, 'the same key and content find the stored message');
    assert.equal(withHeaders?.status, 'fulfilled');
    assert.deepEqual((withHeaders as PromiseFulfilledResult<RmsMessage>).value.headers, { tenant: 'eu' });
    assert.deepEqual((await orders.get(original.id)).payload, { version: 1 }, 'the stored message is unchanged');
  });

  test('batched confirms settle each with its own answer: SENDING, or RmsNotFoundError (unknown, or another app’s), RmsConflictError', async () => {
    const topic = suite.freshTopic('sdk.confirms');
    const orders = producer();
    const billing = producer('billing');
    const [a, b, cancelled] = await Promise.all([orders.prepare(topic, { n: 'a' }), orders.prepare(topic, { n: 'b' }), orders.prepare(topic, { n: 'c' })]);
    assert.ok(a && b && cancelled);
    await orders.cancel(cancelled.id);
    const theirs = await billing.prepare(topic, { n: 'billing' });
    suite.proxy.reset();

    const outcomes = await Promise.allSettled([
      orders.confirm(a.id),
      orders.confirm(randomUUID()),
      orders.confirm(theirs.id),
      orders.confirm(cancelled.id),
      orders.confirm(b.id),
    ]);

    assert.deepEqual(suite.proxy.seen(), ['POST /v1/confirms'], 'the five confirms went out as one batch');
    const [okA, unknown, theirsOutcome, conflict, okB] = outcomes;
    assert.equal((okA as PromiseFulfilledResult<RmsMessage>).value.status, 'SENDING');
    assert.equal((okB as PromiseFulfilledResult<RmsMessage>).value.status, 'SENDING');
    assert.ok((unknown as PromiseRejectedResult).reason instanceof RmsNotFoundError, String((unknown as PromiseRejectedResult).reason));
    assert.ok((theirsOutcome as PromiseRejectedResult).reason instanceof RmsNotFoundError, String((theirsOutcome as PromiseRejectedResult).reason));
    const error = (conflict as PromiseRejectedResult).reason;
    assert.ok(error instanceof RmsConflictError, String(error));
    assert.equal(error.currentStatus, 'CANCELLED');
    assert.equal((await billing.get(theirs.id)).status, 'PENDING', "the other app's message was not touched");
  });

  test('a batch RMS refuses as a whole (a malformed id) is resent call by call, so only the bad call fails', async () => {
    const topic = suite.freshTopic('sdk.fallback');
    const orders = producer();
    const [a, b] = await Promise.all([orders.prepare(topic, { n: 'a' }), orders.prepare(topic, { n: 'b' })]);
    assert.ok(a && b);
    suite.proxy.reset();

    const outcomes = await Promise.allSettled([orders.confirm(a.id), orders.confirm('not-a-uuid'), orders.confirm(b.id)]);

    const requests = suite.proxy.seen();
    assert.equal(count(requests, 'POST /v1/confirms'), 1, requests.join(', '));
    assert.equal(count(requests, 'POST /v1/messages/:id/confirm'), 2, requests.join(', '));
    assert.equal(count(requests, 'POST /v1/messages/not-a-uuid/confirm'), 1, requests.join(', '));
    assert.equal((outcomes[0] as PromiseFulfilledResult<RmsMessage>).value.status, 'SENDING');
    assert.equal((outcomes[2] as PromiseFulfilledResult<RmsMessage>).value.status, 'SENDING');
    const error = (outcomes[1] as PromiseRejectedResult).reason;
    assert.ok(error instanceof RmsValidationError, String(error));
    assert.equal(error.status, 400);
  });

  test(
    'a batched prepare refused for a field names the field as a lone prepare does',
    async () => {
      const orders = producer();
      const lone = await orders.prepare('not a topic!', {}).then(
        () => assert.fail('an invalid topic must be refused'),
        (error: unknown) => error,
      );
      assert.ok(lone instanceof RmsValidationError);
      assert.equal(lone.field, 'topic');
      const [, batched] = await Promise.allSettled([orders.prepare('valid.topic', {}), orders.prepare('not a topic!', {})]);
      const error = (batched as PromiseRejectedResult).reason;
      assert.ok(error instanceof RmsValidationError, String(error));
      assert.equal(error.field, lone.field);
    },
  );

  test('batching: false sends one request per call', async () => {
    const topic = suite.freshTopic('sdk.unbatched');
    const orders = producer('orders', { batching: false });
    suite.proxy.reset();

    const sent = await Promise.all(Array.from({ length: 20 }, (_, i) => orders.send(topic, { i }, async () => i)));

    assert.ok(sent.every((result) => result.confirmed && result.message.status === 'SENDING'));
    const requests = suite.proxy.seen();
    assert.equal(requests.length, 40, requests.join(', '));
    assert.equal(count(requests, 'POST /v1/messages'), 20);
    assert.equal(count(requests, 'POST /v1/messages/:id/confirm'), 20);
  });

  test('when RMS is unreachable a batch fails every call with RmsUnavailableError and is not resent call by call', async (t) => {
    const url = `http://127.0.0.1:${await closedPort()}`;
    const orders = createProducer({ url, token: TEST_APPS.orders.token, retry: RETRY });
    const sdkRequests = recordSdkRequests();
    t.after(sdkRequests.stop);

    const outcomes = await Promise.allSettled([1, 2, 3].map((n) => orders.prepare('sdk.down', { n })));

    for (const outcome of outcomes) {
      assert.equal(outcome.status, 'rejected');
      assert.ok((outcome as PromiseRejectedResult).reason instanceof RmsUnavailableError);
    }
    const paths = sdkRequests
      .seen()
      .filter((request) => request.origin === url)
      .map((request) => request.path);
    assert.deepEqual(paths, Array.from({ length: 1 + RETRY.retries }, () => '/v1/messages/batch'), 'one batch request and its retries, nothing else');
  });
});
