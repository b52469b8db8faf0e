/**
 * Noise reduction for alerts that still arrive at once (design section 6): every alert is
 * logged; the first alert of a (topic, reason) goes to the sinks immediately and opens a
 * window; further alerts of that topic and reason inside the window are grouped into one
 * follow-up, sent when the window closes, with their count and sample ids. A burst of 20
 * dead messages on one topic pages a person twice: at once, and once more with "19 more".
 *
 * What a crash loses: the follow-up of an open window lives in memory. A graceful stop
 * sends it (`flush`); a crash loses that one notification, not the alerts themselves:
 * every DEAD message was logged at error level, stays DEAD in the store (the
 * `rms_messages{status="DEAD"}` gauge and the admin list show it), and the next DEAD
 * message after the restart alerts at once. Keeping open windows in the store would make
 * every DEAD transition write twice for a notification that is a summary of the first.
 */
import type { Logger } from 'pino';
import type { Alert, Notification, NotificationSink, Notifier } from './notifier.js';

/** Options of the batcher. */
export interface AlertBatcherOptions {
  sinks: NotificationSink[];
  logger: Logger;
  /** After an alert is sent, further alerts of its topic and reason this long are grouped into one follow-up. @defaultValue 300000 */
  windowMs?: number;
  /** Sample ids kept per notification. @defaultValue 10 */
  maxSamples?: number;
}

interface OpenWindow {
  /** The first `maxSamples` alerts grouped so far. */
  samples: Alert[];
  last: Alert | undefined;
  /** Alerts grouped since the window opened (the one that opened it is not counted). */
  count: number;
  timer: NodeJS.Timeout;
}

/** A `Notifier` that logs every alert, sends the first of a burst at once and groups the rest. */
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
    this.windows.set(key, { samples: [], last: undefined, count: 0, timer });
    this.send({
      kind: 'first',
      reason: alert.reason,
      topic: alert.topic,
      count: 1,
      sampleIds: [alert.messageId],
      firstAt: alert.at.toISOString(),
      lastAt: alert.at.toISOString(),
      text: `RMS: message ${alert.messageId} on topic ${alert.topic} is DEAD (${alert.reason})${alert.lastError ? `: ${alert.lastError}` : ''}`,
    });
  }

  async flush(): Promise<void> {
    for (const key of [...this.windows.keys()]) this.close(key);
    await Promise.allSettled([...this.sending]);
  }

  /** Ends a window; sends its follow-up if alerts were grouped in it. */
  private close(key: string): void {
    const window = this.windows.get(key);
    if (!window) return;
    this.windows.delete(key);
    clearTimeout(window.timer);
    const first = window.samples[0];
    const last = window.last;
    if (!first || !last) return;
    this.send({
      kind: 'follow-up',
      reason: first.reason,
      topic: first.topic,
      count: window.count,
      sampleIds: window.samples.map((alert) => alert.messageId),
      firstAt: first.at.toISOString(),
      lastAt: last.at.toISOString(),
      text: `RMS: ${window.count} more message(s) on topic ${first.topic} are DEAD (${first.reason}); e.g. ${first.messageId}`,
    });
  }

  private send(notification: Notification): void {
    for (const sink of this.options.sinks) {
      const sent = sink
        .send(notification)
        .catch((error: unknown) => this.options.logger.warn({ err: error, topic: notification.topic, kind: notification.kind }, 'alert notification failed'))
        .finally(() => this.sending.delete(sent));
      this.sending.add(sent);
    }
  }
}
