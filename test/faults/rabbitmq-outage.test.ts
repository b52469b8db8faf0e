import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { PostgresMessageStore } from '@rms/message-service';
import { FaultProxy } from '../support/fault-proxy.js';
import { QueueWatcher } from '../support/rabbitmq.js';
import { startTestServer, type TestServer } from '../support/rms-server.js';
import { waitUntil } from '../support/wait.js';

describe('RabbitMQ cut while 200 messages are confirmed', { timeout: 120_000 }, () => {
  let proxy: FaultProxy;
  let rms: TestServer;
  let store: PostgresMessageStore;
  let watcher: QueueWatcher;
  const topic = `outage.mq.${randomUUID().slice(0, 8)}`;

  before(async () => {
    proxy = await FaultProxy.start({ targetHost: '127.0.0.1', targetPort: 5672 });
    rms = await startTestServer({
      env: {
        RABBITMQ_URL: `amqp://guest:guest@127.0.0.1:${proxy.port}`,
        RMS_POLL_INTERVAL_MS: '20',
        RMS_RETRY_IMMEDIATE: '1',
        RMS_RETRY_FIRST_DELAY_MS: '200',
        RMS_RETRY_INTERVAL_MS: '200',
        RMS_RETRY_MAX: '50',
        RMS_PUBLISH_TIMEOUT_MS: '500',
        RMS_LEASE_MS: '2000',
        RMS_CHECK_TIMEOUT_MS: '500',
        RMS_ACK_TIMEOUT_MS: '30000',
        RMS_CHECK_DELAY_MS: '60000',
        // This test is about RabbitMQ retries alone: no failover to Redis.
        RMS_FAILOVER_THRESHOLD: '1000000',
      },
    });
    store = new PostgresMessageStore({ url: rms.storeUrl });
    watcher = await QueueWatcher.open();
  });
  after(async () => {
    proxy?.restore();
    await rms?.stop();
    await store?.close();
    await proxy?.close();
    await watcher?.deleteQueues([topic]);
    await watcher?.close();
  });

  test('every confirmed message is in the queue once RabbitMQ is back, and RMS never stops serving', async () => {
    const delivered = new Set<string>();
    let deliveries = 0;
    await watcher.consume(topic, (delivery) => {
      deliveries += 1;
      delivered.add(delivery.id);
    });
    const ids: string[] = [];
    for (let i = 0; i < 200; i++) {
      const prepared = await rms.call('orders', 'POST', '/v1/messages', { topic, payload: { i }, messageId: `m-${i}` });
      assert.equal(prepared.status, 201);
      ids.push(prepared.body.id);
    }
    const confirmAll = async (slice: string[]) => {
      await Promise.all(slice.map(async (id) => {
        const answer = await rms.call('orders', 'POST', `/v1/messages/${id}/confirm`);
        assert.equal(answer.status, 200, `confirm answers once the state is durable, broker or not: ${JSON.stringify(answer.body)}`);
      }));
    };
    await confirmAll(ids.slice(0, 60));
    proxy.cut();
    await confirmAll(ids.slice(60, 140));
    const duringOutage = await rms.call(null, 'GET', '/readyz');
    assert.equal(duringOutage.body.dependencies.rabbitmq.status, 'down', JSON.stringify(duringOutage.body));
    assert.equal(duringOutage.body.dependencies.store.status, 'up', JSON.stringify(duringOutage.body));
    await confirmAll(ids.slice(140));
    await new Promise((resolve) => setTimeout(resolve, 700));
    proxy.restore();

    await waitUntil(() => delivered.size === 200, `all 200 delivered (have ${delivered.size})`, 30_000);
    assert.deepEqual(new Set(ids), delivered);
    const failedRounds = (await store.list({ topic, limit: 500 })).messages.filter((m) => m.deliveryAttempts > 1).length;
    assert.ok(failedRounds > 0, 'the cut really failed some rounds, which were retried');
    assert.equal((await rms.call(null, 'GET', '/healthz')).status, 200);
    const acks = await rms.call('inventory', 'POST', '/v1/acks', { ids });
    assert.ok(acks.body.results.every((r: { status?: string }) => r.status === 'COMPLETED'));
    console.log(`# rabbitmq cut: 200 confirmed, 200 delivered, ${deliveries - 200} duplicate deliveries, ${failedRounds} messages needed a retry round`);
  });
});
