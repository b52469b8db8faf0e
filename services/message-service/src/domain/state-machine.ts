/**
 * The one place that decides message status transitions (design section 3).
 *
 * Pure: it looks only at the current status (and dead reason) and the command, and says
 * whether the command moves the message, is a harmless repeat, or contradicts the state.
 * Stores persist what it decides with a conditional write on the state it decided from,
 * so two racing commands cannot both win.
 */
import type { DeadReason, Delivery, DeliveryStatus, Message, MessagePatch, MessageState, MessageStatus, TransportName } from './message.js';

/** Who issues a command: producers own their messages, admins may settle dead ones. */
export type Actor = 'producer' | 'consumer' | 'admin' | 'system';

/** Everything that can happen to a message. */
export type Command =
  /** The producer (or an admin) says the local transaction committed. */
  | { type: 'confirm'; actor: Actor }
  /** The producer (or an admin) says the local transaction rolled back. */
  | { type: 'cancel'; actor: Actor }
  /** The producer's check endpoint answered COMMIT. */
  | { type: 'check-commit' }
  /** The producer's check endpoint answered ROLLBACK. */
  | { type: 'check-rollback' }
  /** The last allowed check-back went unanswered. */
  | { type: 'check-exhausted' }
  /** A check-back got no decisive answer: counters and schedule change, status stays. */
  | { type: 'check-recorded' };

/** The verdict on a command. */
export type Decision =
  /** Move to `to`; `dispatch` says the message must now be published. */
  | { outcome: 'transition'; to: MessageStatus; deadReason: DeadReason | null; dispatch: boolean }
  /** The message is already where the command would take it: succeed without writing. */
  | { outcome: 'unchanged' }
  /** The command contradicts the state (HTTP 409). */
  | { outcome: 'refused'; reason: string };

const unchanged: Decision = { outcome: 'unchanged' };

function to(status: MessageStatus, dispatch = false, deadReason: DeadReason | null = null): Decision {
  return { outcome: 'transition', to: status, deadReason, dispatch };
}

function refused(command: { type: string }, state: MessageState, hint = ''): Extract<Decision, { outcome: 'refused' }> {
  const where = state.deadReason ? `${state.status} (${state.deadReason})` : state.status;
  return { outcome: 'refused', reason: `cannot ${command.type} a message in status ${where}${hint}` };
}

/**
 * Decides what `command` does to a message in `state`.
 *
 * Repeats that ask for a state the message has already reached or passed succeed
 * (`unchanged`): confirm of a SENDING or COMPLETED message, cancel of a CANCELLED one.
 * Contradictions are `refused`. What happens to a confirmed message's deliveries (ack,
 * heartbeat, resend, delivery rounds) is decided by `decideDeliveries`.
 */
export function decide(state: MessageState, command: Command): Decision {
  const { status, deadReason } = state;
  switch (command.type) {
    case 'confirm':
      if (status === 'PENDING') return to('SENDING', true);
      if (status === 'SENDING' || status === 'COMPLETED') return unchanged;
      if (status === 'DEAD' && deadReason === 'DELIVERY_EXHAUSTED') return unchanged;
      if (status === 'DEAD' && command.actor === 'admin') return to('SENDING', true);
      if (status === 'DEAD') return refused(command, state, ': the check-backs were exhausted, only an admin may settle it');
      return refused(command, state);
    case 'cancel':
      if (status === 'PENDING') return to('CANCELLED');
      if (status === 'CANCELLED') return unchanged;
      if (status === 'DEAD' && deadReason === 'CHECK_EXHAUSTED' && command.actor === 'admin') return to('CANCELLED');
      if (status === 'DEAD' && deadReason === 'CHECK_EXHAUSTED') {
        return refused(command, state, ': the check-backs were exhausted, only an admin may settle it');
      }
      return refused(command, state);
    case 'check-commit':
      if (status === 'PENDING') return to('SENDING', true);
      return status === 'SENDING' || status === 'COMPLETED' ? unchanged : refused(command, state);
    case 'check-rollback':
      if (status === 'PENDING') return to('CANCELLED');
      return status === 'CANCELLED' ? unchanged : refused(command, state);
    case 'check-exhausted':
      if (status === 'PENDING') return to('DEAD', false, 'CHECK_EXHAUSTED');
      return refused(command, state);
    case 'check-recorded':
      return status === 'PENDING' ? to('PENDING') : refused(command, state);
  }
}

