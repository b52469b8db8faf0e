import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { PostgresMessageStore } from '@rms/message-service';
import { dropSchema, freshSchemaUrl } from '../support/postgres.js';
import { QueueWatcher } from '../support/rabbitmq.js';
import { FAST_PROCESS_ENV, type RmsProcess, spawnRms } from '../support/rms-process.js';
import { TEST_APPS } from '../support/rms-server.js';
import { waitUntil } from '../support/wait.js';

const TOTAL = 300;

describe('RMS killed with SIGKILL mid-stream and restarted', { timeout: 120_000 }, () => {
  const { url, schema } = freshSchemaUrl();
  const topic = `crash.${randomUUID().slice(0, 8)}`;
  const env = { ...FAST_PROCESS_ENV, STORE_URL: url, RMS_APPS: JSON.stringify(Object.values(TEST_APPS)) };
  let store: PostgresMessageStore;
  let watcher: QueueWatcher;
  let rms: RmsProcess | undefined;
  let base = '';

  before(async () => {
    store = new PostgresMessageStore({ url });
    watcher = await QueueWatcher.open();
  });
  after(async () => {
    rms?.child.kill('SIGKILL');
    await store?.close();
    await watcher?.deleteQueues([topic]);
    await watcher?.close();
    await dropSchema(schema);
  });

  async function call(app: keyof typeof TEST_APPS, method: string, path: string): Promise<{ status: number; body: any } | null> {
    try {
      const response = await fetch(`${base}${path}`, {
        method,
        headers: { authorization: `Bearer ${TEST_APPS[app].token}`, 'content-type': 'application/json' },
        signal: AbortSignal.timeout(3000),
      });
      return { status: response.status, body: await response.json() };
    } catch {
      return null; // RMS is down: the caller retries
    }
  }

  async function prepareAndConfirm(i: number): Promise<string> {
    for (;;) {
      try {
        const prepared = await fetch(`${base}/v1/messages`, {
          method: 'POST',
          headers: { authorization: `Bearer ${TEST_APPS.orders.token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ topic, payload: { i }, messageId: `order-${i}` }),
          signal: AbortSignal.timeout(3000),
        });
        const { id } = (await prepared.json()) as { id: string };
        const confirmed = await call('orders', 'POST', `/v1/messages/${id}/confirm`);
        if (confirmed?.status === 200) return id;
      } catch {
        // RMS is down or restarting; the producer retries with the same key, as the SDK will.
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  test('every confirmed message is eventually delivered and acked; none is lost', async () => {
    let deliveries = 0;
    await watcher.consume(topic, async (delivery) => {
      deliveries += 1;
      await call('inventory', 'POST', `/v1/messages/${delivery.id}/ack`); // a lost ack is redelivered later
    });
    rms = spawnRms(env);
    base = `http://127.0.0.1:${await rms.listening}`;

    const confirmed: string[] = [];
    const producing = (async () => {
      for (let i = 0; i < TOTAL; i++) confirmed.push(await prepareAndConfirm(i));
    })();
    await waitUntil(() => confirmed.length >= 100, '100 confirmed before the crash');
    rms.child.kill('SIGKILL');
    assert.equal(await rms.exited, 'SIGKILL');
    rms = spawnRms(env);
    base = `http://127.0.0.1:${await rms.listening}`;
    await producing;

    assert.equal(new Set(confirmed).size, TOTAL);
    await waitUntil(async () => {
      const page = await store.list({ topic, status: 'COMPLETED', limit: 1000 });
      return page.messages.length === TOTAL;
    }, `all ${TOTAL} COMPLETED`, 60_000);
    const notCompleted = (await store.list({ topic, limit: 1000 })).messages.filter((m) => m.status !== 'COMPLETED');
    assert.deepEqual(notCompleted, []);
    console.log(`# SIGKILL: ${TOTAL} confirmed, ${TOTAL} completed, ${deliveries - TOTAL} duplicate deliveries`);
  });
});
