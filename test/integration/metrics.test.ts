/**
 * `/metrics` as an SRE alerts on it: every metric the shipped alert rules and Grafana
 * dashboard use is exported; the backlog gauges come from the store (right after a
 * restart, the same on two instances); routes are labelled by pattern; process metrics
 * keep their standard names; the delivery latencies are observed.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { declaredMetrics, parseSamples, sumSamples } from '../support/prometheus-text.js';
import { startTestServer, type TestServer } from '../support/rms-server.js';
import { waitUntil } from '../support/wait.js';

const REPO = new URL('../../', import.meta.url);
/** Every metric an expression names: RMS's own and Node's standard process metrics. */
const METRIC_NAME = /\b((?:rms|process|nodejs)_[a-z0-9_]+)\b/g;
/** Series a histogram family exports under its name. */
const HISTOGRAM_SERIES = /_(bucket|sum|count)$/;

/** The metric names the alert rules and the dashboard use, by file. */
function referencedMetrics(): Map<string, Set<string>> {
  const rules = readFileSync(new URL('docs/observability/alert-rules.yml', REPO), 'utf8');
  const expressions = [...rules.matchAll(/expr: (?:\|\n((?: {10,}.*\n)+)|(.*))/g)].map((match) => match[1] ?? match[2] ?? '');
  const dashboard = JSON.parse(readFileSync(new URL('docs/observability/grafana-dashboard.json', REPO), 'utf8')) as {
    panels: { targets: { expr: string }[] }[];
  };
  const names = (texts: string[]) => new Set(texts.flatMap((text) => [...text.matchAll(METRIC_NAME)].map((match) => match[1] as string)));
  return new Map([
    ['alert-rules.yml', names(expressions)],
    ['grafana-dashboard.json', names(dashboard.panels.flatMap((panel) => panel.targets.map((target) => target.expr)))],
  ]);
}

const TOPIC = 'metrics.orders';
let rms: TestServer;
let second: TestServer | undefined;

async function scrape(server: TestServer): Promise<string> {
  const response = await fetch(`${server.baseUrl}/metrics`, { signal: AbortSignal.timeout(10_000) });
  assert.equal(response.status, 200);
  return response.text();
}

/** The backlog gauges of `TOPIC` as one server reports them. */
async function backlogOf(server: TestServer) {
  const text = await scrape(server);
  return {
    pending: sumSamples(text, 'rms_messages', { topic: TOPIC, status: 'PENDING' }),
    sending: sumSamples(text, 'rms_messages', { topic: TOPIC, status: 'SENDING' }),
    dead: sumSamples(text, 'rms_messages', { topic: TOPIC, status: 'DEAD' }),
    oldestPendingAge: sumSamples(text, 'rms_oldest_pending_age_seconds', { topic: TOPIC }),
  };
}

// Check-backs and redeliveries far off, so the messages stay where the test put them;
// no caching, so each scrape reads the store.
const ENV = { RMS_CHECK_DELAY_MS: '600000', RMS_ACK_TIMEOUT_MS: '600000', RMS_METRICS_CACHE_MS: '0' };

before(async () => {
  rms = await startTestServer({ env: ENV });
});
after(async () => {
  await second?.stop();
  await rms?.stop();
});

