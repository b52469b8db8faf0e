/**
 * Sends alert notifications to a webhook: a JSON POST with a timeout, retried with
 * exponential backoff when the webhook fails (a network error, a timeout, a 429 or a 5xx).
 * Chat tools that expect `{"text"}` read the `text` field; others get every field.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Notification, NotificationSink } from './notifier.js';

/** Options of a webhook sink. */
export interface WebhookSinkOptions {
  /** How long one POST may take. @defaultValue 5000 */
  timeoutMs?: number;
  /** POSTs per notification, the first included. @defaultValue 4 */
  attempts?: number;
  /** Wait before the first retry; doubled for each further one. @defaultValue 1000 */
  retryDelayMs?: number;
}

/** An answer worth retrying: the webhook is overloaded or failing, not refusing the request. */
function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/** A webhook that receives `Notification`s. */
export class WebhookSink implements NotificationSink {
  private readonly timeoutMs: number;
  private readonly attempts: number;
  private readonly retryDelayMs: number;

  /** @param url where to POST. */
  constructor(
    private readonly url: string,
    options: WebhookSinkOptions = {},
  ) {
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.attempts = Math.max(1, options.attempts ?? 4);
    this.retryDelayMs = options.retryDelayMs ?? 1000;
  }

  /** POSTs `notification`; rejects with the last failure once every attempt failed (at once on a 4xx other than 408 and 429). */
  async send(notification: Notification): Promise<void> {
    const body = JSON.stringify(notification);
    for (let attempt = 1; ; attempt++) {
      const outcome = await this.post(body);
      if (outcome === 'delivered') return;
      if (!outcome.retryable || attempt >= this.attempts) throw outcome.error;
      await sleep(this.retryDelayMs * 2 ** (attempt - 1));
    }
  }

  /** One POST within the timeout. */
  private async post(body: string): Promise<'delivered' | { error: Error; retryable: boolean }> {
    const host = new URL(this.url).host;
    try {
      const response = await fetch(this.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
        redirect: 'error',
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      await response.body?.cancel();
      if (response.ok) return 'delivered';
      return { error: new Error(`webhook ${host} answered ${response.status}`), retryable: isRetryableStatus(response.status) };
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      return { error: new Error(`webhook ${host} did not take the notification: ${reason}`, { cause: error }), retryable: true };
    }
  }
}
