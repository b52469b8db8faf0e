/**
 * The dispatcher: publishes a confirmed message's deliveries, and records each round.
 *
 * Every consumer group subscribed to the topic has its own delivery (see
 * `decideDeliveries`). The first round of a message is one publish that the broker copies
 * to every group's queue; a later round goes only to the groups whose delivery is due
 * (not acked by its deadline). A round is one publish plus up to `retryImmediate`
 * immediate retries. Its outcome is written under the message's `version`; a round whose
 * delivery moved on meanwhile (acked, or recorded by another instance that took over an
 * expired lease) is stale and not recorded.
 *
 * Round 1 of a message published right after its confirm is recorded by the confirm's own
 * write (`firstRound`), so the publish writes nothing when it goes as recorded: on the
 * recorded transport, early enough for the recorded ack deadline. Otherwise (it failed,
 * went out on the other transport, or landed late) the round is recorded again as it
 * happened. If the instance dies between the confirm and the publish, the deliveries are
 * due at the recorded deadline and the redelivery loop publishes them (design section 6).
 */
import { type OutgoingMessage, SpanKind, type Transport, type TransportName, inSpan, traceContextOf } from '@rms/client-sdk';
import { SpanStatusCode } from '@opentelemetry/api';
import type { Logger } from 'pino';
import type { Notifier } from '../alerts/notifier.js';
import { DEFAULT_GROUP, type Delivery, type Message } from '../domain/message.js';
import { type DeliverySchedule, afterDeliveryRound, deliveryExhausted, firstRoundDeadline } from '../domain/schedule.js';
import { type FirstRound, type GroupCommand, deliveriesOf } from '../domain/state-machine.js';
import { secondsBetween } from '../observability/delivery-metrics.js';
import { messageSpanAttributes, traceOf } from '../observability/message-trace.js';
import type { Metrics } from '../observability/metrics.js';
import type { MessageStore } from '../store/message-store.js';
import { applyToDeliveries } from './apply-command.js';
import type { HistoryRecorder } from './history-recorder.js';
import { reportDead } from './report-dead.js';

/** Dependencies of the dispatcher. */
export interface DispatcherOptions {
  store: MessageStore;
  transport: Transport;
  /** The delivery schedule of a topic's group. */
  scheduleFor: (topic: string, group: string) => DeliverySchedule;
  notifier: Notifier;
  logger: Logger;
  metrics: Metrics;
  /** Where each delivery round is recorded, per group. */
  history: HistoryRecorder;
  /**
   * How long a message entering SENDING is left to the instance that dispatches it before
   * it is due for the redelivery loop: the lower bound of a recorded round 1's deadline.
   * @defaultValue 30000 (`RMS_LEASE_MS`)
   */
  dispatchLeaseMs?: number;
  /**
   * Whether a confirm's write records round 1 (`firstRound`); `false`: every round is
   * recorded after its publish (`RMS_FIRST_ROUND_AT_CONFIRM`). @defaultValue true
   */
  firstRoundAtConfirm?: boolean;
  /** @defaultValue () => new Date() */
  now?: () => Date;
}

/**
 * Which deliveries a round is for: not yet attempted (a resend), just confirmed (round 1,
 * recorded by the confirm's write or not attempted), or due (claimed by the loop).
 */
type Selection = 'fresh' | 'confirmed' | 'due';

/** Publishes messages and records each delivery round. */
export class Dispatcher {
  private readonly inFlight = new Set<Promise<void>>();
  private readonly now: () => Date;
  private readonly dispatchLeaseMs: number;
  private closed = false;

  constructor(private readonly options: DispatcherOptions) {
    this.now = options.now ?? (() => new Date());
    this.dispatchLeaseMs = options.dispatchLeaseMs ?? 30_000;
  }

  /**
   * Round 1 for the confirm's write of a message of `topic` that this instance will publish
   * right after that write (`dispatchConfirmed`), confirmed at `at`: the transport it is
   * expected to go out on and each group's ack deadline (`firstRoundDeadline`; a group not
   * listed starts at round 0). `undefined` once closing (nothing will be published) or
   * when `firstRoundAtConfirm` is off.
   */
  firstRound(topic: string, groups: readonly string[], at: Date): FirstRound | undefined {
    if (this.closed || this.options.firstRoundAtConfirm === false) return undefined;
    const deadlines = new Map<string, Date>();
    for (const group of groups) {
      const deadline = firstRoundDeadline(this.options.scheduleFor(topic, group), this.dispatchLeaseMs, at);
      if (deadline) deadlines.set(group, deadline);
    }
    return deadlines.size > 0 ? { transport: this.options.transport.name, deadlines } : undefined;
  }

