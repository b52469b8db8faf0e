/**
 * The SDK's HTTP client on its undici pools: keep-alive connections reused, a 503's
 * `Retry-After` honoured (within `maxDelayMs`), the timeout bounding the whole exchange,
 * a base URL's path kept, and `close()` closing the connections after the calls in flight.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { type Server, createServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { RmsError, RmsHttpClient, RmsUnavailableError, createProducer } from '@rms/client-sdk';
import { HttpRecorder, type RecordedRequest } from '../support/http-recorder.js';

const TOKEN = 'orders-token-0123456789';

const prepared = (request: RecordedRequest) => ({
  status: 201,
  body: { id: randomUUID(), producer: 'orders', messageId: (request.json as { messageId?: string } | undefined)?.messageId ?? null, status: 'PENDING' },
});

/** An HTTP server that answers like RMS's prepare after `delayMs`, and counts the TCP connections it was given and that are open. */
async function connectionCountingServer(delayMs = 0): Promise<{ url: string; accepted: () => number; open: () => number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server: Server = createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      setTimeout(() => {
        response.writeHead(201, { 'content-type': 'application/json' });
        response.end(JSON.stringify({ id: randomUUID(), status: 'PENDING' }));
      }, delayMs);
    });
  });
  server.on('connection', (socket: Socket) => {
    accepted += 1;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    accepted: () => accepted,
    open: () => sockets.size,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Polls `predicate` every 10 ms until it holds or `timeoutMs` passes. */
async function eventually(predicate: () => boolean, what: string, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('RmsHttpClient on undici pools', () => {
  let recorder: HttpRecorder;
  /** What the recorder answers next, one entry per request; then the prepare answer. */
  let script: ((request: RecordedRequest) => ReturnType<typeof prepared> | { status: number; body?: unknown; headers?: Record<string, string>; delayMs?: number })[] = [];

  before(async () => {
    recorder = await HttpRecorder.start((request) => (script.shift() ?? prepared)(request));
  });
  after(() => recorder?.close());

  test('calls reuse keep-alive connections instead of opening one each', async (t) => {
    const server = await connectionCountingServer();
    t.after(() => server.close());
    const client = new RmsHttpClient({ url: server.url, token: TOKEN });
    t.after(() => client.close());
    for (let n = 0; n < 20; n++) await client.confirm(`id-${n}`);
    // undici's pool may open a second connection while the first is finishing an answer.
    assert.ok(server.accepted() <= 2, `twenty calls in a row opened ${server.accepted()} connections`);
    await Promise.all(Array.from({ length: 8 }, (_, n) => client.confirm(`parallel-${n}`)));
    const afterParallel = server.accepted();
    await Promise.all(Array.from({ length: 8 }, (_, n) => client.confirm(`again-${n}`)));
    // The same quirk may cost a connection or two; without keep-alive it would be eight.
    assert.ok(server.accepted() - afterParallel <= 2, `the next eight at once opened ${server.accepted() - afterParallel} more connections`);
  });

  test("a 503's Retry-After is waited out before the retry", async (t) => {
    const client = new RmsHttpClient({ url: recorder.url(''), token: TOKEN, retry: { retries: 2, baseDelayMs: 1, maxDelayMs: 5000 } });
    t.after(() => client.close());
    script = [() => ({ status: 503, headers: { 'Retry-After': '1' }, body: { error: { code: 'OVERLOADED', message: 'too many requests in flight' } } })];
    const before = recorder.requests.length;
    const message = await client.prepare('retry.after', { n: 1 }, { messageId: 'ra-1' });
    assert.equal(message.messageId, 'ra-1');
    const [refused, retried] = recorder.requests.slice(before);
    assert.ok(refused && retried, 'the call was sent twice');
    assert.ok(retried.at - refused.at >= 990, `the retry came ${retried.at - refused.at} ms after the 503 asked for 1 s`);
    assert.equal(retried.json.messageId, 'ra-1', 'the retry carries the same messageId');
  });

  test('a Retry-After longer than maxDelayMs waits maxDelayMs, and a 503 without one keeps the plain backoff', async (t) => {
    const client = new RmsHttpClient({ url: recorder.url(''), token: TOKEN, retry: { retries: 2, baseDelayMs: 1, maxDelayMs: 200 } });
    t.after(() => client.close());
    const unavailable = { status: 503, body: { error: { code: 'DEPENDENCY_UNAVAILABLE', message: 'the store is down' } } };
    script = [() => ({ ...unavailable, headers: { 'Retry-After': '30' } }), () => unavailable];
    const before = recorder.requests.length;
    await client.confirm('capped');
    const [first, second, third] = recorder.requests.slice(before);
    assert.ok(first && second && third, 'two retries were made');
    assert.ok(second.at - first.at >= 190 && second.at - first.at < 1500, `waited ${second.at - first.at} ms for a Retry-After of 30 s capped at 200 ms`);
    assert.ok(third.at - second.at < 150, `waited ${third.at - second.at} ms with no Retry-After and a 2 ms backoff`);
  });

  test('timeoutMs bounds the whole exchange: a slow answer fails with TIMEOUT', async (t) => {
    const server = await connectionCountingServer(3000);
    t.after(() => server.close());
    const client = new RmsHttpClient({ url: server.url, token: TOKEN, timeoutMs: 200, retry: { retries: 0 } });
    t.after(() => client.close());
    const started = Date.now();
    const error = await client.confirm('slow').then(
      () => assert.fail('a call slower than timeoutMs succeeded'),
      (thrown: unknown) => thrown,
    );
    assert.ok(error instanceof RmsUnavailableError);
    assert.equal(error.code, 'TIMEOUT');
    assert.ok(Date.now() - started < 1500, `the call took ${Date.now() - started} ms with a 200 ms timeout`);
  });

  test('a base URL with a path keeps it in front of the API path', async (t) => {
    const client = new RmsHttpClient({ url: recorder.url('/rms/'), token: TOKEN });
    t.after(() => client.close());
    const before = recorder.requests.length;
    await client.confirm('under-a-path');
    assert.equal(recorder.requests[before]?.path, '/rms/v1/messages/under-a-path/confirm');
    assert.equal(recorder.requests[before]?.headers.authorization, `Bearer ${TOKEN}`);
  });

  test('close() lets the calls in flight finish, closes the connections, and refuses later calls', async (t) => {
    const server = await connectionCountingServer(150);
    t.after(() => server.close());
    const client = new RmsHttpClient({ url: server.url, token: TOKEN });
    await client.confirm('warm');
    assert.equal(server.open(), 1, 'the keep-alive connection stays open between calls');
    const inFlight = client.confirm('in-flight');
    await eventually(() => server.accepted() >= 1, 'the call to reach the server');
    await client.close();
    assert.equal((await inFlight).status, 'PENDING', 'the call in flight was answered');
    await eventually(() => server.open() === 0, 'the client to close its connections');
    await assert.rejects(client.confirm('late'), (error: unknown) => error instanceof RmsError && !(error instanceof RmsUnavailableError) && error.code === 'CLIENT_CLOSED');
    await client.close(); // idempotent
  });

  test("a producer's close() waits for the calls queued behind the batch in flight, then refuses new ones", async () => {
    const confirmed = (id: string) => ({ status: 200, body: { id, status: 'SENDING' } });
    script = [
      (request) => ({ ...confirmed(request.path.split('/')[3] as string), delayMs: 150 }),
      (request) => ({ status: 200, body: { results: (request.json as { ids: string[] }).ids.map(confirmed) } }),
    ];
    const producer = createProducer({ url: recorder.url(''), token: TOKEN });
    const before = recorder.requests.length;
    const first = producer.confirm('a'); // alone: goes out at once, answered after 150 ms
    await new Promise((resolve) => setTimeout(resolve, 50));
    const queued = [producer.confirm('b'), producer.confirm('c')]; // wait for the batch in flight
    await producer.close();
    assert.deepEqual((await Promise.all([first, ...queued])).map((message) => message.id), ['a', 'b', 'c'], 'every call made before close() was answered');
    assert.deepEqual(
      recorder.requests.slice(before).map((request) => `${request.method} ${request.path}`),
      ['POST /v1/messages/a/confirm', 'POST /v1/confirms'],
    );
    await assert.rejects(producer.confirm('late'), (error: unknown) => error instanceof RmsError && error.code === 'CLIENT_CLOSED');
  });

  test("a producer's close() waits for send's confirms (asked as receipts) queued behind the batch in flight", async () => {
    const receipt = (id: string) => ({ id, messageId: `key-${id}`, status: 'SENDING' });
    script = [
      prepared,
      (request) => ({ status: 200, body: receipt(request.path.split('/')[3] as string), delayMs: 150 }),
      (request) => ({
        status: 200,
        body: { results: (request.json as { messages: { messageId: string }[] }).messages.map(({ messageId }) => ({ status: 201, body: { id: randomUUID(), messageId, status: 'PENDING' } })) },
      }),
      (request) => ({ status: 200, body: { results: (request.json as { ids: string[] }).ids.map((id) => ({ status: 200, body: receipt(id) })) } }),
    ];
    const producer = createProducer({ url: recorder.url(''), token: TOKEN });
    const before = recorder.requests.length;
    const committed: string[] = [];
    const commit = (name: string) => async () => void committed.push(name);
    const first = producer.send('close.receipts', { n: 'a' }, commit('a')); // alone: its confirm is answered after 150 ms
    await eventually(() => recorder.requests.length === before + 2, 'the first confirm to reach the server');
    const queued = [producer.send('close.receipts', { n: 'b' }, commit('b')), producer.send('close.receipts', { n: 'c' }, commit('c'))];
    await eventually(() => committed.length === 3, 'the queued sends to commit');
    await new Promise((resolve) => setTimeout(resolve, 10)); // their confirms now wait behind the first
    await producer.close();
    const sent = await Promise.all([first, ...queued]);
    assert.deepEqual(
      sent.map((result) => [result.confirmed, result.message.status]),
      [
        [true, 'SENDING'],
        [true, 'SENDING'],
        [true, 'SENDING'],
      ],
      'every send made before close() was confirmed',
    );
    const requests = recorder.requests.slice(before);
    assert.deepEqual(
      requests.map((request) => `${request.method} ${request.path.replace(/^\/v1\/messages\/[^/]+\/confirm$/, '/v1/messages/:id/confirm')} ${request.headers.prefer ?? '-'}`),
      ['POST /v1/messages -', 'POST /v1/messages/:id/confirm return=minimal', 'POST /v1/messages/batch -', 'POST /v1/confirms return=minimal'],
    );
  });
});
