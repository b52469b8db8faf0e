/**
 * The failover state as gauges: whether publishes go to the Redis fallback (degraded),
 * how many primary publishes failed in a row, and how many entries wait in the Redis
 * fallback lists per topic (consumers drain them; a depth that grows while degraded means
 * no consumer is popping).
 */
import { Gauge, type Registry } from 'prom-client';
import type { Logger } from 'pino';

/** What the failover gauges read. */
export interface FailoverMetricsSource {
  /** The failover transport's state now. */
  status(): { mode: 'rabbitmq' | 'redis'; consecutiveFailures: number };
  /** Entries waiting in the fallback lists, by topic. */
  listDepths(): Promise<Map<string, number>>;
}

/** Options of the failover gauges. */
export interface FailoverMetricsOptions {
  registry: Registry;
  source: FailoverMetricsSource;
  logger: Logger;
  /** How long one read of the list depths serves scrapes. @defaultValue 10000 */
  maxAgeMs?: number;
  /** @defaultValue Date.now */
  now?: () => number;
}

/** Registers the failover gauges. */
export function registerFailoverMetrics(options: FailoverMetricsOptions): void {
  const { registry, source, logger } = options;
  const maxAgeMs = options.maxAgeMs ?? 10_000;
  const now = options.now ?? Date.now;
  const registers = [registry];
  let depths: { at: number; byTopic: Map<string, number> } | undefined;
  new Gauge({
    name: 'rms_failover_degraded',
    help: '1 while publishes go to the Redis fallback lists, 0 while they go to RabbitMQ',
    registers,
    collect() {
      this.set(source.status().mode === 'redis' ? 1 : 0);
    },
  });
  new Gauge({
    name: 'rms_failover_consecutive_failures',
    help: 'Failed RabbitMQ publishes in a row on this instance (the failover threshold counts these)',
    registers,
    collect() {
      this.set(source.status().consecutiveFailures);
    },
  });
  new Gauge({
    name: 'rms_fallback_list_depth',
    help: 'Entries waiting in the Redis fallback lists, by topic',
    labelNames: ['topic'],
    registers,
    async collect() {
      if (!depths || now() - depths.at >= maxAgeMs) {
        try {
          depths = { at: now(), byTopic: await source.listDepths() };
        } catch (error) {
          logger.debug({ err: error }, 'reading the fallback list depths failed; the gauge keeps its last values');
          return;
        }
      }
      this.reset();
      for (const [topic, depth] of depths.byTopic) this.set({ topic }, depth);
    },
  });
}
