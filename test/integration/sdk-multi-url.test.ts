/**
 * The SDK with several RMS URLs: a connection error, a timeout or a 503 moves it to the next
 * instance at once, and it stays on the one that answered.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { RmsHttpClient, RmsUnavailableError } from '@rms/client-sdk';
import { closedPort } from '../../scripts/loopback-ports.js';
import { HttpRecorder, type RecordedRequest } from '../support/http-recorder.js';

const prepared = (request: RecordedRequest) => ({
  status: 201,
  body: { id: randomUUID(), producer: 'orders', messageId: (request.json as { messageId?: string } | undefined)?.messageId ?? null, status: 'PENDING' },
});

describe('RmsHttpClient with several RMS URLs', () => {
  let healthy: HttpRecorder;
  let unavailable: HttpRecorder;
  let closedUrl: string;

  before(async () => {
    healthy = await HttpRecorder.start(prepared);
    unavailable = await HttpRecorder.start(() => ({ status: 503, body: { error: { code: 'DEPENDENCY_UNAVAILABLE', message: 'the store is down' } } }));
    closedUrl = `http://127.0.0.1:${await closedPort()}`; // nothing listens there
  });
  after(async () => {
    await healthy?.close();
    await unavailable?.close();
  });

  const client = (urls: string[]) => new RmsHttpClient({ url: urls, token: 'orders-token-0123456789', timeoutMs: 1000, retry: { retries: 3, baseDelayMs: 1000, maxDelayMs: 1000 } });

  test('a refused connection moves the call to the next URL at once, with the same messageId, and the client stays there', async () => {
    const rms = client([closedUrl, healthy.url('')]);
    const started = Date.now();
    const message = await rms.prepare('multi.url', { n: 1 }, { messageId: 'key-1' });
    assert.equal(message.messageId, 'key-1');
    assert.ok(Date.now() - started < 900, 'the move to the next instance did not wait for a backoff');
    assert.equal(rms.url, healthy.url(''));
    const before = healthy.requests.length;
    await rms.prepare('multi.url', { n: 2 });
    assert.equal(healthy.requests.length, before + 1, 'the next call went straight to the instance that answered');
  });

  test('a 503 from one instance moves the call to the next', async () => {
    const rms = client([unavailable.url(''), healthy.url('')]);
    const message = await rms.prepare('multi.url', { n: 3 }, { messageId: 'key-3' });
    assert.equal(message.messageId, 'key-3');
    assert.equal(unavailable.requests.length, 1);
  });

  test('when every instance fails, the call fails with RmsUnavailableError after the retry budget, having tried each', async () => {
    const rms = new RmsHttpClient({ url: [closedUrl, unavailable.url('')], token: 'orders-token-0123456789', timeoutMs: 500, retry: { retries: 3, baseDelayMs: 10, maxDelayMs: 10 } });
    const before = unavailable.requests.length;
    await assert.rejects(rms.prepare('multi.url', { n: 4 }), RmsUnavailableError);
    assert.equal(unavailable.requests.length - before, 2, 'four attempts alternate between the two instances');
  });

  test('an empty URL list is refused at construction', () => {
    assert.throws(() => new RmsHttpClient({ url: [], token: 'orders-token-0123456789' }), TypeError);
  });
});
