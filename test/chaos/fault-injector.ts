/**
 * Injects one planned fault into the running stack and heals it: signals to the RMS and
 * consumer processes, modes of the dependency proxies. Each injection returns when the
 * fault is over and records when it started and ended, which is what the 5xx invariant
 * needs to know for store faults.
 */
import { CHAOS_DURATIONS } from './chaos-settings.js';
import type { ChaosStack, DependencyProxies } from './chaos-stack.js';
import type { FaultKind, PlannedFault } from './fault-schedule.js';
import type { RmsInstance } from './rms-instance.js';

/** One injected fault, as it happened. */
export interface InjectedFault {
  cycle: number;
  kind: FaultKind;
  /** Epoch ms when the fault began, and when it was healed. */
  startedAt: number;
  endedAt: number;
  /** What is worth knowing about this injection (which instance, whether failover happened, …). */
  note: string;
}

/** The faults that are one proxy mode held for the fault's duration: `cut` resets and refuses, `stall` holds every byte. */
const NETWORK_FAULTS: Partial<Record<FaultKind, { proxy: keyof DependencyProxies; mode: 'cut' | 'stall' }>> = {
  'rabbitmq-cut': { proxy: 'rabbitmq', mode: 'cut' },
  'rabbitmq-refuse': { proxy: 'rabbitmq', mode: 'cut' },
  'rabbitmq-stall': { proxy: 'rabbitmq', mode: 'stall' },
  'postgres-refuse': { proxy: 'postgres', mode: 'cut' },
  'postgres-blackhole': { proxy: 'postgres', mode: 'stall' },
  'zookeeper-cut': { proxy: 'zookeeper', mode: 'cut' },
};

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls until some instance publishes through Redis, up to `timeoutMs`; whether it did. */
async function waitForFailover(stack: ChaosStack, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const modes = await Promise.all(stack.instances.map((instance) => stack.transportMode(instance)));
    if (modes.includes('redis')) return true;
    await sleep(100);
  }
  return false;
}

/** Injects `fault`, holds it for its duration, heals it. */
export async function injectFault(stack: ChaosStack, fault: PlannedFault): Promise<InjectedFault> {
  const { proxies } = stack;
  const instance = stack.instances[fault.instance % stack.instances.length] as RmsInstance;
  const startedAt = Date.now();
  let note = '';
  const networkFault = NETWORK_FAULTS[fault.kind];
  if (networkFault) {
    const proxy = proxies[networkFault.proxy];
    if (networkFault.mode === 'cut') proxy.cut();
    else proxy.stall();
    await sleep(fault.durationMs);
    proxy.restore();
    return { cycle: fault.cycle, kind: fault.kind, startedAt, endedAt: Date.now(), note };
  }
  switch (fault.kind) {
    case 'rms-kill':
      await instance.kill();
      await sleep(fault.durationMs);
      await instance.start();
      note = `${instance.name} down ${fault.durationMs} ms, then restarted`;
      break;
    case 'rms-freeze':
      instance.freeze();
      await sleep(fault.durationMs);
      instance.thaw();
      note = `${instance.name} stopped ${fault.durationMs} ms (lease ${CHAOS_DURATIONS.leaseMs} ms)`;
      break;
    case 'redis-cut': {
      proxies.rabbitmq.cut();
      const failedOver = await waitForFailover(stack, 10_000);
      proxies.redis.cut();
      await sleep(fault.durationMs);
      proxies.redis.restore();
      // Redis back while RabbitMQ is still out: what was held is published to Redis now.
      await sleep(500);
      proxies.rabbitmq.restore();
      note = failedOver ? 'failed over to Redis before the cut' : 'RMS had not failed over within 10 s when Redis was cut';
      break;
    }
    case 'consumer-crash': {
      const how = await stack.consumer.crashMidHandler(5000);
      await stack.consumer.start();
      note = how === 'mid-handler' ? 'crashed in a handler' : 'no delivery within 5 s: killed idle';
      break;
    }
  }
  return { cycle: fault.cycle, kind: fault.kind, startedAt, endedAt: Date.now(), note };
}
