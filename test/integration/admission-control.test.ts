/**
 * Admission control (`RMS_MAX_INFLIGHT_REQUESTS`): past the bound an API request is
 * refused at once with 503 `OVERLOADED` and `Retry-After`, before its body is read or its
 * caller authenticated, and nothing of it happens; the requests admitted complete and are
 * all stored; health and metrics still answer. The requests are held in flight by a store
 * stalled behind a fault proxy.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { randomUUID } from 'node:crypto';
import { RmsHttpClient } from '@rms/client-sdk';
import { PostgresMessageStore } from '@rms/message-service';
import { FaultProxy } from '../support/fault-proxy.js';
import { sumSamples } from '../support/prometheus-text.js';
import { startTestServer, TEST_APPS, type Answer, type TestServer } from '../support/rms-server.js';
import { waitUntil } from '../support/wait.js';

const MAX_IN_FLIGHT = 3;

let proxy: FaultProxy;
let rms: TestServer;
let direct: PostgresMessageStore;

before(async () => {
  proxy = await FaultProxy.start({ targetHost: '127.0.0.1', targetPort: 5432 });
  rms = await startTestServer({
    storeUrlThrough: (url) => proxy.route(url),
    // Nothing but the stall may end a held request: no deadline, no driver timeout within the test.
    storeTimeouts: { connectTimeoutMs: 60_000, statementTimeoutMs: 60_000 },
    env: {
      RMS_MAX_INFLIGHT_REQUESTS: String(MAX_IN_FLIGHT),
      RMS_STORE_DEADLINE_MS: '60000',
      // The backlog gauges are read from the store once and then served from the cache, so
      // /metrics answers while the store is stalled.
      RMS_METRICS_CACHE_MS: '600000',
    },
  });
  direct = new PostgresMessageStore({ url: rms.storeUrl });
});
after(async () => {
  proxy?.restore();
  await direct?.close();
  await rms?.stop();
  await proxy?.close();
});

async function metrics(): Promise<string> {
  const response = await fetch(`${rms.baseUrl}/metrics`, { signal: AbortSignal.timeout(10_000) });
  assert.equal(response.status, 200);
  return response.text();
}

/** Sends raw bytes, timing the answer. */
async function timedRaw(path: string, body: string, headers: Record<string, string>): Promise<Answer & { ms: number }> {
  const started = performance.now();
  const response = await fetch(`${rms.baseUrl}${path}`, { method: 'POST', headers, body, signal: AbortSignal.timeout(10_000) });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : null, ms: performance.now() - started };
}

function assertOverloaded(answer: Answer & { ms: number }, what: string): void {
  assert.equal(answer.status, 503, `${what}: ${JSON.stringify(answer.body)}`);
  assert.equal(answer.headers.get('retry-after'), '1', what);
  assert.equal(answer.body.error.code, 'OVERLOADED', what);
  assert.equal(answer.body.error.maxInFlight, MAX_IN_FLIGHT, what);
  assert.match(answer.body.error.message, /nothing was done/, what);
  // "At once": the admitted requests are stalled indefinitely; this one did not wait for them.
  assert.ok(answer.ms < 2000, `${what} answered in ${Math.round(answer.ms)} ms`);
}

