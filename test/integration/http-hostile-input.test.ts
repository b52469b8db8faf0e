/**
 * Hostile and malformed requests get a 4xx that names the problem: never a 500, never a
 * crash, never a partial write. Each case here was a 500 (or a leak) once.
 */
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { startTestServer, TEST_APPS, type Answer, type TestServer } from '../support/rms-server.js';

let rms: TestServer;

before(async () => {
  rms = await startTestServer({ env: { RMS_MAX_HEARTBEAT_EXTEND_MS: '60000' } });
});
after(async () => {
  await rms?.stop();
});

function assertClientError(answer: Answer, status: number, message: RegExp, what = ''): void {
  assert.equal(answer.status, status, `${what} ${JSON.stringify(answer.body)}`);
  assert.equal(typeof answer.body?.error?.code, 'string', what);
  assert.match(answer.body.error.message, message, what);
}

/** Sends raw bytes (a body no JSON client would produce). */
async function raw(app: keyof typeof TEST_APPS | null, method: string, path: string, body: Buffer | string | null, headers: Record<string, string> = {}): Promise<Answer> {
  const response = await fetch(`${rms.baseUrl}${path}`, {
    method,
    headers: { ...(app && { authorization: `Bearer ${TEST_APPS[app].token}` }), ...headers },
    body,
    signal: AbortSignal.timeout(10_000),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : null };
}

const nested = (depth: number): string => '['.repeat(depth) + ']'.repeat(depth);
const UNKNOWN_ID = '00000000-0000-4000-8000-000000000000';

describe('malformed percent-escapes in paths are 400s (defect 1)', () => {
  const routes: [keyof typeof TEST_APPS, string, (bad: string) => string][] = [
    ['orders', 'GET', (bad) => `/v1/messages/${bad}`],
    ['orders', 'DELETE', (bad) => `/v1/messages/${bad}`],
    ['orders', 'POST', (bad) => `/v1/messages/${bad}/confirm`],
    ['inventory', 'POST', (bad) => `/v1/messages/${bad}/ack`],
    ['inventory', 'POST', (bad) => `/v1/messages/${bad}/heartbeat`],
    ['ops', 'POST', (bad) => `/v1/messages/${bad}/resend`],
    ['ops', 'POST', (bad) => `/v1/topics/${bad}/resend`],
    ['inventory', 'POST', (bad) => `/v1/messages/${bad}/nack`],
    ['ops', 'GET', (bad) => `/v1/messages/${bad}/history`],
  ];
  for (const bad of ['%ZZ', '%', '%C0%AF', '%FF%FE']) {
    test(`"${bad}" on every route with an id or a topic`, async () => {
      for (const [app, method, path] of routes) {
        const answer = await raw(app, method, path(bad), null);
        assertClientError(answer, 400, /decode|param/i, `${method} ${path(bad)}`);
        const anonymous = await raw(null, method, path(bad), null);
        assert.equal(anonymous.status, 401, `${method} ${path(bad)} without a token`);
      }
    });
  }
});

describe('compressed bodies that do not inflate are 400s (defect 1)', () => {
  for (const encoding of ['gzip', 'deflate']) {
    test(`Content-Encoding: ${encoding} with corrupt data`, async () => {
      const headers = { 'content-type': 'application/json', 'content-encoding': encoding };
      assertClientError(await raw('orders', 'POST', '/v1/messages', Buffer.from('definitely not compressed'), headers), 400, /./);
      assert.equal((await raw(null, 'POST', '/v1/messages', Buffer.from('definitely not compressed'), headers)).status, 401, 'without a token');
    });
  }

  test('a well-formed gzip body is read', async () => {
    const body = gzipSync(JSON.stringify({ topic: 'hostile.gzip', payload: { ok: true } }));
    const answer = await raw('orders', 'POST', '/v1/messages', body, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
    assert.equal(answer.status, 201, JSON.stringify(answer.body));
  });
});

describe('payload nesting is bounded (defect 2)', () => {
  test('4,500 levels deep is a 400 naming the limit, for a single prepare', async () => {
    const body = `{"topic":"hostile.deep","payload":${nested(4500)}}`;
    const answer = await raw('orders', 'POST', '/v1/messages', body, { 'content-type': 'application/json' });
    assertClientError(answer, 400, /^payload: nested deeper than 64 levels/);
    assert.equal(answer.body.error.maxDepth, 64);
    assert.equal(answer.body.error.field, 'payload');
  });

  test('100,000 levels deep inside a batch refuses that element only', async () => {
    const body = `{"messages":[{"topic":"hostile.deep","payload":1},{"topic":"hostile.deep","payload":${nested(100_000)}}]}`;
    const answer = await raw('orders', 'POST', '/v1/messages/batch', body, { 'content-type': 'application/json' });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.equal(answer.body.results[0].status, 201);
    assert.equal(answer.body.results[1].status, 400);
    assert.match(answer.body.results[1].body.error.message, /messages\[1\]\.payload: nested deeper than 64/);
  });

  test('64 levels are accepted and come back intact', async () => {
    const payload = JSON.parse(nested(64));
    const answer = await rms.call('orders', 'POST', '/v1/messages', { topic: 'hostile.deep', payload });
    assert.equal(answer.status, 201, JSON.stringify(answer.body));
    assert.deepEqual(answer.body.payload, payload);
  });
});

describe('ill-formed Unicode is refused in every stored string (defect 3)', () => {
  const prepare = (body: string) => raw('orders', 'POST', '/v1/messages', body, { 'content-type': 'application/json' });

  test('a lone surrogate in a header value, a payload string or a payload key is a 400 naming the field', async () => {
    assertClientError(await prepare('{"topic":"hostile.utf","payload":1,"headers":{"h":"\\ud800"}}'), 400, /headers\.h: header values must be well-formed Unicode/);
    assertClientError(await prepare('{"topic":"hostile.utf","payload":{"a":["ok","\\udfff"]}}'), 400, /payload\.a\[1\]: strings must be well-formed Unicode/);
    assertClientError(await prepare('{"topic":"hostile.utf","payload":{"\\ud800":1}}'), 400, /payload \(a key\): strings must be well-formed Unicode/);
  });

  test('"k-\\ud800" and "k-\\udfff" are both refused as keys, never collapsed into one message', async () => {
    for (const key of ['k-\\ud800', 'k-\\udfff']) {
      assertClientError(await prepare(`{"topic":"hostile.utf","payload":1,"messageId":"${key}"}`), 400, /messageId: must be well-formed Unicode/);
    }
    const page = await rms.call('ops', 'GET', '/v1/messages?topic=hostile.utf');
    assert.equal(page.body.messages.length, 0, 'nothing was stored');
  });

  test('a surrogate pair (an emoji) is well-formed and accepted', async () => {
    const answer = await rms.call('orders', 'POST', '/v1/messages', { topic: 'hostile.utf.ok', payload: { s: '😀' }, messageId: 'k-😀', headers: { h: '😀' } });
    assert.equal(answer.status, 201, JSON.stringify(answer.body));
    assert.equal(answer.body.messageId, 'k-😀');
  });

  test('in a batch the ill-formed element is that element’s 400; a retry of the batch stores nothing twice', async () => {
    const body = '{"messages":[{"topic":"hostile.utf.batch","payload":1},{"topic":"hostile.utf.batch","payload":2,"headers":{"h":"\\ud800"}}]}';
    for (let attempt = 0; attempt < 2; attempt++) {
      const answer = await raw('orders', 'POST', '/v1/messages/batch', body, { 'content-type': 'application/json' });
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      assert.deepEqual(answer.body.results.map((result: { status: number }) => result.status), [201, 400]);
    }
    // The un-keyed valid element is stored once per request that carried it, as for the single endpoint; no 500 forced a blind retry.
    const page = await rms.call('ops', 'GET', '/v1/messages?topic=hostile.utf.batch');
    assert.equal(page.body.messages.length, 2);
  });
});

describe('list cursors are validated (defect 4)', () => {
  const cursor = (t: string) => Buffer.from(JSON.stringify({ t, i: UNKNOWN_ID })).toString('base64url');
  for (const t of ['-271821-04-20T00:00:00.000Z', '+275760-09-13T00:00:00.000Z', '0000-01-01T00:00:00.000Z', 'not a date']) {
    test(`a cursor at ${t} is a 400`, async () => {
      assertClientError(await rms.call('ops', 'GET', `/v1/messages?cursor=${cursor(t)}`), 400, /cursor: not a cursor returned by this API/);
    });
  }
});

describe('the body is read only after authentication (defect 6)', () => {
  test('an anonymous body is never parsed: invalid JSON and an oversized body both answer 401', async () => {
    assert.equal((await raw(null, 'POST', '/v1/messages', '{not json', { 'content-type': 'application/json' })).status, 401);
    const huge = JSON.stringify({ topic: 'hostile.big', payload: 'x'.repeat(5 * 1024 * 1024) });
    assert.equal((await raw(null, 'POST', '/v1/messages/batch', huge, { 'content-type': 'application/json' })).status, 401);
  });

  test('a caller without the route’s role is refused before its body is read (403, not 400)', async () => {
    assertClientError(await raw('inventory', 'POST', '/v1/messages', '{not json', { 'content-type': 'application/json' }), 403, /producer/);
  });

  test('each route has its own body limit: 200 kB of ids is a 413 on /v1/acks', async () => {
    const ids = Array.from({ length: 5000 }, () => UNKNOWN_ID);
    assertClientError(await rms.call('inventory', 'POST', '/v1/acks', { ids }), 413, /exceeds the limit/);
  });
});

describe('consumers learn a status, never a payload (defect 7)', () => {
  async function sending(): Promise<string> {
    const prepared = await rms.call('orders', 'POST', '/v1/messages', { topic: 'hostile.consumer', payload: { secret: 's3cret' } });
    await rms.call('orders', 'POST', `/v1/messages/${prepared.body.id}/confirm`);
    return prepared.body.id as string;
  }

  test('heartbeat answers the id, status, next deadline and each group\'s delivery status only', async () => {
    const id = await sending();
    const beat = await rms.call('inventory', 'POST', `/v1/messages/${id}/heartbeat`, { extendMs: 30_000 });
    assert.equal(beat.status, 200, JSON.stringify(beat.body));
    assert.deepEqual(Object.keys(beat.body).sort(), ['deliveries', 'id', 'nextAttemptAt', 'status']);
    assert.deepEqual(Object.keys(beat.body.deliveries[0]).sort(), ['attempts', 'group', 'nextAttemptAt', 'status']);
    assert.equal(JSON.stringify(beat.body).includes('s3cret'), false);
  });

  test('ack answers the id and statuses only', async () => {
    const id = await sending();
    const ack = await rms.call('inventory', 'POST', `/v1/messages/${id}/ack`);
    const { deliveries, ...rest } = ack.body;
    assert.deepEqual(rest, { id, status: 'COMPLETED', nextAttemptAt: null });
    assert.deepEqual(deliveries.map((delivery: { group: string; status: string }) => [delivery.group, delivery.status]), [['default', 'ACKED']]);
    assert.equal(JSON.stringify(ack.body).includes('s3cret'), false);
  });

  test('nack answers the id, the statuses and next due times only', async () => {
    const id = await sending();
    const nack = await rms.call('inventory', 'POST', `/v1/messages/${id}/nack`, { reason: 'failed', attempt: 1 });
    assert.equal(nack.status, 200, JSON.stringify(nack.body));
    assert.deepEqual(Object.keys(nack.body).sort(), ['deliveries', 'id', 'nextAttemptAt', 'status']);
    assert.equal(JSON.stringify(nack.body).includes('s3cret'), false);
  });

  test('heartbeat extendMs is bounded by RMS_MAX_HEARTBEAT_EXTEND_MS', async () => {
    const id = await sending();
    const answer = await rms.call('inventory', 'POST', `/v1/messages/${id}/heartbeat`, { extendMs: 60_001 });
    assertClientError(answer, 400, /extendMs: must be at most 60000/);
  });
});
