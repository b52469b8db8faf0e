import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { verifyCheckSignature } from '@rms/client-sdk';
import { type Notification, PostgresMessageStore } from '@rms/message-service';
import { HttpRecorder, type RecordedRequest } from '../support/http-recorder.js';
import { QueueWatcher, type SeenDelivery } from '../support/rabbitmq.js';
import { TEST_APPS, startTestServer, type TestServer } from '../support/rms-server.js';
import { waitUntil } from '../support/wait.js';

const ENV = {
  RMS_POLL_INTERVAL_MS: '20',
  // The cancelled message below must be cancelled (one HTTP call after its prepare) before
  // its first check is due: at 50 ms, a loaded CI box sometimes cancelled it too late, and
  // the check had rightly been made.
  RMS_CHECK_DELAY_MS: '2000',
  RMS_CHECK_INTERVAL_MS: '60',
  RMS_CHECK_MAX: '3',
  // Long enough that a loaded 2-core box always answers a check in time (at 150 ms, CI's
  // ROLLBACK and UNKNOWN checks timed out and were counted as "ask again"); the `timeout`
  // producer below answers later than this on purpose.
  RMS_CHECK_TIMEOUT_MS: '2000',
  RMS_PUBLISH_TIMEOUT_MS: '1000',
  RMS_RETRY_IMMEDIATE: '1',
  RMS_LEASE_MS: '3000',
  RMS_ACK_TIMEOUT_MS: '60000',
  // Longer than the whole file: the five dead messages fall into one window however loaded
  // the machine is, and the window is closed by the server's shutdown flush, not by a timer.
  RMS_ALERT_WINDOW_MS: '600000',
};

/** How the fake producer answers, chosen by the prefix of the producer's messageId. */
function producerAnswer(request: RecordedRequest): { status: number; body?: unknown; delayMs?: number } {
  const messageId = String(request.json?.messageId ?? '');
  const secret = messageId.startsWith('badsig-') ? 'a-secret-rms-does-not-have-0000' : TEST_APPS.orders.secret;
  const verdict = verifyCheckSignature({
    secret,
    timestamp: request.headers['x-rms-timestamp'] as string | undefined,
    signature: request.headers['x-rms-signature'] as string | undefined,
    body: request.body,
  });
  if (!verdict.valid) return { status: 401, body: { error: verdict.reason } };
  const kind = messageId.split('-')[0];
  switch (kind) {
    case 'commit': return { status: 200, body: { status: 'COMMIT' } };
    case 'rollback': return { status: 200, body: { status: 'ROLLBACK' } };
    case 'unknown': return { status: 200, body: { status: 'UNKNOWN' } };
    // Later than RMS_CHECK_TIMEOUT_MS by a margin: RMS's abort timer always fires first.
    case 'timeout': return { status: 200, body: { status: 'COMMIT' }, delayMs: 3000 };
    case 'error500': return { status: 500, body: { error: 'boom' } };
    case 'malformed': return { status: 200, body: { state: 'COMMITTED' } };
    default: return { status: 200, body: { status: 'COMMIT' } };
  }
}

