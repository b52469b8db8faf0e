/**
 * The adaptive admission limit (`RMS_ADMISSION_TARGET_MS`): when the store is slower than
 * the target, the limit on API requests in flight falls from its ceiling
 * (`RMS_MAX_INFLIGHT_REQUESTS`), so fewer requests wait on the store and the excess is
 * answered 503 `OVERLOADED` with `Retry-After` at once; a store that stops answering
 * brings it down to its floor; when the store is fast again the limit grows back and the
 * same load is admitted. The store is slowed and stalled by a fault proxy.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { randomUUID } from 'node:crypto';
import { FaultProxy } from '../support/fault-proxy.js';
import { sumSamples } from '../support/prometheus-text.js';
import { startTestServer, TEST_APPS, type TestServer } from '../support/rms-server.js';
import { waitUntil } from '../support/wait.js';

const CEILING = 64;
const FLOOR = 8;
const TARGET_MS = 200;
/** Each direction of every store connection: a statement takes at least twice this. */
const STORE_DELAY_MS = 400;
const LOOPS = 40;

let proxy: FaultProxy;
let rms: TestServer;

before(async () => {
  proxy = await FaultProxy.start({ targetHost: '127.0.0.1', targetPort: 5432 });
  rms = await startTestServer({
    storeUrlThrough: (url) => proxy.route(url),
    env: {
      RMS_MAX_INFLIGHT_REQUESTS: String(CEILING),
      RMS_ADMISSION_TARGET_MS: String(TARGET_MS),
      RMS_STORE_DEADLINE_MS: '30000',
      // The backlog gauges are read from the store once and then served from the cache, so
      // /metrics answers at once while the store is slow.
      RMS_METRICS_CACHE_MS: '600000',
    },
  });
});
after(async () => {
  proxy?.restore();
  await rms?.stop();
  await proxy?.close();
});

async function gauges(): Promise<{ limit: number; inFlight: number }> {
  const response = await fetch(`${rms.baseUrl}/metrics`, { signal: AbortSignal.timeout(10_000) });
  assert.equal(response.status, 200);
  const text = await response.text();
  return { limit: sumSamples(text, 'rms_http_admission_limit'), inFlight: sumSamples(text, 'rms_http_requests_in_flight') };
}

interface Answered {
  status: number;
  ms: number;
  retryAfter: string | null;
  code?: string;
}

/** `LOOPS` producers sending prepares back to back until `stop()`; every answer is kept. */
function load(topic: string): { answers: Answered[]; stop: () => Promise<void> } {
  const answers: Answered[] = [];
  let running = true;
  const loops = Array.from({ length: LOOPS }, async (_, loop) => {
    for (let n = 0; running; n++) {
      const started = performance.now();
      const response = await fetch(`${rms.baseUrl}/v1/messages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TEST_APPS.orders.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ topic, payload: { loop, n }, messageId: `${loop}-${n}` }),
        signal: AbortSignal.timeout(20_000),
      });
      const text = await response.text();
      const code = response.status === 503 ? (JSON.parse(text) as { error: { code: string } }).error.code : undefined;
      answers.push({ status: response.status, ms: performance.now() - started, retryAfter: response.headers.get('retry-after'), ...(code && { code }) });
      // A refused producer waits a little, as a client honouring Retry-After would, but shorter.
      if (response.status === 503) await new Promise((resolve) => setTimeout(resolve, 20));
    }
  });
  return {
    answers,
    stop: async () => {
      running = false;
      await Promise.all(loops);
    },
  };
}

describe('the adaptive admission limit', () => {
  test('a store slower than the target shrinks the limit and the excess is refused at once; a stalled one brings it to its floor; a fast one grows it back', async () => {
    const topic = `adaptive.${randomUUID().slice(0, 8)}`;
    await gauges(); // primes the backlog cache while the store answers
    assert.equal((await gauges()).limit, CEILING, 'the limit starts at its ceiling');

    proxy.delay(STORE_DELAY_MS);
    const slow = load(topic);
    try {
      await waitUntil(async () => (await gauges()).limit <= CEILING / 2, `the limit falls to half its ceiling or less`, 20_000, 100);
      // Once the requests admitted before the fall have ended, at most the limit's worth wait on the store.
      await waitUntil(
        async () => {
          const { limit, inFlight } = await gauges();
          return inFlight <= limit;
        },
        'the requests in flight come down to the limit',
        20_000,
        100,
      );
      const measuredFrom = slow.answers.length;
      for (let sample = 0; sample < 5; sample++) {
        const { limit } = await gauges();
        assert.ok(limit <= CEILING / 2 && limit >= FLOOR, `the limit stays low while the store is slow (${limit})`);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      const window = slow.answers.slice(measuredFrom);
      const admitted = window.filter((answer) => answer.status === 201);
      const refused = window.filter((answer) => answer.status === 503);
      assert.ok(admitted.length > 0, 'some requests are still admitted');
      assert.ok(refused.length > admitted.length, `the excess is refused (${refused.length} refused, ${admitted.length} admitted)`);
      for (const answer of refused) {
        assert.equal(answer.code, 'OVERLOADED');
        assert.equal(answer.retryAfter, '1');
      }
      // "At once": a refusal does not wait on the store, whose every statement takes 2 × 400 ms.
      // (The 90th percentile, not the slowest: the box is shared, and a stray pause of the
      // test process is not RMS's.)
      const refusalMs = refused.map((answer) => answer.ms).sort((a, b) => a - b);
      const refusalP90 = refusalMs[Math.ceil(refusalMs.length * 0.9) - 1] ?? Number.NaN;
      const fastestAdmitted = Math.min(...admitted.map((answer) => answer.ms));
      assert.ok(fastestAdmitted >= 2 * STORE_DELAY_MS, `the admitted wait on the store (fastest ${Math.round(fastestAdmitted)} ms)`);
      assert.ok(refusalP90 < STORE_DELAY_MS, `refusals came before any store round trip could (90th percentile ${Math.round(refusalP90)} ms)`);
      assert.ok(window.every((answer) => answer.status === 201 || answer.status === 503), 'nothing but created or refused');

      // Nothing answers: the oldest request in flight keeps ageing, and the limit falls to its floor.
      proxy.stall();
      await waitUntil(async () => (await gauges()).limit === FLOOR, `the limit falls to its floor of ${FLOOR}`, 20_000, 100);
    } finally {
      proxy.restore();
    }

    try {
      // Fast again: the limit, in use by the 40 producers, grows back past what they need.
      await waitUntil(async () => (await gauges()).limit >= LOOPS + 1, `the limit grows back past ${LOOPS}`, 20_000, 100);
      const measuredFrom = slow.answers.length;
      // Wait for more answers than there are producers, however long they take on a busy box.
      await waitUntil(() => slow.answers.length - measuredFrom > LOOPS, `the producers go on past ${LOOPS} answers`, 20_000, 20);
      const window = slow.answers.slice(measuredFrom);
      assert.ok(
        window.every((answer) => answer.status === 201),
        `all ${LOOPS} producers admitted: ${JSON.stringify(window.filter((answer) => answer.status !== 201).slice(0, 3))}`,
      );
    } finally {
      await slow.stop();
    }
  });
});
