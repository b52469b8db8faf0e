/**
 * The dispatcher: publishes a message that has entered SENDING, and records the round.
 *
 * A delivery round is one publish plus up to `retryImmediate` immediate retries. Its
 * outcome is written with a fenced transition (the message must still be SENDING with the
 * `nextAttemptAt` this round started from), so a round whose message was acked meanwhile,
 * or taken over by another instance after a lease expired, writes nothing.
 */
import type { OutgoingMessage, Transport, TransportName } from '@rms/client-sdk';
import type { Logger } from 'pino';
import type { Notifier } from '../alerts/notifier.js';
import type { Message } from '../domain/message.js';
import { type DeliverySchedule, afterDeliveryRound, deliveryExhausted } from '../domain/schedule.js';
import type { Metrics } from '../observability/metrics.js';
import type { MessageStore } from '../store/message-store.js';
import { applyCommand } from './apply-command.js';
import type { HistoryRecorder } from './history-recorder.js';
import { reportDead } from './report-dead.js';

/** Dependencies of the dispatcher. */
export interface DispatcherOptions {
  store: MessageStore;
  transport: Transport;
  /** The delivery schedule of a topic. */
  scheduleFor: (topic: string) => DeliverySchedule;
  notifier: Notifier;
  logger: Logger;
  metrics: Metrics;
  /** Where each delivery round is recorded. */
  history: HistoryRecorder;
  /** @defaultValue () => new Date() */
  now?: () => Date;
}

/** Publishes messages and records each delivery round. */
export class Dispatcher {
  private readonly inFlight = new Set<Promise<void>>();
  private readonly now: () => Date;
  private closed = false;

  constructor(private readonly options: DispatcherOptions) {
    this.now = options.now ?? (() => new Date());
  }

  /**
   * Starts delivering a message that just entered SENDING, without waiting: the caller
   * (a confirm) answers once the state is durable. If this instance dies first, the
   * message is due again when its dispatch lease ends and the redelivery loop sends it.
   */
  dispatchSoon(message: Message): void {
    if (this.closed) return;
    const delivery = this.deliver(message)
      .catch((error: unknown) => this.options.logger.warn({ err: error, id: message.id }, 'dispatch failed; the redelivery loop will retry'))
      .finally(() => this.inFlight.delete(delivery));
    this.inFlight.add(delivery);
  }

  /** Runs one delivery round for `message` (as claimed or as confirmed) and records it. */
  async deliver(message: Message): Promise<void> {
    const { store, transport, metrics, logger } = this.options;
    const schedule = this.options.scheduleFor(message.topic);
    const round = message.deliveryAttempts + 1;
    const outgoing: OutgoingMessage = {
      id: message.id,
      topic: message.topic,
      payload: message.payload,
      headers: message.headers,
      attempt: round,
      producer: message.producer,
      ...(message.producerMessageId !== null && { messageId: message.producerMessageId }),
    };
    metrics.deliveries.inc({ kind: round === 1 ? 'first' : 'redelivery' });
    let carrier: TransportName | undefined;
    let lastError: string | null = null;
    const startedAt = this.now();
    for (let attempt = 0; attempt <= schedule.retryImmediate && carrier === undefined && !this.closed; attempt++) {
      try {
        carrier = await transport.publish(outgoing);
        metrics.publishes.inc({ transport: carrier, outcome: 'ok' });
      } catch (error) {
        lastError = `${transport.name}: ${error instanceof Error ? error.message : String(error)}`;
        metrics.publishes.inc({ transport: transport.name, outcome: 'failed' });
      }
    }
    const published = carrier !== undefined;
    if (!published && lastError === null) return; // closed before the first try: the lease hands it to the loop
    const now = this.now();
    // Stamped with the round's start: a consumer may receive (and nack) it before the publish confirm returns.
    this.options.history.record({
      messageId: message.id,
      at: startedAt,
      type: 'delivery',
      actor: 'rms',
      attempt: round,
      transport: carrier ?? null,
      outcome: published ? 'published' : 'failed',
      durationMs: now.getTime() - startedAt.getTime(),
      reason: lastError,
    });
    const previousRoundFailed = message.deliveryAttempts > 0 && message.lastError !== null;
    const next = afterDeliveryRound(schedule, round, published, previousRoundFailed, now);
    const fence = { nextAttemptAt: message.nextAttemptAt };
    const set = { deliveryAttempts: round, lastError, ...(carrier && { lastTransport: carrier }) };
    if (next.kind === 'exhausted') {
      const applied = await applyCommand(store, message, { type: 'delivery-exhausted' }, { at: now, set, fence });
      if (applied.kind === 'moved') reportDead(applied.message, this.options);
      return;
    }
    const applied = await applyCommand(store, message, { type: 'delivery-recorded' }, { at: now, set: { ...set, nextAttemptAt: next.at }, fence });
    if (!published) {
      logger.warn({ id: message.id, topic: message.topic, round, error: lastError, retryAt: next.at }, 'delivery round failed');
    } else if (applied.kind === 'lost') {
      logger.debug({ id: message.id }, 'delivered, but the message moved on meanwhile (acked, or taken over)');
    }
  }

  /**
   * Handles a claimed SENDING message whose ack deadline (or retry time) passed: out of
   * rounds, it becomes DEAD and a person is alerted; otherwise it is delivered again.
   */
  async redeliver(message: Message): Promise<void> {
    if (!deliveryExhausted(this.options.scheduleFor(message.topic), message.deliveryAttempts)) {
      await this.deliver(message);
      return;
    }
    const rounds = message.deliveryAttempts;
    const applied = await applyCommand(this.options.store, message, { type: 'delivery-exhausted' }, {
      at: this.now(),
      fence: { nextAttemptAt: message.nextAttemptAt },
      // The last round went out but no consumer acked it: say so rather than leave no reason.
      ...(message.lastError === null && { set: { lastError: `no consumer acked any of ${rounds} deliveries` } }),
    });
    if (applied.kind === 'moved') reportDead(applied.message, this.options);
  }

  /** Stops starting rounds and waits for the ones in flight. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.inFlight]);
  }
}
