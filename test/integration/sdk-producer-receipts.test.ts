/**
 * `send` asks RMS for receipts where it needs no more than the status: its confirm (lone or
 * batched) and its cancel after a failed transaction carry `Prefer: return=minimal`, RMS
 * answers `{ id, messageId, status }` without the payload, and what callers see is still
 * right: their own ids and statuses, per-element errors, a key repeated in a batch, a 409.
 * The prepare still asks for the whole message, which the local transaction is given.
 * Real RMS (in-process, PostgreSQL, RabbitMQ) behind a proxy that records each exchange.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import {
  type PreparedMessage,
  type ProducerOptions,
  RmsConflictError,
  RmsHttpClient,
  RmsNotFoundError,
  RmsValidationError,
  createProducer,
  errorFromAnswer,
} from '@rms/client-sdk';
import { type ProxiedExchange, RecordingProxy } from '../support/recording-proxy.js';
import { recordedRms } from '../support/recorded-rms.js';
import { TEST_APPS } from '../support/rms-server.js';
import { waitUntil } from '../support/wait.js';
import { recordingLogger } from '../support/recording-logger.js';

const RETRY = { retries: 2, baseDelayMs: 10, maxDelayMs: 40 };
const RECEIPT_FIELDS = ['id', 'messageId', 'status'];
const ID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi;

/** `METHOD /path` of an exchange, ids replaced by `:id`. */
const route = (exchange: ProxiedExchange) => `${exchange.method} ${exchange.path.replace(ID, ':id')}`;


/** Asserts that `body` is a receipt: exactly id, messageId and status, no payload. */
function assertReceipt(body: unknown, expected: { id?: string; messageId?: string; status: string }, what: string): void {
  assert.deepEqual(Object.keys(body as object).sort(), RECEIPT_FIELDS, `${what}: a receipt, not the message: ${JSON.stringify(body)}`);
  const receipt = body as Record<string, unknown>;
  assert.equal(receipt['status'], expected.status, what);
  if (expected.id !== undefined) assert.equal(receipt['id'], expected.id, what);
  if (expected.messageId !== undefined) assert.equal(receipt['messageId'], expected.messageId, what);
}

