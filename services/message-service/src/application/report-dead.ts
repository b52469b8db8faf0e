/**
 * What happens when a message becomes DEAD, whichever loop gave up on it: it is counted
 * and a person is alerted.
 */
import type { Notifier } from '../alerts/notifier.js';
import type { Message } from '../domain/message.js';
import type { Metrics } from '../observability/metrics.js';

/**
 * Counts and alerts a message that just became DEAD, or one whose delivery to `groups`
 * just did (the groups are named in the alert's error).
 */
export function reportDead(message: Message, deps: { notifier: Notifier; metrics: Metrics }, groups: readonly string[] = []): void {
  if (!message.deadReason) return;
  deps.metrics.dead.inc({ reason: message.deadReason });
  deps.notifier.notify({
    reason: message.deadReason,
    topic: message.topic,
    messageId: message.id,
    producer: message.producer,
    at: message.updatedAt,
    lastError: groups.length > 0 ? `delivery to group${groups.length > 1 ? 's' : ''} ${groups.join(', ')} exhausted; ${message.lastError ?? 'no error recorded'}` : message.lastError,
  });
}
