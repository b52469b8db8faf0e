import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { v7 as uuidv7 } from 'uuid';
import { AlertBatcher, Metrics, PostgresMessageStore, RetentionSweeper, WebhookSink, createLogger } from '@rms/message-service';
import { HttpRecorder } from '../support/http-recorder.js';
import { dropSchema, freshSchemaUrl } from '../support/postgres.js';

describe('alert webhooks', () => {
  let hook: HttpRecorder;
  before(async () => {
    hook = await HttpRecorder.start(() => ({ status: 204 }));
  });
  after(async () => {
    await hook?.close();
  });

  test('a grouped notification is POSTed as JSON with a text field for chat tools', async () => {
    const batcher = new AlertBatcher({ sinks: [new WebhookSink(hook.url('/alerts'))], logger: createLogger('silent'), windowMs: 60_000 });
    for (let i = 0; i < 3; i++) {
      batcher.notify({ reason: 'DELIVERY_EXHAUSTED', topic: 'stock.reduce', messageId: `m-${i}`, producer: 'orders', at: new Date(), lastError: null });
    }
    await batcher.flush();
    assert.equal(hook.requests.length, 1);
    assert.equal(hook.requests[0]?.headers['content-type'], 'application/json');
    assert.equal(hook.requests[0]?.json.count, 3);
    assert.match(hook.requests[0]?.json.text, /3 message\(s\) on topic stock.reduce are DEAD/);
  });

  test('a webhook that fails, hangs or is unreachable never throws into the caller', async () => {
    const failing = await HttpRecorder.start(() => ({ status: 500 }));
    const hanging = await HttpRecorder.start(() => ({ status: 200, delayMs: 2000 }));
    const batcher = new AlertBatcher({
      sinks: [new WebhookSink(failing.url()), new WebhookSink(hanging.url(), 200), new WebhookSink('http://127.0.0.1:9/nothing')],
      logger: createLogger('silent'),
      windowMs: 60_000,
    });
    batcher.notify({ reason: 'CHECK_EXHAUSTED', topic: 't', messageId: 'm', producer: 'orders', at: new Date(), lastError: null });
    const started = Date.now();
    await batcher.flush();
    assert.ok(Date.now() - started < 1500, 'the hanging webhook is cut off by its timeout');
    assert.equal(failing.requests.length, 1);
    await failing.close();
    await hanging.close();
  });
});

describe('retention', () => {
  const { url, schema } = freshSchemaUrl();
  let store: PostgresMessageStore;
  before(async () => {
    store = new PostgresMessageStore({ url });
    await store.init();
  });
  after(async () => {
    await store?.close();
    await dropSchema(schema);
  });

  test('a sweep deletes finished messages past retention in bounded batches and keeps everything else', async () => {
    const long = new Date(Date.now() - 10 * 24 * 3600 * 1000);
    const make = async (finalStatus: 'COMPLETED' | 'CANCELLED' | 'PENDING', at: Date) => {
      const { message } = await store.insert({
        id: uuidv7(), producer: 'orders', producerMessageId: null, topic: 'retention', payload: 1, headers: {}, createdAt: at, nextAttemptAt: at,
      });
      if (finalStatus === 'CANCELLED') {
        await store.transition({ id: message.id, from: message, to: 'CANCELLED', deadReason: null, at, set: {} });
      } else if (finalStatus === 'COMPLETED') {
        await store.transition({ id: message.id, from: message, to: 'SENDING', deadReason: null, at, set: {} });
        await store.transition({ id: message.id, from: { status: 'SENDING', deadReason: null }, to: 'COMPLETED', deadReason: null, at, set: {} });
      }
      return message.id;
    };
    const old: string[] = [];
    for (let i = 0; i < 25; i++) old.push(await make(i % 2 ? 'COMPLETED' : 'CANCELLED', long));
    const keep = [await make('PENDING', long), await make('COMPLETED', new Date())];
    const metrics = new Metrics({ processMetrics: false });
    const sweeper = new RetentionSweeper({
      store, retentionMs: 7 * 24 * 3600 * 1000, intervalMs: 3_600_000, batchSize: 10, maxBatchesPerSweep: 2, logger: createLogger('silent'), metrics,
    });
    assert.equal(await sweeper.sweep(), 20, 'one sweep is bounded: 2 batches of 10');
    assert.equal(await sweeper.sweep(), 5);
    for (const id of old) assert.equal(await store.findById(id), null);
    for (const id of keep) assert.ok(await store.findById(id));
    assert.match(await metrics.registry.metrics(), /rms_pruned_messages_total 25/);
  });
});
