/**
 * The check-back worker: for a claimed PENDING message, asks the producer whether its
 * transaction committed and applies the answer (design section 5). COMMIT confirms and
 * dispatches, ROLLBACK cancels, anything else schedules the next check, and the last
 * unanswered check makes the message DEAD (CHECK_EXHAUSTED) and alerts.
 */
import type { Logger } from 'pino';
import type { Notifier } from '../alerts/notifier.js';
import { SpanKind, inSpan, traceContextOf } from '@rms/client-sdk';
import type { CheckAnswer, CheckBackClient } from '../check-back/check-back-client.js';
import type { AppRegistry } from '../config/app-registry.js';
import type { Message } from '../domain/message.js';
import { type CheckSchedule, afterUnansweredCheck } from '../domain/schedule.js';
import { messageSpanAttributes, traceOf } from '../observability/message-trace.js';
import type { Metrics } from '../observability/metrics.js';
import type { MessageStore } from '../store/message-store.js';
import { applyCommand } from './apply-command.js';
import type { Dispatcher } from './dispatcher.js';
import type { HistoryRecorder } from './history-recorder.js';
import { reportDead } from './report-dead.js';

/** Dependencies of the check-back worker. */
export interface CheckBackWorkerOptions {
  store: MessageStore;
  client: CheckBackClient;
  registry: AppRegistry;
  schedule: CheckSchedule;
  dispatcher: Dispatcher;
  /** How long a committed message waits for its dispatch before the redelivery loop takes it. */
  dispatchLeaseMs: number;
  notifier: Notifier;
  metrics: Metrics;
  logger: Logger;
  /** Where each check-back and its verdict are recorded. */
  history: HistoryRecorder;
  /** @defaultValue () => new Date() */
  now?: () => Date;
}

/** Checks back on one claimed PENDING message. */
export class CheckBackWorker {
  private readonly now: () => Date;

  constructor(private readonly options: CheckBackWorkerOptions) {
    this.now = options.now ?? (() => new Date());
  }

  /** Makes one check-back of `message` (claimed: its `nextAttemptAt` is the lease) and applies the answer. */
  async check(message: Message): Promise<void> {
    const { store, client, registry, metrics, logger } = this.options;
    const attempt = message.checkAttempts + 1;
    const app = registry.findByName(message.producer);
    const startedAt = this.now();
    const startedAtMs = performance.now();
    const stored = traceOf(message);
    const answer = await inSpan({ name: 'rms.check-back', kind: SpanKind.CLIENT, parent: stored, attributes: { ...messageSpanAttributes(message), 'rms.attempt': attempt } }, async (span) => {
      const trace = traceContextOf(span, stored);
      const verdict: CheckAnswer =
        app?.checkUrl && app.secret
          ? await client.check(
              { app: app.app, checkUrl: app.checkUrl, secret: app.secret },
              {
                id: message.id,
                messageId: message.producerMessageId ?? message.id,
                topic: message.topic,
                headers: message.headers,
                createdAt: message.createdAt,
                attempt,
                ...(trace && { trace }),
              },
            )
          : { verdict: 'UNKNOWN', detail: `producer ${message.producer} has no check URL registered` };
      span.setAttribute('rms.verdict', verdict.verdict);
      return verdict;
    });
    metrics.delivery.checkBacks.inc({ topic: message.topic, verdict: answer.verdict });
    metrics.delivery.checkBackDuration.observe({ verdict: answer.verdict }, (performance.now() - startedAtMs) / 1000);
    const now = this.now();
    const { history } = this.options;
    history.record({
      messageId: message.id,
      at: startedAt,
      type: 'check-back',
      actor: 'rms',
      app: message.producer,
      attempt,
      outcome: answer.verdict,
      durationMs: now.getTime() - startedAt.getTime(),
      reason: answer.detail ?? null,
    });
    const fence = { nextAttemptAt: message.nextAttemptAt };
    const counted = { checkAttempts: attempt };

    if (answer.verdict === 'COMMIT') {
      const groups = registry.groupsFor(message.topic);
      const firstRound = this.options.dispatcher.firstRound(message.topic, groups, now);
      const applied = await applyCommand(store, message, { type: 'check-commit' }, {
        at: now,
        set: counted,
        fence,
        dispatchDueAt: new Date(now.getTime() + this.options.dispatchLeaseMs),
        groups,
        ...(firstRound && { firstRound }),
      });
      if (applied.kind === 'moved') {
        history.record({ messageId: message.id, at: now, type: 'confirmed', actor: 'check-back', app: message.producer, attempt });
        this.options.dispatcher.dispatchConfirmed(applied.message);
      }
      logger.info({ id: message.id, attempt, outcome: applied.kind }, 'check-back: COMMIT');
      return;
    }
    if (answer.verdict === 'ROLLBACK') {
      const applied = await applyCommand(store, message, { type: 'check-rollback' }, { at: now, set: counted, fence });
      if (applied.kind === 'moved') history.record({ messageId: message.id, at: now, type: 'cancelled', actor: 'check-back', app: message.producer, attempt });
      logger.info({ id: message.id, attempt, outcome: applied.kind }, 'check-back: ROLLBACK');
      return;
    }
    const next = afterUnansweredCheck(this.options.schedule, attempt, now);
    const set = { ...counted, lastError: `check-back ${attempt}: ${answer.detail ?? 'UNKNOWN'}` };
    if (next.kind === 'exhausted') {
      const applied = await applyCommand(store, message, { type: 'check-exhausted' }, { at: now, set, fence });
      if (applied.kind === 'moved') reportDead(applied.message, this.options);
      return;
    }
    await applyCommand(store, message, { type: 'check-recorded' }, { at: now, set: { ...set, nextAttemptAt: next.at }, fence });
    logger.debug({ id: message.id, attempt, detail: answer.detail, nextAt: next.at }, 'check-back: no decisive answer');
  }
}
