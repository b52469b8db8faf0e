/**
 * `npm run demo`: the orders → inventory story, end to end, on real services.
 *
 * Starts RMS and the two example services (see `demo-stack.ts`), places orders through the
 * order service — some whose payment is declined (the local transaction fails, so the
 * message is cancelled), some whose process "crashes" after paying and before confirming
 * (RMS must check back and confirm) — and waits until every message has settled. The
 * inventory handler is made slower than the ack deadline for a few deliveries, with
 * heartbeats off, so RMS really redelivers and the dedupe has duplicates to absorb.
 *
 * Two consumer groups read the one topic: inventory (reduce stock) and loyalty (award
 * points). Prints a summary and exits 0 only if the books balance per group: stock reduced
 * == ordered quantity of paid orders, points awarded once per paid order, and no message is
 * left in flight.
 *
 * Environment: DEMO_ORDERS [300], DEMO_FAIL_RATE [0.1], DEMO_CRASH_RATE [0.1].
 */
import { startDemoStack } from './demo-stack.js';

const ORDERS = Number(process.env['DEMO_ORDERS'] ?? 300);
const FAIL_RATE = Number(process.env['DEMO_FAIL_RATE'] ?? 0.1);
const CRASH_RATE = Number(process.env['DEMO_CRASH_RATE'] ?? 0.1);
const SKUS = ['apple', 'pear', 'plum', 'fig', 'kiwi'];
const INITIAL_STOCK = 1_000_000;
/** The loyalty service's default award per ordered unit. */
const POINTS_PER_UNIT = 10;
const SETTLE_TIMEOUT_MS = 120_000;

let lastQuarter = -1;
/** A one-line progress bar on stderr (a dependency for ten lines would not pay); off a terminal, one line per quarter. */
function progress(label: string, done: number, total: number, extra = ''): void {
  if (!process.stderr.isTTY) {
    const quarter = Math.floor((done / Math.max(total, 1)) * 4);
    if (quarter === lastQuarter) return;
    lastQuarter = quarter;
    process.stderr.write(`${label} ${done}/${total} ${extra}\n`);
    if (done >= total) lastQuarter = -1;
    return;
  }
  const width = 30;
  const filled = Math.round((done / Math.max(total, 1)) * width);
  process.stderr.write(`\r${label.padEnd(10)} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total} ${extra}   `);
  if (done >= total) process.stderr.write('\n');
}

const started = Date.now();
console.log(`RMS demo: ${ORDERS} orders, ${FAIL_RATE * 100}% declined before commit, ${CRASH_RATE * 100}% "crashing" after commit\n`);
const stack = await startDemoStack({
  schemaSuffix: `demo_${Date.now()}`,
  rmsEnv: {
    RMS_CHECK_DELAY_MS: '1500',
    RMS_CHECK_INTERVAL_MS: '1000',
    RMS_CHECK_TIMEOUT_MS: '1000',
    RMS_ACK_TIMEOUT_MS: '2000',
    RMS_RETRY_FIRST_DELAY_MS: '500',
    RMS_RETRY_INTERVAL_MS: '500',
    RMS_RETRY_IMMEDIATE: '1',
    RMS_PUBLISH_TIMEOUT_MS: '2000',
    RMS_LEASE_MS: '10000',
    RMS_POLL_INTERVAL_MS: '100',
  },
  inventory: { slowRate: 0.05, slowMs: 2600, heartbeatIntervalMs: 0 },
  initialStock: Object.fromEntries(SKUS.map((sku) => [sku, INITIAL_STOCK])),
});
console.log(`RMS ${stack.rmsUrl} · order-service ${stack.ordersUrl} · inventory-service http://127.0.0.1:${stack.inventory.port}\n`);

