/**
 * What happens when a message becomes DEAD, whichever loop gave up on it: it is counted,
 * its history says why, and a person is alerted.
 */
import type { Notifier } from '../alerts/notifier.js';
import type { Message } from '../domain/message.js';
import type { Metrics } from '../observability/metrics.js';
import type { HistoryRecorder } from './history-recorder.js';

/**
 * Counts, records and alerts a message that just became DEAD.
 * @param actor who gave up: RMS's schedule, or a consumer's failure report that spent the last round.
 */
export function reportDead(
  message: Message,
  deps: { notifier: Notifier; metrics: Metrics; history: HistoryRecorder },
  actor: { actor: 'rms' } | { actor: 'consumer'; app: string } = { actor: 'rms' },
): void {
  if (!message.deadReason) return;
  deps.metrics.dead.inc({ reason: message.deadReason });
  deps.history.record({
    messageId: message.id,
    at: message.updatedAt,
    type: 'dead',
    ...actor,
    outcome: message.deadReason,
    reason: message.lastError,
    attempt: message.deadReason === 'CHECK_EXHAUSTED' ? message.checkAttempts : message.deliveryAttempts,
  });
  deps.notifier.notify({
    reason: message.deadReason,
    topic: message.topic,
    messageId: message.id,
    producer: message.producer,
    at: message.updatedAt,
    lastError: message.lastError,
  });
}