  /**
   * Starts publishing round 1 of a message that just entered SENDING, as written (with the
   * `firstRound` its write recorded, if any), without waiting: the caller answers once the
   * state is durable. A round recorded by the confirm is written again only if it did not
   * go as recorded. If this instance dies first, the deliveries are due at their recorded
   * deadline (or, not recorded, when the dispatch lease ends) and the redelivery loop sends
   * them. A delayed message is left to the loop until its `deliverAt`.
   */
  dispatchConfirmed(message: Message): void {
    this.start(message, 'confirmed');
  }

  /**
   * Starts delivering the deliveries of `message` that were never attempted (an admin
   * resent them), without waiting; as `dispatchConfirmed`, the loop takes over if this
   * instance dies first.
   */
  dispatchSoon(message: Message): void {
    this.start(message, 'fresh');
  }

  private start(message: Message, selection: 'fresh' | 'confirmed'): void {
    if (this.closed) return;
    if (message.deliverAt && message.deliverAt > this.now()) return;
    const delivery = this.deliver(message, selection)
      .catch((error: unknown) => this.options.logger.warn({ err: error, id: message.id }, 'dispatch failed; the redelivery loop will retry'))
      .finally(() => this.inFlight.delete(delivery));
    this.inFlight.add(delivery);
  }

  /**
   * Handles a claimed message whose deliveries (some of them) are due: a delivery out of
   * rounds becomes DEAD and a person is alerted; the others are delivered again.
   */
  async redeliver(message: Message): Promise<void> {
    await this.deliver(message, 'due');
  }

  /** Runs one round for the selected deliveries of `message` and records it. */
  async deliver(message: Message, selection: Selection = 'due'): Promise<void> {
    const now = this.now();
    // A message stored before groups keeps its due time only on the message, which the
    // claim has replaced by the lease: claimed means due.
    const legacy = message.deliveries.length === 0;
    // Right after a confirm, a delivery at round 1 is one the confirm's write recorded.
    const recorded = (delivery: Delivery) => selection === 'confirmed' && delivery.attempts === 1;
    const selected = deliveriesOf(message, DEFAULT_GROUP).filter((delivery) => {
      if (delivery.status !== 'SENDING') return false;
      if (selection === 'fresh') return delivery.attempts === 0;
      if (selection === 'confirmed') return delivery.attempts === 0 || recorded(delivery);
      return legacy || (delivery.nextAttemptAt !== null && delivery.nextAttemptAt <= now);
    });
    if (selected.length === 0) return;
    const commands: GroupCommand[] = [];
    const toSend: Delivery[] = [];
    for (const delivery of selected) {
      if (delivery.attempts > 0 && !recorded(delivery) && deliveryExhausted(this.scheduleOf(message, delivery), delivery.attempts)) {
        commands.push({ group: delivery.group, command: { type: 'delivery-exhausted', afterAttempts: delivery.attempts } });
      } else {
        toSend.push(delivery);
      }
    }
    // Deliveries at the same round go out as one publish, copied by the broker to each
    // group's queue (on a first delivery: every group).
    const byRound = new Map<number, Delivery[]>();
    for (const delivery of toSend) {
      const round = recorded(delivery) ? 1 : delivery.attempts + 1;
      byRound.set(round, [...(byRound.get(round) ?? []), delivery]);
    }
    const rounds = await Promise.all([...byRound].map(([round, deliveries]) => this.publishRound(message, round, deliveries, recorded)));
    for (const round of rounds) commands.push(...round.commands);
    // Nothing to write: every round went as the confirm recorded it, or this instance
    // closed before the first try (the recorded deadline or the lease hands it to the loop).
    if (commands.length === 0) return;
    const publishedAt = rounds.map((round) => round.publishedAt).filter((at): at is Date => at !== undefined).sort((a, b) => b.getTime() - a.getTime())[0];
    // A first round recorded as published at confirm that did not go out was never published.
    const unpublished = selection === 'confirmed' && !publishedAt && message.lastPublishedAt !== null;
    const applied = await applyToDeliveries(this.options.store, message, commands, {
      at: this.now(),
      defaultGroup: DEFAULT_GROUP,
      ...(publishedAt && { set: { lastPublishedAt: publishedAt } }),
      ...(unpublished && { set: { lastPublishedAt: null, lastTransport: null } }),
    });
    if (applied.kind === 'moved' && applied.deadGroups.length > 0) reportDead(applied.message, this.options, applied.deadGroups);
    if (applied.kind === 'lost') this.options.logger.debug({ id: message.id }, 'delivered, but the message kept changing; its rounds were not recorded');
  }

