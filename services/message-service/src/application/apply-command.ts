/**
 * Decide-and-write, shared by the API's use cases and the background loops: asks the
 * state machine what a command does to a message and persists the decision with one
 * conditional write on the state it was decided from.
 *
 * A command decided from a message as read is written under that read's `version`, so the
 * message it answers is the read one with the change applied (`movedMessage`): the store
 * is asked only whether it moved (`move`), not to send the row back.
 */
import type { Message, MessagePatch, MessageState } from '../domain/message.js';
import { type Command, type FirstRound, type GroupCommand, type TransitionDecision, decide, decideDeliveries, patchFor } from '../domain/state-machine.js';
import { type MessageStore, type Transition, movedMessage } from '../store/message-store.js';

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
  /** For transitions into SENDING from PENDING: the groups subscribed to the topic now, one delivery each. */
  groups?: readonly string[];
  /**
   * For transitions into SENDING that the caller publishes right after (`Dispatcher.firstRound`):
   * round 1 as this write records it. @defaultValue every delivery starts at round 0
   */
  firstRound?: FirstRound;
}

/**
 * Applies `command` to `message` (as read) with one write conditional on its state and
 * `version`: a message changed since the read (a claim, a check-back record) answers `lost`.
 */
export async function applyCommand(store: MessageStore, message: Message, command: Command, options: ApplyOptions): Promise<Applied> {
  const decision = decide(message, command);
  if (decision.outcome === 'unchanged') return { kind: 'unchanged', message };
  if (decision.outcome === 'refused') return { kind: 'refused', message, reason: decision.reason };
  const change = { ...transitionFor(message.id, message, decision, options, message.deliverAt), version: message.version };
  const moved = await store.move(change);
  return moved ? { kind: 'moved', message: movedMessage(message, change, moved), decision } : { kind: 'lost' };
}

/** The conditional write of a transition decided from `state`. */
function transitionFor(
  id: string,
  state: MessageState,
  decision: TransitionDecision,
  options: ApplyOptions & { producer?: string },
  deliverAt: Date | null = null,
): Transition {
  if (decision.to === 'SENDING' && state.status !== 'SENDING' && !options.groups?.length) {
    // A confirmed message without deliveries would be read as one of the default group.
    throw new Error(`confirming message ${id} needs the groups subscribed to its topic`);
  }
  const opening = { groups: options.groups ?? [], deliverAt, ...(options.firstRound && { firstRound: options.firstRound }) };
  return {
    id,
    from: { status: state.status, deadReason: state.deadReason },
    to: decision.to,
    deadReason: decision.deadReason,
    at: options.at,
    set: { ...patchFor(state, decision, options.at, options.dispatchDueAt, opening), ...options.set },
    ...(options.fence && { fence: options.fence }),
    ...(options.producer !== undefined && { producer: options.producer }),
  };
}

/**
 * Applies `command` to message `id` on the assumption that it is in `state`, without
 * reading it: the state machine decides from the assumed state, and the write's condition
 * is that state (and, with `producer`, the owner). A wrong assumption writes nothing and
 * answers `lost`; the caller then reads the message and decides from what it holds. For
 * commands whose usual starting state is known (a confirm finds PENDING, an ack SENDING),
 * this saves the read.
 */
export async function applyAssuming(
  store: MessageStore,
  id: string,
  state: MessageState,
  command: Command,
  options: ApplyOptions & { producer?: string },
): Promise<Applied> {
  const decision = decide(state, command);
  if (decision.outcome !== 'transition') return { kind: 'lost' };
  // Nothing was read: the row comes back from the write.
  const updated = await store.transition(transitionFor(id, state, decision, options));
  return updated ? { kind: 'moved', message: updated, decision } : { kind: 'lost' };
}

/** What became of delivery commands. */
export type AppliedToDeliveries =
  /** Written; `deadGroups` are the deliveries that just became DEAD. */
  | { kind: 'moved'; message: Message; deadGroups: string[] }
  | { kind: 'unchanged'; message: Message }
  | { kind: 'refused'; message: Message; reason: string }
  /** The message is gone, or kept changing under concurrent writes. */
  | { kind: 'lost' };

/**
 * How many times a delivery command is decided again after losing its write. Each loss
 * means another write to the message landed, so k writers at once (one ack per group of a
 * fan-out topic, a nack, a claim, a round's record) need up to k rounds. It was 8: CI saw a
 * consumer's ack refused with STATE_CONFLICT ("kept changing") after 8 rounds, and 9 groups
 * acking one message at once could not all land. The bound only stops a writer that
 * something rewrites without end.
 */
const MAX_DELIVERY_ROUNDS = 32;

/**
 * The pause before deciding again after `losses` lost writes in a row: none after the
 * first two, then a random wait up to 2^losses ms (at most 20 ms), so that writers that
 * keep colliding spread out instead of reading and writing in step.
 */
function contentionPauseMs(losses: number): number {
  return losses <= 2 ? 0 : Math.random() * Math.min(20, 2 ** losses);
}

/**
 * Applies commands to a confirmed message's deliveries (`decideDeliveries`), written under
 * the `version` they were decided from. When another write got there first (another
 * group's ack, a claim), the message is read again and the commands decided again from
 * what it now holds, so concurrent acks of different groups all land. `options.set` adds
 * message fields to the write (a round's publish time).
 */
export async function applyToDeliveries(
  store: MessageStore,
  read: Message,
  changes: readonly GroupCommand[] | ((message: Message) => readonly GroupCommand[]),
  options: { at: Date; defaultGroup: string; set?: MessagePatch },
): Promise<AppliedToDeliveries> {
  let message: Message | null = read;
  for (let round = 0; round < MAX_DELIVERY_ROUNDS && message; round++) {
    const commands = typeof changes === 'function' ? changes(message) : changes;
    const decision = decideDeliveries(message, commands, options.at, options.defaultGroup);
    if (decision.outcome === 'unchanged') return { kind: 'unchanged', message };
    if (decision.outcome === 'refused') return { kind: 'refused', message, reason: decision.reason };
    const change: Transition = {
      id: message.id,
      from: { status: message.status, deadReason: message.deadReason },
      to: decision.to,
      deadReason: decision.deadReason,
      at: options.at,
      set: { ...decision.set, ...options.set },
      version: message.version,
    };
    const moved = await store.move(change);
    if (moved) return { kind: 'moved', message: movedMessage(message, change, moved), deadGroups: decision.deadGroups };
    const pauseMs = contentionPauseMs(round + 1);
    if (pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, pauseMs));
    message = await store.findById(read.id);
  }
  return { kind: 'lost' };
}