/** A decision that moves the message. */
export type TransitionDecision = Extract<Decision, { outcome: 'transition' }>;

/**
 * Round 1 of a confirmed message as the confirm's own write records it, for a message the
 * confirming instance publishes right after that write: the publish then needs no write of
 * its own (design section 6).
 */
export interface FirstRound {
  /** The transport the publish is expected to go out on (recorded as the round's). */
  transport: TransportName;
  /**
   * The ack deadline of each group whose round 1 is recorded (see `firstRoundDeadline`);
   * groups not listed start at round 0, due when the dispatch lease ends.
   */
  deadlines: ReadonlyMap<string, Date>;
}

/** What a message entering SENDING opens: its deliveries. */
export interface Opening {
  /** The groups subscribed to the topic now: one delivery each. */
  groups: readonly string[];
  /** The message's `deliverAt`: a delayed message is not dispatched on confirm. */
  deliverAt: Date | null;
  /** Round 1, recorded by this write. @defaultValue none: every delivery starts at round 0 */
  firstRound?: FirstRound;
}

/**
 * The fields that change with a transition, besides status and dead reason.
 *
 * A message entering SENDING is due at `dispatchDueAt`: the instance that confirmed it
 * publishes at once, and if that instance dies first, the redelivery loop finds the
 * message due and publishes it. With `opening.firstRound`, the write also records round 1
 * of the groups listed there, due at their ack deadline, which covers that crash window
 * too (the loop then publishes round 2).
 */
export function patchFor(
  from: MessageState,
  decision: TransitionDecision,
  now: Date,
  dispatchDueAt: Date = now,
  opening: Opening = { groups: [], deliverAt: null },
): MessagePatch {
  switch (decision.to) {
    case 'SENDING': {
      if (from.status === 'SENDING') return {};
      // Confirmed: one delivery per subscribed group, due when the dispatch lease ends; a
      // delayed message is not dispatched on confirm and is due at its `deliverAt`.
      const delayed = opening.deliverAt !== null && opening.deliverAt > now;
      const dueAt = delayed && opening.deliverAt ? opening.deliverAt : dispatchDueAt;
      const firstRound = delayed ? undefined : opening.firstRound;
      const deliveries = opening.groups.map((group) => {
        const deadline = firstRound?.deadlines.get(group);
        return deadline && firstRound ? recordedFirstRound(group, deadline, firstRound.transport) : freshDelivery(group, dueAt);
      });
      const patch: MessagePatch = { nextAttemptAt: earliestDue(deliveries) ?? dueAt, lastError: null, confirmedAt: now, deliveries };
      if (firstRound && deliveries.some((delivery) => delivery.attempts > 0)) {
        return { ...patch, deliveryAttempts: 1, lastTransport: firstRound.transport, lastPublishedAt: now };
      }
      return patch;
    }
    case 'CANCELLED':
      return { cancelledAt: now, nextAttemptAt: null };
    case 'COMPLETED':
      return { completedAt: now, nextAttemptAt: null };
    case 'DEAD':
      return { nextAttemptAt: null };
    case 'PENDING':
      return {};
  }
}

/** Round 1 of a delivery, recorded before its publish: due at the ack deadline `deadline`. */
function recordedFirstRound(group: string, deadline: Date, transport: TransportName): Delivery {
  return { group, status: 'SENDING', attempts: 1, nextAttemptAt: deadline, lastTransport: transport, lastError: null, ackedAt: null };
}

/** A delivery not yet attempted, due at `dueAt`. */
export function freshDelivery(group: string, dueAt: Date): Delivery {
  return { group, status: 'SENDING', attempts: 0, nextAttemptAt: dueAt, lastTransport: null, lastError: null, ackedAt: null };
}

/**
 * A message's deliveries. A message confirmed before consumer groups existed (stored with
 * none) had one delivery, to the topic's shared queue: it is read as one delivery of the
 * default group carrying the message's own counters, so it is delivered and acked as
 * before the upgrade, no more often.
 */
export function deliveriesOf(message: Message, defaultGroup: string): Delivery[] {
  if (message.deliveries.length > 0) return message.deliveries;
  const { status, deadReason } = message;
  const confirmed = status === 'SENDING' || status === 'COMPLETED' || (status === 'DEAD' && deadReason === 'DELIVERY_EXHAUSTED');
  if (!confirmed) return [];
  const deliveryStatus: DeliveryStatus = status === 'COMPLETED' ? 'ACKED' : status === 'DEAD' ? 'DEAD' : 'SENDING';
  return [
    {
      group: defaultGroup,
      status: deliveryStatus,
      attempts: message.deliveryAttempts,
      nextAttemptAt: deliveryStatus === 'SENDING' ? message.nextAttemptAt : null,
      lastTransport: message.lastTransport,
      lastError: message.lastError,
      ackedAt: message.completedAt,
    },
  ];
}

