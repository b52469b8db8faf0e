/**
 * What happens when a message becomes DEAD, whichever loop gave up on it: it is counted,
 * its history says why, and a person is alerted.
 */
import type { Notifier } from '../alerts/notifier.js';
import type { Message } from '../domain/message.js';
import type { Metrics } from '../observability/metrics.js';
import type { HistoryRecorder } from './history-recorder.js';

/** Who gave up on a message: RMS's schedule, or a consumer's failure report that spent the last round. */
export type DeadBy = { actor: 'rms' } | { actor: 'consumer'; app: string };

/**
 * Counts, records and alerts a message that just became DEAD, or one whose delivery to
 * `groups` just did (the groups are named in the alert's error and in the history).
 */
export function reportDead(
  message: Message,
  deps: { notifier: Notifier; metrics: Metrics; history: HistoryRecorder },
  groups: readonly string[] = [],
  by: DeadBy = { actor: 'rms' },
): void {
  if (!message.deadReason) return;
  deps.metrics.delivery.dead.inc({ topic: message.topic, reason: message.deadReason });
  const dead = {
    messageId: message.id,
    at: message.updatedAt,
    type: 'dead' as const,
    ...by,
    outcome: message.deadReason,
    reason: message.lastError,
  };
  if (groups.length === 0) {
    deps.history.record({ ...dead, attempt: message.deadReason === 'CHECK_EXHAUSTED' ? message.checkAttempts : message.deliveryAttempts });
  }
  for (const group of groups) {
    const delivery = message.deliveries.find((candidate) => candidate.group === group);
    deps.history.record({ ...dead, group, attempt: delivery?.attempts ?? message.deliveryAttempts, reason: delivery?.lastError ?? message.lastError });
  }
  deps.notifier.notify({
    reason: message.deadReason,
    topic: message.topic,
    messageId: message.id,
    producer: message.producer,
    at: message.updatedAt,
    lastError: groups.length > 0 ? `delivery to group${groups.length > 1 ? 's' : ''} ${groups.join(', ')} exhausted; ${message.lastError ?? 'no error recorded'}` : message.lastError,
  });
}
