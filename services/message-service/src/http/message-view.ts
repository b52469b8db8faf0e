/**
 * How a message looks on the wire: the stored record with ISO dates and the producer's
 * key under the name the producer used for it (`messageId`).
 */
import type { ConsumerAnswer, RmsMessage } from '@rms/client-sdk';
import { DEFAULT_GROUP, type Message } from '../domain/message.js';
import type { MessageEvent } from '../domain/message-event.js';
import { deliveriesOf } from '../domain/state-machine.js';

/** A message as the HTTP API returns it: the SDK's `RmsMessage`, so client and server share one definition of the wire. */
export type MessageView = RmsMessage;

const iso = (date: Date | null): string | null => (date ? date.toISOString() : null);

/** The wire form of `message`. */
export function toMessageView(message: Message): MessageView {
  return {
    id: message.id,
    producer: message.producer,
    messageId: message.producerMessageId,
    topic: message.topic,
    payload: message.payload,
    headers: message.headers,
    status: message.status,
    deadReason: message.deadReason,
    createdAt: message.createdAt.toISOString(),
    updatedAt: message.updatedAt.toISOString(),
    confirmedAt: iso(message.confirmedAt),
    completedAt: iso(message.completedAt),
    cancelledAt: iso(message.cancelledAt),
    checkAttempts: message.checkAttempts,
    deliveryAttempts: message.deliveryAttempts,
    nextAttemptAt: iso(message.nextAttemptAt),
    lastTransport: message.lastTransport,
    lastError: message.lastError,
    deliverAt: iso(message.deliverAt),
    deliveries: deliveriesOf(message, DEFAULT_GROUP).map((delivery) => ({
      group: delivery.group,
      status: delivery.status,
      attempts: delivery.attempts,
      nextAttemptAt: iso(delivery.nextAttemptAt),
      lastTransport: delivery.lastTransport,
      lastError: delivery.lastError,
      ackedAt: iso(delivery.ackedAt),
    })),
  };
}

/** The minimal answer about a message: its id, the producer's key and its status. */
export interface MessageReceipt {
  id: string;
  messageId: string | null;
  status: Message['status'];
}

/** The receipt of `message`, answered instead of the whole message to `Prefer: return=minimal`. */
export function toMessageReceipt(message: Message): MessageReceipt {
  return { id: message.id, messageId: message.producerMessageId, status: message.status };
}

/**
 * What a consumer is told of a message it acked or heartbeated: its status and when it is
 * next due, never its payload (a consumer may name any id; the answer must not read it out).
 */
export type DeliveryStatusView = ConsumerAnswer;

/** The consumer's view of `message`. */
export function toDeliveryStatusView(message: Message): DeliveryStatusView {
  return {
    id: message.id,
    status: message.status,
    nextAttemptAt: iso(message.nextAttemptAt),
    deliveries: deliveriesOf(message, DEFAULT_GROUP).map((delivery) => ({
      group: delivery.group,
      status: delivery.status,
      attempts: delivery.attempts,
      nextAttemptAt: iso(delivery.nextAttemptAt),
    })),
  };
}

/** A history event as the HTTP API returns it: the stored event with ISO dates. */
export type MessageEventView = Omit<MessageEvent, 'messageId' | 'at' | 'nextAttemptAt'> & { at: string; nextAttemptAt: string | null };

/** The wire form of a history event (the message id is the resource's, so it is left out). */
export function toEventView(event: MessageEvent): MessageEventView {
  return {
    at: event.at.toISOString(),
    type: event.type,
    actor: event.actor,
    app: event.app,
    group: event.group,
    attempt: event.attempt,
    transport: event.transport,
    outcome: event.outcome,
    durationMs: event.durationMs,
    reason: event.reason,
    nextAttemptAt: iso(event.nextAttemptAt),
  };
}
