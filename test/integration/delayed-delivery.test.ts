/**
 * Delayed delivery (`deliverAt` / `delayMs`) and the in-place upgrade to consumer groups,
 * against real PostgreSQL and RabbitMQ, with the real loops at millisecond intervals.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { createProducer } from '@rms/client-sdk';
import { PostgresMessageStore } from '@rms/message-service';
import { MIGRATIONS } from '../../services/message-service/src/store/postgres/schema.js';
import { dropSchema, freshSchemaUrl, TEST_POSTGRES_URL } from '../support/postgres.js';
import { QueueWatcher, type SeenDelivery } from '../support/rabbitmq.js';
import { TEST_APPS, startTestServer, type TestServer } from '../support/rms-server.js';
import { waitUntil } from '../support/wait.js';

const POLL_INTERVAL_MS = 100;
/** Publish, broker and the test's own consumer: what a delivery may take beyond the poll interval on this busy box. */
const TRANSIT_SLACK_MS = 250;

const ENV = {
  RMS_POLL_INTERVAL_MS: String(POLL_INTERVAL_MS),
  RMS_ACK_TIMEOUT_MS: '60000',
  RMS_CHECK_DELAY_MS: '60000',
  RMS_LEASE_MS: '3000',
  RMS_PUBLISH_TIMEOUT_MS: '1000',
  RMS_RETRY_IMMEDIATE: '1',
  RMS_CHECK_TIMEOUT_MS: '500',
  RMS_MAX_DELAY_MS: String(3_600_000),
};

describe('delayed delivery: not before deliverAt, within a poll interval after, across a restart', { timeout: 60_000 }, () => {
  let rms: TestServer;
  let watcher: QueueWatcher;
  const topics: string[] = [];
  const topic = () => {
    const t = `delayed.${randomUUID().slice(0, 8)}`;
    topics.push(t);
    return t;
  };

  before(async () => {
    rms = await startTestServer({ env: ENV });
    watcher = await QueueWatcher.open();
  });
  after(async () => {
    await rms?.stop();
    await watcher?.deleteQueues(topics);
    await watcher?.close();
  });

  test('a message sent with delayMs waits, shows when it will go, and is delivered no earlier and within one poll interval after', async () => {
    const t = topic();
    const arrivals: { delivery: SeenDelivery; at: number }[] = [];
    await watcher.consume(t, (delivery) => void arrivals.push({ delivery, at: Date.now() }));
    const producer = createProducer({ url: rms.baseUrl, token: TEST_APPS.orders.token });
    const sent = await producer.send(t, { cancel: 'order-1' }, async () => 'committed', { delayMs: 800 });
    assert.equal(sent.confirmed, true);
    const deliverAt = Date.parse(sent.message.deliverAt ?? '');
    assert.ok(Number.isFinite(deliverAt), 'GET shows deliverAt');
    const shown = await rms.call('ops', 'GET', `/v1/messages/${sent.message.id}`);
    assert.equal(shown.body.status, 'SENDING');
    assert.equal(shown.body.nextAttemptAt, shown.body.deliverAt, 'it is due at its deliverAt');
    assert.equal(shown.body.deliveries[0].attempts, 0);
    await waitUntil(() => arrivals.length > 0, 'the delayed message arrives');
    const arrival = arrivals[0]!;
    assert.ok(arrival.at >= deliverAt, `delivered ${deliverAt - arrival.at} ms early`);
    assert.ok(arrival.at - deliverAt <= POLL_INTERVAL_MS + TRANSIT_SLACK_MS, `delivered ${arrival.at - deliverAt} ms after deliverAt`);
  });

  test('a delayed message confirmed before an RMS restart is delivered by the next instance at its time', async () => {
    const first = await startTestServer({ env: ENV });
    const t = topic();
    const arrivals: number[] = [];
    await watcher.consume(t, () => void arrivals.push(Date.now()));
    const deliverAt = new Date(Date.now() + 1500);
    const prepared = await first.call('orders', 'POST', '/v1/messages', { topic: t, payload: 1, deliverAt: deliverAt.toISOString() });
    assert.equal(prepared.status, 201, JSON.stringify(prepared.body));
    await first.call('orders', 'POST', `/v1/messages/${prepared.body.id}/confirm`);
    await first.server.stop(); // the instance goes away; its schema stays
    const second = await startTestServer({ env: ENV, shareSchemaOf: first });
    try {
      await waitUntil(() => arrivals.length > 0, 'the next instance delivers it');
      assert.ok(arrivals[0]! >= deliverAt.getTime(), 'not early');
      assert.ok(arrivals[0]! - deliverAt.getTime() <= POLL_INTERVAL_MS + TRANSIT_SLACK_MS, `${arrivals[0]! - deliverAt.getTime()} ms late`);
    } finally {
      await second.stop();
      await dropSchema(first.schema);
    }
  });

  test('a delay past RMS_MAX_DELAY_MS, both delay fields at once, or a bad date are refused with 400 naming the field', async () => {
    const tooFar = await rms.call('orders', 'POST', '/v1/messages', { topic: 'delayed.x', payload: 1, delayMs: 3_600_001 });
    assert.equal(tooFar.status, 400);
    assert.equal(tooFar.body.error.field, 'delayMs');
    const both = await rms.call('orders', 'POST', '/v1/messages', { topic: 'delayed.x', payload: 1, delayMs: 1, deliverAt: new Date().toISOString() });
    assert.equal(both.status, 400);
    const badDate = await rms.call('orders', 'POST', '/v1/messages', { topic: 'delayed.x', payload: 1, deliverAt: 'tomorrow' });
    assert.equal(badDate.status, 400);
    assert.match(JSON.stringify(badDate.body), /deliverAt/);
  });
});

