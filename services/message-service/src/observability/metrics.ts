/**
 * What RMS counts, in Prometheus' text format at `/metrics` (prom-client). One registry
 * per server, so several servers in one process (tests) do not share counters.
 */
import { Counter, Registry, collectDefaultMetrics } from 'prom-client';

/** RMS's counters. */
export class Metrics {
  /** The registry `/metrics` serialises. */
  readonly registry = new Registry();
  /** Publishes by transport and outcome (`ok`, `failed`). */
  readonly publishes = new Counter({
    name: 'rms_publishes_total',
    help: 'Publish attempts by transport and outcome',
    labelNames: ['transport', 'outcome'] as const,
    registers: [this.registry],
  });
  /** Delivery rounds by kind (`first` for the first delivery, `redelivery` after). */
  readonly deliveries = new Counter({
    name: 'rms_delivery_rounds_total',
    help: 'Delivery rounds (a publish and its immediate retries) by kind',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });
  /** Check-backs by verdict. */
  readonly checkBacks = new Counter({
    name: 'rms_check_backs_total',
    help: 'Check-backs made, by verdict',
    labelNames: ['verdict'] as const,
    registers: [this.registry],
  });
  /** Messages that became DEAD, by reason. */
  readonly dead = new Counter({
    name: 'rms_dead_messages_total',
    help: 'Messages that became DEAD, by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  /** Finished messages deleted by retention. */
  readonly pruned = new Counter({
    name: 'rms_pruned_messages_total',
    help: 'COMPLETED and CANCELLED messages deleted after the retention period',
    registers: [this.registry],
  });

  constructor(options: { processMetrics?: boolean } = {}) {
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'rms_' });
  }
}
