/**
 * OpenTelemetry spans, when the application registers an SDK (here: the in-memory
 * exporter of @opentelemetry/sdk-trace-base, a dev dependency; RMS itself depends on
 * @opentelemetry/api only): a message produced inside a span makes one trace through
 * RMS (rms.prepare, rms.confirm, rms.publish or rms.check-back) to the consumer's
 * rms.consume span, which is the span the handler runs in.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { SpanKind, context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { type Subscription, createProducer, subscribe } from '@rms/client-sdk';
import { HttpRecorder } from '../support/http-recorder.js';
import { TEST_RABBITMQ_URL } from '../support/rabbitmq.js';
import { startTestServer, TEST_APPS, type TestServer } from '../support/rms-server.js';
import { waitUntil } from '../support/wait.js';

const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
let rms: TestServer;
let checks: HttpRecorder;
let subscription: Subscription | undefined;
const handled: { id: string; activeTraceId: string | undefined; activeSpanId: string | undefined }[] = [];
const topic = `tracing.${randomUUID().slice(0, 8)}`;

before(async () => {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  trace.setGlobalTracerProvider(provider);
  checks = await HttpRecorder.start(() => ({ status: 200, body: { status: 'COMMIT' } }));
  rms = await startTestServer({ checkUrl: checks.url('/check'), env: { RMS_CHECK_DELAY_MS: '200', RMS_POLL_INTERVAL_MS: '20' } });
  subscription = await subscribe(
    topic,
    async (delivery) => {
      const active = trace.getSpan(context.active())?.spanContext();
      handled.push({ id: delivery.id, activeTraceId: active?.traceId, activeSpanId: active?.spanId });
    },
    { rms: { url: rms.baseUrl, token: TEST_APPS.inventory.token }, amqpUrl: TEST_RABBITMQ_URL, group: `g-${randomUUID().slice(0, 8)}` },
  );
});
after(async () => {
  await subscription?.close();
  await rms?.stop();
  await checks?.close();
  await provider.shutdown();
  trace.disable();
  context.disable();
});

/** The finished spans named `name` for message `id`. */
function spansOf(name: string, id: string): ReadableSpan[] {
  return exporter.getFinishedSpans().filter((span) => span.name === name && span.attributes['messaging.message.id'] === id);
}

function only(spans: ReadableSpan[], what: string): ReadableSpan {
  assert.equal(spans.length, 1, `${what}: ${spans.map((span) => span.name).join(', ')}`);
  return spans[0] as ReadableSpan;
}

