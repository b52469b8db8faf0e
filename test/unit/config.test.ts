import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { AppRegistry, ConfigurationError, loadConfig, parseAppRegistry } from '@rms/message-service';

const APPS = [
  { app: 'orders', token: 'orders-token-0123456789', roles: ['producer'], checkUrl: 'http://orders:3001/check', secret: 'orders-secret-0123456789' },
  { app: 'inventory', token: 'inventory-token-0123456789', roles: ['consumer'] },
];
const MINIMAL = { STORE_URL: 'postgres://postgres@127.0.0.1:5432/test', RMS_APPS: JSON.stringify(APPS) };

function configError(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (error) {
    assert.ok(error instanceof ConfigurationError, String(error));
    return error.message;
  }
  assert.fail('expected a ConfigurationError');
}

describe('configuration from the environment', () => {
  test('every variable of design section 9 has its documented default', () => {
    const config = loadConfig(MINIMAL);
    assert.equal(config.port, 8080);
    assert.equal(config.rabbitmqUrl, 'amqp://guest:guest@127.0.0.1:5672');
    assert.equal(config.redisUrl, 'redis://127.0.0.1:6379');
    assert.equal(config.zkConnect, '127.0.0.1:2181');
    assert.equal(config.zkRoot, '/rms');
    assert.deepEqual(config.checkBack, { delayMs: 6000, intervalMs: 30_000, maxChecks: 15 });
    assert.deepEqual(config.delivery, {
      ackTimeoutMs: 240_000, retryImmediate: 3, retryFirstDelayMs: 240_000, retryIntervalMs: 60_000, retryMax: 50,
    });
    assert.deepEqual(config.failover, { threshold: 10, shards: 100, probeIntervalMs: 5000, zkSessionTimeoutMs: 6000 });
    assert.equal(config.maxPayloadBytes, 262_144);
  });

  test('set variables override the defaults, as numbers', () => {
    const config = loadConfig({ ...MINIMAL, PORT: '9000', RMS_CHECK_DELAY_MS: '50', RMS_RETRY_MAX: '3', RMS_FALLBACK_SHARDS: '16' });
    assert.equal(config.port, 9000);
    assert.equal(config.checkBack.delayMs, 50);
    assert.equal(config.delivery.retryMax, 3);
    assert.equal(config.failover.shards, 16);
  });

  test('round 1 is recorded by the confirm unless RMS_FIRST_ROUND_AT_CONFIRM is false', () => {
    assert.equal(loadConfig(MINIMAL).firstRoundAtConfirm, true);
    assert.equal(loadConfig({ ...MINIMAL, RMS_FIRST_ROUND_AT_CONFIRM: 'false' }).firstRoundAtConfirm, false);
    assert.match(configError({ ...MINIMAL, RMS_FIRST_ROUND_AT_CONFIRM: 'no' }), /RMS_FIRST_ROUND_AT_CONFIRM: must be true or false/);
  });

  test('an empty variable counts as unset', () => {
    assert.equal(loadConfig({ ...MINIMAL, PORT: '' }).port, 8080);
  });

  test('a missing STORE_URL or RMS_APPS stops start-up, naming the variable', () => {
    assert.match(configError({ RMS_APPS: MINIMAL.RMS_APPS }), /STORE_URL: is required/);
    assert.match(configError({ STORE_URL: MINIMAL.STORE_URL }), /RMS_APPS: is required/);
  });

  test('malformed settings are each named', () => {
    const message = configError({ ...MINIMAL, PORT: 'eighty', RMS_CHECK_MAX: '1.5', STORE_URL: 'mysql://x', RMS_ZK_ROOT: 'rms' });
    assert.match(message, /PORT: must be a number/);
    assert.match(message, /RMS_CHECK_MAX: must be a whole number/);
    assert.match(message, /STORE_URL: must start with postgres:\/\/ or mongodb:\/\//);
    assert.match(message, /RMS_ZK_ROOT: must be an absolute ZooKeeper path/);
  });
});

describe('the app registry (RMS_APPS)', () => {
  test('is read from a JSON array or from a file path', () => {
    assert.deepEqual(parseAppRegistry(JSON.stringify(APPS)), APPS);
    const file = join(mkdtempSync(join(tmpdir(), 'rms-apps-')), 'apps.json');
    writeFileSync(file, JSON.stringify(APPS));
    assert.deepEqual(parseAppRegistry(file), APPS);
  });

  test('names the entry and field that is wrong', () => {
    const cases: [unknown, RegExp][] = [
      [[{ ...APPS[0], roles: ['writer'] }], /RMS_APPS\[0\]\.roles\[0\]/],
      [[{ ...APPS[0], token: 'short' }], /RMS_APPS\[0\]\.token: token must be at least 16 characters/],
      [[{ ...APPS[0], checkUrl: undefined }], /RMS_APPS\[0\]: a producer needs checkUrl and secret/],
      [[{ ...APPS[0], checkUrl: 'ftp://orders/check' }], /RMS_APPS\[0\]\.checkUrl: checkUrl must be an http\(s\) URL/],
      [[APPS[1], { ...APPS[1], colour: 'red' }], /unknown field RMS_APPS\[1\]\.colour/],
      [[APPS[0], { ...APPS[1], app: 'orders' }], /app "orders" is registered twice/],
      [[APPS[0], { ...APPS[1], token: APPS[0]?.token }], /reuses another app's token/],
      [[], /register at least one app/],
    ];
    for (const [apps, pattern] of cases) {
      assert.throws(() => parseAppRegistry(JSON.stringify(apps)), (error: unknown) => {
        assert.ok(error instanceof ConfigurationError);
        assert.match(error.message, pattern);
        return true;
      });
    }
    assert.throws(() => parseAppRegistry('[not json'), /RMS_APPS: not valid JSON/);
    assert.throws(() => parseAppRegistry('/no/such/file.json'), /RMS_APPS: not inline JSON and not a readable file/);
  });

  test('finds apps by token, and no app by an unknown or prefix token', () => {
    const registry = new AppRegistry(parseAppRegistry(JSON.stringify(APPS)));
    assert.equal(registry.findByToken('orders-token-0123456789')?.app, 'orders');
    assert.equal(registry.findByToken('orders-token-012345678'), undefined);
    assert.equal(registry.findByToken(''), undefined);
  });
});

describe('configuration: bounds and cross-checks', () => {
  test('numbers out of range say the bound', () => {
    assert.match(configError({ ...MINIMAL, RMS_CHECK_MAX: '0' }), /RMS_CHECK_MAX: must be at least 1/);
    assert.match(configError({ ...MINIMAL, PORT: '70000' }), /PORT: must be at most 65535/);
  });

  test('RMS_ADMISSION_TARGET_MS: 1000 by default, 0 turns the adaptive limit off, negative or past 60000 is refused', () => {
    assert.equal(loadConfig(MINIMAL).admissionTargetMs, 1000);
    assert.equal(loadConfig(MINIMAL).maxInFlightRequests, 512);
    assert.equal(loadConfig({ ...MINIMAL, RMS_ADMISSION_TARGET_MS: '0' }).admissionTargetMs, 0);
    assert.equal(loadConfig({ ...MINIMAL, RMS_ADMISSION_TARGET_MS: '800' }).admissionTargetMs, 800);
    assert.match(configError({ ...MINIMAL, RMS_ADMISSION_TARGET_MS: '-1' }), /RMS_ADMISSION_TARGET_MS: must be at least 0/);
    assert.match(configError({ ...MINIMAL, RMS_ADMISSION_TARGET_MS: '60001' }), /RMS_ADMISSION_TARGET_MS: must be at most 60000/);
    assert.match(configError({ ...MINIMAL, RMS_ADMISSION_TARGET_MS: 'fast' }), /RMS_ADMISSION_TARGET_MS: must be a number/);
  });

  test('RMS_LISTEN_BACKLOG: 4096 by default, a whole number from 1 to 65535', () => {
    assert.equal(loadConfig(MINIMAL).listenBacklog, 4096);
    assert.equal(loadConfig({ ...MINIMAL, RMS_LISTEN_BACKLOG: '511' }).listenBacklog, 511);
    assert.match(configError({ ...MINIMAL, RMS_LISTEN_BACKLOG: '0' }), /RMS_LISTEN_BACKLOG: must be at least 1/);
    assert.match(configError({ ...MINIMAL, RMS_LISTEN_BACKLOG: '70000' }), /RMS_LISTEN_BACKLOG: must be at most 65535/);
  });

  test('a lease shorter than the slowest handling is refused: it would let two instances work on one message', () => {
    const message = configError({ ...MINIMAL, RMS_LEASE_MS: '1000', RMS_PUBLISH_TIMEOUT_MS: '500', RMS_RETRY_IMMEDIATE: '3' });
    assert.match(message, /RMS_LEASE_MS \(1000\) must exceed/);
  });

  test('alert webhooks are a comma-separated list of URLs', () => {
    assert.deepEqual(loadConfig({ ...MINIMAL, RMS_ALERT_WEBHOOKS: 'http://a/hook, https://b/hook' }).alerts.webhooks, ['http://a/hook', 'https://b/hook']);
    assert.match(configError({ ...MINIMAL, RMS_ALERT_WEBHOOKS: 'not a url' }), /RMS_ALERT_WEBHOOKS/);
  });
});

describe('the app registry: topic permissions and consumer groups', () => {
  const producer = { app: 'payments', token: 'payments-token-0123456789', roles: ['producer' as const], checkUrl: 'http://p/check', secret: 'payments-secret-012345678' };
  const consumer = (app: string, subscriptions?: { topic: string; group?: string }[]) => ({
    app,
    token: `${app}-token-0123456789abcdef`,
    roles: ['consumer' as const],
    ...(subscriptions && { subscriptions }),
  });

  test('a producer writes only topics its patterns match; * spans dots; no list means any topic', () => {
    const registry = new AppRegistry(parseAppRegistry(JSON.stringify([{ ...producer, topics: ['orders.*', 'payments.capture'] }, { ...producer, app: 'free', token: 'free-token-0123456789abcd' }])));
    assert.equal(registry.mayProduce('payments', 'orders.paid'), true);
    assert.equal(registry.mayProduce('payments', 'orders.eu.paid'), true);
    assert.equal(registry.mayProduce('payments', 'orders'), false, 'the * stands for at least one character');
    assert.equal(registry.mayProduce('payments', 'payments.capture'), true);
    assert.equal(registry.mayProduce('payments', 'payments.capturex'), false, 'a name without * is exact');
    assert.equal(registry.mayProduce('payments', 'ordersXpaid'), false, 'the dot of a pattern is literal');
    assert.equal(registry.mayProduce('free', 'anything.at.all'), true);
  });

  test('the groups of a topic: every subscribed group once, in registry order, the app name by default; none means the default group', () => {
    const registry = new AppRegistry(parseAppRegistry(JSON.stringify([
      consumer('inventory', [{ topic: 'orders.paid' }]),
      consumer('loyalty', [{ topic: 'orders.*', group: 'points' }]),
      consumer('loyalty2', [{ topic: 'orders.paid', group: 'points' }]),
    ])));
    assert.deepEqual(registry.groupsFor('orders.paid'), ['inventory', 'points']);
    assert.deepEqual(registry.groupsFor('orders.refunded'), ['points']);
    assert.deepEqual(registry.groupsFor('stock.reduce'), ['default']);
    assert.deepEqual(registry.groupsOf('loyalty', 'orders.paid'), ['points']);
    assert.deepEqual(registry.groupsOf('inventory', 'orders.refunded'), [], 'declared, but not this topic');
  });

  test('apps without topics or subscriptions are named in the start-up warnings', () => {
    const registry = new AppRegistry(parseAppRegistry(JSON.stringify([producer, consumer('inventory')])));
    assert.deepEqual(registry.warnings(), [
      'producer payments declares no topics: it may write any topic',
      'consumer inventory declares no subscriptions: it may ack any delivery of any topic',
    ]);
    assert.equal(registry.groupsOf('inventory', 'orders.paid'), undefined);
  });

  test('bad subscriptions and topic lists are refused, naming the field', () => {
    const refused = (apps: unknown[], message: RegExp) => assert.throws(() => parseAppRegistry(JSON.stringify(apps)), message);
    refused([consumer('inventory', [{ topic: 'orders.paid', group: 'a.b' }])], /no dots/);
    refused([consumer('inventory', [{ topic: 'orders paid' }])], /subscriptions\[\]\.topic/);
    refused([{ ...producer, subscriptions: [{ topic: 'x' }] }], /subscriptions are for apps with the consumer role/);
    refused([{ ...consumer('inventory'), topics: ['x'] }], /topics are for apps with the producer role/);
  });
});
