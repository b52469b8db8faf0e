/**
 * The operator's questions about one message, against a real RMS, PostgreSQL and RabbitMQ:
 * what happened to it and why (its history), how a consumer's failure reaches RMS (nack),
 * and how an admin finds and resends dead messages (search filters, bulk resend).
 *
 * RMS runs with a 30 s ack deadline, so every redelivery seen here was brought forward by a
 * nack, and with at most two delivery rounds, so two failures make a message DEAD.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { startCheckBackProducer } from '../support/check-back-producer.js';
import type { HttpRecorder } from '../support/http-recorder.js';
import { QueueWatcher, type SeenDelivery } from '../support/rabbitmq.js';
import { startTestServer, type TestServer } from '../support/rms-server.js';
import { waitUntil } from '../support/wait.js';

const ENV = {
  RMS_POLL_INTERVAL_MS: '20',
  RMS_CHECK_DELAY_MS: '50',
  RMS_CHECK_INTERVAL_MS: '50',
  RMS_CHECK_MAX: '5',
  RMS_CHECK_TIMEOUT_MS: '1000',
  RMS_PUBLISH_TIMEOUT_MS: '1000',
  RMS_ACK_TIMEOUT_MS: '30000',
  RMS_RETRY_MAX: '2',
  RMS_RETRY_IMMEDIATE: '1',
  RMS_LEASE_MS: '3000',
};

describe('message history, consumer failures and finding dead messages', { timeout: 90_000 }, () => {
  let rms: TestServer;
  let producer: HttpRecorder;
  let watcher: QueueWatcher;
  const topic = `history.${randomUUID().slice(0, 8)}`;
  const seen: SeenDelivery[] = [];
  before(async () => {
    // Every message's first check-back is UNKNOWN, the second COMMIT.
    producer = await startCheckBackProducer((_key, count) => (count === 1 ? 'UNKNOWN' : 'COMMIT'));
    rms = await startTestServer({ env: ENV, checkUrl: producer.url('/check') });
    watcher = await QueueWatcher.open();
    await watcher.consume(topic, (delivery) => void seen.push(delivery));
  });
  after(async () => {
    await rms?.stop();
    await producer?.close();
    await watcher?.deleteQueues([topic]);
    await watcher?.close();
  });

  const deliveries = (id: string) => seen.filter((delivery) => delivery.id === id).length;
  const get = async (id: string) => (await rms.call('ops', 'GET', `/v1/messages/${id}`)).body;
  const history = async (id: string, app: 'ops' | 'orders' = 'ops') => {
    const answer = await rms.call(app, 'GET', `/v1/messages/${id}/history`);
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    return answer.body.events as { type: string; actor: string; app: string | null; attempt: number | null; transport: string | null; outcome: string | null; durationMs: number | null; reason: string | null; at: string }[];
  };
  /** Nacks the latest delivery of `id` seen, naming its attempt as the SDK does. */
  const nack = (id: string, reason: string, extra: object = {}) => {
    const attempt = seen.filter((delivery) => delivery.id === id).at(-1)?.attempt;
    return rms.call('inventory', 'POST', `/v1/messages/${id}/nack`, { reason, ...(attempt !== undefined && { attempt }), ...extra });
  };

  /** Prepares a message the producer leaves to check-back (first UNKNOWN, then COMMIT), and waits for its first delivery. */
  async function checkedBackAndDelivered(key: string): Promise<string> {
    const prepared = await rms.call('orders', 'POST', '/v1/messages', { topic, payload: { sku: 'A-1' }, messageId: key });
    assert.equal(prepared.status, 201);
    const id = prepared.body.id as string;
    await waitUntil(() => deliveries(id) === 1, `message ${key} is delivered once`);
    return id;
  }

  test('a DEAD message’s history answers why: the check-backs with verdict and duration, each round’s transport, the consumer’s reasons, and the death', async () => {
    const key = `dead-${randomUUID()}`;
    const id = await checkedBackAndDelivered(key);

    const first = await nack(id, 'TypeError: sku A-1 is not stocked here');
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.equal(first.body.status, 'SENDING');
    // The 30 s ack deadline would hold the next round back; the nack brings it forward.
    await waitUntil(() => deliveries(id) === 2, 'the nack brings the second delivery forward');
    const last = await nack(id, 'TypeError: sku A-1 is still not stocked');
    assert.equal(last.body.status, 'DEAD', 'the nacked round was the last allowed one');

    const message = await get(id);
    assert.equal(message.deadReason, 'DELIVERY_EXHAUSTED');
    assert.equal(message.lastError, 'consumer inventory: TypeError: sku A-1 is still not stocked');

    const events = await history(id);
    assert.deepEqual(
      events.map((e) => [e.type, e.actor, e.outcome]),
      [
        ['prepared', 'producer', null],
        ['check-back', 'rms', 'UNKNOWN'],
        ['check-back', 'rms', 'COMMIT'],
        ['confirmed', 'check-back', null],
        ['delivery', 'rms', 'published'],
        ['consumer-failure', 'consumer', null],
        ['delivery', 'rms', 'published'],
        ['consumer-failure', 'consumer', null],
        ['dead', 'consumer', 'DELIVERY_EXHAUSTED'],
      ],
    );
    for (const check of events.filter((e) => e.type === 'check-back')) assert.ok(typeof check.durationMs === 'number' && check.durationMs >= 0, 'each check-back has its duration');
    assert.deepEqual(events.filter((e) => e.type === 'delivery').map((e) => [e.attempt, e.transport]), [[1, 'rabbitmq'], [2, 'rabbitmq']]);
    assert.deepEqual(
      events.filter((e) => e.type === 'consumer-failure').map((e) => [e.app, e.attempt, e.reason]),
      [['inventory', 1, 'TypeError: sku A-1 is not stocked here'], ['inventory', 2, 'TypeError: sku A-1 is still not stocked']],
    );
    assert.equal(events.at(-1)?.reason, 'consumer inventory: TypeError: sku A-1 is still not stocked');
    const times = events.map((e) => Date.parse(e.at));
    assert.deepEqual(times, [...times].sort((a, b) => a - b), 'oldest first, each with its time');

    // The owner may read it too; another producer is told it does not exist.
    assert.equal((await history(id, 'orders')).length, events.length);
    assert.equal((await rms.call('billing', 'GET', `/v1/messages/${id}/history`)).status, 404);

    // A resend starts a new round and keeps the old ones visible.
    const resent = await rms.call('ops', 'POST', `/v1/messages/${id}/resend`);
    assert.equal(resent.status, 200);
    await waitUntil(() => deliveries(id) === 3, 'the resent message is delivered again');
    assert.equal((await rms.call('inventory', 'POST', `/v1/messages/${id}/ack`)).body.status, 'COMPLETED');
    const after = await history(id);
    assert.deepEqual(after.slice(0, events.length), events, 'the earlier rounds stay');
    assert.deepEqual(
      after.slice(events.length).map((e) => [e.type, e.actor, e.app, e.attempt]),
      [
        ['resent', 'admin', 'ops', 2],
        ['delivery', 'rms', null, 1],
        ['acked', 'consumer', 'inventory', 1],
      ],
    );
  });

  /** `rms_nacks_total` of the file's topic, from /metrics. */
  async function nackCount(): Promise<number> {
    const text = await (await fetch(`${rms.baseUrl}/metrics`)).text();
    const line = text.split('\n').find((candidate) => candidate.startsWith(`rms_nacks_total{topic="${topic}"}`));
    return line ? Number(line.split(' ').at(-1)) : 0;
  }

  test('a nack with retryAfterMs schedules the next round that far out; a heartbeat is recorded with the new deadline', async () => {
    const id = await checkedBackAndDelivered(`pause-${randomUUID()}`);
    const nacksBefore = await nackCount();
    const before = Date.now();
    const answer = await nack(id, 'downstream busy', { retryAfterMs: 20_000 });
    assert.equal(answer.status, 200);
    assert.equal(await nackCount(), nacksBefore + 1, 'rms_nacks_total counts the nack under its topic');
    const due = Date.parse(answer.body.nextAttemptAt);
    assert.ok(due >= before + 20_000 - 1000 && due <= Date.now() + 20_000 + 1000, `due about 20 s from now, got ${answer.body.nextAttemptAt}`);
    const beat = await rms.call('inventory', 'POST', `/v1/messages/${id}/heartbeat`, { extendMs: 60_000 });
    assert.equal(beat.status, 200);
    const events = await history(id);
    const failure = events.find((e) => e.type === 'consumer-failure') as unknown as { nextAttemptAt: string };
    assert.equal(failure.nextAttemptAt, answer.body.nextAttemptAt);
    const heartbeat = events.find((e) => e.type === 'heartbeat') as unknown as { app: string; nextAttemptAt: string };
    assert.deepEqual(heartbeat, { ...heartbeat, app: 'inventory', nextAttemptAt: beat.body.nextAttemptAt });
  });

  test('a batch nack reports each message on its own: a refused one does not fail the others', async () => {
    const id = await checkedBackAndDelivered(`batch-${randomUUID()}`);
    const cancelled = await rms.call('orders', 'POST', '/v1/messages', { topic, payload: {}, messageId: `batch-cancel-${randomUUID()}` });
    await rms.call('orders', 'DELETE', `/v1/messages/${cancelled.body.id}`);
    const answer = await rms.call('inventory', 'POST', '/v1/nacks', {
      nacks: [
        { id, reason: 'first failure' },
        { id: cancelled.body.id, reason: 'too late' },
        { id: randomUUID(), reason: 'unknown' },
      ],
    });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    const [ok, conflict, missing] = answer.body.results;
    assert.deepEqual(ok, { id, status: 'SENDING', group: 'default', delivery: 'SENDING' });
    assert.equal(conflict.error.code, 'STATE_CONFLICT');
    assert.equal(missing.error.code, 'NOT_FOUND');
    assert.equal((await get(id)).lastError, 'consumer inventory: first failure');
  });

  test('bad nacks get a 400 naming the problem; only consumers may nack', async () => {
    const id = randomUUID();
    const cases: [unknown, string][] = [
      [{}, 'reason'],
      [{ reason: '' }, 'reason'],
      [{ reason: 'x'.repeat(1001) }, 'reason'],
      [{ reason: 'ok', retryAfterMs: -1 }, 'retryAfterMs'],
      [{ reason: 'ok', retryAfterMs: 1.5 }, 'retryAfterMs'],
      [{ reason: 'ok', extra: 1 }, 'extra'],
    ];
    for (const [body, field] of cases) {
      const answer = await rms.call('inventory', 'POST', `/v1/messages/${id}/nack`, body);
      assert.equal(answer.status, 400, JSON.stringify(body));
      assert.match(JSON.stringify(answer.body), new RegExp(field), `names ${field}: ${JSON.stringify(answer.body)}`);
    }
    assert.equal((await rms.call('inventory', 'POST', '/v1/messages/not-a-uuid/nack', { reason: 'x' })).status, 400);
    assert.equal((await rms.call('orders', 'POST', `/v1/messages/${id}/nack`, { reason: 'x' })).status, 403);
    const twice = await rms.call('inventory', 'POST', '/v1/nacks', { nacks: [{ id, reason: 'a' }, { id, reason: 'b' }] });
    assert.equal(twice.status, 400);
    assert.match(twice.body.error.message, /twice/);
  });

  test('the admin list finds a message by the producer’s key, by producer and by time range, newest first', async () => {
    const key = `find-me-${randomUUID()}`;
    const start = new Date().toISOString();
    const made = await rms.call('orders', 'POST', '/v1/messages', { topic, payload: {}, messageId: key });
    await rms.call('billing', 'POST', '/v1/messages', { topic, payload: {}, messageId: `billing-${randomUUID()}` });
    const byKey = await rms.call('ops', 'GET', `/v1/messages?messageId=${key}`);
    assert.deepEqual(byKey.body.messages.map((m: { id: string }) => m.id), [made.body.id]);
    const byProducer = await rms.call('ops', 'GET', `/v1/messages?producer=billing&topic=${topic}`);
    assert.ok(byProducer.body.messages.length >= 1 && byProducer.body.messages.every((m: { producer: string }) => m.producer === 'billing'));
    const inRange = await rms.call('ops', 'GET', `/v1/messages?topic=${topic}&from=${encodeURIComponent(start)}`);
    assert.equal(inRange.body.messages.length, 2);
    assert.ok(Date.parse(inRange.body.messages[0].createdAt) >= Date.parse(inRange.body.messages[1].createdAt), 'newest first');
    const empty = await rms.call('ops', 'GET', `/v1/messages?topic=${topic}&to=${encodeURIComponent('2000-01-01T00:00:00Z')}`);
    assert.deepEqual(empty.body.messages, []);

    for (const [query, field] of [
      ['from=yesterday', 'from'],
      ['to=2026-13-01T00:00:00Z', 'to'],
      ['from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z', 'from'],
      ['producer=a%20b', 'producer'],
      ['messageId=', 'messageId'],
      ['colour=red', 'colour'],
    ] as const) {
      const answer = await rms.call('ops', 'GET', `/v1/messages?${query}`);
      assert.equal(answer.status, 400, query);
      assert.match(JSON.stringify(answer.body), new RegExp(field), `${query} names ${field}: ${JSON.stringify(answer.body)}`);
    }
  });

  test('bulk resend by filter: a dry run counts the DEAD messages it would resend and changes nothing; the real one resends them', async () => {
    const dead: string[] = [];
    for (let i = 0; i < 2; i++) {
      const id = await checkedBackAndDelivered(`bulk-${i}-${randomUUID()}`);
      await nack(id, 'fails');
      await waitUntil(() => deliveries(id) === 2, 'second delivery');
      assert.equal((await nack(id, 'fails again')).body.status, 'DEAD');
      dead.push(id);
    }
    const filter = { topic, producer: 'orders' };
    const dry = await rms.call('ops', 'POST', '/v1/resends', { filter, dryRun: true });
    assert.equal(dry.status, 200, JSON.stringify(dry.body));
    assert.deepEqual(dry.body, { matched: dry.body.matched, resendable: dry.body.matched, resent: [], dryRun: true });
    assert.ok(dry.body.matched >= 2);
    for (const id of dead) assert.equal((await get(id)).status, 'DEAD', 'a dry run changes nothing');

    const real = await rms.call('ops', 'POST', '/v1/resends', { filter });
    assert.equal(real.status, 200);
    assert.equal(real.body.dryRun, false);
    for (const id of dead) assert.ok(real.body.resent.includes(id));
    for (const id of dead) {
      assert.equal((await get(id)).status, 'SENDING');
      assert.ok((await history(id)).some((e) => e.type === 'resent' && e.app === 'ops'));
    }
    const none = await rms.call('ops', 'POST', '/v1/resends', { filter: { topic: `${topic}.nothing` }, dryRun: true });
    assert.deepEqual(none.body, { matched: 0, resendable: 0, resent: [], dryRun: true });

    for (const [body, field] of [
      [{ filter: { status: 'DEAD' } }, 'status'],
      [{ dryRun: 'yes' }, 'dryRun'],
      [{ limit: 0 }, 'limit'],
      [{ filter: { from: 'noon' } }, 'from'],
    ] as const) {
      const answer = await rms.call('ops', 'POST', '/v1/resends', body);
      assert.equal(answer.status, 400, JSON.stringify(body));
      assert.match(JSON.stringify(answer.body), new RegExp(field));
    }
    assert.equal((await rms.call('orders', 'POST', '/v1/resends', { dryRun: true })).status, 403);
  });
});
