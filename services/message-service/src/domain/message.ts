/**
 * The message record and its vocabulary: statuses, dead reasons, transports.
 * Shared by the state machine, the stores and the HTTP layer; no I/O here.
 */

/** Every status a message can be in (design section 3). */
export const MESSAGE_STATUSES = ['PENDING', 'SENDING', 'COMPLETED', 'CANCELLED', 'DEAD'] as const;

/** A message's status. */
export type MessageStatus = (typeof MESSAGE_STATUSES)[number];

/** Why a message became `DEAD`. */
export const DEAD_REASONS = ['CHECK_EXHAUSTED', 'DELIVERY_EXHAUSTED'] as const;

/** Why a message became `DEAD`: the producer never answered, or no consumer ever acked. */
export type DeadReason = (typeof DEAD_REASONS)[number];

/** The transports a delivery attempt can go out on. */
export type TransportName = 'rabbitmq' | 'redis';

/** Message headers: string to string, carried to the consumer unchanged. */
export type MessageHeaders = Record<string, string>;

/** Any JSON value: what a payload may be. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/**
 * One message as RMS stores it.
 *
 * Times are `Date`s; `null` means "has not happened" (or, for `nextAttemptAt`,
 * "nothing is scheduled").
 */
export interface Message {
  /** RMS's id: a time-ordered UUID (v7). */
  id: string;
  /** The app that prepared the message. */
  producer: string;
  /** The producer's idempotency key, when it gave one. */
  producerMessageId: string | null;
  /** The topic, `[A-Za-z0-9._-]{1,128}`; the RabbitMQ routing key. */
  topic: string;
  /** The payload as the producer sent it. */
  payload: JsonValue;
  /** The producer's headers. */
  headers: MessageHeaders;
  /** Where the message is in its life (design section 3). */
  status: MessageStatus;
  /** Set when, and only when, `status` is `DEAD`. */
  deadReason: DeadReason | null;
  /** When it was prepared. */
  createdAt: Date;
  /** When it last changed. */
  updatedAt: Date;
  /** When it was confirmed (by the producer, a check-back COMMIT or an admin). */
  confirmedAt: Date | null;
  /** When a consumer acked it. */
  completedAt: Date | null;
  /** When it was cancelled (by the producer, a check-back ROLLBACK or an admin). */
  cancelledAt: Date | null;
  /** Check-backs made so far. */
  checkAttempts: number;
  /** Deliveries (publishes) made so far. */
  deliveryAttempts: number;
  /** When the next check-back (PENDING) or redelivery (SENDING) is due; `null` when none is. */
  nextAttemptAt: Date | null;
  /** The transport of the last delivery attempt. */
  lastTransport: TransportName | null;
  /** The last error met while checking back or delivering. */
  lastError: string | null;
  /** Not before this time is the message delivered (a delayed message); `null`: at once on confirm. */
  deliverAt: Date | null;
  /**
   * One delivery per consumer group subscribed to the topic when the message was confirmed
   * (see `deliveriesOf` for messages stored before groups existed); empty before confirm.
   */
  deliveries: Delivery[];
  /** Bumped by every write: the condition of writes that change the deliveries. */
  version: number;
  /** When the last delivery round handed the message to a transport; `null` before the first. */
  lastPublishedAt: Date | null;
  /**
   * The W3C trace context the producer prepared it in (`traceparent` header), carried to
   * the consumer and into check-backs; `null` when the producer sent none.
   */
  traceparent: string | null;
  /** The W3C `tracestate` that came with `traceparent`; `null` when none did. */
  tracestate: string | null;
}

/** Where one group's delivery of a message is. */
export const DELIVERY_STATUSES = ['SENDING', 'ACKED', 'DEAD'] as const;

/** A delivery's status: being delivered, acked by its group, or out of rounds. */
export type DeliveryStatus = (typeof DELIVERY_STATUSES)[number];

/**
 * One consumer group's delivery of a message: its own rounds, ack deadline (heartbeats
 * push it), redelivery schedule, last error and DEAD state.
 */
export interface Delivery {
  /** The consumer group. */
  group: string;
  status: DeliveryStatus;
  /** Delivery rounds (publishes) made for this group so far. */
  attempts: number;
  /** When the next round (or the ack deadline) is due; `null` unless `SENDING`. */
  nextAttemptAt: Date | null;
  /** The transport of the last round. */
  lastTransport: TransportName | null;
  /** The last error met delivering to this group. */
  lastError: string | null;
  /** When the group acked it. */
  ackedAt: Date | null;
}

/**
 * The group of a topic that no app subscribes to: one delivery, published to the topic's
 * shared queue `rms.<topic>` as before groups existed, which any consumer may ack.
 */
export const DEFAULT_GROUP = 'default';

/** Consumer group names: a queue-name suffix, so no dots (`rms.<topic>.<group>` must read back unambiguously). */
export const GROUP_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/** The fields a transition may set besides status and dead reason. */
export type MessagePatch = Partial<
  Pick<
    Message,
    | 'confirmedAt'
    | 'completedAt'
    | 'cancelledAt'
    | 'checkAttempts'
    | 'deliveryAttempts'
    | 'nextAttemptAt'
    | 'lastTransport'
    | 'lastError'
    | 'deliveries'
    | 'lastPublishedAt'
  >
>;

/** What a caller supplies to prepare a message; the rest is decided by RMS. */
export type NewMessage = Pick<Message, 'id' | 'producer' | 'producerMessageId' | 'topic' | 'payload' | 'headers' | 'createdAt'> &
  Partial<Pick<Message, 'traceparent' | 'tracestate'>> & {
    /** Deliver no earlier than this (a delayed message). @defaultValue null: at once on confirm */
    deliverAt?: Date | null;
    /** When the first check-back is due. */
    nextAttemptAt: Date;
  };

/**
 * The message a store holds right after inserting `message`: PENDING, nothing counted,
 * nothing delivered. Stores answer a created insert with this instead of reading the row back.
 */
export function preparedMessage(message: NewMessage): Message {
  return {
    id: message.id,
    producer: message.producer,
    producerMessageId: message.producerMessageId,
    topic: message.topic,
    payload: message.payload,
    headers: message.headers,
    status: 'PENDING',
    deadReason: null,
    createdAt: message.createdAt,
    updatedAt: message.createdAt,
    confirmedAt: null,
    completedAt: null,
    cancelledAt: null,
    checkAttempts: 0,
    deliveryAttempts: 0,
    nextAttemptAt: message.nextAttemptAt,
    lastTransport: null,
    lastError: null,
    deliverAt: message.deliverAt ?? null,
    deliveries: [],
    version: 0,
    lastPublishedAt: null,
    traceparent: message.traceparent ?? null,
    tracestate: message.tracestate ?? null,
  };
}

/** The part of a message the state machine decides on. */
export interface MessageState {
  status: MessageStatus;
  deadReason: DeadReason | null;
}

/** Topic names allowed by the design: the AMQP routing key and queue suffix. */
export const TOPIC_PATTERN = /^[A-Za-z0-9._-]{1,128}$/;
