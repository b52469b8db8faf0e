import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { PostgresMessageStore } from '@rms/message-service';
import { startTestServer, type TestServer } from '../support/rms-server.js';

let rms: TestServer;
/** A second handle on the server's schema, to put messages where no API call can yet (DEAD). */
let store: PostgresMessageStore;

before(async () => {
  rms = await startTestServer({ env: { RMS_MAX_PAYLOAD_BYTES: '1024' } });
  store = new PostgresMessageStore({ url: rms.storeUrl });
});
after(async () => {
  await store?.close();
  await rms?.stop();
});

async function prepare(body: Record<string, unknown> = {}, app: 'orders' | 'billing' = 'orders') {
  const answer = await rms.call(app, 'POST', '/v1/messages', { topic: 'stock.reduce', payload: { sku: 'A', n: 1 }, ...body });
  assert.ok(answer.status === 201 || answer.status === 200, JSON.stringify(answer.body));
  return answer.body as { id: string; status: string };
}

async function makeDead(id: string, reason: 'CHECK_EXHAUSTED' | 'DELIVERY_EXHAUSTED') {
  const message = await store.findById(id);
  assert.ok(message);
  // A delivery-exhausted message is DEAD because its deliveries are: mark them so too.
  const deliveries = message.deliveries.map((delivery) => ({ ...delivery, status: 'DEAD' as const, nextAttemptAt: null }));
  const dead = await store.transition({
    id, from: message, to: 'DEAD', deadReason: reason, at: new Date(), set: { nextAttemptAt: null, ...(reason === 'DELIVERY_EXHAUSTED' && { deliveries }) },
  });
  assert.equal(dead?.status, 'DEAD');
}

function assertError(answer: { status: number; body: any }, status: number, code: string, message?: RegExp) {
  assert.equal(answer.status, status, JSON.stringify(answer.body));
  assert.equal(answer.body?.error?.code, code, JSON.stringify(answer.body));
  assert.equal(typeof answer.body.error.message, 'string');
  if (message) assert.match(answer.body.error.message, message);
  assert.equal(JSON.stringify(answer.body).includes('    at '), false, 'no stack trace in a response');
}