describe('OpenTelemetry spans from producer to consumer', () => {
  test('a message sent inside a span: rms.prepare, rms.confirm, rms.publish and rms.consume join its trace, and the handler runs in rms.consume', async () => {
    const producer = createProducer({ url: rms.baseUrl, token: TEST_APPS.orders.token, batching: false });
    const tracer = trace.getTracer('checkout-test');
    const { message, root } = await tracer.startActiveSpan('checkout', async (span) => {
      const sent = await producer.send(topic, { order: 1 }, async () => 'committed');
      span.end();
      return { message: sent.message, root: span.spanContext() };
    });
    await waitUntil(() => handled.find((entry) => entry.id === message.id), 'the consumer handled the message');
    // The consumer may finish before the broker's publisher confirm ends rms.publish.
    await waitUntil(() => spansOf('rms.consume', message.id).length === 1 && spansOf('rms.publish', message.id).length === 1, 'the consume and publish spans ended');

    const prepare = only(exporter.getFinishedSpans().filter((span) => span.name === 'rms.prepare' && span.parentSpanContext?.spanId === root.spanId), 'rms.prepare under checkout');
    const confirm = only(spansOf('rms.confirm', message.id), 'rms.confirm');
    const publish = only(spansOf('rms.publish', message.id), 'rms.publish');
    const consume = only(spansOf('rms.consume', message.id), 'rms.consume');
    for (const span of [prepare, confirm, publish, consume]) assert.equal(span.spanContext().traceId, root.traceId, `${span.name} is in the producer's trace`);
    assert.equal(prepare.kind, SpanKind.SERVER);
    assert.equal(confirm.parentSpanContext?.spanId, prepare.spanContext().spanId, 'confirm is under prepare');
    assert.equal(publish.parentSpanContext?.spanId, prepare.spanContext().spanId, 'publish is under prepare');
    assert.equal(publish.kind, SpanKind.PRODUCER);
    assert.equal(publish.attributes['rms.transport'], 'rabbitmq');
    assert.equal(consume.parentSpanContext?.spanId, publish.spanContext().spanId, 'consume is under publish');
    assert.equal(consume.kind, SpanKind.CONSUMER);
    const seen = handled.find((entry) => entry.id === message.id);
    assert.equal(seen?.activeSpanId, consume.spanContext().spanId, 'the handler runs inside rms.consume');
  });

  test('a message left to check-back: rms.check-back joins the trace, and its request carries the span as traceparent', async () => {
    const producer = createProducer({ url: rms.baseUrl, token: TEST_APPS.orders.token, batching: false });
    const tracer = trace.getTracer('checkout-test');
    const { message, root } = await tracer.startActiveSpan('checkout-unconfirmed', async (span) => {
      const prepared = await producer.prepare(topic, { order: 2 });
      span.end();
      return { message: prepared, root: span.spanContext() };
    });
    await waitUntil(
      () => spansOf('rms.consume', message.id).length === 1 && spansOf('rms.publish', message.id).length === 1,
      'the check-back committed it and the consumer handled it',
    );
    const checkBack = only(spansOf('rms.check-back', message.id), 'rms.check-back');
    assert.equal(checkBack.spanContext().traceId, root.traceId);
    assert.equal(checkBack.kind, SpanKind.CLIENT);
    assert.equal(checkBack.attributes['rms.verdict'], 'COMMIT');
    const request = checks.requests.find((entry) => entry.json?.id === message.id);
    assert.equal(request?.headers['traceparent'], `00-${root.traceId}-${checkBack.spanContext().spanId}-01`);
    const publish = only(spansOf('rms.publish', message.id), 'rms.publish');
    assert.equal(publish.spanContext().traceId, root.traceId);
  });

  test('batched prepares from two spans: each message gets its own rms.prepare under its own span', async () => {
    const producer = createProducer({ url: rms.baseUrl, token: TEST_APPS.orders.token, batching: { delayMs: 20 } });
    const tracer = trace.getTracer('checkout-test');
    const prepareIn = (name: string) =>
      tracer.startActiveSpan(name, async (span) => {
        const message = await producer.prepare(`${topic}.batched`, { name });
        span.end();
        return { id: message.id, root: span.spanContext() };
      });
    const results = await Promise.all([prepareIn('first-request'), prepareIn('second-request'), prepareIn('third-request')]);
    const metrics = await (await fetch(`${rms.baseUrl}/metrics`)).text();
    assert.match(metrics, /rms_http_request_duration_seconds_count\{[^}]*route="\/v1\/messages\/batch"[^}]*\} [1-9]/, 'the batch route was used');
    for (const { id, root } of results) {
      const prepare = only(spansOf('rms.prepare', id), `rms.prepare of ${id}`);
      assert.equal(prepare.spanContext().traceId, root.traceId);
      assert.equal(prepare.parentSpanContext?.spanId, root.spanId);
    }
    assert.equal(new Set(results.map((result) => result.root.traceId)).size, 3);
  });

  test('a failing handler ends rms.consume with an error status', async () => {
    const failing = `${topic}.failing`;
    const failed = await subscribe(failing, async () => Promise.reject(new Error('out of stock')), {
      rms: { url: rms.baseUrl, token: TEST_APPS.inventory.token },
      amqpUrl: TEST_RABBITMQ_URL,
      group: `g-${randomUUID().slice(0, 8)}`,
    });
    try {
      const producer = createProducer({ url: rms.baseUrl, token: TEST_APPS.orders.token, batching: false });
      const { message } = await producer.send(failing, { order: 3 }, async () => undefined);
      await waitUntil(() => spansOf('rms.consume', message.id).length > 0, 'the handler ran');
      const consume = spansOf('rms.consume', message.id)[0];
      assert.equal(consume?.status.code, 2, 'SpanStatusCode.ERROR');
      assert.equal(consume?.status.message, 'out of stock');
    } finally {
      await failed.close();
    }
  });
});
