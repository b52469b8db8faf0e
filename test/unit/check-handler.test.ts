/**
 * The producer's check-back handler without RMS: requests are signed here the way RMS
 * signs them, then tampered with, aged or stripped. The middleware runs behind a real
 * `node:http` server and behind express 5, mounted before and after body parsers.
 */
import assert from 'node:assert/strict';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import express from 'express';
import {
  type CheckQuery,
  type CheckResolver,
  type CheckVerdict,
  checkHandler,
  handleCheckRequest,
  signCheckRequest,
} from '@rms/client-sdk';
import { recordingLogger } from '../support/recording-logger.js';

const SECRET = 'orders-secret-0123456789';

const QUERY: CheckQuery = {
  messageId: 'order-42',
  id: '0b8f6a4e-57f4-4a59-9f61-1f3f3d0a7c11',
  topic: 'orders.paid',
  headers: { tenant: 'eu' },
  createdAt: '2025-01-01T00:00:00.000Z',
  attempt: 2,
};

/** A check-back request as RMS sends it: headers and the exact body it signed. */
function signed(body: string = JSON.stringify(QUERY), options: { secret?: string; timestamp?: number } = {}) {
  const timestamp = String(options.timestamp ?? Date.now());
  return {
    headers: {
      'content-type': 'application/json',
      'x-rms-timestamp': timestamp,
      'x-rms-signature': signCheckRequest(options.secret ?? SECRET, timestamp, body),
    },
    body,
  };
}

/** A resolver that records its calls and answers `verdict`. */
function recordingResolver(verdict: CheckVerdict | (() => CheckVerdict | Promise<CheckVerdict>)) {
  const calls: { messageId: string; topic: string; query: CheckQuery }[] = [];
  const resolve: CheckResolver = (messageId, topic, query) => {
    calls.push({ messageId, topic, query });
    return typeof verdict === 'function' ? verdict() : verdict;
  };
  return { resolve, calls };
}