describe('metrics for alerting', () => {
  test('every metric the alert rules and the Grafana dashboard use is exported at /metrics', async () => {
    const exported = declaredMetrics(await scrape(rms));
    for (const [file, names] of referencedMetrics()) {
      assert.ok(names.size >= 10, `${file} names ${names.size} metrics: the extraction found them`);
      for (const name of names) {
        const family = exported.has(name) ? name : name.replace(HISTOGRAM_SERIES, '');
        assert.ok(exported.has(family), `${file} uses ${name}, which /metrics does not export`);
      }
    }
  });

  test('Node.js process metrics have their standard names, without an rms_ prefix', async () => {
    const exported = declaredMetrics(await scrape(rms));
    for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_heap_size_used_bytes', 'nodejs_eventloop_lag_p99_seconds']) {
      assert.ok(exported.has(name), `${name} is exported`);
    }
    assert.deepEqual([...exported].filter((name) => /^rms_(process|nodejs)_/.test(name)), []);
  });

  test('HTTP durations are labelled by route pattern and status, never by the raw path', async () => {
    const prepared = await rms.call('orders', 'POST', '/v1/messages', { topic: 'metrics.routes', payload: 1 });
    await rms.call('orders', 'GET', `/v1/messages/${prepared.body.id}`);
    await rms.call('orders', 'GET', '/v1/no-such-route/12345');
    const text = await scrape(rms);
    assert.equal(text.includes(prepared.body.id), false, 'no message id in any label');
    assert.equal(text.includes('12345'), false, 'no raw path of an unmatched request');
    const count = (labels: Record<string, string>) => sumSamples(text, 'rms_http_request_duration_seconds_count', labels);
    assert.equal(count({ method: 'GET', route: '/v1/messages/:id', status: '200' }), 1);
    assert.equal(count({ method: 'POST', route: '/v1/messages', status: '201' }), 1);
    assert.equal(count({ route: 'unmatched', status: '404' }), 1);
  });

  test('an acked message is counted by topic, with confirm → first publish and publish → ack observed', async () => {
    const topic = 'metrics.latency';
    const { body } = await rms.call('orders', 'POST', '/v1/messages', { topic, payload: 1 });
    await rms.call('orders', 'POST', `/v1/messages/${body.id}/confirm`);
    // The confirm's write records round 1 already (deliveryAttempts 1): the publish shows in the counter.
    await waitUntil(async () => sumSamples(await scrape(rms), 'rms_publishes_total', { topic, outcome: 'ok' }) === 1, 'the message was published');
    assert.equal((await rms.call('inventory', 'POST', `/v1/messages/${body.id}/ack`)).status, 200);
    const text = await scrape(rms);
    assert.equal(sumSamples(text, 'rms_publishes_total', { topic, outcome: 'ok' }), 1);
    assert.equal(sumSamples(text, 'rms_delivery_rounds_total', { topic, kind: 'first' }), 1);
    assert.equal(sumSamples(text, 'rms_acks_total', { topic }), 1);
    assert.ok(sumSamples(text, 'rms_confirm_to_first_publish_seconds_count') >= 1);
    assert.equal(sumSamples(text, 'rms_publish_to_ack_seconds_count', { transport: 'rabbitmq' }), 1);
  });

  test('the backlog gauges come from the store: right after a restart, and the same on two instances', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push((await rms.call('orders', 'POST', '/v1/messages', { topic: TOPIC, payload: i })).body.id);
    await rms.call('orders', 'POST', `/v1/messages/${ids[0]}/confirm`);
    const expected = { pending: 3, sending: 1, dead: 0 };
    const first = await backlogOf(rms);
    assert.deepEqual({ pending: first.pending, sending: first.sending, dead: first.dead }, expected);
    assert.ok(first.oldestPendingAge > 0, 'the oldest PENDING message has an age');

    second = await startTestServer({ env: ENV, shareSchemaOf: rms });
    const [onFirst, onSecond] = await Promise.all([backlogOf(rms), backlogOf(second)]);
    for (const reported of [onFirst, onSecond]) assert.deepEqual({ pending: reported.pending, sending: reported.sending, dead: reported.dead }, expected);

    // A restart: a fresh instance, with nothing in memory, reports the same.
    await second.stop();
    second = await startTestServer({ env: ENV, shareSchemaOf: rms });
    const restarted = await backlogOf(second);
    assert.deepEqual({ pending: restarted.pending, sending: restarted.sending, dead: restarted.dead }, expected);
    assert.ok(restarted.oldestPendingAge >= first.oldestPendingAge, 'the age kept growing across the restart');
    assert.ok(parseSamples(await scrape(second)).some((sample) => sample.name === 'rms_oldest_sending_age_seconds' && sample.labels['topic'] === TOPIC));
  });
});
