/**
 * The one place that decides message status transitions (design section 3).
 *
 * Pure: it looks only at the current status (and dead reason) and the command, and says
 * whether the command moves the message, is a harmless repeat, or contradicts the state.
 * Stores persist what it decides with a conditional write on the state it decided from,
 * so two racing commands cannot both win.
 */
import type { DeadReason, MessagePatch, MessageState, MessageStatus } from './message.js';

/** Who issues a command: producers own their messages, admins may settle dead ones. */
export type Actor = 'producer' | 'consumer' | 'admin' | 'system';

/** Everything that can happen to a message. */
export type Command =
  /** The producer (or an admin) says the local transaction committed. */
  | { type: 'confirm'; actor: Actor }
  /** The producer (or an admin) says the local transaction rolled back. */
  | { type: 'cancel'; actor: Actor }
  /** A consumer processed the message. */
  | { type: 'ack' }
  /** An admin asks for a dead message to be delivered again. */
  | { type: 'resend' }
  /** The producer's check endpoint answered COMMIT. */
  | { type: 'check-commit' }
  /** The producer's check endpoint answered ROLLBACK. */
  | { type: 'check-rollback' }
  /** The last allowed check-back went unanswered. */
  | { type: 'check-exhausted' }
  /** The last allowed delivery went unacked. */
  | { type: 'delivery-exhausted' }
  /** A delivery round was made (published or not): counters and schedule change, status stays. */
  | { type: 'delivery-recorded' }
  /** A check-back got no decisive answer: counters and schedule change, status stays. */
  | { type: 'check-recorded' }
  /** A consumer still working on the message pushes its ack deadline out. */
  | { type: 'heartbeat' }
  /** A consumer failed to handle the message: the next delivery comes sooner, the round counts. */
  | { type: 'nack' };

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

function refused(command: Command, state: MessageState, hint = ''): Decision {
  const where = state.deadReason ? `${state.status} (${state.deadReason})` : state.status;
  return { outcome: 'refused', reason: `cannot ${command.type} a message in status ${where}${hint}` };
}

/**
 * Decides what `command` does to a message in `state`.
 *
 * Repeats that ask for a state the message has already reached or passed succeed
 * (`unchanged`): confirm of a SENDING or COMPLETED message, cancel of a CANCELLED one,
 * ack of a COMPLETED one. Contradictions are `refused`.
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
    case 'ack':
      if (status === 'SENDING') return to('COMPLETED');
      if (status === 'COMPLETED') return unchanged;
      // A consumer that finishes after the last redelivery still processed the message.
      if (status === 'DEAD' && deadReason === 'DELIVERY_EXHAUSTED') return to('COMPLETED');
      return refused(command, state);
    case 'resend':
      if (status === 'DEAD' && deadReason === 'DELIVERY_EXHAUSTED') return to('SENDING', true);
      if (status === 'SENDING') return unchanged;
      if (status === 'DEAD') return refused(command, state, ': it was never confirmed; confirm or cancel it instead');
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
    case 'delivery-exhausted':
      if (status === 'SENDING') return to('DEAD', false, 'DELIVERY_EXHAUSTED');
      return refused(command, state);
    case 'delivery-recorded':
      return status === 'SENDING' ? to('SENDING') : refused(command, state);
    case 'check-recorded':
      return status === 'PENDING' ? to('PENDING') : refused(command, state);
    case 'nack':
      if (status === 'SENDING') return to('SENDING');
      // Another consumer acked it, or the rounds ran out meanwhile: the failure changes nothing.
      if (status === 'COMPLETED' || (status === 'DEAD' && deadReason === 'DELIVERY_EXHAUSTED')) return unchanged;
      return refused(command, state);
    case 'heartbeat':
      if (status === 'SENDING') return to('SENDING');
      // The ack may overtake the last heartbeat; there is nothing left to extend.
      if (status === 'COMPLETED') return unchanged;
      return refused(command, state);
  }
}

/** A decision that moves the message. */
export type TransitionDecision = Extract<Decision, { outcome: 'transition' }>;

/**
 * The fields that change with a transition, besides status and dead reason.
 *
 * A message entering SENDING is due at `dispatchDueAt`: the instance that confirmed it
 * publishes at once, and if that instance dies first, the redelivery loop finds the
 * message due and publishes it.
 */
export function patchFor(from: MessageState, decision: TransitionDecision, now: Date, dispatchDueAt: Date = now): MessagePatch {
  switch (decision.to) {
    case 'SENDING': {
      // Staying in SENDING (a recorded round, a heartbeat): the caller sets what changes.
      if (from.status === 'SENDING') return {};
      const patch: MessagePatch = { nextAttemptAt: dispatchDueAt, lastError: null };
      if (from.status === 'PENDING' || from.deadReason === 'CHECK_EXHAUSTED') patch.confirmedAt = now;
      if (from.deadReason === 'DELIVERY_EXHAUSTED') patch.deliveryAttempts = 0;
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
