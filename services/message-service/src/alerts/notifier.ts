/**
 * The `Notifier` port: how RMS tells a person that a message is dead. The loops call
 * `notify` and move on; an adapter must never block them or throw.
 */
import type { DeadReason } from '../domain/message.js';

/** One message that needs a person. */
export interface Alert {
  reason: DeadReason;
  topic: string;
  messageId: string;
  producer: string;
  at: Date;
  /** The last error seen, if any. */
  lastError: string | null;
}

/**
 * What a sink receives: the first alert of a (topic, reason), sent at once (`first`, count
 * 1), or the alerts of that topic and reason that followed it within the window, grouped
 * (`follow-up`).
 */
export interface Notification {
  kind: 'first' | 'follow-up';
  reason: DeadReason;
  topic: string;
  /** How many alerts this notification stands for. */
  count: number;
  /** Up to ten of their message ids. */
  sampleIds: string[];
  firstAt: string;
  lastAt: string;
  /** A sentence for humans: chat webhooks show it as the message. */
  text: string;
}

/** Receives alerts. */
export interface Notifier {
  /** Records an alert; returns at once. */
  notify(alert: Alert): void;
  /** Sends what is still held back. */
  flush(): Promise<void>;
}

/** Where grouped notifications go (a webhook, a test recorder). */
export interface NotificationSink {
  send(notification: Notification): Promise<void>;
}
