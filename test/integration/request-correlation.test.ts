/**
 * Correlation: every request gets a request id (the caller's when it is safe, a new one
 * otherwise), echoed back and carried by every log line of that request.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createLogger } from '@rms/message-service';
import { startTestServer, type TestServer } from '../support/rms-server.js';

/** Log lines the server wrote, parsed. */
const lines: Record<string, unknown>[] = [];
let rms: TestServer;

before(async () => {
  const logger = createLogger('debug', 'rms', { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  rms = await startTestServer({ logger, env: { RMS_CHECK_DELAY_MS: '600000' } });
});
after(async () => {
  await rms?.stop();
});

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
