/**
 * Noise reduction for alerts (design section 6): every alert is logged at once, and alerts
 * of the same topic and reason inside a window go to the sinks as one notification with a
 * count and sample ids. A burst of 20 dead messages on one topic pages a person once.
 */
import type { Logger } from 'pino';
import type { Alert, Notification, NotificationSink, Notifier } from './notifier.js';

/** Options of the batcher. */
export interface AlertBatcherOptions {
  sinks: NotificationSink[];
  logger: Logger;
  /** Alerts of one topic and reason this close together are sent as one. @defaultValue 300000 */
  windowMs?: number;
  /** Sample ids kept per notification. @defaultValue 10 */
  maxSamples?: number;
}

interface OpenWindow {
  /** The first `maxSamples` alerts. */
  samples: Alert[];
  last: Alert;
  count: number;
  timer: NodeJS.Timeout;
}

/** A `Notifier` that logs every alert and groups what it sends to the sinks. */
export class AlertBatcher implements Notifier {
  private readonly windows = new Map<string, OpenWindow>();
  private readonly sending = new Set<Promise<void>>();
  private readonly windowMs: number;
  private readonly maxSamples: number;

  constructor(private readonly options: AlertBatcherOptions) {
    this.windowMs = options.windowMs ?? 300_000;
    this.maxSamples = options.maxSamples ?? 10;
  }

  notify(alert: Alert): void {
    this.options.logger.error(
      { alert: { ...alert, at: alert.at.toISOString() } },
      `message ${alert.messageId} on topic ${alert.topic} is DEAD (${alert.reason}): a person must look at it`,
    );
    if (this.options.sinks.length === 0) return;
    const key = `${alert.topic}\u0000${alert.reason}`;
    const open = this.windows.get(key);
    if (open) {
      open.count += 1;
      open.last = alert;
      if (open.samples.length < this.maxSamples) open.samples.push(alert);
      return;
    }
    const timer = setTimeout(() => this.close(key), this.windowMs);
    timer.unref();
    this.windows.set(key, { samples: [alert], last: alert, count: 1, timer });
  }

  async flush(): Promise<void> {
    for (const key of [...this.windows.keys()]) this.close(key);
    await Promise.allSettled([...this.sending]);
  }

  private close(key: string): void {
    const window = this.windows.get(key);
    if (!window) return;
    this.windows.delete(key);
    clearTimeout(window.timer);
    const first = window.samples[0];
    const last = window.last;
    if (!first) return;
    const notification: Notification = {
      reason: first.reason,
      topic: first.topic,
      count: window.count,
      sampleIds: window.samples.map((alert) => alert.messageId),
      firstAt: first.at.toISOString(),
      lastAt: last.at.toISOString(),
      text: `RMS: ${window.count} message(s) on topic ${first.topic} are DEAD (${first.reason}); e.g. ${first.messageId}`,
    };
    for (const sink of this.options.sinks) {
      const sent = sink
        .send(notification)
        .catch((error: unknown) => this.options.logger.warn({ err: error, topic: notification.topic }, 'alert notification failed'))
        .finally(() => this.sending.delete(sent));
      this.sending.add(sent);
    }
  }
}