/** What a delivery round wrote for one group. */
export interface RoundRecord {
  /** The rounds made, counting this one. */
  attempts: number;
  /** The next round or the ack deadline; ignored by `delivery-exhausted`. */
  nextAttemptAt: Date | null;
  lastTransport: TransportName | null;
  lastError: string | null;
}

/** Everything that can happen to one group's delivery of a confirmed message. */
export type DeliveryCommand =
  /** The group's consumer processed the message. */
  | { type: 'ack' }
  /** The group's consumer is still working: its ack deadline moves to `until`. */
  | { type: 'heartbeat'; until: Date }
  /** An admin asks for the group's DEAD delivery to go out again, rounds reset, due at `dueAt`. */
  | { type: 'resend'; dueAt: Date }
  /**
   * A round was made for the group (published or not). `afterAttempts` is the round count
   * it started from: a record whose delivery has moved on meanwhile (another instance
   * recorded a round, a nack counted it) is stale and skipped. On a delivery the group
   * acked before the record landed, only the round's count (and transport) is kept.
   */
  | { type: 'delivery-recorded'; afterAttempts: number; record: RoundRecord }
  /** The group's last allowed round went unacked (or failed): its delivery is DEAD. */
  | { type: 'delivery-exhausted'; afterAttempts: number; record?: RoundRecord }
  /**
   * The group's consumer failed to handle the message (a nack): the rounds made become
   * `attempts` and the reason `lastError`; the next round is due at `retryAt`, or, with
   * `retryAt` null (no rounds left, see `afterConsumerFailure`), the delivery is DEAD.
   */
  | { type: 'nack'; attempts: number; retryAt: Date | null; lastError: string };

/** A command for one group's delivery. */
export interface GroupCommand {
  group: string;
  command: DeliveryCommand;
}

/** The verdict on delivery commands. */
export type DeliveriesDecision =
  /** Write the message with these fields; `deadGroups` lists deliveries that just became DEAD. */
  | { outcome: 'transition'; to: MessageStatus; deadReason: DeadReason | null; set: MessagePatch; deadGroups: string[] }
  | { outcome: 'unchanged' }
  | { outcome: 'refused'; reason: string };

function refusedDelivery(type: DeliveryCommand['type'], group: string, status: DeliveryStatus, hint = ''): DeliveriesDecision {
  return { outcome: 'refused', reason: `cannot ${type} the delivery of group ${group}: it is ${status}${hint}` };
}

/** One delivery's next state under `command`; `undefined` means unchanged (or a stale record, skipped). */
function nextDelivery(delivery: Delivery, command: DeliveryCommand, now: Date): Delivery | undefined | DeliveriesDecision {
  const { status, group } = delivery;
  switch (command.type) {
    case 'ack':
      if (status === 'ACKED') return undefined;
      // A consumer that finishes after the last redelivery still processed the message.
      return { ...delivery, status: 'ACKED', nextAttemptAt: null, ackedAt: now };
    case 'heartbeat':
      if (status === 'SENDING') return { ...delivery, nextAttemptAt: command.until };
      // The ack may overtake the last heartbeat; there is nothing left to extend.
      if (status === 'ACKED') return undefined;
      return refusedDelivery(command.type, group, status);
    case 'resend':
      if (status === 'DEAD') return { ...delivery, status: 'SENDING', attempts: 0, nextAttemptAt: command.dueAt, lastError: null };
      if (status === 'SENDING') return undefined;
      return refusedDelivery(command.type, group, status, ': the group has processed the message');
    case 'delivery-recorded':
      if (delivery.attempts !== command.afterAttempts) return undefined;
      // The consumer can receive a round and ack it before the publish confirm returns and
      // the round is recorded: the ack settled the delivery, and the round still counts.
      if (status === 'ACKED' && command.record.attempts > delivery.attempts) {
        return { ...delivery, attempts: command.record.attempts, lastTransport: command.record.lastTransport ?? delivery.lastTransport };
      }
      if (status !== 'SENDING') return undefined;
      return { ...delivery, ...command.record };
    case 'delivery-exhausted':
      if (status !== 'SENDING' || delivery.attempts !== command.afterAttempts) return undefined;
      return { ...delivery, ...command.record, status: 'DEAD', nextAttemptAt: null };
    case 'nack':
      // Acked by another consumer of the group, or out of rounds already: the failure changes nothing.
      if (status !== 'SENDING') return undefined;
      if (command.retryAt === null) return { ...delivery, attempts: command.attempts, lastError: command.lastError, status: 'DEAD', nextAttemptAt: null };
      return { ...delivery, attempts: command.attempts, lastError: command.lastError, nextAttemptAt: command.retryAt };
  }
}