describe('upgrade in place: messages in flight under the old schema are delivered after the migration', { timeout: 60_000 }, () => {
  const { url, schema } = freshSchemaUrl();
  const t = `upgrade.${randomUUID().slice(0, 8)}`;
  let watcher: QueueWatcher;

  before(async () => {
    watcher = await QueueWatcher.open();
  });
  after(async () => {
    await watcher?.deleteQueues([t]);
    await watcher?.close();
    await dropSchema(schema);
  });

  test('a SENDING row written before groups is redelivered once to the shared queue and completes when acked', async () => {
    // The schema as it was before consumer groups: migrations 1 to 3 only.
    const client = new pg.Client({ connectionString: TEST_POSTGRES_URL });
    await client.connect();
    const id = '0190f000-0000-7000-8000-00000000a001';
    try {
      await client.query(`CREATE SCHEMA "${schema}"`);
      await client.query(`CREATE TABLE "${schema}".rms_schema_migrations (version integer PRIMARY KEY, description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
      for (const migration of MIGRATIONS.filter((m) => m.version <= 3)) {
        await client.query(migration.sql.replaceAll('$schema', `"${schema}"`));
        await client.query(`INSERT INTO "${schema}".rms_schema_migrations (version, description) VALUES ($1, $2)`, [migration.version, migration.description]);
      }
      // Published once already, its ack deadline just passed.
      await client.query(
        `INSERT INTO "${schema}".rms_messages (id, producer, topic, payload, status, created_at, updated_at, confirmed_at, delivery_attempts, next_attempt_at, last_transport)
         VALUES ($1, 'orders', $2, '{"n":1}', 'SENDING', now(), now(), now(), 1, now() - interval '1 second', 'rabbitmq')`,
        [id, t],
      );
    } finally {
      await client.end();
    }
    const seen: SeenDelivery[] = [];
    await watcher.consume(t, (delivery) => void seen.push(delivery));
    const rms = await startTestServer({ env: ENV, shareSchemaOf: { storeUrl: url, schema } as TestServer });
    try {
      await waitUntil(() => seen.length > 0, 'the migrated message is redelivered to rms.<topic>');
      assert.equal(seen[0]?.id, id);
      assert.equal(seen[0]?.attempt, 2, 'its rounds carry on from the old counter');
      const shown = await rms.call('ops', 'GET', `/v1/messages/${id}`);
      assert.equal(shown.body.deliveries[0].group, 'default');
      const acked = await rms.call('inventory', 'POST', `/v1/messages/${id}/ack`);
      assert.equal(acked.body.status, 'COMPLETED');
      const store = new PostgresMessageStore({ url });
      try {
        const stored = await store.findById(id);
        assert.deepEqual(
          stored?.deliveries.map(({ group, status, attempts }) => ({ group, status, attempts })),
          [{ group: 'default', status: 'ACKED', attempts: 2 }],
          'the first write after the upgrade stores its delivery in the new form',
        );
      } finally {
        await store.close();
      }
      assert.equal(seen.length, 1, 'delivered once after the upgrade, not more');
    } finally {
      await rms.stop();
    }
  });
});