describe('handleCheckRequest', () => {
  test('a validly signed request is answered 200 with the resolver verdict, and the resolver gets the whole query', async () => {
    const { resolve, calls } = recordingResolver('COMMIT');
    const answer = await handleCheckRequest(signed(), resolve, { secret: SECRET });
    assert.deepEqual(answer, { status: 200, body: { status: 'COMMIT' } });
    assert.deepEqual(calls, [{ messageId: QUERY.messageId, topic: QUERY.topic, query: QUERY }]);
  });

  test('each verdict is passed through unchanged', async () => {
    for (const verdict of ['COMMIT', 'ROLLBACK', 'UNKNOWN'] as const) {
      const answer = await handleCheckRequest(signed(), recordingResolver(verdict).resolve, { secret: SECRET });
      assert.deepEqual(answer, { status: 200, body: { status: verdict } });
    }
  });

  test('headers are matched in any case, as a framework may hand them over', async () => {
    const request = signed();
    const headers = { 'X-RMS-Timestamp': request.headers['x-rms-timestamp'], 'X-Rms-Signature': request.headers['x-rms-signature'] };
    const answer = await handleCheckRequest({ headers, body: request.body }, recordingResolver('ROLLBACK').resolve, { secret: SECRET });
    assert.deepEqual(answer, { status: 200, body: { status: 'ROLLBACK' } });
  });

  test('a body changed after signing is refused with 401 and the resolver is never asked', async () => {
    const { resolve, calls } = recordingResolver('COMMIT');
    const request = signed();
    const tampered = { ...request, body: request.body.replace('order-42', 'order-43') };
    const answer = await handleCheckRequest(tampered, resolve, { secret: SECRET });
    assert.equal(answer.status, 401);
    assert.match((answer.body as { error: string }).error, /signature mismatch/);
    assert.equal(calls.length, 0);
  });

  test('a correctly signed request older than the tolerance is refused with 401 (no replay)', async () => {
    const { resolve, calls } = recordingResolver('COMMIT');
    const old = signed(undefined, { timestamp: Date.now() - 10 * 60_000 });
    const answer = await handleCheckRequest(old, resolve, { secret: SECRET });
    assert.equal(answer.status, 401);
    assert.match((answer.body as { error: string }).error, /timestamp outside the accepted window/);
    assert.equal(calls.length, 0);
  });

  test('toleranceMs narrows the window: a 2 s old request passes the default but not a 1 s tolerance', async () => {
    const request = signed(undefined, { timestamp: Date.now() - 2000 });
    assert.equal((await handleCheckRequest(request, recordingResolver('COMMIT').resolve, { secret: SECRET })).status, 200);
    assert.equal((await handleCheckRequest(request, recordingResolver('COMMIT').resolve, { secret: SECRET, toleranceMs: 1000 })).status, 401);
  });

  test('a request signed with another secret is refused with 401', async () => {
    const { resolve, calls } = recordingResolver('COMMIT');
    const answer = await handleCheckRequest(signed(undefined, { secret: 'billing-secret-0123456789' }), resolve, { secret: SECRET });
    assert.equal(answer.status, 401);
    assert.equal(calls.length, 0);
  });

  test('a request without the timestamp or the signature header is refused with 401', async () => {
    const { resolve, calls } = recordingResolver('COMMIT');
    const request = signed();
    const noSignature = { 'x-rms-timestamp': request.headers['x-rms-timestamp'] };
    const noTimestamp = { 'x-rms-signature': request.headers['x-rms-signature'] };
    for (const headers of [{}, noSignature, noTimestamp]) {
      const answer = await handleCheckRequest({ headers, body: request.body }, resolve, { secret: SECRET });
      assert.equal(answer.status, 401, JSON.stringify(headers));
    }
    assert.equal(calls.length, 0);
  });

  test('a repeated signature header is refused with 401 rather than one of them picked', async () => {
    const request = signed();
    const headers = { ...request.headers, 'x-rms-signature': [request.headers['x-rms-signature'], request.headers['x-rms-signature']] };
    const answer = await handleCheckRequest({ headers, body: request.body }, recordingResolver('COMMIT').resolve, { secret: SECRET });
    assert.equal(answer.status, 401);
  });

  test('a correctly signed body that is not JSON is refused with 400', async () => {
    const { resolve, calls } = recordingResolver('COMMIT');
    const answer = await handleCheckRequest(signed('{"messageId": "order-42",'), resolve, { secret: SECRET });
    assert.equal(answer.status, 400);
    assert.match((answer.body as { error: string }).error, /not JSON/);
    assert.equal(calls.length, 0);
  });

  test('a correctly signed JSON body that is not a check-back query is refused with 400 naming the field', async () => {
    const cases: [unknown, RegExp][] = [
      [[QUERY], /not a JSON object/],
      [{ ...QUERY, messageId: undefined }, /"messageId"/],
      [{ ...QUERY, topic: 7 }, /"topic"/],
      [{ ...QUERY, headers: { n: 1 } }, /"headers"/],
      [{ ...QUERY, attempt: 'two' }, /"attempt"/],
    ];
    for (const [body, field] of cases) {
      const answer = await handleCheckRequest(signed(JSON.stringify(body)), recordingResolver('COMMIT').resolve, { secret: SECRET });
      assert.equal(answer.status, 400, JSON.stringify(body));
      assert.match((answer.body as { error: string }).error, field);
    }
  });

  test('a query without RMS id (only the design contract fields) falls back to the messageId', async () => {
    const { resolve, calls } = recordingResolver('COMMIT');
    const { id: _id, ...contract } = QUERY;
    const answer = await handleCheckRequest(signed(JSON.stringify(contract)), resolve, { secret: SECRET });
    assert.equal(answer.status, 200);
    assert.equal(calls[0]?.query.id, QUERY.messageId);
  });

  test('a resolver that throws is answered 200 UNKNOWN (so RMS asks again) and the error is logged', async () => {
    const { logger, entries } = recordingLogger();
    const failure = new Error('database unreachable');
    const answer = await handleCheckRequest(
      signed(),
      () => {
        throw failure;
      },
      { secret: SECRET, logger },
    );
    assert.deepEqual(answer, { status: 200, body: { status: 'UNKNOWN' } });
    assert.equal(entries.length, 1);
    assert.equal(entries[0]?.level, 'error');
    assert.equal((entries[0]?.obj as { err?: unknown }).err, failure);
  });

  test('a resolver that rejects asynchronously is answered 200 UNKNOWN', async () => {
    const answer = await handleCheckRequest(signed(), async () => Promise.reject(new Error('timeout')), { secret: SECRET });
    assert.deepEqual(answer, { status: 200, body: { status: 'UNKNOWN' } });
  });

  test('a resolver that returns something other than a verdict is answered 200 UNKNOWN and logged', async () => {
    const { logger, entries } = recordingLogger();
    const answer = await handleCheckRequest(signed(), (() => 'COMMITTED') as unknown as CheckResolver, { secret: SECRET, logger });
    assert.deepEqual(answer, { status: 200, body: { status: 'UNKNOWN' } });
    assert.equal(entries[0]?.level, 'error');
  });
});

