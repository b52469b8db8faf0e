import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { type DemoStack, startDemoStack } from '../../scripts/demo-stack.js';
import { TEST_POSTGRES_URL } from '../support/postgres.js';
import { waitUntil } from '../support/wait.js';

const ORDERS = 200;
const SKUS = ['apple', 'pear', 'plum'];
const INITIAL = 100_000;

describe('orders → inventory end to end: RMS, RabbitMQ, PostgreSQL, two real services', { timeout: 180_000 }, () => {
  let stack: DemoStack;
  const suffix = `e2e_${randomBytes(3).toString('hex')}`;
  const placed = { paid: 0, crashed: 0, declined: 0, other: 0 };

  before(async () => {
    stack = await startDemoStack({
      schemaSuffix: suffix,
      rmsEnv: {
        RMS_CHECK_DELAY_MS: '300',
        RMS_CHECK_INTERVAL_MS: '300',
        RMS_CHECK_TIMEOUT_MS: '1000',
        RMS_ACK_TIMEOUT_MS: '600',
        RMS_RETRY_FIRST_DELAY_MS: '200',
        RMS_RETRY_INTERVAL_MS: '200',
        RMS_RETRY_IMMEDIATE: '1',
        RMS_RETRY_MAX: '30',
        RMS_PUBLISH_TIMEOUT_MS: '2000',
        RMS_LEASE_MS: '8000',
        RMS_POLL_INTERVAL_MS: '30',
      },
      // One delivery in ten outlives its ack deadline with heartbeats off: RMS redelivers it
      // while the first copy is still running, and the dedupe must absorb the duplicate.
      inventory: { slowRate: 0.1, slowMs: 900, heartbeatIntervalMs: 0 },
      initialStock: Object.fromEntries(SKUS.map((sku) => [sku, INITIAL])),
    });
    let next = 0;
    const worker = async () => {
      while (next < ORDERS) {
        const i = next++;
        const simulate = i % 10 === 3 ? 'fail-before-commit' : i % 10 === 7 ? 'crash-after-commit' : 'none';
        const status = await stack.placeOrder(SKUS[i % SKUS.length] ?? 'apple', 1 + (i % 4), simulate);
        if (status === 201 && simulate === 'crash-after-commit') placed.crashed += 1;
        else if (status === 201) placed.paid += 1;
        else if (status === 402) placed.declined += 1;
        else placed.other += 1;
      }
    };
    await Promise.all(Array.from({ length: 10 }, worker));
    await waitUntil(async () => {
      const counts = await stack.messagesByStatus();
      const applied = await stack.inventory.store.appliedTotals();
      const totals = await stack.orders.store.totals();
      const points = await stack.loyalty.store.awardedTotals();
      return counts['PENDING'] === 0 && counts['SENDING'] === 0 && applied.messages === totals.orders && points.messages === totals.orders;
    }, 'every message settled and every paid order applied by both groups', 90_000, 200);
  });
  after(async () => {
    await stack?.stop();
  });

  test('every order was placed: 10% declined, 10% "crashed" after commit, the rest paid', () => {
    assert.deepEqual(placed, { paid: 160, crashed: 20, declined: 20, other: 0 });
  });

  test('stock reduced == ordered units of paid orders (crashed ones included), per SKU', async () => {
    const totals = await stack.orders.store.totals();
    assert.equal(totals.orders, 180);
    let reduced = 0;
    for (const sku of SKUS) reduced += INITIAL - ((await stack.inventory.store.stockOf(sku)) ?? INITIAL);
    assert.equal(reduced, totals.qty);
    const applied = await stack.inventory.store.appliedTotals();
    assert.deepEqual(applied, { messages: totals.orders, qty: totals.qty });
  });

  test('the second consumer group on the topic awarded points once per paid order', async () => {
    const totals = await stack.orders.store.totals();
    assert.deepEqual(await stack.loyalty.store.awardedTotals(), { messages: totals.orders, points: totals.qty * 10 });
  });

  test('RMS records: paid orders COMPLETED, declined ones CANCELLED, none DEAD or in flight', async () => {
    assert.deepEqual(await stack.messagesByStatus(), { PENDING: 0, SENDING: 0, COMPLETED: 180, CANCELLED: 20, DEAD: 0 });
  });

  test('the "crashed" orders were confirmed by check-back', async () => {
    assert.ok((await stack.rmsCounter('rms_check_backs_total', 'verdict="COMMIT"')) >= 20);
  });

  test('no cancelled message was ever delivered to inventory', async () => {
    const client = new pg.Client({ connectionString: TEST_POSTGRES_URL });
    await client.connect();
    try {
      const { rows } = await client.query<{ id: string }>(`SELECT id::text FROM "rms_${suffix}".rms_messages WHERE status = 'CANCELLED'`);
      const applied = new Set(await stack.inventory.store.appliedMessageIds());
      assert.equal(rows.length, 20);
      for (const row of rows) assert.equal(applied.has(row.id), false, `cancelled ${row.id} was applied`);
    } finally {
      await client.end();
    }
  });

  test('duplicates forced by redelivery arrived and were never applied twice', async () => {
    // A slow duplicate may still be sleeping in its handler when the books already balance.
    const stats = stack.inventory.stats;
    await waitUntil(() => stats.deliveries === stats.applied + stats.duplicatesSuppressed, 'every handler call finished', 10_000);
    const { deliveries, applied, duplicatesSuppressed } = stats;
    assert.ok(await stack.rmsCounter('rms_delivery_rounds_total', 'kind="redelivery"') > 0, 'RMS redelivered');
    assert.ok(duplicatesSuppressed > 0, 'duplicates reached the handler');
    assert.equal(applied, 180);
    assert.equal(deliveries, applied + duplicatesSuppressed);
    console.log(`# e2e: ${ORDERS} orders, ${deliveries} deliveries, ${duplicatesSuppressed} duplicates suppressed`);
  });
});