describe('producer SDK receipts against a real RMS', { timeout: 120_000 }, () => {
  const suite = recordedRms();
  const producer = (extra: Partial<ProducerOptions> = {}, url = suite.proxy.url) => createProducer({ url, token: TEST_APPS.orders.token, retry: RETRY, ...extra });

  test('a lone send prepares for the whole message, confirms for a receipt, and returns the message with the confirmed status', async () => {
    const topic = suite.freshTopic('sdk.receipt.lone');
    const delivered: string[] = [];
    await suite.watcher.consume(topic, (delivery) => void delivered.push(delivery.id));
    const orders = producer();
    const messageId = `order-${randomUUID()}`;
    let inTransaction: PreparedMessage | undefined;
    suite.proxy.reset();

    const sent = await orders.send(
      topic,
      { orderId: 7 },
      async (message) => {
        inTransaction = message;
        return 'paid';
      },
      { messageId, headers: { tenant: 'eu' } },
    );

    assert.deepEqual(suite.proxy.exchanges.map(route), ['POST /v1/messages', 'POST /v1/messages/:id/confirm']);
    const [prepare, confirm] = suite.proxy.exchanges as [ProxiedExchange, ProxiedExchange];
    assert.equal(prepare.prefer, undefined, 'the prepare asks for the whole message: the local transaction is given it');
    assert.deepEqual(prepare.answer.payload, { orderId: 7 });
    assert.equal(confirm.prefer, 'return=minimal');
    assert.equal(confirm.preferenceApplied, 'return=minimal');
    assertReceipt(confirm.answer, { id: prepare.answer.id, messageId, status: 'SENDING' }, 'the confirm answer');

    assert.ok(inTransaction);
    assert.equal(inTransaction.status, 'PENDING');
    assert.equal(inTransaction.producer, prepare.answer.producer, 'the transaction got RMS’s message, producer included');
    assert.equal(sent.confirmed, true);
    assert.equal(sent.result, 'paid');
    assert.equal(sent.message.id, prepare.answer.id);
    assert.equal(sent.message.messageId, messageId);
    assert.equal(sent.message.status, 'SENDING');
    assert.deepEqual(sent.message.payload, { orderId: 7 });
    assert.deepEqual(sent.message.headers, { tenant: 'eu' });
    const stored = await orders.get(sent.message.id);
    assert.equal(stored.status === 'SENDING' || stored.status === 'COMPLETED', true, stored.status);
    await waitUntil(() => delivered.includes(sent.message.id), 'the message reaches the queue');
  });

  test('concurrent sends confirm in one batch of receipts; a message cancelled meanwhile gets its own 409 and confirmed: false, its batch mates SENDING', async () => {
    const topic = suite.freshTopic('sdk.receipt.batch');
    const { logger, entries } = recordingLogger();
    const orders = producer({ logger });
    const entered: PreparedMessage[] = [];
    let release!: () => void;
    const barrier = new Promise<void>((resolve) => (release = resolve));

    const sends = Array.from({ length: 6 }, (_, i) =>
      orders.send(topic, { i }, async (message) => {
        entered.push(message);
        await barrier;
        return i;
      }),
    );
    await waitUntil(() => entered.length === 6, 'the six transactions run');
    // A check-back's ROLLBACK while the transaction ran, played by a cancel straight to RMS.
    const victim = entered.find((message) => (message.payload as { i: number }).i === 3);
    assert.ok(victim);
    assert.equal((await suite.rms.call('orders', 'DELETE', `/v1/messages/${victim.id}`)).status, 200);
    suite.proxy.reset();
    release();
    const sent = await Promise.all(sends);

    assert.deepEqual(suite.proxy.exchanges.map(route), ['POST /v1/confirms'], 'the six confirms went out as one batch');
    const [batch] = suite.proxy.exchanges as [ProxiedExchange];
    assert.equal(batch.prefer, 'return=minimal');
    assert.equal(batch.preferenceApplied, 'return=minimal');
    const results = batch.answer.results as { status: number; body: any }[];
    assert.equal(results.length, 6);
    for (const [index, id] of (batch.request.ids as string[]).entries()) {
      const result = results[index];
      assert.ok(result);
      if (id === victim.id) {
        assert.equal(result.status, 409);
        assert.equal(result.body.error.currentStatus ?? result.body.error.status, 'CANCELLED', JSON.stringify(result.body));
      } else {
        assert.equal(result.status, 200, JSON.stringify(result.body));
        assertReceipt(result.body, { id, status: 'SENDING' }, `element ${index}`);
      }
    }

    for (const [i, result] of sent.entries()) {
      const own = entered.find((message) => (message.payload as { i: number }).i === i);
      assert.ok(own);
      assert.equal(result.result, i);
      assert.equal(result.message.id, own.id, `send ${i} answers its own message`);
      assert.deepEqual(result.message.payload, { i });
      if (i === 3) {
        assert.equal(result.confirmed, false, 'the cancelled message is not confirmed');
        assert.equal(result.message.status, 'PENDING', 'as prepared');
      } else {
        assert.equal(result.confirmed, true, `send ${i}`);
        assert.equal(result.message.status, 'SENDING', `send ${i}`);
      }
    }
    const logged = entries.find((entry) => entry.level === 'error');
    assert.ok(logged, 'the confirm refused as CANCELLED is logged as an error');
    assert.equal(logged.obj['id'], victim.id);
    const error = logged.obj['err'];
    assert.ok(error instanceof RmsConflictError, String(error));
    assert.equal(error.currentStatus, 'CANCELLED');
    assert.equal(entries.filter((entry) => entry.level !== 'info').length, 1, 'only the cancelled one is logged');
  });

  test('a key repeated in one batch: both sends get the one message, confirmed, and a reuse with other content is refused', async () => {
    const topic = suite.freshTopic('sdk.receipt.same-key');
    const orders = producer();
    const key = `twice-${randomUUID()}`;
    const ran: string[] = [];
    suite.proxy.reset();

    const outcomes = await Promise.allSettled([
      orders.send(topic, { n: 1 }, async (message) => void ran.push(`first ${message.id}`), { messageId: key }),
      orders.send(topic, { n: 1 }, async (message) => void ran.push(`again ${message.id}`), { messageId: key }),
      orders.send(topic, { n: 2 }, async () => void ran.push('reused'), { messageId: key }),
    ]);

    assert.equal(suite.proxy.exchanges.filter((exchange) => route(exchange) === 'POST /v1/messages/batch').length, 1, suite.proxy.exchanges.map(route).join(', '));
    const [first, again, reused] = outcomes;
    assert.equal(first?.status, 'fulfilled');
    assert.equal(again?.status, 'fulfilled');
    const one = (first as PromiseFulfilledResult<{ message: PreparedMessage; confirmed: boolean }>).value;
    const two = (again as PromiseFulfilledResult<{ message: PreparedMessage; confirmed: boolean }>).value;
    assert.equal(one.message.id, two.message.id, 'the same key and content are the same message');
    assert.equal(one.message.messageId, key);
    assert.ok(one.confirmed && two.confirmed, 'confirming the one message twice succeeds twice');
    assert.equal(one.message.status, 'SENDING');
    assert.equal(two.message.status, 'SENDING');
    assert.deepEqual(ran.sort(), [`again ${one.message.id}`, `first ${one.message.id}`], 'the reused key ran no transaction');
    assert.equal(reused?.status, 'rejected');
    const error = (reused as PromiseRejectedResult).reason;
    assert.ok(error instanceof RmsConflictError, String(error));
    assert.equal(error.code, 'MESSAGE_ID_REUSED');

    const confirms = suite.proxy.exchanges.filter((exchange) => exchange.path.includes('confirm'));
    assert.ok(confirms.length >= 1, suite.proxy.exchanges.map(route).join(', '));
    for (const confirm of confirms) {
      assert.equal(confirm.prefer, 'return=minimal', route(confirm));
      const bodies = confirm.answer.results ? (confirm.answer.results as { body: unknown }[]).map((result) => result.body) : [confirm.answer];
      for (const body of bodies) assertReceipt(body, { id: one.message.id, messageId: key, status: 'SENDING' }, route(confirm));
    }
  });

  test('a failed local transaction is cancelled for a receipt, and the transaction’s own error is rethrown', async () => {
    const topic = suite.freshTopic('sdk.receipt.cancel');
    const orders = producer();
    const failure = new Error('the order could not be saved');
    let id: string | undefined;
    suite.proxy.reset();

    await assert.rejects(
      orders.send(topic, { orderId: 9 }, async (message) => {
        id = message.id;
        throw failure;
      }),
      (error) => error === failure,
    );

    assert.ok(id);
    assert.deepEqual(suite.proxy.exchanges.map(route), ['POST /v1/messages', 'DELETE /v1/messages/:id']);
    const cancel = suite.proxy.exchanges[1] as ProxiedExchange;
    assert.equal(cancel.prefer, 'return=minimal');
    assertReceipt(cancel.answer, { id, status: 'CANCELLED' }, 'the cancel answer');
    assert.equal((await orders.get(id)).status, 'CANCELLED');
  });

  test('the public confirm and cancel still answer whole messages', async () => {
    const topic = suite.freshTopic('sdk.receipt.public');
    const orders = producer();
    const [a, b] = await Promise.all([orders.prepare(topic, { n: 'a' }), orders.prepare(topic, { n: 'b' })]);
    assert.ok(a && b);
    suite.proxy.reset();

    const confirmed = await orders.confirm(a.id);
    const cancelled = await orders.cancel(b.id);

    assert.deepEqual(confirmed.payload, { n: 'a' });
    assert.equal(confirmed.status, 'SENDING');
    assert.notEqual(confirmed.confirmedAt, null);
    assert.deepEqual(cancelled.payload, { n: 'b' });
    assert.equal(cancelled.status, 'CANCELLED');
    assert.ok(suite.proxy.exchanges.every((exchange) => exchange.prefer === undefined), 'no Prefer on the public calls');
  });

  test('against an RMS that ignores Prefer (whole messages come back), send’s results are the same', async (t) => {
    const ignoring = await RecordingProxy.start(suite.rms.baseUrl, { forwardPrefer: false });
    t.after(() => ignoring.close());
    const topic = suite.freshTopic('sdk.receipt.ignored');
    const orders = producer({}, ignoring.url);

    const sent = await Promise.all(Array.from({ length: 5 }, (_, i) => orders.send(topic, { i }, async () => i)));

    for (const [i, result] of sent.entries()) {
      assert.equal(result.confirmed, true);
      assert.equal(result.message.status, 'SENDING');
      assert.deepEqual(result.message.payload, { i });
    }
    const confirmAnswers = ignoring.exchanges.filter((exchange) => exchange.path.includes('confirm'));
    assert.ok(confirmAnswers.length >= 1);
    assert.ok(
      confirmAnswers.every((exchange) => exchange.preferenceApplied === null && exchange.prefer === 'return=minimal'),
      'the SDK asked; this RMS did not apply it',
    );
  });

  test('the client’s batch calls with receipt: true answer per element, receipts for the accepted and typed errors for the refused', async (t) => {
    const client = new RmsHttpClient({ url: suite.proxy.url, token: TEST_APPS.orders.token, retry: RETRY });
    t.after(() => client.close());
    const topic = suite.freshTopic('sdk.receipt.client');
    const key = `client-${randomUUID()}`;
    suite.proxy.reset();

    const prepared = await client.prepareMany(
      [
        { topic, payload: { n: 1 }, messageId: key },
        { topic: 'not a topic!', payload: {}, messageId: randomUUID() },
        { topic, payload: { n: 2 }, messageId: key },
        { topic, payload: { n: 3 }, messageId: randomUUID() },
      ],
      { receipt: true },
    );

    assert.equal(suite.proxy.exchanges[0]?.prefer, 'return=minimal');
    assert.deepEqual(prepared.map((answer) => answer.status), [201, 400, 409, 201]);
    assertReceipt(prepared[0]?.body, { messageId: key, status: 'PENDING' }, 'the first prepare');
    assertReceipt(prepared[3]?.body, { status: 'PENDING' }, 'the last prepare');
    const invalid = errorFromAnswer(400, prepared[1]?.body);
    assert.ok(invalid instanceof RmsValidationError);
    assert.equal(invalid.field, 'messages[1].topic');
    const reuse = errorFromAnswer(409, prepared[2]?.body);
    assert.ok(reuse instanceof RmsConflictError);
    assert.equal(reuse.code, 'MESSAGE_ID_REUSED');

    const first = (prepared[0]?.body as { id: string }).id;
    const last = (prepared[3]?.body as { id: string }).id;
    await client.cancelReceipt(last);
    const confirmed = await client.confirmMany([first, randomUUID(), last], { receipt: true });

    assert.deepEqual(confirmed.map((answer) => answer.status), [200, 404, 409]);
    assertReceipt(confirmed[0]?.body, { id: first, messageId: key, status: 'SENDING' }, 'the confirmed one');
    assert.ok(errorFromAnswer(404, confirmed[1]?.body) instanceof RmsNotFoundError);
    const conflict = errorFromAnswer(409, confirmed[2]?.body);
    assert.ok(conflict instanceof RmsConflictError);
    assert.equal(conflict.currentStatus, 'CANCELLED');
  });
});