  /**
   * Publishes one round to the groups of `deliveries` (in an `rms.publish` span under the
   * message's trace) and says what to record for each, and when it was published.
   */
  private async publishRound(
    message: Message,
    round: number,
    deliveries: Delivery[],
    recorded: (delivery: Delivery) => boolean,
  ): Promise<{ commands: GroupCommand[]; publishedAt?: Date }> {
    const { transport, metrics, logger } = this.options;
    const retryImmediate = Math.max(...deliveries.map((delivery) => this.scheduleOf(message, delivery).retryImmediate));
    const outgoing: OutgoingMessage = {
      id: message.id,
      topic: message.topic,
      groups: deliveries.map((delivery) => delivery.group),
      payload: message.payload,
      headers: message.headers,
      attempt: round,
      producer: message.producer,
      ...(message.producerMessageId !== null && { messageId: message.producerMessageId }),
    };
    metrics.delivery.deliveryRounds.inc({ topic: message.topic, kind: round === 1 ? 'first' : 'redelivery' }, deliveries.length);
    let carrier: TransportName | undefined;
    let lastError: string | null = null;
    const startedAt = this.now();
    const stored = traceOf(message);
    const attributes = { ...messageSpanAttributes(message), 'rms.attempt': round, 'rms.groups': deliveries.map((delivery) => delivery.group).join(',') };
    await inSpan({ name: 'rms.publish', kind: SpanKind.PRODUCER, parent: stored, attributes }, async (span) => {
      const trace = traceContextOf(span, stored);
      if (trace) outgoing.trace = trace;
      for (let attempt = 0; attempt <= retryImmediate && carrier === undefined && !this.closed; attempt++) {
        try {
          carrier = await transport.publish(outgoing);
          metrics.delivery.publishes.inc({ topic: message.topic, transport: carrier, outcome: 'ok' });
        } catch (error) {
          lastError = `${transport.name}: ${error instanceof Error ? error.message : String(error)}`;
          metrics.delivery.publishes.inc({ topic: message.topic, transport: transport.name, outcome: 'failed' });
        }
      }
      if (carrier) span.setAttribute('rms.transport', carrier);
      else if (lastError) span.setStatus({ code: SpanStatusCode.ERROR, message: lastError });
    });
    const published = carrier !== undefined;
    if (!published && lastError === null) return { commands: [] };
    const now = this.now();
    if (published && round === 1 && message.confirmedAt) metrics.delivery.confirmToFirstPublish.observe(secondsBetween(message.confirmedAt, now));
    for (const delivery of deliveries) {
      // Stamped with the round's start: a consumer may receive (and nack) it before the publish confirm returns.
      this.options.history.record({
        messageId: message.id,
        at: startedAt,
        type: 'delivery',
        actor: 'rms',
        ...(message.deliveries.length > 0 && { group: delivery.group }),
        attempt: round,
        transport: carrier ?? null,
        outcome: published ? 'published' : 'failed',
        durationMs: now.getTime() - startedAt.getTime(),
        reason: lastError,
      });
    }
    const commands = deliveries.flatMap((delivery): GroupCommand[] => {
      const schedule = this.scheduleOf(message, delivery);
      if (recorded(delivery) && published && carrier === delivery.lastTransport && delivery.nextAttemptAt) {
        // Gone as the confirm recorded it: the consumer has the whole ack timeout before the recorded deadline.
        if (now.getTime() + schedule.ackTimeoutMs <= delivery.nextAttemptAt.getTime()) return [];
      }
      const previousRoundFailed = !recorded(delivery) && delivery.attempts > 0 && delivery.lastError !== null;
      const next = afterDeliveryRound(schedule, round, published, previousRoundFailed, now);
      const lastTransport = carrier ?? (recorded(delivery) ? null : delivery.lastTransport);
      const record = { attempts: round, nextAttemptAt: next.kind === 'exhausted' ? null : next.at, lastError, lastTransport };
      if (next.kind === 'exhausted') return [{ group: delivery.group, command: { type: 'delivery-exhausted', afterAttempts: delivery.attempts, record } }];
      if (!published) logger.warn({ id: message.id, topic: message.topic, group: delivery.group, round, error: lastError, retryAt: next.at }, 'delivery round failed');
      return [{ group: delivery.group, command: { type: 'delivery-recorded', afterAttempts: delivery.attempts, record } }];
    });
    return published ? { commands, publishedAt: now } : { commands };
  }

  private scheduleOf(message: Message, delivery: Delivery): DeliverySchedule {
    return this.options.scheduleFor(message.topic, delivery.group);
  }

  /** Stops starting rounds and waits for the ones in flight. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.inFlight]);
  }
}
