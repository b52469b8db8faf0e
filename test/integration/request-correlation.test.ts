/**
 * Correlation without an OpenTelemetry SDK: every request gets a request id (the caller's
 * when it is safe, a new one otherwise), echoed back and carried by every log line of that
 * request; a W3C trace context sent with a prepare is stored with the message and carried,
 * unchanged, in the AMQP headers of its deliveries and the headers of its check-backs.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { randomUUID } from 'node:crypto';
import { type Delivery, subscribe } from '@rms/client-sdk';
import { PostgresMessageStore, createLogger } from '@rms/message-service';
import { HttpRecorder } from '../support/http-recorder.js';
import { TEST_RABBITMQ_URL } from '../support/rabbitmq.js';
import { startTestServer, TEST_APPS, type TestServer } from '../support/rms-server.js';
import { waitUntil } from '../support/wait.js';

/** Log lines the server wrote, parsed. */
const lines: Record<string, unknown>[] = [];
let rms: TestServer;
let store: PostgresMessageStore;
/** The producer's check endpoint: COMMIT for every message. */
let checks: HttpRecorder;

before(async () => {
  const logger = createLogger('debug', 'rms', { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  checks = await HttpRecorder.start(() => ({ status: 200, body: { status: 'COMMIT' } }));
  rms = await startTestServer({ logger, checkUrl: checks.url('/check'), env: { RMS_CHECK_DELAY_MS: '200', RMS_POLL_INTERVAL_MS: '20' } });
  store = new PostgresMessageStore({ url: rms.storeUrl });
});
after(async () => {
  await store?.close();
  await rms?.stop();
  await checks?.close();
});

const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe('request ids', () => {
  test("the caller's X-Request-Id is echoed and names the request's log lines", async () => {
    const answer = await rms.call('orders', 'POST', '/v1/messages', { topic: 'correlation', payload: 1 }, { headers: { 'x-request-id': 'checkout-42:a.b_c' } });
    assert.equal(answer.status, 201);
    assert.equal(answer.headers.get('x-request-id'), 'checkout-42:a.b_c');
    const mine = lines.filter((line) => line['requestId'] === 'checkout-42:a.b_c');
    assert.ok(mine.some((line) => line['msg'] === 'request answered' && line['status'] === 201), JSON.stringify(mine));
  });

  test('without an X-Request-Id, a UUID is generated, echoed and logged', async () => {
    const answer = await rms.call('orders', 'GET', '/v1/messages/00000000-0000-4000-8000-000000000000');
    assert.equal(answer.status, 404);
    const requestId = answer.headers.get('x-request-id') ?? '';
    assert.match(requestId, UUID);
    assert.ok(lines.some((line) => line['requestId'] === requestId && line['status'] === 404));
  });

  test('a hostile X-Request-Id (too long, unsafe characters) is replaced, never echoed or logged, and never fails the request', async () => {
    for (const hostile of ['x'.repeat(129), '<script>alert(1)</script>', 'a b', 'id"}{"admin":true', '']) {
      const answer = await rms.call('orders', 'POST', '/v1/messages', { topic: 'correlation', payload: 1 }, { headers: { 'x-request-id': hostile } });
      assert.equal(answer.status, 201, hostile);
      assert.match(answer.headers.get('x-request-id') ?? '', UUID, hostile);
      if (hostile) assert.equal(lines.some((line) => JSON.stringify(line).includes(hostile)), false, `${hostile} reached the log`);
    }
  });
});

describe('W3C trace context without an OpenTelemetry SDK', () => {
  test('a traceparent on prepare is stored and reaches the consumer unchanged, by confirm and by check-back', async () => {
    const topic = `correlation.trace.${randomUUID().slice(0, 8)}`;
    const seen: Delivery[] = [];
    const subscription = await subscribe(topic, async (delivery) => void seen.push(delivery), {
      rms: { url: rms.baseUrl, token: TEST_APPS.inventory.token },
      amqpUrl: TEST_RABBITMQ_URL,
      group: `g-${randomUUID().slice(0, 8)}`,
    });
    try {
      const headers = { traceparent: TRACEPARENT, tracestate: 'rojo=00f067aa0ba902b7' };
      const confirmed = await rms.call('orders', 'POST', '/v1/messages', { topic, payload: 1 }, { headers });
      await rms.call('orders', 'POST', `/v1/messages/${confirmed.body.id}/confirm`);
      const checkedBack = await rms.call('orders', 'POST', '/v1/messages', { topic, payload: 2 }, { headers });
      const stored = await store.findById(checkedBack.body.id);
      assert.equal(stored?.traceparent, TRACEPARENT);
      assert.equal(stored?.tracestate, 'rojo=00f067aa0ba902b7');

      const isMine = (request: { json: { id?: string } | null }) => request.json?.id === checkedBack.body.id;
      await checks.waitFor(() => checks.requests.some(isMine));
      const check = checks.requests.find(isMine);
      assert.equal(check?.headers['traceparent'], TRACEPARENT, 'the check-back carries the trace context');
      assert.equal(check?.headers['tracestate'], 'rojo=00f067aa0ba902b7');

      await waitUntil(() => seen.length >= 2, 'both messages are consumed');
      for (const delivery of seen) {
        assert.deepEqual(delivery.trace, { traceparent: TRACEPARENT, tracestate: 'rojo=00f067aa0ba902b7' }, `delivery ${delivery.id}`);
        assert.equal('traceparent' in delivery.headers, false, 'the trace context is not one of the producer headers');
      }
    } finally {
      await subscription.close();
    }
  });

  test("the body's traceparent (a batching producer's) wins over the request header's", async () => {
    const other = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const answer = await rms.call('orders', 'POST', '/v1/messages', { topic: 'correlation', payload: 1, traceparent: other }, { headers: { traceparent: TRACEPARENT } });
    assert.equal(answer.status, 201);
    const stored = await store.findById(answer.body.id);
    assert.equal(stored?.traceparent, other);
    assert.equal(stored?.tracestate, null);
  });

  test('an invalid traceparent or tracestate is ignored, never refused and never stored', async () => {
    const hostile = [
      { traceparent: 'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' },
      { traceparent: '00-00000000000000000000000000000000-00f067aa0ba902b7-01' },
      { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01' },
      { traceparent: `${TRACEPARENT}-extra` },
      { traceparent: 'x'.repeat(200) },
      { traceparent: '<script>' },
    ];
    for (const headers of hostile) {
      for (const where of ['header', 'body'] as const) {
        const body = where === 'body' ? { topic: 'correlation', payload: 1, ...headers } : { topic: 'correlation', payload: 1 };
        const answer = await rms.call('orders', 'POST', '/v1/messages', body, where === 'header' ? { headers } : {});
        assert.equal(answer.status, 201, `${where} ${headers.traceparent}: ${JSON.stringify(answer.body)}`);
        assert.equal((await store.findById(answer.body.id))?.traceparent, null, `${where} ${headers.traceparent}`);
      }
    }
    const badState = await rms.call('orders', 'POST', '/v1/messages', { topic: 'correlation', payload: 1 }, { headers: { traceparent: TRACEPARENT, tracestate: `${'k=v,'.repeat(200)}k=v` } });
    const stored = await store.findById(badState.body.id);
    assert.equal(stored?.traceparent, TRACEPARENT, 'a valid traceparent is kept without its oversized tracestate');
    assert.equal(stored?.tracestate, null);
  });
});
