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
      storeUrlThrough: (url) => {
        const through = new URL(url);
        through.host = `${proxy.host}:${proxy.port}`;
        return through.toString();
      },
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