describe('HTTP API: the state machine over the wire', () => {
  test('prepare answers 201 PENDING with the message, and a Location', async () => {
    const answer = await rms.call('orders', 'POST', '/v1/messages', {
      topic: 'stock.reduce', payload: { sku: 'A', n: 2 }, headers: { 'trace-id': 't-1' },
    });
    assert.equal(answer.status, 201);
    assert.equal(answer.body.status, 'PENDING');
    assert.equal(answer.body.producer, 'orders');
    assert.equal(answer.body.topic, 'stock.reduce');
    assert.deepEqual(answer.body.payload, { sku: 'A', n: 2 });
    assert.deepEqual(answer.body.headers, { 'trace-id': 't-1' });
    assert.equal(answer.body.messageId, null);
    assert.equal(answer.headers.get('location'), `/v1/messages/${answer.body.id}`);
    const due = Date.parse(answer.body.nextAttemptAt) - Date.parse(answer.body.createdAt);
    assert.equal(due, 6000, 'first check-back is due RMS_CHECK_DELAY_MS after prepare');
  });

  test('with Prefer: return=minimal, prepare, confirm and cancel (single and batch) answer receipts: id, key and status, not the payload', async () => {
    const minimal = { headers: { prefer: 'respond-async, return=minimal' } };
    const prepared = await rms.call('orders', 'POST', '/v1/messages', { topic: 'stock.reduce', payload: { sku: 'A' }, messageId: 'minimal-1' }, minimal);
    assert.equal(prepared.status, 201);
    assert.deepEqual(Object.keys(prepared.body).sort(), ['id', 'messageId', 'status']);
    assert.equal(prepared.body.messageId, 'minimal-1');
    assert.equal(prepared.body.status, 'PENDING');
    assert.equal(prepared.headers.get('preference-applied'), 'return=minimal');
    assert.equal(prepared.headers.get('location'), `/v1/messages/${prepared.body.id}`);
    const again = await rms.call('orders', 'POST', '/v1/messages', { topic: 'stock.reduce', payload: { sku: 'A' }, messageId: 'minimal-1' }, minimal);
    assert.deepEqual([again.status, again.body], [200, prepared.body], 'the idempotent repeat answers the same receipt');
    const confirmed = await rms.call('orders', 'POST', `/v1/messages/${prepared.body.id}/confirm`, undefined, minimal);
    assert.deepEqual(confirmed.body, { id: prepared.body.id, messageId: 'minimal-1', status: 'SENDING' });
    const other = await prepare();
    const cancelled = await rms.call('orders', 'DELETE', `/v1/messages/${other.id}`, undefined, minimal);
    assert.deepEqual(cancelled.body, { id: other.id, messageId: null, status: 'CANCELLED' });
    const batch = await rms.call('orders', 'POST', '/v1/messages/batch', { messages: [{ topic: 'stock.reduce', payload: 1 }, { topic: 'bad topic', payload: 2 }] }, minimal);
    assert.equal(batch.body.results[0].status, 201);
    assert.deepEqual(Object.keys(batch.body.results[0].body).sort(), ['id', 'messageId', 'status']);
    assert.equal(batch.body.results[1].status, 400, 'a refused element keeps its error body');
    assert.equal(batch.body.results[1].body.error.code, 'INVALID_REQUEST');
    const confirms = await rms.call('orders', 'POST', '/v1/confirms', { ids: [batch.body.results[0].body.id] }, minimal);
    assert.deepEqual(confirms.body.results, [{ status: 200, body: { id: batch.body.results[0].body.id, messageId: null, status: 'SENDING' } }]);

    // Without the preference, or with another one, the whole message as before.
    for (const init of [{}, { headers: { prefer: 'return=representation' } }]) {
      const whole = await rms.call('orders', 'POST', '/v1/messages', { topic: 'stock.reduce', payload: { sku: 'B' } }, init);
      assert.deepEqual(whole.body.payload, { sku: 'B' });
      assert.equal(whole.headers.get('preference-applied'), null);
    }
  });

  test('prepare with a used messageId returns the same message with 200; different content is a 409', async () => {
    const first = await rms.call('orders', 'POST', '/v1/messages', { topic: 'stock.reduce', payload: { n: 1 }, messageId: 'order-42' });
    const again = await rms.call('orders', 'POST', '/v1/messages', { topic: 'stock.reduce', payload: { n: 1 }, messageId: 'order-42' });
    assert.equal(first.status, 201);
    assert.equal(again.status, 200);
    assert.equal(again.body.id, first.body.id);
    assert.equal(again.body.messageId, 'order-42');
    const reused = await rms.call('orders', 'POST', '/v1/messages', { topic: 'stock.reduce', payload: { n: 2 }, messageId: 'order-42' });
    assertError(reused, 409, 'MESSAGE_ID_REUSED', /order-42/);
    assert.equal(reused.body.error.status, 'PENDING');
    const otherProducer = await rms.call('billing', 'POST', '/v1/messages', { topic: 'stock.reduce', payload: { n: 2 }, messageId: 'order-42' });
    assert.equal(otherProducer.status, 201, 'keys are per producer');
  });

  test('PENDING → SENDING by confirm, repeated confirm succeeds, cancel after confirm is a 409', async () => {
    const { id } = await prepare();
    const confirmed = await rms.call('orders', 'POST', `/v1/messages/${id}/confirm`);
    assert.equal(confirmed.status, 200);
    assert.equal(confirmed.body.status, 'SENDING');
    assert.ok(confirmed.body.confirmedAt);
    const again = await rms.call('orders', 'POST', `/v1/messages/${id}/confirm`);
    assert.equal(again.status, 200);
    assert.equal(again.body.status, 'SENDING');
    const cancel = await rms.call('orders', 'DELETE', `/v1/messages/${id}`);
    assertError(cancel, 409, 'STATE_CONFLICT', /cannot cancel a message in status SENDING/);
    assert.equal(cancel.body.error.status, 'SENDING');
  });

  test('SENDING → COMPLETED by ack, repeated ack succeeds, confirm of a completed message is a repeat', async () => {
    const { id } = await prepare();
    await rms.call('orders', 'POST', `/v1/messages/${id}/confirm`);
    const acked = await rms.call('inventory', 'POST', `/v1/messages/${id}/ack`);
    assert.equal(acked.status, 200);
    // The ack may overtake the record of the publish round: attempts reads 0 or 1.
    const { deliveries, ...statuses } = acked.body;
    assert.deepEqual(statuses, { id, status: 'COMPLETED', nextAttemptAt: null }, 'an ack answers the statuses, never the payload');
    assert.deepEqual(deliveries.map(({ attempts: _attempts, ...rest }: { attempts: number }) => rest), [{ group: 'default', status: 'ACKED', nextAttemptAt: null }]);
    assert.ok((await rms.call('orders', 'GET', `/v1/messages/${id}`)).body.completedAt);
    assert.equal((await rms.call('inventory', 'POST', `/v1/messages/${id}/ack`)).body.status, 'COMPLETED');
    assert.equal((await rms.call('orders', 'POST', `/v1/messages/${id}/confirm`)).body.status, 'COMPLETED');
    assertError(await rms.call('orders', 'DELETE', `/v1/messages/${id}`), 409, 'STATE_CONFLICT');
  });

  test('PENDING → CANCELLED by cancel, repeated cancel succeeds, confirm and ack after cancel are 409s', async () => {
    const { id } = await prepare();
    const cancelled = await rms.call('orders', 'DELETE', `/v1/messages/${id}`);
    assert.equal(cancelled.status, 200);
    assert.equal(cancelled.body.status, 'CANCELLED');
    assert.equal((await rms.call('orders', 'DELETE', `/v1/messages/${id}`)).status, 200);
    const confirm = await rms.call('orders', 'POST', `/v1/messages/${id}/confirm`);
    assertError(confirm, 409, 'STATE_CONFLICT', /cannot confirm a message in status CANCELLED/);
    assert.equal(confirm.body.error.status, 'CANCELLED');
    const ack = await rms.call('inventory', 'POST', `/v1/messages/${id}/ack`);
    assertError(ack, 409, 'STATE_CONFLICT');
    assert.equal(ack.body.error.status, 'CANCELLED');
  });

  test('ack of a PENDING message is a 409: it was never confirmed', async () => {
    const { id } = await prepare();
    const ack = await rms.call('inventory', 'POST', `/v1/messages/${id}/ack`);
    assertError(ack, 409, 'STATE_CONFLICT', /cannot ack a message in status PENDING/);
    assert.equal(ack.body.error.status, 'PENDING');
  });

  test('DEAD (delivery exhausted) → SENDING by admin resend, attempts reset; a late ack completes it', async () => {
    const { id } = await prepare();
    await rms.call('orders', 'POST', `/v1/messages/${id}/confirm`);
    const message = await store.findById(id);
    assert.ok(message);
    await store.transition({ id, from: message, to: 'SENDING', deadReason: null, at: new Date(), set: { deliveryAttempts: 50 } });
    await makeDead(id, 'DELIVERY_EXHAUSTED');
    assertError(await rms.call('orders', 'POST', `/v1/messages/${id}/resend`), 403, 'FORBIDDEN', /admin/);
    const resent = await rms.call('ops', 'POST', `/v1/messages/${id}/resend`);
    assert.equal(resent.status, 200);
    assert.equal(resent.body.status, 'SENDING');
    assert.equal(resent.body.deliveryAttempts, 0);
    assert.equal(resent.body.deadReason, null);
    assert.equal((await rms.call('ops', 'POST', `/v1/messages/${id}/resend`)).body.status, 'SENDING', 'resend of SENDING is a repeat');

    const other = await prepare();
    await rms.call('orders', 'POST', `/v1/messages/${other.id}/confirm`);
    await makeDead(other.id, 'DELIVERY_EXHAUSTED');
    const lateAck = await rms.call('inventory', 'POST', `/v1/messages/${other.id}/ack`);
    assert.equal(lateAck.body.status, 'COMPLETED');
  });

  test('DEAD (check-backs exhausted): the producer is refused, an admin may confirm or cancel, resend is refused', async () => {
    const a = await prepare();
    await makeDead(a.id, 'CHECK_EXHAUSTED');
    const producerConfirm = await rms.call('orders', 'POST', `/v1/messages/${a.id}/confirm`);
    assertError(producerConfirm, 409, 'STATE_CONFLICT', /only an admin/);
    assert.equal(producerConfirm.body.error.status, 'DEAD');
    assertError(await rms.call('ops', 'POST', `/v1/messages/${a.id}/resend`), 409, 'STATE_CONFLICT', /confirm or cancel/);
    const adminConfirm = await rms.call('ops', 'POST', `/v1/messages/${a.id}/confirm`);
    assert.equal(adminConfirm.status, 200);
    assert.equal(adminConfirm.body.status, 'SENDING');

    const b = await prepare();
    await makeDead(b.id, 'CHECK_EXHAUSTED');
    assertError(await rms.call('orders', 'DELETE', `/v1/messages/${b.id}`), 409, 'STATE_CONFLICT');
    const adminCancel = await rms.call('ops', 'DELETE', `/v1/messages/${b.id}`);
    assert.equal(adminCancel.body.status, 'CANCELLED');
  });

  test('batch ack answers per id: acked, already acked, conflicting and unknown', async () => {
    const sending = await prepare();
    await rms.call('orders', 'POST', `/v1/messages/${sending.id}/confirm`);
    const done = await prepare();
    await rms.call('orders', 'POST', `/v1/messages/${done.id}/confirm`);
    await rms.call('inventory', 'POST', `/v1/messages/${done.id}/ack`);
    const pending = await prepare();
    const unknown = '01900000-0000-7000-8000-000000000000';
    const answer = await rms.call('inventory', 'POST', '/v1/acks', { ids: [sending.id, done.id, pending.id, unknown] });
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.body.results, [
      { id: sending.id, status: 'COMPLETED', group: 'default', delivery: 'ACKED' },
      { id: done.id, status: 'COMPLETED', group: 'default', delivery: 'ACKED' },
      { id: pending.id, error: { code: 'STATE_CONFLICT', message: 'cannot ack a message in status PENDING', status: 'PENDING' } },
      { id: unknown, error: { code: 'NOT_FOUND', message: `no message with id ${unknown}` } },
    ]);
  });

  test('GET shows the owner and admins the message with its counters; to another producer it does not exist (404, as an unknown id)', async () => {
    const { id } = await prepare();
    const own = await rms.call('orders', 'GET', `/v1/messages/${id}`);
    assert.equal(own.status, 200);
    assert.equal(own.body.id, id);
    assert.equal(own.body.checkAttempts, 0);
    assert.equal(own.body.deliveryAttempts, 0);
    assert.equal((await rms.call('ops', 'GET', `/v1/messages/${id}`)).status, 200);
    const unknown = await rms.call('billing', 'GET', '/v1/messages/00000000-0000-4000-8000-000000000000');
    assertError(unknown, 404, 'NOT_FOUND');
    for (const [method, path] of [['GET', `/v1/messages/${id}`], ['POST', `/v1/messages/${id}/confirm`], ['DELETE', `/v1/messages/${id}`]] as const) {
      const answer = await rms.call('billing', method, path);
      assertError(answer, 404, 'NOT_FOUND', /no message with id/);
      assert.deepEqual(Object.keys(answer.body.error).sort(), Object.keys(unknown.body.error).sort(), `${method} ${path} answers like an unknown id`);
    }
    assert.equal((await rms.call('orders', 'GET', `/v1/messages/${id}`)).body.status, 'PENDING', 'the other producer changed nothing');
    assert.equal((await store.findById(id))?.status, 'PENDING', "another app's calls changed nothing");
  });

  test('list is admin-only, newest first, filtered, and cursor-paged without gaps or repeats', async () => {
    const topic = `listing.${Date.now()}`;
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await prepare({ topic })).id);
    await rms.call('orders', 'DELETE', `/v1/messages/${ids[2]}`);
    assertError(await rms.call('orders', 'GET', `/v1/messages?topic=${topic}`), 403, 'FORBIDDEN');

    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const query: string = `/v1/messages?topic=${topic}&limit=2${cursor ? `&cursor=${cursor}` : ''}`;
      const page = await rms.call('ops', 'GET', query);
      assert.equal(page.status, 200);
      assert.ok(page.body.messages.length <= 2);
      seen.push(...page.body.messages.map((m: { id: string }) => m.id));
      cursor = page.body.nextCursor;
    } while (cursor);
    assert.deepEqual(seen, [...ids].reverse());

    const cancelled = await rms.call('ops', 'GET', `/v1/messages?topic=${topic}&status=CANCELLED`);
    assert.deepEqual(cancelled.body.messages.map((m: { id: string }) => m.id), [ids[2]]);
    assert.equal(cancelled.body.nextCursor, null);
  });
});

