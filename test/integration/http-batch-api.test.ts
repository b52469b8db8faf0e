/**
 * The batch endpoints over the wire: `POST /v1/messages/batch` and `POST /v1/confirms`
 * answer each element as the single call would (status and body), aligned with the input,
 * so one refused element never refuses the others; only a malformed envelope fails the
 * whole request.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { QueueWatcher, type SeenDelivery } from '../support/rabbitmq.js';
import { startTestServer, type TestServer } from '../support/rms-server.js';
import { waitUntil } from '../support/wait.js';

let rms: TestServer;
let watcher: QueueWatcher;
const topics: string[] = [];
/** A topic of its own per test, so listing it shows exactly what that test stored. */
const freshTopic = (name: string) => {
  const topic = `${name}.${randomUUID().slice(0, 8)}`;
  topics.push(topic);
  return topic;
};

before(async () => {
  rms = await startTestServer({ env: { RMS_MAX_PAYLOAD_BYTES: '1024' } });
  watcher = await QueueWatcher.open();
});
after(async () => {
  await rms?.stop();
  await watcher?.deleteQueues(topics).catch(() => undefined);
  await watcher?.close();
});

interface BatchResult {
  status: number;
  body: any;
}

async function prepare(topic: string, body: Record<string, unknown> = {}, app: 'orders' | 'billing' = 'orders'): Promise<string> {
  const answer = await rms.call(app, 'POST', '/v1/messages', { topic, payload: { n: 1 }, ...body });
  assert.ok(answer.status === 201 || answer.status === 200, JSON.stringify(answer.body));
  return answer.body.id as string;
}

/** The ids stored under `topic`, as an admin lists them. */
async function storedUnder(topic: string): Promise<string[]> {
  const page = await rms.call('ops', 'GET', `/v1/messages?topic=${topic}&limit=500`);
  assert.equal(page.status, 200, JSON.stringify(page.body));
  return page.body.messages.map((message: { id: string }) => message.id).sort();
}

function assertItemError(result: BatchResult | undefined, status: number, code: string, what: string): void {
  assert.ok(result, `${what}: answered`);
  assert.equal(result.status, status, `${what}: ${JSON.stringify(result.body)}`);
  assert.equal(result.body?.error?.code, code, `${what}: ${JSON.stringify(result.body)}`);
  assert.equal(typeof result.body.error.message, 'string');
}

function assertRequestError(answer: { status: number; body: any }, status: number, code: string, field?: string): void {
  assert.equal(answer.status, status, JSON.stringify(answer.body));
  assert.equal(answer.body?.error?.code, code, JSON.stringify(answer.body));
  assert.equal(answer.body.results, undefined, 'no per-element results for a refused request');
  if (field !== undefined) assert.equal(answer.body.error.field, field, JSON.stringify(answer.body));
}

