import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { v7 as uuidv7 } from 'uuid';
import { AlertBatcher, Metrics, type Notification, PostgresMessageStore, RetentionSweeper, WebhookSink, createLogger } from '@rms/message-service';
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

  test('the first alert is POSTed at once as JSON with a text field for chat tools; the rest of the window follows as one', async () => {
    hook.requests.length = 0;
    const batcher = new AlertBatcher({ sinks: [new WebhookSink(hook.url('/alerts'))], logger: createLogger('silent'), windowMs: 60_000 });
    for (let i = 0; i < 3; i++) {
      batcher.notify({ reason: 'DELIVERY_EXHAUSTED', topic: 'stock.reduce', messageId: `m-${i}`, producer: 'orders', at: new Date(), lastError: null });
    }
    await hook.waitFor(() => hook.requests.length >= 1);
    assert.equal(hook.requests[0]?.headers['content-type'], 'application/json');
    assert.equal(hook.requests[0]?.json.kind, 'first');
    assert.match(hook.requests[0]?.json.text, /message m-0 on topic stock.reduce is DEAD/);
    await batcher.flush();
    assert.equal(hook.requests.length, 2);
    assert.equal(hook.requests[1]?.json.kind, 'follow-up');
    assert.equal(hook.requests[1]?.json.count, 2);
    assert.deepEqual(hook.requests[1]?.json.sampleIds, ['m-1', 'm-2']);
  });

  test('a webhook that fails is retried with backoff until it takes the notification', async () => {
    let calls = 0;
    const flaky = await HttpRecorder.start(() => ({ status: ++calls < 3 ? 503 : 204 }));
    try {
      await new WebhookSink(flaky.url(), { attempts: 4, retryDelayMs: 5 }).send(notification());
      assert.equal(flaky.requests.length, 3, 'two 503s, then delivered');
      assert.ok((flaky.requests[2]?.at ?? 0) - (flaky.requests[1]?.at ?? 0) >= 10, 'the second retry waited twice the first delay');
    } finally {
      await flaky.close();
    }
  });

  test('a webhook is given up after its attempts, each cut off by the timeout; a 4xx refusal is not retried', async () => {
    const hanging = await HttpRecorder.start(() => ({ status: 200, delayMs: 2000 }));
    const refusing = await HttpRecorder.start(() => ({ status: 400 }));
    try {
      const started = Date.now();
      await assert.rejects(new WebhookSink(hanging.url(), { timeoutMs: 100, attempts: 2, retryDelayMs: 5 }).send(notification()), /did not take the notification/);
      assert.ok(Date.now() - started < 1500, 'each hanging POST is cut off by its timeout');
      await hanging.waitFor(() => hanging.requests.length >= 2);
      await assert.rejects(new WebhookSink(refusing.url(), { attempts: 4, retryDelayMs: 5 }).send(notification()), /answered 400/);
      assert.equal(refusing.requests.length, 1);
    } finally {
      await hanging.close();
      await refusing.close();
    }
  });

  test('a webhook that fails, hangs or is unreachable never throws into the caller', async () => {
    const failing = await HttpRecorder.start(() => ({ status: 500 }));
    const hanging = await HttpRecorder.start(() => ({ status: 200, delayMs: 2000 }));
    const quick = { attempts: 2, retryDelayMs: 5 };
    const batcher = new AlertBatcher({
      sinks: [new WebhookSink(failing.url(), quick), new WebhookSink(hanging.url(), { ...quick, timeoutMs: 200 }), new WebhookSink('http://127.0.0.1:9/nothing', quick)],
      logger: createLogger('silent'),
      windowMs: 60_000,
    });
    batcher.notify({ reason: 'CHECK_EXHAUSTED', topic: 't', messageId: 'm', producer: 'orders', at: new Date(), lastError: null });
    const started = Date.now();
    await batcher.flush();
    assert.ok(Date.now() - started < 1500, 'the hanging webhook is cut off by its timeout');
    assert.equal(failing.requests.length, 2, 'the failing webhook was retried');
    await failing.close();
    await hanging.close();
  });
});

/** A notification to send. */
function notification(): Notification {
  return { kind: 'first', reason: 'DELIVERY_EXHAUSTED', topic: 't', count: 1, sampleIds: ['m'], firstAt: new Date().toISOString(), lastAt: new Date().toISOString(), text: 'RMS: m is DEAD' };
}

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

  test('a sweep removes the days of finished messages past retention and keeps everything else', async () => {
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
    // PostgreSQL drops the whole expired day's partition in one call, whatever the batch size.
    assert.equal(await sweeper.sweep(), 25, 'the expired day, whole');
    assert.equal(await sweeper.sweep(), 0);
    for (const id of old) assert.equal(await store.findById(id), null);
    for (const id of keep) assert.ok(await store.findById(id));
    assert.match(await metrics.registry.metrics(), /rms_pruned_messages_total 25/);
  });
});
