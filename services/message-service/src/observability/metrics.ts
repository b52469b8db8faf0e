/**
 * What RMS exports at `/metrics` (prom-client, Prometheus text format). One registry per
 * server, so several servers in one process (tests) do not share series. Node.js process
 * metrics keep their standard names (`process_cpu_seconds_total`, `nodejs_heap_size_used_bytes`,
 * ...), so stock Node.js dashboards work unchanged; RMS's own metrics start with `rms_`.
 * The names are a contract: `docs/observability/` alerts and graphs on them, and a test
 * checks that every name used there is exported.
 */
import { Counter, Registry, collectDefaultMetrics } from 'prom-client';
import type { Logger } from 'pino';
import type { TopicBacklog } from '../store/message-store.js';
import { BacklogMetrics } from './backlog-metrics.js';
import { DeliveryMetrics } from './delivery-metrics.js';
import { type FailoverMetricsSource, registerFailoverMetrics } from './failover-metrics.js';
import { HttpMetrics } from './http-metrics.js';

/** Options of `Metrics`. */
export interface MetricsOptions {
  /** Export Node.js process metrics (CPU, memory, event loop lag, GC). @defaultValue true */
  processMetrics?: boolean;
}

/** RMS's metrics, in one registry. */
export class Metrics {
  /** The registry `/metrics` serialises. */
  readonly registry = new Registry();
  /** Publishes, delivery rounds, acks, nacks, check-backs, DEAD, and their latencies. */
  readonly delivery = new DeliveryMetrics(this.registry);
  /** HTTP request durations. */
  readonly http = new HttpMetrics(this.registry);
  /** Finished messages deleted by retention. */
  readonly pruned = new Counter({
    name: 'rms_pruned_messages_total',
    help: 'COMPLETED and CANCELLED messages deleted after the retention period',
    registers: [this.registry],
  });

  constructor(options: MetricsOptions = {}) {
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  /** Adds the backlog gauges, read through `read` (the store's `backlogByTopic`). */
  watchBacklog(read: () => Promise<TopicBacklog[]>, logger: Logger, maxAgeMs?: number): void {
    new BacklogMetrics({ registry: this.registry, read, logger, ...(maxAgeMs !== undefined && { maxAgeMs }) });
  }

  /** Adds the failover gauges, read from the failover transport and the Redis lists. */
  watchFailover(source: FailoverMetricsSource, logger: Logger, maxAgeMs?: number): void {
    registerFailoverMetrics({ registry: this.registry, source, logger, ...(maxAgeMs !== undefined && { maxAgeMs }) });
  }
}
