/**
 * How a message looks on the wire: the stored record with ISO dates and the producer's
 * key under the name the producer used for it (`messageId`).
 */
import type { Message } from '../domain/message.js';

/** A message as the HTTP API returns it. */
export interface MessageView {
  id: string;
  producer: string;
  messageId: string | null;
  topic: string;
  payload: Message['payload'];
  headers: Message['headers'];
  status: Message['status'];
  deadReason: Message['deadReason'];
  createdAt: string;
  updatedAt: string;
  confirmedAt: string | null;
  completedAt: string | null;
  cancelledAt: string | null;
  checkAttempts: number;
  deliveryAttempts: number;
  nextAttemptAt: string | null;
  lastTransport: Message['lastTransport'];
  lastError: string | null;
}

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
  };
}
