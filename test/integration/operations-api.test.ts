/**
 * The operator's routes against a real RMS with its failover transport and ZooKeeper
 * degrade switch: `/v1/stats` (counts by status and topic, oldest waiting, failover
 * state), `/v1/degrade` (read and forced through the same switch module as `rms-admin`),
 * and the dashboard's static files with their security headers.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { ZooKeeperDegradeSwitch } from '@rms/client-sdk';
import { startTestServer, type TestServer } from '../support/rms-server.js';
import { waitUntil } from '../support/wait.js';

const ZK = process.env['TEST_ZK_CONNECT'] ?? '127.0.0.1:2181';

describe('operations API: stats, the degrade switch and the dashboard files', { timeout: 60_000 }, () => {
  let rms: TestServer;
  const topic = `ops.${randomUUID().slice(0, 8)}`;

  before(async () => {
    rms = await startTestServer({ env: { RMS_CHECK_DELAY_MS: '3600000' } });
  });
  after(async () => {
    await rms?.stop();
  });

  test('GET /v1/stats counts messages by status and topic, lists the oldest waiting ones and shows the failover state (admins only)', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await rms.call('orders', 'POST', '/v1/messages', { topic, payload: { i } })).body.id);
    await rms.call('orders', 'DELETE', `/v1/messages/${ids[2]}`);
    // The counts are cached for a few seconds: wait for a reading taken after the writes.
    const stats = await waitUntil(async () => {
      const answer = await rms.call('ops', 'GET', '/v1/stats');
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      return answer.body.counts.some((c: { topic: string }) => c.topic === topic) ? answer.body : null;
    }, 'the stats include the new topic', 10_000);
    const mine = stats.counts.filter((c: { topic: string }) => c.topic === topic);
    assert.deepEqual(
      mine.map((c: { status: string; count: number }) => [c.status, c.count]).sort(),
      [['CANCELLED', 1], ['PENDING', 2]],
    );
    assert.ok(stats.totals.PENDING >= 2 && stats.totals.CANCELLED >= 1);
    assert.ok(stats.oldestWaiting.some((m: { id: string }) => m.id === ids[0]));
    for (const m of stats.oldestWaiting) assert.ok(['PENDING', 'SENDING'].includes(m.status) && m.waitingSeconds >= 0);
    assert.equal(stats.failover.mode, 'rabbitmq');
    assert.equal(typeof stats.failover.consecutiveFailures, 'number');
    assert.equal(stats.degrade.mode, 'auto');
    assert.equal(stats.degrade.effective, 'normal');
    assert.equal((await rms.call('orders', 'GET', '/v1/stats')).status, 403);
    assert.equal((await rms.call(null, 'GET', '/v1/stats')).status, 401);
  });

  test('PUT /v1/degrade forces the switch through the ZooKeeper switch module rms-admin uses, and records who and why', async () => {
    const root = `/rms-test/${rms.schema}`;
    const observer = new ZooKeeperDegradeSwitch({ connect: ZK, root, connectTimeoutMs: 3000, requestTimeoutMs: 3000 });
    await observer.start();
    try {
      const off = await rms.call('ops', 'PUT', '/v1/degrade', { mode: 'off', reason: 'RabbitMQ maintenance is over' });
      assert.equal(off.status, 200, JSON.stringify(off.body));
      assert.deepEqual([off.body.mode, off.body.effective, off.body.changedBy], ['off', 'normal', 'ops (RMS dashboard)']);
      const stored = await observer.refresh();
      assert.deepEqual([stored.mode, stored.reason, stored.changedBy], ['off', 'RabbitMQ maintenance is over', 'ops (RMS dashboard)']);
      const back = await rms.call('ops', 'PUT', '/v1/degrade', { mode: 'auto', reason: 'back to automation' });
      assert.equal(back.body.mode, 'auto');
      assert.equal((await observer.refresh()).mode, 'auto');
      assert.equal((await rms.call('ops', 'GET', '/v1/degrade')).body.mode, 'auto');
    } finally {
      await observer.close();
    }
    for (const [body, field] of [
      [{ mode: 'sideways', reason: 'x' }, 'mode'],
      [{ mode: 'on' }, 'reason'],
      [{ mode: 'on', reason: '' }, 'reason'],
      [{ mode: 'on', reason: 'x', by: 'me' }, 'by'],
    ] as const) {
      const answer = await rms.call('ops', 'PUT', '/v1/degrade', body);
      assert.equal(answer.status, 400, JSON.stringify(body));
      assert.match(JSON.stringify(answer.body), new RegExp(field));
    }
    assert.equal((await rms.call('inventory', 'PUT', '/v1/degrade', { mode: 'on', reason: 'x' })).status, 403);
  });

  test('the dashboard is served from the repository’s static files with a strict content security policy, without a token', async () => {
    for (const path of ['/dashboard', '/dashboard/']) {
      const page = await fetch(`${rms.baseUrl}${path}`);
      assert.equal(page.status, 200);
      assert.match(page.headers.get('content-type') ?? '', /text\/html/);
      assert.match(page.headers.get('content-security-policy') ?? '', /script-src 'self'/);
      assert.match(page.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/);
      assert.equal(page.headers.get('referrer-policy'), 'no-referrer');
      assert.match(await page.text(), /<script src="\/dashboard\/app\.js"/);
    }
    const script = await fetch(`${rms.baseUrl}/dashboard/app.js`);
    assert.equal(script.status, 200);
    assert.match(script.headers.get('content-type') ?? '', /javascript/);
    const missing = await fetch(`${rms.baseUrl}/dashboard/nothing.js`);
    assert.equal(missing.status, 404);
    assert.match(((await missing.json()) as { error: { message: string } }).error.message, /no route GET \/dashboard\/nothing\.js/);
  });
});