/** The earliest time any delivery still SENDING is due, or `null`. */
function earliestDue(deliveries: readonly Delivery[]): Date | null {
  let earliest: Date | null = null;
  for (const delivery of deliveries) {
    if (delivery.status === 'SENDING' && delivery.nextAttemptAt && (!earliest || delivery.nextAttemptAt < earliest)) earliest = delivery.nextAttemptAt;
  }
  return earliest;
}

/**
 * Decides what `changes` do to the deliveries of a confirmed message, and what the
 * message becomes: `COMPLETED` once every delivery is acked, `DEAD` (delivery exhausted)
 * while any delivery is DEAD, `SENDING` otherwise. The message is due when its earliest
 * SENDING delivery is; acks and heartbeats, which only push deliveries out, never bring
 * the message's due time earlier (it may hold a redelivery claim's lease).
 *
 * @param defaultGroup the group of a message stored before groups existed (see `deliveriesOf`).
 */
export function decideDeliveries(message: Message, changes: readonly GroupCommand[], now: Date, defaultGroup: string): DeliveriesDecision {
  const { status, deadReason } = message;
  const confirmed = status === 'SENDING' || status === 'COMPLETED' || (status === 'DEAD' && deadReason === 'DELIVERY_EXHAUSTED');
  const first = changes[0];
  if (!first) return { outcome: 'unchanged' };
  if (!confirmed) {
    const hint = status === 'DEAD' && first.command.type === 'resend' ? ': it was never confirmed; confirm or cancel it instead' : '';
    return refused(first.command, message, hint);
  }
  const deliveries = [...deliveriesOf(message, defaultGroup)];
  const deadGroups: string[] = [];
  let changed = false;
  for (const { group, command } of changes) {
    const index = deliveries.findIndex((delivery) => delivery.group === group);
    const delivery = deliveries[index];
    if (!delivery) return { outcome: 'refused', reason: `message ${message.id} has no delivery for group ${group}` };
    const next = nextDelivery(delivery, command, now);
    if (next === undefined) continue;
    if ('outcome' in next) return next;
    if (next.status === 'DEAD' && delivery.status !== 'DEAD') deadGroups.push(group);
    deliveries[index] = next;
    changed = true;
  }
  if (!changed) return { outcome: 'unchanged' };
  const anyDead = deliveries.some((delivery) => delivery.status === 'DEAD');
  const allAcked = deliveries.every((delivery) => delivery.status === 'ACKED');
  const to: MessageStatus = allAcked ? 'COMPLETED' : anyDead ? 'DEAD' : 'SENDING';
  let nextAttemptAt = earliestDue(deliveries);
  const onlyPushesOut = changes.every(({ command }) => command.type === 'ack' || command.type === 'heartbeat');
  if (onlyPushesOut && nextAttemptAt && message.nextAttemptAt && message.nextAttemptAt > nextAttemptAt) nextAttemptAt = message.nextAttemptAt;
  const latest = deliveries.reduce<Delivery | undefined>((found, delivery) => (!found || delivery.attempts > found.attempts ? delivery : found), undefined);
  const set: MessagePatch = {
    deliveries,
    nextAttemptAt,
    deliveryAttempts: Math.max(0, ...deliveries.map((delivery) => delivery.attempts)),
    lastTransport: latest?.lastTransport ?? message.lastTransport,
    lastError: deliveries.find((delivery) => delivery.status !== 'ACKED' && delivery.lastError !== null)?.lastError ?? null,
  };
  if (to === 'COMPLETED') set.completedAt = message.completedAt ?? now;
  return { outcome: 'transition', to, deadReason: to === 'DEAD' ? 'DELIVERY_EXHAUSTED' : null, set, deadGroups };
}