describe('admission control', () => {
  test('past RMS_MAX_INFLIGHT_REQUESTS a request gets 503 OVERLOADED with Retry-After at once, unread; every admitted request completes and is stored', async () => {
    const topic = `admission.${randomUUID().slice(0, 8)}`;
    await metrics(); // primes the backlog cache while the store answers
    const refusedBefore = sumSamples(await metrics(), 'rms_http_requests_refused_total');
    proxy.stall();
    const admitted: Promise<Answer>[] = [];
    try {
      admitted.push(...Array.from({ length: MAX_IN_FLIGHT }, (_, n) => rms.call('orders', 'POST', '/v1/messages', { topic, payload: { n }, messageId: `admitted-${n}` })));
      await waitUntil(async () => sumSamples(await metrics(), 'rms_http_requests_in_flight') === MAX_IN_FLIGHT, `${MAX_IN_FLIGHT} requests are in flight`);

      const json = { authorization: 'Bearer orders-token-0123456789', 'content-type': 'application/json' };
      assertOverloaded(await timedRaw('/v1/messages', JSON.stringify({ topic, payload: 'refused', messageId: 'refused-1' }), json), 'a valid prepare');
      // Neither parsed nor authenticated: these would be 400 and 401 if they were.
      assertOverloaded(await timedRaw('/v1/messages', '{"topic": ', json), 'a body that is not JSON');
      assertOverloaded(await timedRaw('/v1/messages', JSON.stringify({ topic, payload: 1 }), { 'content-type': 'application/json' }), 'a request without a token');

      // Outside the API nothing is refused: an overloaded RMS still says how it is.
      const health = await fetch(`${rms.baseUrl}/healthz`, { signal: AbortSignal.timeout(5000) });
      assert.equal(health.status, 200);
      const text = await metrics();
      assert.equal(sumSamples(text, 'rms_http_requests_refused_total') - refusedBefore, 3);
      assert.equal(sumSamples(text, 'rms_http_requests_in_flight'), MAX_IN_FLIGHT);
    } finally {
      proxy.restore();
    }

    const answers = await Promise.all(admitted);
    assert.deepEqual(
      answers.map((answer) => answer.status),
      answers.map(() => 201),
      JSON.stringify(answers.map((answer) => answer.body)),
    );
    const stored = (await direct.list({ topic, limit: 100 })).messages;
    assert.deepEqual(stored.map((message) => message.producerMessageId).sort(), ['admitted-0', 'admitted-1', 'admitted-2']);

    // The bound is free again: the refused prepare, retried, goes through.
    await waitUntil(async () => sumSamples(await metrics(), 'rms_http_requests_in_flight') === 0, 'nothing is in flight');
    const retried = await rms.call('orders', 'POST', '/v1/messages', { topic, payload: 'refused', messageId: 'refused-1' });
    assert.equal(retried.status, 201, 'the retried prepare is created: the refused one left nothing behind');
  });

  test("the SDK's client, refused, waits at least the Retry-After and then succeeds", async () => {
    const topic = `admission.${randomUUID().slice(0, 8)}`;
    const client = new RmsHttpClient({ url: rms.baseUrl, token: TEST_APPS.orders.token, retry: { retries: 5, baseDelayMs: 10, maxDelayMs: 2000 } });
    proxy.stall();
    const admitted: Promise<Answer>[] = [];
    try {
      admitted.push(...Array.from({ length: MAX_IN_FLIGHT }, (_, n) => rms.call('orders', 'POST', '/v1/messages', { topic, payload: n, messageId: `held-${n}` })));
      await waitUntil(async () => sumSamples(await metrics(), 'rms_http_requests_in_flight') === MAX_IN_FLIGHT, `${MAX_IN_FLIGHT} requests are in flight`);
      const refusedBefore = sumSamples(await metrics(), 'rms_http_requests_refused_total');
      const started = performance.now();
      const sending = client.prepare(topic, 'from the sdk', { messageId: 'sdk-1' });
      await waitUntil(async () => sumSamples(await metrics(), 'rms_http_requests_refused_total') > refusedBefore, 'the SDK was refused');
      proxy.restore();
      const prepared = await sending;
      const elapsed = performance.now() - started;
      assert.equal(prepared.status, 'PENDING');
      assert.ok(elapsed >= 1000, `the retry came after ${Math.round(elapsed)} ms, before the Retry-After of 1 s`);
    } finally {
      proxy.restore();
      await client.close();
    }
    assert.deepEqual((await Promise.all(admitted)).map((answer) => answer.status), admitted.map(() => 201));
  });

  test('a request abandoned by its client frees its place', async () => {
    const topic = `admission.${randomUUID().slice(0, 8)}`;
    proxy.stall();
    try {
      const abandoned = Array.from({ length: MAX_IN_FLIGHT }, () => new AbortController());
      const calls = abandoned.map((controller, n) =>
        fetch(`${rms.baseUrl}/v1/messages`, {
          method: 'POST',
          headers: { authorization: 'Bearer orders-token-0123456789', 'content-type': 'application/json' },
          body: JSON.stringify({ topic, payload: n, messageId: `abandoned-${n}` }),
          signal: controller.signal,
        }).catch(() => undefined),
      );
      await waitUntil(async () => sumSamples(await metrics(), 'rms_http_requests_in_flight') === MAX_IN_FLIGHT, `${MAX_IN_FLIGHT} requests are in flight`);
      for (const controller of abandoned) controller.abort();
      await Promise.all(calls);
      await waitUntil(async () => sumSamples(await metrics(), 'rms_http_requests_in_flight') === 0, 'the abandoned requests left the count');
    } finally {
      proxy.restore();
    }
    // Their store calls were sent before the abort; whatever they did is idempotent on retry.
    const answer = await rms.call('orders', 'POST', '/v1/messages', { topic, payload: 'after', messageId: 'after-abandon' });
    assert.equal(answer.status, 201);
  });
});