describe('HTTP API: bad input gets a 4xx that names the problem', () => {
  test('malformed JSON is a 400 INVALID_JSON', async () => {
    assertError(await rms.call('orders', 'POST', '/v1/messages', '{"topic": "a",'), 400, 'INVALID_JSON', /not valid JSON/);
  });

  test('a body that is not an object is a 400', async () => {
    assertError(await rms.call('orders', 'POST', '/v1/messages', [1, 2]), 400, 'INVALID_REQUEST', /JSON object/);
    assertError(await rms.call('orders', 'POST', '/v1/messages'), 400, 'INVALID_REQUEST');
  });

  test('wrong types name the field', async () => {
    const answer = await rms.call('orders', 'POST', '/v1/messages', { topic: 5, payload: {} });
    assertError(answer, 400, 'INVALID_REQUEST', /topic/);
    assert.equal(answer.body.error.field, 'topic');
    const headers = await rms.call('orders', 'POST', '/v1/messages', { topic: 'a', payload: {}, headers: { h: 1 } });
    assertError(headers, 400, 'INVALID_REQUEST', /header values must be strings/);
    assert.equal(headers.body.error.field, 'headers.h');
    const ids = await rms.call('inventory', 'POST', '/v1/acks', { ids: ['not-a-uuid'] });
    assert.equal(ids.body.error.field, 'ids[0]');
  });

  test('a missing payload and an unknown field are named', async () => {
    const missing = await rms.call('orders', 'POST', '/v1/messages', { topic: 'a' });
    assertError(missing, 400, 'INVALID_REQUEST', /payload: is required/);
    const unknown = await rms.call('orders', 'POST', '/v1/messages', { topic: 'a', payload: 1, priority: 9 });
    assertError(unknown, 400, 'INVALID_REQUEST', /unknown field priority/);
    assert.equal(unknown.body.error.field, 'priority');
  });

  test('a topic outside [A-Za-z0-9._-]{1,128} is a 400', async () => {
    for (const topic of ['', 'has space', 'slash/topic', 'x'.repeat(129), 'ümlaut']) {
      const answer = await rms.call('orders', 'POST', '/v1/messages', { topic, payload: 1 });
      assertError(answer, 400, 'INVALID_REQUEST', /topic/);
    }
    assert.equal((await rms.call('orders', 'POST', '/v1/messages', { topic: 'x'.repeat(128), payload: 1 })).status, 201);
  });

  test('reserved x-rms- headers are refused', async () => {
    const answer = await rms.call('orders', 'POST', '/v1/messages', { topic: 'a', payload: 1, headers: { 'x-rms-attempt': '9' } });
    assertError(answer, 400, 'INVALID_REQUEST', /reserved/);
  });

  test('an oversized payload is a 413, whether over the payload limit or the body limit', async () => {
    const overPayload = await rms.call('orders', 'POST', '/v1/messages', { topic: 'a', payload: 'x'.repeat(2000) });
    assertError(overPayload, 413, 'PAYLOAD_TOO_LARGE', /1024 bytes/);
    const overBody = await rms.call('orders', 'POST', '/v1/messages', { topic: 'a', payload: 'x'.repeat(5_000_000) });
    assertError(overBody, 413, 'PAYLOAD_TOO_LARGE');
  });

  test('an unknown id is a 404 and a malformed one a 400', async () => {
    const unknown = '01900000-0000-7000-8000-00000000abcd';
    assertError(await rms.call('orders', 'POST', `/v1/messages/${unknown}/confirm`), 404, 'NOT_FOUND', new RegExp(unknown));
    assertError(await rms.call('ops', 'GET', `/v1/messages/${unknown}`), 404, 'NOT_FOUND');
    const malformed = await rms.call('orders', 'POST', '/v1/messages/12345/confirm');
    assertError(malformed, 400, 'INVALID_REQUEST', /id: must be a UUID/);
  });

  test('a missing or wrong token is a 401, a missing role a 403', async () => {
    assertError(await rms.call(null, 'POST', '/v1/messages', { topic: 'a', payload: 1 }), 401, 'UNAUTHORIZED', /missing Authorization/);
    const wrong = await rms.call(null, 'POST', '/v1/messages', { topic: 'a', payload: 1 }, { headers: { authorization: 'Bearer nope' } });
    assertError(wrong, 401, 'UNAUTHORIZED', /unknown token/);
    assert.equal(wrong.headers.get('www-authenticate'), 'Bearer');
    const basic = await rms.call(null, 'GET', '/v1/messages', undefined, { headers: { authorization: 'Basic Zm9vOmJhcg==' } });
    assertError(basic, 401, 'UNAUTHORIZED', /Bearer/);
    assertError(await rms.call('inventory', 'POST', '/v1/messages', { topic: 'a', payload: 1 }), 403, 'FORBIDDEN', /producer/);
    const { id } = await prepare();
    assertError(await rms.call('orders', 'POST', `/v1/messages/${id}/ack`), 403, 'FORBIDDEN', /consumer/);
  });

  test('bad list queries name the parameter', async () => {
    assertError(await rms.call('ops', 'GET', '/v1/messages?limit=0'), 400, 'INVALID_REQUEST', /limit/);
    assertError(await rms.call('ops', 'GET', '/v1/messages?status=LOST'), 400, 'INVALID_REQUEST', /status/);
    assertError(await rms.call('ops', 'GET', '/v1/messages?cursor=garbage'), 400, 'INVALID_REQUEST', /cursor/);
    assertError(await rms.call('ops', 'GET', '/v1/messages?sort=asc'), 400, 'INVALID_REQUEST', /unknown field query.sort/);
  });

  test('an unknown route is a 404 in the same error body', async () => {
    assertError(await rms.call('ops', 'GET', '/v1/nothing-here'), 404, 'NOT_FOUND', /no route GET/);
  });

  test('after all of that the server still serves', async () => {
    const health = await rms.call(null, 'GET', '/healthz');
    assert.equal(health.status, 200);
    const ready = await rms.call(null, 'GET', '/readyz');
    assert.equal(ready.status, 200);
    assert.equal(ready.body.dependencies.store.status, 'up');
    assert.equal(ready.body.dependencies.store.kind, 'postgres');
  });
});