let balanced: boolean;
try {
  const outcome = { paid: 0, declined: 0, crashed: 0, failed: 0 };
  let placed = 0;
  let next = 0;
  const worker = async () => {
    while (next < ORDERS) {
      const i = next++;
      const roll = (i * 7919) % 100 / 100; // deterministic spread of the simulations
      const simulate = roll < FAIL_RATE ? 'fail-before-commit' : roll < FAIL_RATE + CRASH_RATE ? 'crash-after-commit' : 'none';
      const status = await stack.placeOrder(SKUS[i % SKUS.length] ?? 'apple', 1 + (i % 3), simulate);
      if (status === 201 && simulate === 'crash-after-commit') outcome.crashed += 1;
      else if (status === 201) outcome.paid += 1;
      else if (status === 402) outcome.declined += 1;
      else outcome.failed += 1;
      placed += 1;
      progress('ordering', placed, ORDERS);
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));

  const deadline = Date.now() + SETTLE_TIMEOUT_MS;
  let counts = await stack.messagesByStatus();
  let totals = await stack.orders.store.totals();
  let applied = await stack.inventory.store.appliedTotals();
  let points = await stack.loyalty.store.awardedTotals();
  while (Date.now() < deadline) {
    counts = await stack.messagesByStatus();
    totals = await stack.orders.store.totals();
    applied = await stack.inventory.store.appliedTotals();
    points = await stack.loyalty.store.awardedTotals();
    progress('settling', applied.messages, totals.orders, `(pending ${counts['PENDING']}, sending ${counts['SENDING']})`);
    if (counts['PENDING'] === 0 && counts['SENDING'] === 0 && applied.messages === totals.orders && points.messages === totals.orders) break;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }

  let stockReduced = 0;
  for (const sku of SKUS) stockReduced += INITIAL_STOCK - ((await stack.inventory.store.stockOf(sku)) ?? INITIAL_STOCK);
  const checkBacks = await stack.rmsCounter('rms_check_backs_total');
  const redeliveries = await stack.rmsCounter('rms_delivery_rounds_total', 'kind="redelivery"');
  // The books balance per consumer group: every paid order reduced stock once (group
  // inventory) and awarded points once (group loyalty).
  const stockBalances = stockReduced === totals.qty && applied.messages === totals.orders;
  const pointsBalance = points.messages === totals.orders && points.points === totals.qty * POINTS_PER_UNIT;
  balanced = stockBalances && pointsBalance && counts['PENDING'] === 0 && counts['SENDING'] === 0;

  const rows: [string, string | number][] = [
    ['orders placed', ORDERS],
    ['  paid and confirmed', outcome.paid],
    ['  paid, then "crashed" before confirm', outcome.crashed],
    ['  payment declined (cancelled)', outcome.declined],
    ['  failed to place', outcome.failed],
    ['orders paid (order-service table)', totals.orders],
    ['RMS messages by status', Object.entries(counts).map(([status, n]) => `${status} ${n}`).join(', ')],
    ['check-backs made', checkBacks],
    ['redeliveries (rounds after the first)', redeliveries],
    ['inventory deliveries handled', stack.inventory.stats.deliveries],
    ['duplicates suppressed', stack.inventory.stats.duplicatesSuppressed],
    ['stock reduced (units)', stockReduced],
    ['ordered units of paid orders', totals.qty],
    ['group inventory', stockBalances ? `balances: ${applied.messages} orders reduced stock once each` : 'does NOT balance'],
    ['loyalty deliveries handled', stack.loyalty.stats.deliveries],
    ['loyalty points awarded', `${points.points} for ${points.messages} orders`],
    ['group loyalty', pointsBalance ? `balances: ${points.messages} orders awarded points once each` : 'does NOT balance'],
    ['books balance', balanced ? 'YES: each group handled every paid order once, nothing in flight' : 'NO'],
    ['time', `${((Date.now() - started) / 1000).toFixed(1)} s`],
  ];
  console.log('');
  for (const [label, value] of rows) console.log(`${label.padEnd(40)} ${value}`);
} finally {
  await stack.stop();
}
process.exit(balanced ? 0 : 1);
