/**
 * Which faults a chaos run injects, in which order, for how long: a pure function of the
 * seed, so a run can be repeated exactly (the timing of the stream around it cannot be).
 */
import { CHAOS_DURATIONS } from './chaos-settings.js';
import { SeededRandom } from './seeded-random.js';

/** Every fault a run knows, with what it does to the system. */
export const FAULT_KINDS = {
  'rms-kill': 'one RMS instance SIGKILLed mid-stream, restarted on the same port after a pause',
  'rms-freeze': 'one RMS instance SIGSTOPped for longer than the lease (the other takes over its claims), then SIGCONT',
  'rabbitmq-cut': 'every RabbitMQ connection reset (RMS and the consumer), healed at once: clients reconnect',
  'rabbitmq-refuse': 'RabbitMQ resets every connection and refuses new ones for seconds: failover to Redis, probe, back',
  'rabbitmq-stall': 'RabbitMQ traffic held (a hung broker): publishes time out unconfirmed',
  'postgres-refuse': 'PostgreSQL connections reset and refused: the store is down',
  'postgres-blackhole': 'PostgreSQL traffic held (packets go nowhere): the store hangs',
  'redis-cut': 'RabbitMQ refused until RMS fails over to Redis, then Redis cut too, then both healed',
  'zookeeper-cut': 'ZooKeeper cut for longer than the session timeout: sessions expire and are rebuilt',
  'consumer-crash': 'the consumer process kills itself (SIGKILL) in the middle of a handler, and is restarted',
} as const;

/** The name of a fault. */
export type FaultKind = keyof typeof FAULT_KINDS;

/** Every fault kind, in the order of {@link FAULT_KINDS}. */
export const ALL_FAULT_KINDS = Object.keys(FAULT_KINDS) as FaultKind[];

/** The faults that take the store away: only during these may RMS answer 5xx, and then only 503. */
export const STORE_FAULTS: ReadonlySet<FaultKind> = new Set<FaultKind>(['postgres-refuse', 'postgres-blackhole']);

/** One cycle of the run: a fault, how long it lasts, and the calm after it. */
export interface PlannedFault {
  /** 1-based. */
  cycle: number;
  kind: FaultKind;
  /** How long the fault is held (for `rms-kill`, how long the instance stays down; for `consumer-crash`, unused). */
  durationMs: number;
  /** Which RMS instance a process fault hits (0-based, below the instance count). */
  instance: number;
  /** Calm before the next cycle. */
  gapMs: number;
}

/** How long each kind is held, in ms: [shortest, longest]. */
const DURATION_RANGES: Record<FaultKind, readonly [number, number]> = {
  'rms-kill': [0, 1500],
  'rms-freeze': [CHAOS_DURATIONS.leaseMs + 300, CHAOS_DURATIONS.leaseMs + 1500],
  'rabbitmq-cut': [0, 300],
  'rabbitmq-refuse': [1500, 4000],
  'rabbitmq-stall': [1000, 3000],
  'postgres-refuse': [500, 4000],
  // Up to well past a few seconds, so that how long RMS lets a request wait on a hung
  // store shows in the slowest answer (the clients wait longer than this).
  'postgres-blackhole': [1000, 8000],
  'redis-cut': [1000, 3000],
  'zookeeper-cut': [CHAOS_DURATIONS.zkSessionTimeoutMs + 500, CHAOS_DURATIONS.zkSessionTimeoutMs + 2000],
  'consumer-crash': [0, 0],
};

/** What {@link planFaults} needs. */
export interface FaultPlanOptions {
  seed: number;
  cycles: number;
  /** The kinds to draw from. @defaultValue {@link ALL_FAULT_KINDS} */
  kinds?: readonly FaultKind[];
  /** RMS instances a process fault may hit. */
  instances: number;
}

/**
 * The run's fault schedule. Kinds come in rounds: each round is every kind once, in a
 * seeded order, so any `kinds.length` consecutive cycles cover every kind and 100 cycles
 * over 10 kinds inject each exactly 10 times.
 */
export function planFaults(options: FaultPlanOptions): PlannedFault[] {
  const kinds = options.kinds ?? ALL_FAULT_KINDS;
  if (kinds.length === 0) throw new RangeError('planFaults: no fault kinds to draw from');
  const random = new SeededRandom(options.seed);
  const plan: PlannedFault[] = [];
  let round: FaultKind[] = [];
  for (let cycle = 1; cycle <= options.cycles; cycle++) {
    if (round.length === 0) round = random.shuffled(kinds);
    const kind = round.shift() as FaultKind;
    const [shortest, longest] = DURATION_RANGES[kind];
    plan.push({
      cycle,
      kind,
      durationMs: random.int(shortest, longest),
      instance: random.int(0, options.instances - 1),
      gapMs: random.int(500, 1500),
    });
  }
  return plan;
}

/** Parses a comma-separated list of kinds (as in `CHAOS_KINDS`), naming any it does not know. */
export function parseFaultKinds(text: string): FaultKind[] {
  const kinds = text.split(',').map((kind) => kind.trim()).filter((kind) => kind !== '');
  const unknown = kinds.filter((kind) => !(kind in FAULT_KINDS));
  if (unknown.length > 0) throw new RangeError(`unknown fault kinds: ${unknown.join(', ')} (known: ${ALL_FAULT_KINDS.join(', ')})`);
  return kinds as FaultKind[];
}
