/**
 * Retention: COMPLETED and CANCELLED messages are removed once finished longer ago than
 * the retention period. The store decides the unit: PostgreSQL drops whole days'
 * partitions, MongoDB deletes in bounded batches, so that one sweep never holds the store
 * for long (see `MessageStore.pruneFinished`).
 */
import type { Logger } from 'pino';
import type { Metrics } from '../observability/metrics.js';
import type { MessageStore } from '../store/message-store.js';

/** Options of the retention sweeper. */
export interface RetentionOptions {
  store: MessageStore;
  /** Finished messages last changed longer ago than this are deleted. */
  retentionMs: number;
  /** How often to sweep. */
  intervalMs: number;
  /** Messages removed per store call, where the store removes messages one by one. @defaultValue 1000 */
  batchSize?: number;
  /** Statements per sweep, so one sweep is bounded; the rest waits for the next. @defaultValue 100 */
  maxBatchesPerSweep?: number;
  logger: Logger;
  metrics: Metrics;
  /** @defaultValue () => new Date() */
  now?: () => Date;
}

/** Sweeps finished messages on an interval. */
export class RetentionSweeper {
  private timer: NodeJS.Timeout | undefined;
  private sweeping: Promise<number> | undefined;

  constructor(private readonly options: RetentionOptions) {}

  /** Sweeps now and then every interval. */
  start(): void {
    if (this.timer) return;
    const tick = () => {
      this.sweeping ??= this.sweep()
        .catch((error: unknown) => {
          this.options.logger.warn({ err: error }, 'retention sweep failed; retrying next interval');
          return 0;
        })
        .finally(() => (this.sweeping = undefined));
    };
    this.timer = setInterval(tick, this.options.intervalMs);
    this.timer.unref();
    tick();
  }

  /** Removes what is past retention now, in bounded calls; returns how many messages. */
  async sweep(): Promise<number> {
    const { store, retentionMs, logger, metrics } = this.options;
    const batchSize = this.options.batchSize ?? 1000;
    const cutoff = new Date((this.options.now?.() ?? new Date()).getTime() - retentionMs);
    let total = 0;
    for (let batch = 0; batch < (this.options.maxBatchesPerSweep ?? 100); batch++) {
      const deleted = await store.pruneFinished(cutoff, batchSize);
      total += deleted;
      if (deleted < batchSize) break;
    }
    metrics.pruned.inc(total);
    if (total > 0) logger.info({ deleted: total, cutoff }, 'retention: deleted finished messages');
    return total;
  }

  /** Stops sweeping and waits for a sweep in progress. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.sweeping;
  }
}
