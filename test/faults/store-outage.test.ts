import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { PostgresMessageStore } from '@rms/message-service';
import { FaultProxy } from '../support/fault-proxy.js';
import { startTestServer, type TestServer } from '../support/rms-server.js';

describe('the store going down', () => {
  let proxy: FaultProxy;
  let rms: TestServer;
  let direct: PostgresMessageStore;

  before(async () => {
    proxy = await FaultProxy.start({ targetHost: '127.0.0.1', targetPort: 5432 });
    rms = await startTestServer({
      storeUrlThrough: (url) => proxy.route(url),
      storeTimeouts: { connectTimeoutMs: 500, statementTimeoutMs: 500 },
    });
    direct = new PostgresMessageStore({ url: rms.storeUrl });
  });
  after(async () => {
    proxy?.restore();
    await direct?.close();
    await rms?.stop();
    await proxy?.close();
  });

  async function topicCount(topic: string): Promise<number> {
    return (await direct.list({ topic, limit: 100 })).messages.length;
  }

  test('a cut store answers 503 with Retry-After, writes nothing, and the server recovers', async () => {
    const pending = await rms.call('orders', 'POST', '/v1/messages', { topic: 'outage.cut', payload: { n: 0 } });
    assert.equal(pending.status, 201);

    proxy.cut();
    const prepare = await rms.call('orders', 'POST', '/v1/messages', { topic: 'outage.cut', payload: { n: 1 } });
    assert.equal(prepare.status, 503, JSON.stringify(prepare.body));
    assert.equal(prepare.headers.get('retry-after'), '5');
    assert.equal(prepare.body.error.code, 'DEPENDENCY_UNAVAILABLE');
    assert.equal(prepare.body.error.dependency, 'store');
    const confirm = await rms.call('orders', 'POST', `/v1/messages/${pending.body.id}/confirm`);
    assert.equal(confirm.status, 503);
    const ready = await rms.call(null, 'GET', '/readyz');
    assert.equal(ready.status, 503);
    assert.equal(ready.body.dependencies.store.status, 'down');
    assert.equal((await rms.call(null, 'GET', '/healthz')).status, 200, 'the process itself is alive');

    assert.equal(await topicCount('outage.cut'), 1, 'the prepare refused during the outage left no row');
    assert.equal((await direct.findById(pending.body.id))?.status, 'PENDING', 'the refused confirm changed nothing');

    proxy.restore();
    const after = await rms.call('orders', 'POST', '/v1/messages', { topic: 'outage.cut', payload: { n: 2 } });
    assert.equal(after.status, 201, JSON.stringify(after.body));
    assert.equal((await rms.call('orders', 'POST', `/v1/messages/${pending.body.id}/confirm`)).body.status, 'SENDING');
    assert.equal((await rms.call(null, 'GET', '/readyz')).status, 200);
  });

  test('a stalled store answers 503 within the statement timeout instead of hanging', async () => {
    // Warm the pool so a pooled connection is the one that stalls.
    assert.equal((await rms.call('orders', 'POST', '/v1/messages', { topic: 'outage.stall', payload: 1 })).status, 201);
    proxy.stall();
    const started = Date.now();
    const stalled = await rms.call('orders', 'POST', '/v1/messages', { topic: 'outage.stall', payload: 2 });
    const elapsed = Date.now() - started;
    assert.equal(stalled.status, 503, JSON.stringify(stalled.body));
    assert.ok(elapsed < 5000, `answered after ${elapsed} ms`);
    proxy.restore();
    let recovered = 0;
    for (let i = 0; i < 3 && recovered !== 201; i++) {
      recovered = (await rms.call('orders', 'POST', '/v1/messages', { topic: 'outage.stall', payload: 3 })).status;
    }
    assert.equal(recovered, 201);
  });
});

/** Long enough that "refused at once" and "answered at the deadline" stay apart on a loaded machine. */
const DEADLINE_MS = 2500;

describe('bounded waits on a blackholed store (RMS_STORE_DEADLINE_MS, RMS_STORE_MAX_PENDING)', () => {
  let proxy: FaultProxy;
  let rms: TestServer;

  before(async () => {
    proxy = await FaultProxy.start({ targetHost: '127.0.0.1', targetPort: 5432 });
    rms = await startTestServer({
      storeUrlThrough: (url) => proxy.route(url),
      // The driver's own timeouts are long, as in production: only RMS's deadline can answer in time.
      storeTimeouts: { connectTimeoutMs: 20_000, statementTimeoutMs: 20_000 },
      env: { RMS_STORE_DEADLINE_MS: String(DEADLINE_MS), RMS_STORE_MAX_PENDING: '20' },
    });
  });
  after(async () => {
    proxy?.restore();
    await rms?.stop();
    await proxy?.close();
  });

  test('a request waiting on a stalled store answers 503 with Retry-After at the deadline, not when the driver gives up', async () => {
    assert.equal((await rms.call('orders', 'POST', '/v1/messages', { topic: 'deadline', payload: 1 })).status, 201);
    proxy.stall();
    try {
      const started = Date.now();
      const answer = await rms.call('orders', 'POST', '/v1/messages', { topic: 'deadline', payload: 2 });
      const elapsed = Date.now() - started;
      assert.equal(answer.status, 503, JSON.stringify(answer.body));
      assert.equal(answer.headers.get('retry-after'), '5');
      assert.equal(answer.body.error.dependency, 'store');
      assert.match(answer.body.error.message, new RegExp(`did not answer within ${DEADLINE_MS} ms`));
      assert.ok(elapsed >= DEADLINE_MS - 50 && elapsed < DEADLINE_MS * 2, `answered after ${elapsed} ms (deadline ${DEADLINE_MS} ms; the driver's timeout is 20 s)`);
    } finally {
      proxy.restore();
    }
  });

  test('past the bound on waiting store calls, requests are refused at once with 503 instead of queueing', async () => {
    proxy.stall();
    try {
      const answers = await Promise.all(
        Array.from({ length: 60 }, async (_, n) => {
          const started = Date.now();
          const answer = await rms.call('orders', 'POST', '/v1/messages', { topic: 'bounded', payload: n });
          return { status: answer.status, message: String(answer.body?.error?.message), elapsed: Date.now() - started };
        }),
      );
      assert.deepEqual([...new Set(answers.map((answer) => answer.status))], [503], 'every answer is a 503, none a 500');
      const refusedAtOnce = answers.filter((answer) => /calls waiting \(at most 20\)/.test(answer.message));
      assert.ok(refusedAtOnce.length >= 40, `${refusedAtOnce.length} of 60 refused for the bound`);
      const waited = answers.filter((answer) => /did not answer within/.test(answer.message));
      assert.ok(waited.length >= 1 && waited.length <= 20, `${waited.length} calls waited for the deadline (at most the 20 admitted)`);
      const slowestRefusal = Math.max(...refusedAtOnce.map((answer) => answer.elapsed));
      assert.ok(slowestRefusal < DEADLINE_MS - 500, `refusals came without waiting for the deadline (slowest ${slowestRefusal} ms, deadline ${DEADLINE_MS} ms)`);
    } finally {
      proxy.restore();
    }
    let status = 0;
    for (let attempt = 0; attempt < 20 && status !== 201; attempt++) {
      status = (await rms.call('orders', 'POST', '/v1/messages', { topic: 'bounded', payload: 'after' })).status;
      if (status !== 201) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal(status, 201, 'the store serves again once the stall ends');
  });
});
