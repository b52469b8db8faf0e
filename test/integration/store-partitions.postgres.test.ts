/**
 * The PostgreSQL store's time-range partitions (issue 14): unfinished messages live in one
 * small partition, finished ones move into their day's, and retention drops whole days.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { v7 as uuidv7 } from 'uuid';
import { MIGRATIONS, PostgresMessageStore, type NewMessage } from '@rms/message-service';
import { TEST_POSTGRES_URL, dropSchema, freshSchemaUrl } from '../support/postgres.js';

const DAY = 24 * 3600 * 1000;

function newMessage(overrides: Partial<NewMessage> = {}): NewMessage {
  const now = new Date();
  return { id: uuidv7(), producer: 'orders', producerMessageId: null, topic: 'partitions', payload: { n: 1 }, headers: {}, createdAt: now, nextAttemptAt: now, ...overrides };
}

describe('PostgreSQL store partitions', () => {
  const { url, schema } = freshSchemaUrl();
  const store = new PostgresMessageStore({ url });
  const admin = new pg.Client({ connectionString: TEST_POSTGRES_URL });
  /** When `init` ran: the days it made partitions for are relative to a moment in between. */
  let initFrom = 0;
  let initTo = 0;
  before(async () => {
    initFrom = Date.now();
    await store.init();
    initTo = Date.now();
    await admin.connect();
  });
  after(async () => {
    await store.close();
    await admin.end();
    await dropSchema(schema);
  });

  /** The partition a message's row is in. */
  async function partitionOf(id: string): Promise<string | null> {
    const { rows } = await admin.query<{ partition: string }>(
      `SELECT tableoid::regclass::text AS partition FROM "${schema}".rms_messages WHERE id = $1`,
      [id],
    );
    return rows[0]?.partition.replace(`"${schema}".`, '').replace(`${schema}.`, '') ?? null;
  }

  /** The day partitions of a partitioned table. */
  async function partitionsOf(table: string): Promise<string[]> {
    const { rows } = await admin.query<{ name: string }>(
      `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
       JOIN pg_namespace n ON n.oid = p.relnamespace WHERE n.nspname = $1 AND p.relname = $2 ORDER BY 1`,
      [schema, table],
    );
    return rows.map((row) => row.name);
  }

  async function complete(id: string, at: Date): Promise<void> {
    const sending = await store.transition({ id, from: { status: 'PENDING', deadReason: null }, to: 'SENDING', deadReason: null, at, set: {} });
    assert.ok(sending);
    const completed = await store.transition({ id, from: { status: 'SENDING', deadReason: null }, to: 'COMPLETED', deadReason: null, at, set: { completedAt: at, nextAttemptAt: null } });
    assert.ok(completed, 'completed');
  }

  test('start creates day partitions from yesterday to two days ahead, for messages and history', async () => {
    // "Today" is the day init ran, not the day this test runs: a run across midnight (UTC)
    // would otherwise look for a day init had no reason to make yet. When init itself
    // straddled midnight, either day may be its today.
    const key = (from: number, offset: number) => new Date(from + offset * DAY).toISOString().slice(0, 10).replaceAll('-', '');
    const messages = await partitionsOf('rms_messages');
    const events = await partitionsOf('rms_message_events');
    const madeFrom = (from: number) =>
      [-1, 0, 1, 2].every((offset) => messages.includes(`rms_messages_finished_${key(from, offset)}`) && events.includes(`rms_message_events_${key(from, offset)}`));
    assert.ok(madeFrom(initFrom) || madeFrom(initTo), `messages and events partitions for the 4 days around ${key(initFrom, 0)} in ${messages.join(', ')} / ${events.join(', ')}`);
    assert.ok(messages.includes('rms_messages_active'));
  });

  test('unfinished messages live in the active partition; a COMPLETED or CANCELLED one moves to the day it finished, and back when it changes again', async () => {
    const pending = (await store.insert(newMessage())).message;
    const completed = (await store.insert(newMessage())).message;
    const cancelledInsertedAsBatch = (await store.insertMany([newMessage()]))[0];
    assert.equal(cancelledInsertedAsBatch?.status, 'fulfilled');
    const cancelled = cancelledInsertedAsBatch.value.message;
    const finishedAt = new Date('2026-03-04T23:59:59.999Z');
    await complete(completed.id, finishedAt);
    const [moved] = await store.transitionMany([{ id: cancelled.id, from: { status: 'PENDING', deadReason: null }, to: 'CANCELLED', deadReason: null, at: finishedAt, set: { cancelledAt: finishedAt } }]);
    assert.equal(moved?.status, 'fulfilled');
    assert.equal(await partitionOf(pending.id), 'rms_messages_active');
    assert.equal(await partitionOf(completed.id), 'rms_messages_finished_20260304', 'a day without a partition gets one on demand');
    assert.equal(await partitionOf(cancelled.id), 'rms_messages_finished_20260304');
    // Reads find a message wherever it lives.
    assert.equal((await store.findById(completed.id))?.status, 'COMPLETED');
    assert.deepEqual((await store.findByIds([cancelled.id, pending.id])).map((m) => m?.status), ['CANCELLED', 'PENDING']);
    // A finished message that changes again (an operator's resend) moves back to the active partition.
    const resent = await store.transition({ id: completed.id, from: { status: 'COMPLETED', deadReason: null }, to: 'SENDING', deadReason: null, at: new Date(), set: { nextAttemptAt: new Date() } });
    assert.equal(resent?.status, 'SENDING');
    assert.equal(await partitionOf(completed.id), 'rms_messages_active');
  });

  test('a producer key stays taken after its message finished: preparing it again returns the finished message, alone and in a batch', async () => {
    const first = await store.insert(newMessage({ producerMessageId: 'order-finished-1' }));
    assert.equal(first.created, true);
    await complete(first.message.id, new Date());
    assert.match((await partitionOf(first.message.id)) ?? '', /^rms_messages_finished_/);
    const again = await store.insert(newMessage({ producerMessageId: 'order-finished-1' }));
    assert.equal(again.created, false);
    assert.equal(again.message.id, first.message.id);
    assert.equal(again.message.status, 'COMPLETED');
    const [batched, fresh] = await store.insertMany([newMessage({ producerMessageId: 'order-finished-1' }), newMessage({ producerMessageId: 'order-new-2' })]);
    assert.equal(batched?.status === 'fulfilled' && batched.value.created, false);
    assert.equal(batched?.status === 'fulfilled' && batched.value.message.id, first.message.id);
    assert.equal(fresh?.status === 'fulfilled' && fresh.value.created, true);
    const { rows } = await admin.query(`SELECT id FROM "${schema}".rms_messages WHERE producer_message_id = 'order-finished-1'`);
    assert.equal(rows.length, 1, 'one message holds the key');
  });

  test('racing writes on a message that moves to its day partition answer "not moved" to the losers, never an error', async () => {
    for (let round = 0; round < 10; round++) {
      const { message } = await store.insert(newMessage());
      const at = new Date();
      await store.transition({ id: message.id, from: { status: 'PENDING', deadReason: null }, to: 'SENDING', deadReason: null, at, set: { nextAttemptAt: new Date(Date.now() - 1) } });
      const ack = () => store.transition({ id: message.id, from: { status: 'SENDING', deadReason: null }, to: 'COMPLETED', deadReason: null, at: new Date(), set: { completedAt: new Date(), nextAttemptAt: null } });
      const ackInBatch = () => store.transitionMany([{ id: message.id, from: { status: 'SENDING', deadReason: null }, to: 'COMPLETED', deadReason: null, at: new Date(), set: { completedAt: new Date(), nextAttemptAt: null } }]);
      const outcomes = await Promise.allSettled([ack(), ack(), ackInBatch(), store.claimDue({ status: 'SENDING', now: new Date(), leaseUntil: new Date(Date.now() + 60_000), limit: 10 })]);
      for (const outcome of outcomes) assert.equal(outcome.status, 'fulfilled', outcome.status === 'rejected' ? String(outcome.reason) : '');
      const acks = [outcomes[0], outcomes[1]].map((outcome) => (outcome as PromiseFulfilledResult<unknown>).value);
      const batch = (outcomes[2] as PromiseFulfilledResult<PromiseSettledResult<unknown>[]>).value[0];
      assert.equal(batch?.status, 'fulfilled');
      const winners = [...acks, (batch as PromiseFulfilledResult<unknown>).value].filter((value) => value !== null);
      // A claim that wins first bumps the version but not the state, so some ack still wins.
      assert.equal(winners.length, 1, `exactly one ack moves the message (round ${round})`);
      assert.equal((await store.findById(message.id))?.status, 'COMPLETED');
    }
  });

  test('retention drops whole expired days (messages and history) and keeps today, the active partition and the history of unfinished messages', async () => {
    const old = new Date(Date.now() - 10 * DAY);
    const finishedOld = (await store.insert(newMessage({ createdAt: old }))).message;
    await complete(finishedOld.id, old);
    const dead = (await store.insert(newMessage({ createdAt: old }))).message;
    await store.transition({ id: dead.id, from: { status: 'PENDING', deadReason: null }, to: 'DEAD', deadReason: 'CHECK_EXHAUSTED', at: old, set: { nextAttemptAt: null } });
    const recent = (await store.insert(newMessage())).message;
    await complete(recent.id, new Date());
    const event = (messageId: string, type: 'prepared' | 'dead') => ({
      messageId, at: old, type, actor: 'rms' as const, app: null, group: null, attempt: null, transport: null, outcome: null, durationMs: null, reason: null, nextAttemptAt: null,
    });
    await store.appendEvents([event(finishedOld.id, 'prepared'), event(dead.id, 'prepared'), event(dead.id, 'dead')]);
    const oldDay = old.toISOString().slice(0, 10).replaceAll('-', '');

    // A day's partition of 100,000 finished messages, generated directly in the table.
    const bulkDay = new Date(Date.now() - 9 * DAY);
    await store.insert(newMessage()).then(({ message }) => complete(message.id, bulkDay));
    const bulkKey = bulkDay.toISOString().slice(0, 10).replaceAll('-', '');
    await admin.query(
      `INSERT INTO "${schema}".rms_messages_finished_${bulkKey}
         (id, producer, topic, payload, status, created_at, updated_at, completed_at, finished_at)
       SELECT gen_random_uuid(), 'orders', 'bulk', '{}'::json, 'COMPLETED', $1, $1, $1, $1 FROM generate_series(1, 100000)`,
      [bulkDay],
    );
    await admin.query(`ANALYZE "${schema}".rms_messages_finished_${bulkKey}`);

    const started = performance.now();
    const removed = await store.pruneFinished(new Date(Date.now() - 7 * DAY), 1000);
    const elapsedMs = performance.now() - started;
    assert.ok(removed >= 100_001, `removed ${removed}`);
    assert.ok(elapsedMs < 1000, `retention of the expired days took ${elapsedMs.toFixed(0)} ms`);

    const messages = await partitionsOf('rms_messages');
    assert.ok(!messages.includes(`rms_messages_finished_${oldDay}`) && !messages.includes(`rms_messages_finished_${bulkKey}`), messages.join(', '));
    assert.ok(!(await partitionsOf('rms_message_events')).includes(`rms_message_events_${oldDay}`));
    assert.equal(await store.findById(finishedOld.id), null);
    assert.deepEqual(await store.history(finishedOld.id, 10), []);
    assert.equal((await store.findById(dead.id))?.status, 'DEAD', 'an unfinished message is never removed');
    assert.deepEqual((await store.history(dead.id, 10)).map((e) => e.type), ['prepared', 'dead'], 'the history of a message still stored survives its day');
    assert.equal((await store.findById(recent.id))?.status, 'COMPLETED', 'a message finished today stays');
    assert.equal(await store.pruneFinished(new Date(Date.now() - 7 * DAY), 1000), 0, 'nothing left to drop');
  });
});