/** Starts `server` on an ephemeral port and returns its base URL. */
async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function close(server: Server | undefined): Promise<void> {
  if (!server) return;
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

/** POSTs a signed (or tampered) check-back request to `url`. */
async function post(url: string, request: { headers: Record<string, string>; body: string }, contentType = 'application/json') {
  const response = await fetch(url, {
    method: 'POST',
    headers: { ...request.headers, 'content-type': contentType },
    body: request.body,
    signal: AbortSignal.timeout(5000),
  });
  return { status: response.status, body: (await response.json()) as unknown };
}

describe('checkHandler behind a plain node:http server', () => {
  let server: Server;
  let url: string;
  const { resolve, calls } = recordingResolver('COMMIT');

  before(async () => {
    server = createServer(checkHandler(resolve, { secret: SECRET }));
    url = await listen(server);
  });
  after(() => close(server));

  test('reads the raw body from the stream and answers the verdict', async () => {
    assert.deepEqual(await post(url, signed()), { status: 200, body: { status: 'COMMIT' } });
    assert.deepEqual(calls.at(-1)?.query, QUERY);
  });

  test('answers 401 to a tampered body', async () => {
    const request = signed();
    const answer = await post(url, { ...request, body: request.body.replace('"attempt":2', '"attempt":3') });
    assert.equal(answer.status, 401);
  });

  test('answers 400 to a signed body that is not JSON', async () => {
    assert.equal((await post(url, signed('not json'))).status, 400);
  });

  test('answers 405 to anything but POST', async () => {
    const response = await fetch(url, { signal: AbortSignal.timeout(5000) });
    assert.equal(response.status, 405);
    assert.equal(response.headers.get('allow'), 'POST');
  });
});

describe('checkHandler in express 5', () => {
  let server: Server;
  let url: string;
  const { resolve, calls } = recordingResolver('ROLLBACK');
  const { logger, entries } = recordingLogger();

  before(async () => {
    const app = express();
    // Before any body parser: the handler reads the stream itself.
    app.post('/before-parsers', checkHandler(resolve, { secret: SECRET }));
    app.post('/after-raw', express.raw({ type: '*/*' }), checkHandler(resolve, { secret: SECRET }));
    app.post('/after-text', express.text({ type: '*/*' }), checkHandler(resolve, { secret: SECRET }));
    app.use(express.json());
    app.post('/after-json', checkHandler(resolve, { secret: SECRET, logger }));
    server = createServer(app);
    url = await listen(server);
  });
  after(() => close(server));

  test('mounted before any body parser, it verifies and answers the verdict', async () => {
    const before = calls.length;
    assert.deepEqual(await post(`${url}/before-parsers`, signed()), { status: 200, body: { status: 'ROLLBACK' } });
    assert.equal(calls.length, before + 1);
    assert.equal((await post(`${url}/before-parsers`, signed(undefined, { secret: 'wrong-secret-0000' }))).status, 401);
  });

  test("mounted after express.raw({ type: '*/*' }), it verifies the Buffer the parser left in req.body", async () => {
    // The content type is not JSON on purpose: express.raw takes it anyway, and the signature covers the bytes.
    assert.deepEqual(await post(`${url}/after-raw`, signed(), 'application/octet-stream'), { status: 200, body: { status: 'ROLLBACK' } });
    assert.deepEqual(await post(`${url}/after-raw`, signed()), { status: 200, body: { status: 'ROLLBACK' } });
    const request = signed();
    assert.equal((await post(`${url}/after-raw`, { ...request, body: ` ${request.body}` })).status, 401);
  });

  test('mounted after express.text(), it verifies the string the parser left in req.body', async () => {
    assert.deepEqual(await post(`${url}/after-text`, signed()), { status: 200, body: { status: 'ROLLBACK' } });
  });

  test('mounted after express.json(), it answers 500 saying to mount it before the parser or use express.raw', async () => {
    const before = calls.length;
    const answer = await post(`${url}/after-json`, signed());
    assert.equal(answer.status, 500);
    const error = (answer.body as { error: string }).error;
    assert.match(error, /before express\.json\(\)/);
    assert.match(error, /express\.raw\(\{ type: '\*\/\*' \}\)/);
    assert.equal(calls.length, before, 'the resolver must not be asked without a verified body');
    assert.ok(entries.some((entry) => entry.level === 'error'));
  });
});
