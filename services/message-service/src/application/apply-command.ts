/**
 * Decide-and-write, shared by the API's use cases and the background loops: asks the
 * state machine what a command does to a message and persists the decision with one
 * conditional write on the state it was decided from.
 */
import type { Message, MessagePatch } from '../domain/message.js';
import { type Command, type TransitionDecision, decide, patchFor } from '../domain/state-machine.js';
import type { MessageStore } from '../store/message-store.js';

/** What became of a command. */
export type Applied =
  /** The message moved; `message` is its new state. */
  | { kind: 'moved'; message: Message; decision: TransitionDecision }
  /** The message was already there: nothing to write. */
  | { kind: 'unchanged'; message: Message }
  /** The command contradicts the message's state. */
  | { kind: 'refused'; message: Message; reason: string }
  /** The message changed since it was read (or the fence moved): decide again from a fresh read, or give up. */
  | { kind: 'lost' };

/** How to apply a command. */
export interface ApplyOptions {
  /** When it happens. */
  at: Date;
  /** Fields to set besides what the transition itself writes (counters, schedule, errors). */
  set?: MessagePatch;
  /** For transitions into SENDING: when the message is due if the immediate dispatch never reports. */
  dispatchDueAt?: Date;
  /** Require `nextAttemptAt` to still hold this value (a claimed message's lease). */
  fence?: { nextAttemptAt: Date | null };
}

/** Applies `command` to `message` (as read) with one conditional write. */
export async function applyCommand(store: MessageStore, message: Message, command: Command, options: ApplyOptions): Promise<Applied> {
  const decision = decide(message, command);
  if (decision.outcome === 'unchanged') return { kind: 'unchanged', message };
  if (decision.outcome === 'refused') return { kind: 'refused', message, reason: decision.reason };
  const updated = await store.transition({
    id: message.id,
    from: { status: message.status, deadReason: message.deadReason },
    to: decision.to,
    deadReason: decision.deadReason,
    at: options.at,
    set: { ...patchFor(message, decision, options.at, options.dispatchDueAt), ...options.set },
    ...(options.fence && { fence: options.fence }),
  });
  return updated ? { kind: 'moved', message: updated, decision } : { kind: 'lost' };
}