describe('PostgreSQL migration 7 (partitions) on a store with messages', () => {
  const { url, schema } = freshSchemaUrl();
  const admin = new pg.Client({ connectionString: TEST_POSTGRES_URL });
  let store: PostgresMessageStore | undefined;
  before(() => admin.connect());
  after(async () => {
    await store?.close();
    await admin.end();
    await dropSchema(schema);
  });

  test('messages and history written before partitioning are all there afterwards, each in its partition', async () => {
    // The schema as version 6 left it, with a pending, a completed and a dead message.
    await admin.query(`CREATE SCHEMA "${schema}"`);
    await admin.query(`CREATE TABLE "${schema}".rms_schema_migrations (version integer PRIMARY KEY, description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    for (const migration of MIGRATIONS.filter((m) => m.version <= 6)) {
      await admin.query(migration.sql.replaceAll('$schema', `"${schema}"`));
      await admin.query(`INSERT INTO "${schema}".rms_schema_migrations (version, description) VALUES ($1, $2)`, [migration.version, migration.description]);
    }
    const ids = { pending: uuidv7(), completed: uuidv7(), dead: uuidv7() };
    await admin.query(
      `INSERT INTO "${schema}".rms_messages (id, producer, producer_message_id, topic, payload, status, dead_reason, created_at, updated_at, next_attempt_at)
       VALUES ($1, 'orders', 'k-pending', 't', '1', 'PENDING', NULL, now(), now(), now()),
              ($2, 'orders', 'k-done', 't', '2', 'COMPLETED', NULL, '2026-01-02T03:00:00Z', '2026-01-02T03:00:00Z', NULL),
              ($3, 'orders', NULL, 't', '3', 'DEAD', 'DELIVERY_EXHAUSTED', now(), now(), NULL)`,
      [ids.pending, ids.completed, ids.dead],
    );
    await admin.query(`INSERT INTO "${schema}".rms_message_events (message_id, at, type, actor) VALUES ($1, '2026-01-02T02:00:00Z', 'prepared', 'producer')`, [ids.completed]);

    store = new PostgresMessageStore({ url });
    await store.init();
    const where = async (id: string) =>
      (await admin.query<{ p: string }>(`SELECT tableoid::regclass::text AS p FROM "${schema}".rms_messages WHERE id = $1`, [id])).rows[0]?.p ?? '';
    assert.match(await where(ids.pending), /rms_messages_active$/);
    assert.match(await where(ids.dead), /rms_messages_active$/);
    assert.match(await where(ids.completed), /rms_messages_finished_20260102$/);
    assert.deepEqual((await store.history(ids.completed, 10)).map((e) => e.type), ['prepared']);
    const again = await store.insert(newMessage({ producerMessageId: 'k-done' }));
    assert.equal(again.created, false, 'the key of a finished message is still taken');
    assert.equal(again.message.id, ids.completed);
    // New events still get sequence numbers after the migrated ones.
    await store.appendEvents([{ messageId: ids.pending, at: new Date(), type: 'prepared', actor: 'producer', app: null, group: null, attempt: null, transport: null, outcome: null, durationMs: null, reason: null, nextAttemptAt: null }]);
    assert.equal((await store.history(ids.pending, 10)).length, 1);
  });
});

describe('PostgreSQL partitions shared by several instances', () => {
  const { url, schema } = freshSchemaUrl();
  const writer = new PostgresMessageStore({ url });
  const sweeper = new PostgresMessageStore({ url });
  before(async () => {
    await writer.init();
    await sweeper.init();
  });
  after(async () => {
    await writer.close();
    await sweeper.close();
    await dropSchema(schema);
  });

  const finish = async (store: PostgresMessageStore, at: Date) => {
    const { message } = await store.insert(newMessage());
    const cancelled = await store.transition({ id: message.id, from: { status: 'PENDING', deadReason: null }, to: 'CANCELLED', deadReason: null, at, set: { cancelledAt: at } });
    return cancelled;
  };

  test('a day another instance dropped is made again when this one next finishes a message on it', async () => {
    const day = new Date('2025-06-01T12:00:00Z');
    assert.equal((await finish(writer, day))?.status, 'CANCELLED', 'the writer made the day and remembers it');
    assert.ok((await sweeper.pruneFinished(new Date('2025-06-03T00:00:00Z'), 1000)) >= 1, 'the other instance dropped the day');
    assert.equal((await finish(writer, day))?.status, 'CANCELLED', 'the writer finds the day missing, makes it again and writes');
  });
});