describe('POST /v1/messages/batch: one answer per message, as the single prepare would give it', () => {
  test('201 for new, 200 for a repeated messageId, 409 for a reused one, 400 naming the field, 413 for an oversized payload; the valid ones are stored', async () => {
    const topic = freshTopic('batch.prepare');
    const knownKey = `known-${randomUUID()}`;
    const known = await prepare(topic, { payload: { n: 'known' }, messageId: knownKey });
    const newKey = `new-${randomUUID()}`;

    const answer = await rms.call('orders', 'POST', '/v1/messages/batch', {
      messages: [
        { topic, payload: { n: 0 }, messageId: newKey },
        { topic: 'not a topic!', payload: { n: 1 } },
        { topic, payload: { n: 'known' }, messageId: knownKey },
        { topic, payload: { n: 'other' }, messageId: knownKey },
        { topic, payload: 'x'.repeat(2000) },
        { topic, payload: { n: 5 }, headers: { 'trace-id': 't-5' } },
        { topic, payload: { n: 6 }, priority: 9 },
        { payload: { n: 7 } },
        42,
      ],
    });

    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    const results = answer.body.results as BatchResult[];
    assert.equal(results.length, 9, 'one result per message, in order');

    const [created, badTopic, repeat, reused, oversized, withHeaders, unknownField, noTopic, notObject] = results;
    assert.equal(created?.status, 201);
    assert.equal(created?.body.status, 'PENDING');
    assert.equal(created?.body.producer, 'orders');
    assert.equal(created?.body.topic, topic);
    assert.equal(created?.body.messageId, newKey);
    assert.deepEqual(created?.body.payload, { n: 0 });

    assertItemError(badTopic, 400, 'INVALID_REQUEST', 'invalid topic');
    assert.equal(badTopic?.body.error.field, 'messages[1].topic');

    assert.equal(repeat?.status, 200, 'the same key and content find the stored message');
    assert.equal(repeat?.body.id, known);

    assertItemError(reused, 409, 'MESSAGE_ID_REUSED', 'same key, other content');
    assert.match(reused?.body.error.message, new RegExp(knownKey));
    assert.equal(reused?.body.error.status, 'PENDING');

    assertItemError(oversized, 413, 'PAYLOAD_TOO_LARGE', 'oversized payload');
    assert.match(oversized?.body.error.message, /1024 bytes/);

    assert.equal(withHeaders?.status, 201);
    assert.deepEqual(withHeaders?.body.headers, { 'trace-id': 't-5' });
    assert.deepEqual(withHeaders?.body.payload, { n: 5 });

    assertItemError(unknownField, 400, 'INVALID_REQUEST', 'unknown field');
    assert.equal(unknownField?.body.error.field, 'messages[6].priority');
    assertItemError(noTopic, 400, 'INVALID_REQUEST', 'missing topic');
    assert.equal(noTopic?.body.error.field, 'messages[7].topic');
    assertItemError(notObject, 400, 'INVALID_REQUEST', 'not an object');
    assert.equal(notObject?.body.error.field, 'messages[8]');

    assert.deepEqual(await storedUnder(topic), [known, created?.body.id, withHeaders?.body.id].sort(), 'exactly the valid new messages were stored');
    const read = await rms.call('orders', 'GET', `/v1/messages/${created?.body.id}`);
    assert.deepEqual(read.body, created?.body, 'the 201 body is the stored message');
  });

  test('two messages of one batch with the same messageId: the first is created, the second finds it or conflicts', async () => {
    const topic = freshTopic('batch.same-key');
    const key = `twice-${randomUUID()}`;
    const answer = await rms.call('orders', 'POST', '/v1/messages/batch', {
      messages: [
        { topic, payload: { n: 1 }, messageId: key },
        { topic, payload: { n: 1 }, messageId: key },
        { topic, payload: { n: 2 }, messageId: key },
      ],
    });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    const [first, same, other] = answer.body.results as BatchResult[];
    assert.equal(first?.status, 201);
    assert.equal(same?.status, 200);
    assert.equal(same?.body.id, first?.body.id);
    assertItemError(other, 409, 'MESSAGE_ID_REUSED', 'same key, other content');
    assert.deepEqual(await storedUnder(topic), [first?.body.id]);
  });

  test('keys are per producer: the same messageId in two producers’ batches makes two messages', async () => {
    const topic = freshTopic('batch.per-producer');
    const key = `shared-${randomUUID()}`;
    const orders = await rms.call('orders', 'POST', '/v1/messages/batch', { messages: [{ topic, payload: 1, messageId: key }] });
    const billing = await rms.call('billing', 'POST', '/v1/messages/batch', { messages: [{ topic, payload: 2, messageId: key }] });
    assert.equal(orders.body.results[0].status, 201);
    assert.equal(billing.body.results[0].status, 201);
    assert.equal(billing.body.results[0].body.producer, 'billing');
    assert.notEqual(orders.body.results[0].body.id, billing.body.results[0].body.id);
  });

  test('a malformed envelope is a 400 for the whole request and stores nothing', async () => {
    const topic = freshTopic('batch.envelope');
    assertRequestError(await rms.call('orders', 'POST', '/v1/messages/batch', {}), 400, 'INVALID_REQUEST', 'messages');
    assertRequestError(await rms.call('orders', 'POST', '/v1/messages/batch', { messages: [] }), 400, 'INVALID_REQUEST', 'messages');
    assertRequestError(await rms.call('orders', 'POST', '/v1/messages/batch', { messages: { topic, payload: 1 } }), 400, 'INVALID_REQUEST', 'messages');
    const tooMany = Array.from({ length: 1001 }, (_, i) => ({ topic, payload: i }));
    assertRequestError(await rms.call('orders', 'POST', '/v1/messages/batch', { messages: tooMany }), 400, 'INVALID_REQUEST', 'messages');
    assertRequestError(
      await rms.call('orders', 'POST', '/v1/messages/batch', { messages: [{ topic, payload: 1 }], atomic: true }),
      400,
      'INVALID_REQUEST',
      'atomic',
    );
    assertRequestError(await rms.call('orders', 'POST', '/v1/messages/batch', [{ topic, payload: 1 }]), 400, 'INVALID_REQUEST');
    assert.deepEqual(await storedUnder(topic), [], 'no message of a refused request was stored');

    const justEnough = Array.from({ length: 1000 }, (_, i) => ({ topic, payload: i }));
    const full = await rms.call('orders', 'POST', '/v1/messages/batch', { messages: justEnough });
    assert.equal(full.status, 200, '1000 messages are allowed');
    const results = full.body.results as BatchResult[];
    assert.equal(results.length, 1000);
    assert.ok(results.every((result, i) => result.status === 201 && result.body.payload === i), 'each created, answered in order');
    assert.equal(new Set(results.map((result) => result.body.id)).size, 1000, '1000 distinct messages');
  });

  test(
    'a header value the store cannot hold (a NUL character) is refused as that element’s 400, not a 500 for the whole batch',
    async () => {
      const topic = freshTopic('batch.nul-header');
      const answer = await rms.call('orders', 'POST', '/v1/messages/batch', {
        messages: [
          { topic, payload: { n: 0 } },
          { topic, payload: { n: 1 }, headers: { h: 'a\u0000b' } },
        ],
      });
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      const [stored, refused] = answer.body.results as BatchResult[];
      assert.equal(stored?.status, 201);
      assertItemError(refused, 400, 'INVALID_REQUEST', 'NUL in a header value');
      assert.equal(refused?.body.error.field, 'messages[1].headers.h');
    },
  );

  test('a consumer token gets 403 and no token 401, and nothing is stored', async () => {
    const topic = freshTopic('batch.auth');
    const consumer = await rms.call('inventory', 'POST', '/v1/messages/batch', { messages: [{ topic, payload: 1 }] });
    assertRequestError(consumer, 403, 'FORBIDDEN');
    const anonymous = await rms.call(null, 'POST', '/v1/messages/batch', { messages: [{ topic, payload: 1 }] });
    assertRequestError(anonymous, 401, 'UNAUTHORIZED');
    assert.deepEqual(await storedUnder(topic), []);
  });
});

