/**
 * The failover drill, the way an SRE would run it, as a function: places orders on the demo
 * stack with the degrade flag in automation (RabbitMQ), forced on (the Redis lists, which
 * both consumer groups pop) and handed back to automation (RabbitMQ again, the lists
 * drained), then checks that every paid order reached each consumer group exactly once.
 * `npm run drill` runs it on the local services; a test runs it on a Redis Cluster and a
 * ZooKeeper ensemble.
 */
import { ZooKeeperDegradeSwitch } from '@rms/client-sdk';
import { startDemoStack } from './demo-stack.js';

/** How to run the drill. */
export interface FailoverDrillOptions {
  /** Orders placed in each of the three phases. @defaultValue 100 */
  perPhase?: number;
  /** Redis, or a Redis Cluster's seeds comma-separated. @defaultValue the demo stack's */
  redisUrl?: string;
  /** ZooKeeper, or an ensemble's servers comma-separated. @defaultValue the demo stack's */
  zkConnect?: string;
  /** RMS settings on top of the drill's own. */
  rmsEnv?: Record<string, string>;
  /** Where the report lines go. @defaultValue console.log */
  print?: (line: string) => void;
}

/** What the drill found. */
export interface FailoverDrillResult {
  /** Every paid order applied once by inventory and awarded once by loyalty. */
  balanced: boolean;
  /** RMS's messages by the transport of their last delivery. */
  byTransport: Record<string, number>;
  /** RMS's messages by status. */
  byStatus: Record<string, number>;
  paidOrders: number;
}

/** Runs the drill on a fresh demo stack and stops it again. */
export async function runFailoverDrill(options: FailoverDrillOptions = {}): Promise<FailoverDrillResult> {
  const perPhase = options.perPhase ?? 100;
  const print = options.print ?? ((line: string) => console.log(line));
  const stack = await startDemoStack({
    schemaSuffix: `drill_${Date.now()}`,
    ...(options.redisUrl !== undefined && { redisUrl: options.redisUrl }),
    ...(options.zkConnect !== undefined && { zkConnect: options.zkConnect }),
    rmsEnv: { RMS_POLL_INTERVAL_MS: '100', RMS_CHECK_DELAY_MS: '1500', RMS_CHECK_INTERVAL_MS: '1000', RMS_ACK_TIMEOUT_MS: '5000', ...options.rmsEnv },
    initialStock: { apple: 100_000 },
  });
  const sre = new ZooKeeperDegradeSwitch({ connect: stack.zkConnect, root: stack.zkRoot });
  try {
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
      for (let i = 0; i < perPhase; i++) await stack.placeOrder('apple', 1, 'none');
      print(`${label.padEnd(44)} ${perPhase} orders placed`);
    };

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
    const balanced = applied.messages === totals.orders && applied.qty === totals.qty && points.messages === totals.orders && points.points === totals.qty * 10;
    print('');
    print(`${'messages by transport of their delivery'.padEnd(44)} ${Object.entries(byTransport).map(([k, v]) => `${k} ${v}`).join(', ')}`);
    print(`${'messages by status'.padEnd(44)} ${Object.entries(byStatus).map(([k, v]) => `${k} ${v}`).join(', ')}`);
    print(`${'duplicates suppressed by inventory'.padEnd(44)} ${stack.inventory.stats.duplicatesSuppressed}`);
    print(`${'duplicates suppressed by loyalty'.padEnd(44)} ${stack.loyalty.stats.duplicatesSuppressed}`);
    print(
      `${'books balance'.padEnd(44)} ${balanced ? 'YES' : 'NO'} (group inventory applied ${applied.messages}, group loyalty awarded ${points.messages}, of ${totals.orders} paid orders)`,
    );
    return { balanced, byTransport, byStatus, paidOrders: totals.orders };
  } finally {
    await sre.close();
    await stack.stop();
  }
}
