/**
 * Backlog gauges read from the store, so that every RMS instance on one store reports the
 * same figures and a restart loses nothing: messages by topic and status (PENDING,
 * SENDING, DEAD), the age of the oldest PENDING message and of the oldest unacked SENDING
 * message per topic.
 *
 * One store read (`MessageStore.backlogByTopic`) serves every gauge and is cached for
 * `maxAgeMs`, so scrapes from several Prometheus servers cost one query per period. Ages
 * are computed at scrape time from the cached times, so they keep growing between reads.
 * A failed read keeps the last figures (an outage must not resolve a "stuck PENDING"
 * alert) and counts `rms_backlog_read_failures_total`.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from 'pino';
import type { TopicBacklog } from '../store/message-store.js';

/** Options of the backlog gauges. */
export interface BacklogMetricsOptions {
  registry: Registry;
  /** Reads the backlog (the store's `backlogByTopic`). */
  read: () => Promise<TopicBacklog[]>;
  logger: Logger;
  /** How long one read serves scrapes. @defaultValue 10000 */
  maxAgeMs?: number;
  /** @defaultValue Date.now */
  now?: () => number;
}

/** The backlog gauges. */
export class BacklogMetrics {
  private readonly maxAgeMs: number;
  private readonly now: () => number;
  private last: { at: number; backlog: TopicBacklog[] } | undefined;
  private reading: Promise<TopicBacklog[]> | undefined;

  constructor(private readonly options: BacklogMetricsOptions) {
    this.maxAgeMs = options.maxAgeMs ?? 10_000;
    this.now = options.now ?? Date.now;
    const registers = [options.registry];
    const readFailures = new Counter({ name: 'rms_backlog_read_failures_total', help: 'Failed reads of the backlog gauges from the store', registers });
    const backlog = async (): Promise<TopicBacklog[]> => {
      try {
        return await this.current();
      } catch (error) {
        readFailures.inc();
        options.logger.warn({ err: error }, 'reading the backlog for /metrics failed; the gauges keep their last values');
        return this.last?.backlog ?? [];
      }
    };
    new Gauge({
      name: 'rms_messages',
      help: 'Messages waiting, by topic and status (PENDING, SENDING, DEAD); read from the store, the same on every instance',
      labelNames: ['topic', 'status'],
      registers,
      async collect() {
        this.reset();
        for (const entry of await backlog()) {
          this.set({ topic: entry.topic, status: 'PENDING' }, entry.pending);
          this.set({ topic: entry.topic, status: 'SENDING' }, entry.sending);
          this.set({ topic: entry.topic, status: 'DEAD' }, entry.dead);
        }
      },
    });
    const ageGauge = (name: string, help: string, since: (entry: TopicBacklog) => Date | null) => {
      const now = this.now;
      return new Gauge({
        name,
        help,
        labelNames: ['topic'],
        registers,
        async collect() {
          this.reset();
          for (const entry of await backlog()) {
            const at = since(entry);
            if (at) this.set({ topic: entry.topic }, Math.max(0, (now() - at.getTime()) / 1000));
          }
        },
      });
    };
    ageGauge('rms_oldest_pending_age_seconds', 'Age of the oldest PENDING message (since prepare), by topic', (entry) => entry.oldestPendingCreatedAt);
    ageGauge('rms_oldest_sending_age_seconds', 'Age of the oldest unacked SENDING message (since confirm), by topic', (entry) => entry.oldestSendingConfirmedAt);
  }

  /** The cached backlog, read again once older than `maxAgeMs`; concurrent scrapes share one read. */
  private current(): Promise<TopicBacklog[]> {
    if (this.last && this.now() - this.last.at < this.maxAgeMs) return Promise.resolve(this.last.backlog);
    this.reading ??= this.options
      .read()
      .then((backlog) => {
        this.last = { at: this.now(), backlog };
        return backlog;
      })
      .finally(() => {
        this.reading = undefined;
      });
    return this.reading;
  }
}