describe('check-back: RMS asks the producer about messages left pending', { timeout: 120_000 }, () => {
  let producer: HttpRecorder;
  let rms: TestServer;
  let store: PostgresMessageStore;
  let watcher: QueueWatcher;
  const notifications: Notification[] = [];
  const topic = `checks.${randomUUID().slice(0, 8)}`;
  const seen: SeenDelivery[] = [];
  const suffix = randomUUID().slice(0, 8);
  const ids = new Map<string, string>();
  const groupsTopic = `groups.checks${randomUUID().slice(0, 8)}`;

  before(async () => {
    producer = await HttpRecorder.start(producerAnswer);
    rms = await startTestServer({ env: ENV, checkUrl: producer.url('/rms/check'), notificationSinks: [{ send: async (n) => void notifications.push(n) }] });
    store = new PostgresMessageStore({ url: rms.storeUrl });
    watcher = await QueueWatcher.open();
    await watcher.consume(topic, (delivery) => void seen.push(delivery));
    for (const kind of ['commit', 'rollback', 'unknown', 'timeout', 'error500', 'badsig', 'malformed']) {
      const answer = await rms.call('orders', 'POST', '/v1/messages', { topic, payload: { kind }, messageId: `${kind}-${suffix}` });
      assert.equal(answer.status, 201);
      ids.set(kind, answer.body.id);
    }
    // On a topic three consumer groups subscribe to (see TEST_APPS): COMMIT must open their deliveries.
    const grouped = await rms.call('orders', 'POST', '/v1/messages', { topic: groupsTopic, payload: { kind: 'grouped' }, messageId: `commit-groups-${suffix}` });
    ids.set('grouped', grouped.body.id);
    // Cancelled by the producer before any check: the producer would answer COMMIT, but must never be asked.
    const cancelled = await rms.call('orders', 'POST', '/v1/messages', { topic, payload: { kind: 'cancelled' }, messageId: `cancelled-${suffix}` });
    await rms.call('orders', 'DELETE', `/v1/messages/${cancelled.body.id}`);
    ids.set('cancelled', cancelled.body.id);
    await waitUntil(async () => {
      const page = await store.list({ topic, limit: 100 });
      return page.messages.every((m) => m.status !== 'PENDING');
    }, 'no message is left PENDING', 30_000); // the delay, then the timed-out producer's three 2 s checks
  });
  after(async () => {
    await rms?.stop();
    await store?.close();
    await producer?.close();
    await watcher?.deleteQueues([topic, ...['stock', 'points', 'shipping'].map((group) => `${groupsTopic}.${group}`)]);
    await watcher?.close();
  });

  const status = async (kind: string) => store.findById(ids.get(kind) ?? '');

  test('COMMIT confirms and delivers the message', async () => {
    const message = await status('commit');
    assert.equal(message?.status, 'SENDING');
    assert.equal(message?.checkAttempts, 1);
    assert.ok(message?.confirmedAt);
    await waitUntil(() => seen.some((d) => d.id === ids.get('commit')), 'the committed message is delivered');
  });

  test('COMMIT opens one delivery per group subscribed to the topic, as a confirm does', async () => {
    const message = await waitUntil(async () => {
      const found = await status('grouped');
      return found?.status === 'SENDING' ? found : null;
    }, 'the grouped message is confirmed by check-back');
    assert.deepEqual(message.deliveries.map((delivery) => delivery.group), ['stock', 'points', 'shipping']);
  });

  test('ROLLBACK cancels the message, and it never reaches RabbitMQ', async () => {
    const message = await status('rollback');
    assert.equal(message?.status, 'CANCELLED');
    assert.equal(message?.checkAttempts, 1);
  });

  test('UNKNOWN, a timeout, a 500, a malformed answer and a bad signature are all "ask again", until DEAD', async () => {
    const expectations: [string, RegExp][] = [
      ['unknown', /does not know yet/],
      ['timeout', /no answer within 2000 ms/],
      ['error500', /answered HTTP 500/],
      ['malformed', /malformed answer/],
      ['badsig', /answered HTTP 401/],
    ];
    for (const [kind, lastError] of expectations) {
      const message = await status(kind);
      assert.equal(message?.status, 'DEAD', kind);
      assert.equal(message?.deadReason, 'CHECK_EXHAUSTED', kind);
      assert.equal(message?.checkAttempts, 3, `${kind}: exactly RMS_CHECK_MAX checks`);
      assert.match(message?.lastError ?? '', lastError, kind);
    }
  });

  test('a cancelled message is never checked and never delivered; a rolled-back one never delivered', async () => {
    assert.equal((await status('cancelled'))?.checkAttempts, 0);
    assert.ok(!producer.requests.some((r) => String(r.json?.messageId).startsWith('cancelled-')));
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.deepEqual(seen.map((d) => d.id), [ids.get('commit')], 'only the committed message reached the queue');
  });

  test('each check is signed, names the producer key and counts its attempt', async () => {
    const unknownChecks = producer.requests.filter((r) => r.json?.messageId === `unknown-${suffix}`);
    assert.deepEqual(unknownChecks.map((r) => r.json.attempt), [1, 2, 3]);
    for (const request of unknownChecks) {
      assert.equal(request.json.topic, topic);
      assert.equal(request.json.id, ids.get('unknown'));
      assert.equal(typeof request.json.createdAt, 'string');
      assert.deepEqual(request.json.headers, {});
      assert.match(String(request.headers['x-rms-signature']), /^sha256=[0-9a-f]{64}$/);
    }
    // First check after RMS_CHECK_DELAY_MS (2000), then every RMS_CHECK_INTERVAL_MS (60): never early.
    const created = (await status('unknown'))?.createdAt.getTime() ?? 0;
    assert.ok((unknownChecks[0]?.at ?? 0) - created >= 1995, 'first check not before the delay');
    for (let i = 1; i < unknownChecks.length; i++) {
      assert.ok((unknownChecks[i]?.at ?? 0) - (unknownChecks[i - 1]?.at ?? 0) >= 55, 'checks not closer than the interval');
    }
  });

  // Last: it stops the server, whose shutdown sends the follow-up held in its window.
  test('exhausted check-backs alert at once for the first message, and once more for the rest of the topic', async () => {
    const dead = ['unknown', 'timeout', 'error500', 'malformed', 'badsig'].map((kind) => ids.get(kind));
    const sentAtOnce = notifications.filter((n) => n.topic === topic && n.reason === 'CHECK_EXHAUSTED');
    assert.equal(sentAtOnce.length, 1, `only the first is sent before the window closes: ${JSON.stringify(sentAtOnce)}`);
    assert.equal(sentAtOnce[0]?.kind, 'first');
    await rms.server.stop();
    const alerts = notifications.filter((n) => n.topic === topic && n.reason === 'CHECK_EXHAUSTED');
    assert.equal(alerts.length, 2, JSON.stringify(alerts));
    assert.equal(alerts[1]?.kind, 'follow-up');
    assert.equal(alerts[1]?.count, 4);
    assert.deepEqual([...(alerts[0]?.sampleIds ?? []), ...(alerts[1]?.sampleIds ?? [])].sort(), dead.sort());
  });
});
