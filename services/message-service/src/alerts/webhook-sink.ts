/**
 * Sends grouped alert notifications to a webhook: a JSON POST with a timeout. Chat tools
 * that expect `{"text"}` read the `text` field; others get every field.
 */
import type { Notification, NotificationSink } from './notifier.js';

/** A webhook that receives `Notification`s. */
export class WebhookSink implements NotificationSink {
  /**
   * @param url where to POST.
   * @param timeoutMs how long one POST may take. @defaultValue 5000
   */
  constructor(
    private readonly url: string,
    private readonly timeoutMs = 5000,
  ) {}

  async send(notification: Notification): Promise<void> {
    const response = await fetch(this.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(notification),
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    await response.body?.cancel();
    if (!response.ok) throw new Error(`webhook ${new URL(this.url).host} answered ${response.status}`);
  }
}
