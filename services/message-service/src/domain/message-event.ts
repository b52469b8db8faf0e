/**
 * A message's history: one event per transition and per attempt, so an operator can
 * answer "what happened to this message, and why" (issue 12, item 1). Pure vocabulary; the
 * stores persist events, the application records them.
 */
import type { TransportName } from './message.js';

/** Every kind of event in a message's history. */
export const MESSAGE_EVENT_TYPES = [
  'prepared',
  'confirmed',
  'cancelled',
  'check-back',
  'delivery',
  'consumer-failure',
  'heartbeat',
  'acked',
  'dead',
  'resent',
] as const;

/** The kind of a history event. */
export type MessageEventType = (typeof MESSAGE_EVENT_TYPES)[number];

/**
 * Who caused an event: the producer app, a consumer app, an admin app, RMS's check-back
 * verdict, or RMS itself (a delivery round, a schedule running out).
 */
export type EventActor = 'producer' | 'consumer' | 'admin' | 'check-back' | 'rms';

/**
 * One event of a message's history. Fields that do not apply to an event's `type` are
 * `null` (a delivery has a transport, a check-back a verdict and a duration).
 */
export interface MessageEvent {
  /** The RMS id of the message. */
  messageId: string;
  /** When it happened. */
  at: Date;
  type: MessageEventType;
  actor: EventActor;
  /** The app that acted (producer, consumer or admin), when an app did. */
  app: string | null;
  /** The consumer group of a delivery event, when the delivery had one. */
  group: string | null;
  /** The attempt number this event belongs to: the check-back or delivery round. */
  attempt: number | null;
  /** The transport of a delivery round, when it was published. */
  transport: TransportName | null;
  /**
   * What came of it: a check-back's verdict (`COMMIT`, `ROLLBACK`, `UNKNOWN`), a
   * delivery round's `published` or `failed`, a dead message's dead reason.
   */
  outcome: string | null;
  /** How long it took (a check-back, a delivery round), in milliseconds. */
  durationMs: number | null;
  /** Why: a consumer's failure reason, a publish error, a check-back's detail, an admin's note. */
  reason: string | null;
  /** For a heartbeat or a consumer failure: when the message is next due. */
  nextAttemptAt: Date | null;
}

/** What a recorder is given: the event without the fields that do not apply. */
export type NewMessageEvent = Pick<MessageEvent, 'messageId' | 'at' | 'type' | 'actor'> & Partial<Omit<MessageEvent, 'messageId' | 'at' | 'type' | 'actor'>>;

/** Longest `reason` kept in an event; longer ones are cut, so one chatty error cannot bloat the store. */
export const MAX_EVENT_REASON_LENGTH = 1000;

/** `reason` cut to {@link MAX_EVENT_REASON_LENGTH} characters, marked with an ellipsis when cut. */
export function truncateReason(reason: string): string {
  return reason.length <= MAX_EVENT_REASON_LENGTH ? reason : `${reason.slice(0, MAX_EVENT_REASON_LENGTH - 1)}…`;
}

/** The full event, with `null` in every field `event` leaves out. */
export function completeEvent(event: NewMessageEvent): MessageEvent {
  return {
    messageId: event.messageId,
    at: event.at,
    type: event.type,
    actor: event.actor,
    app: event.app ?? null,
    group: event.group ?? null,
    attempt: event.attempt ?? null,
    transport: event.transport ?? null,
    outcome: event.outcome ?? null,
    durationMs: event.durationMs ?? null,
    reason: event.reason == null ? null : truncateReason(event.reason),
    nextAttemptAt: event.nextAttemptAt ?? null,
  };
}

