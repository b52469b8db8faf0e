import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { PostgresMessageStore } from '@rms/message-service';
import { v7 as uuidv7 } from 'uuid';
import { HttpRecorder } from '../support/http-recorder.js';
import { QueueWatcher } from '../support/rabbitmq.js';
import { sumSamples } from '../support/prometheus-text.js';
import { startTestServer, type TestServer } from '../support/rms-server.js';
import { waitUntil } from '../support/wait.js';

const DUE = 1000;

describe('three RMS instances on one store', { timeout: 120_000 }, () => {
  let producer: HttpRecorder;
  const instances: TestServer[] = [];
  let store: PostgresMessageStore;
  let watcher: QueueWatcher;
  const topic = `multi.${randomUUID().slice(0, 8)}`;
  const env = {
    RMS_POLL_INTERVAL_MS: '20',
    RMS_CHECK_DELAY_MS: '60000',
    RMS_CHECK_INTERVAL_MS: '60000',
    RMS_ACK_TIMEOUT_MS: '60000',
    RMS_CLAIM_BATCH: '50',
    RMS_LEASE_MS: '30000',
  };

  before(async () => {
    producer = await HttpRecorder.start(() => ({ status: 200, body: { status: 'UNKNOWN' } }));
    const first = await startTestServer({ env: { ...env, RMS_POLL_INTERVAL_MS: '600000' }, checkUrl: producer.url('/check') });
    instances.push(first);
    store = new PostgresMessageStore({ url: first.storeUrl });
    watcher = await QueueWatcher.open();
  });
  after(async () => {
    for (const instance of instances.reverse()) await instance.stop();
    await store?.close();
    await producer?.close();
    await watcher?.deleteQueues([topic]);
    await watcher?.close();
  });

  test(`${DUE} due check-backs and ${DUE} due redeliveries: each handled exactly once per due time`, async () => {
    // Make the due messages directly in the store, all due now.
    const past = new Date(Date.now() - 1000);
    const pendingIds: string[] = [];
    const sendingIds: string[] = [];
    for (let i = 0; i < DUE; i++) {
      const pending = await store.insert({
        id: uuidv7(), producer: 'orders', producerMessageId: `p-${i}`, topic, payload: { i }, headers: {}, createdAt: past, nextAttemptAt: past,
      });
      pendingIds.push(pending.message.id);
      const sending = await store.insert({
        id: uuidv7(), producer: 'orders', producerMessageId: `s-${i}`, topic, payload: { i }, headers: {}, createdAt: past, nextAttemptAt: past,
      });
      await store.transition({
        id: sending.message.id, from: { status: 'PENDING', deadReason: null }, to: 'SENDING', deadReason: null, at: past,
        set: { confirmedAt: past, nextAttemptAt: past, deliveryAttempts: 1 },
      });
      sendingIds.push(sending.message.id);
    }
    const deliveries = new Map<string, number>();
    await watcher.consume(topic, (delivery) => void deliveries.set(delivery.id, (deliveries.get(delivery.id) ?? 0) + 1));

    // The first instance sleeps (long poll interval); two more join: three claimers in all.
    instances.push(await startTestServer({ env, checkUrl: producer.url('/check'), shareSchemaOf: instances[0] }));
    instances.push(await startTestServer({ env, checkUrl: producer.url('/check'), shareSchemaOf: instances[0] }));
    instances.push(await startTestServer({ env, checkUrl: producer.url('/check'), shareSchemaOf: instances[0] }));

    await waitUntil(() => producer.requests.length >= DUE && deliveries.size >= DUE, 'every due message handled', 60_000);
    await new Promise((resolve) => setTimeout(resolve, 500));

    const checksPer = new Map<string, number>();
    for (const request of producer.requests) checksPer.set(request.json.id, (checksPer.get(request.json.id) ?? 0) + 1);
    assert.equal(producer.requests.length, DUE, 'no message was checked twice');
    assert.deepEqual(new Set(checksPer.keys()), new Set(pendingIds));
    assert.equal([...deliveries.values()].filter((n) => n !== 1).length, 0, 'no message was redelivered twice');
    assert.deepEqual(new Set(deliveries.keys()), new Set(sendingIds));
    // Read each instance's own counters: the work was shared, and adds up to exactly one per message.
    const counted = async (instance: TestServer, name: string, labels: Record<string, string>) =>
      sumSamples(await (await fetch(`${instance.baseUrl}/metrics`)).text(), name, labels);
    const checksByInstance = await Promise.all(instances.map((i) => counted(i, 'rms_check_backs_total', { verdict: 'UNKNOWN' })));
    const roundsByInstance = await Promise.all(instances.map((i) => counted(i, 'rms_delivery_rounds_total', { kind: 'redelivery' })));
    assert.equal(checksByInstance.reduce((a, b) => a + b, 0), DUE);
    assert.equal(roundsByInstance.reduce((a, b) => a + b, 0), DUE);
    assert.ok(checksByInstance.slice(1).filter((n) => n > 0).length >= 2, `work was shared: ${checksByInstance}`);
    console.log(`# three instances: check-backs per instance ${checksByInstance.slice(1).join('/')}, redeliveries ${roundsByInstance.slice(1).join('/')}`);
    const sample = await store.findById(pendingIds[0] ?? '');
    assert.equal(sample?.checkAttempts, 1);
    const redelivered = await store.findById(sendingIds[0] ?? '');
    assert.equal(redelivered?.deliveryAttempts, 2);
  });
});
