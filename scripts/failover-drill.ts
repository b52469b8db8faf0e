/**
 * `npm run drill`: a failover drill on the demo stack, the way an SRE would run it.
 *
 * Places orders while the degrade flag is forced on (traffic goes through the Redis lists,
 * and the inventory service pops them), then hands the flag back to automation (traffic
 * returns to RabbitMQ, the lists drain), and checks that every paid order reached
 * inventory exactly once. Prints where the messages went and whether the books balance.
 */
import { ZooKeeperDegradeSwitch } from '@rms/client-sdk';
import { startDemoStack } from './demo-stack.js';

const PER_PHASE = Number(process.env['DRILL_ORDERS_PER_PHASE'] ?? 100);
const stack = await startDemoStack({
  schemaSuffix: `drill_${Date.now()}`,
  rmsEnv: { RMS_POLL_INTERVAL_MS: '100', RMS_CHECK_DELAY_MS: '1500', RMS_CHECK_INTERVAL_MS: '1000', RMS_ACK_TIMEOUT_MS: '5000' },
  initialStock: { apple: 100_000 },
});
const sre = new ZooKeeperDegradeSwitch({ connect: process.env['ZK_CONNECT'] ?? '127.0.0.1:2181', root: stack.zkRoot });
await sre.start();
const waitForMode = async (mode: 'redis' | 'rabbitmq') => {
  for (let i = 0; i < 100; i++) {
    const ready = (await (await fetch(`${stack.rmsUrl}/readyz`)).json()) as { dependencies: { transport?: { mode?: string } } };
    if (ready.dependencies.transport?.mode === mode) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`RMS did not switch to ${mode}`);
};
const placeOrders = async (label: string) => {
  for (let i = 0; i < PER_PHASE; i++) await stack.placeOrder('apple', 1, 'none');
  console.log(`${label.padEnd(44)} ${PER_PHASE} orders placed`);
};

let balanced: boolean;
try {
  await placeOrders('1. normal (flag auto, RabbitMQ)');
  await sre.setMode('on', 'failover drill', 'drill');
  await waitForMode('redis');
  await placeOrders('2. forced on: rms-admin degrade on');
  await sre.setMode('auto', 'drill over', 'drill');
  await waitForMode('rabbitmq');
  await placeOrders('3. back to auto: rms-admin degrade auto');
  const deadline = Date.now() + 60_000;
  let applied = await stack.inventory.store.appliedTotals();
  let totals = await stack.orders.store.totals();
  let points = await stack.loyalty.store.awardedTotals();
  while (Date.now() < deadline && (applied.messages < totals.orders || points.messages < totals.orders)) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    applied = await stack.inventory.store.appliedTotals();
    points = await stack.loyalty.store.awardedTotals();
    totals = await stack.orders.store.totals();
  }
  const byTransport = await stack.messagesByTransport();
  const byStatus = await stack.messagesByStatus();
  // Both consumer groups, each exactly once per paid order.
  balanced = applied.messages === totals.orders && applied.qty === totals.qty && points.messages === totals.orders && points.points === totals.qty * 10;
  console.log('');
  console.log(`${'messages by transport of their delivery'.padEnd(44)} ${Object.entries(byTransport).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  console.log(`${'messages by status'.padEnd(44)} ${Object.entries(byStatus).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  console.log(`${'duplicates suppressed by inventory'.padEnd(44)} ${stack.inventory.stats.duplicatesSuppressed}`);
  console.log(`${'duplicates suppressed by loyalty'.padEnd(44)} ${stack.loyalty.stats.duplicatesSuppressed}`);
  console.log(
    `${'books balance'.padEnd(44)} ${balanced ? 'YES' : 'NO'} (group inventory applied ${applied.messages}, group loyalty awarded ${points.messages}, of ${totals.orders} paid orders)`,
  );
} finally {
  await sre.close();
  await stack.stop();
}
process.exit(balanced ? 0 : 1);