describe('POST /v1/confirms: one answer per id, as the single confirm would give it', { timeout: 60_000 }, () => {
  test('200 SENDING, 404 unknown, 404 another producer’s, 409 cancelled, 200 again for a repeat; the confirmed messages are delivered once', async () => {
    const topic = freshTopic('batch.confirm');
    const seen: SeenDelivery[] = [];
    await watcher.consume(topic, (delivery) => void seen.push(delivery));
    const a = await prepare(topic, { payload: { n: 'a' } });
    const b = await prepare(topic, { payload: { n: 'b' } });
    const theirs = await prepare(topic, { payload: { n: 'billing' } }, 'billing');
    const cancelled = await prepare(topic, { payload: { n: 'cancelled' } });
    assert.equal((await rms.call('orders', 'DELETE', `/v1/messages/${cancelled}`)).body.status, 'CANCELLED');
    const unknown = randomUUID();

    const answer = await rms.call('orders', 'POST', '/v1/confirms', { ids: [a, unknown, theirs, cancelled, b, a] });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    const results = answer.body.results as BatchResult[];
    assert.equal(results.length, 6, 'one result per id, in order');
    const [first, missing, forbidden, conflict, second, repeat] = results;
    assert.equal(first?.status, 200);
    assert.equal(first?.body.id, a);
    assert.equal(first?.body.status, 'SENDING');
    assert.ok(first?.body.confirmedAt);
    assertItemError(missing, 404, 'NOT_FOUND', 'unknown id');
    assert.match(missing?.body.error.message, new RegExp(unknown));
    assertItemError(forbidden, 404, 'NOT_FOUND', 'another producer’s message');
    assertItemError(conflict, 409, 'STATE_CONFLICT', 'cancelled message');
    assert.equal(conflict?.body.error.status, 'CANCELLED');
    assert.equal(second?.status, 200);
    assert.equal(second?.body.id, b);
    assert.equal(second?.body.status, 'SENDING');
    assert.equal(repeat?.status, 200, 'an id named twice is confirmed once and answered twice');
    assert.equal(repeat?.body.id, a);
    assert.equal(repeat?.body.status, 'SENDING');
    assert.equal(repeat?.body.confirmedAt, first?.body.confirmedAt);

    const again = await rms.call('orders', 'POST', '/v1/confirms', { ids: [a] });
    assert.deepEqual(
      { status: again.body.results[0].status, id: again.body.results[0].body.id, state: again.body.results[0].body.status },
      { status: 200, id: a, state: 'SENDING' },
      'confirming again in a later batch succeeds again',
    );

    assert.equal((await rms.call('billing', 'GET', `/v1/messages/${theirs}`)).body.status, 'PENDING', 'the refused confirm left it alone');
    assert.equal((await rms.call('orders', 'GET', `/v1/messages/${cancelled}`)).body.status, 'CANCELLED');

    await waitUntil(() => seen.length >= 2, 'the two confirmed messages reach the queue');
    // Room for a wrong extra publish (a repeat, the cancelled or the unconfirmed message) to show up.
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.deepEqual(seen.map((delivery) => delivery.id).sort(), [a, b].sort(), 'each confirmed message delivered once, nothing else');
    assert.deepEqual(seen.find((delivery) => delivery.id === a)?.payload, { n: 'a' });
  });

  test('an admin may confirm any producer’s messages in a batch', async () => {
    const topic = freshTopic('batch.confirm-admin');
    const mine = await prepare(topic);
    const theirs = await prepare(topic, {}, 'billing');
    const answer = await rms.call('ops', 'POST', '/v1/confirms', { ids: [mine, theirs] });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.deepEqual(
      (answer.body.results as BatchResult[]).map((result) => [result.status, result.body.status]),
      [[200, 'SENDING'], [200, 'SENDING']],
    );
  });

  test('a malformed envelope is a 400 naming the field, and a consumer gets 403; nothing is confirmed', async () => {
    const topic = freshTopic('batch.confirm-envelope');
    const id = await prepare(topic);
    assertRequestError(await rms.call('orders', 'POST', '/v1/confirms', {}), 400, 'INVALID_REQUEST', 'ids');
    assertRequestError(await rms.call('orders', 'POST', '/v1/confirms', { ids: [] }), 400, 'INVALID_REQUEST', 'ids');
    assertRequestError(await rms.call('orders', 'POST', '/v1/confirms', { ids: [id, 'not-a-uuid'] }), 400, 'INVALID_REQUEST', 'ids[1]');
    const tooMany = Array.from({ length: 1001 }, () => id);
    assertRequestError(await rms.call('orders', 'POST', '/v1/confirms', { ids: tooMany }), 400, 'INVALID_REQUEST', 'ids');
    assertRequestError(await rms.call('inventory', 'POST', '/v1/confirms', { ids: [id] }), 403, 'FORBIDDEN');
    assert.equal((await rms.call('orders', 'GET', `/v1/messages/${id}`)).body.status, 'PENDING', 'no refused request confirmed it');
  });
});
