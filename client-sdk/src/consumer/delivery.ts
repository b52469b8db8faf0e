/**
 * What every delivery source hands the consumer pipeline: the delivery itself and how to
 * settle it with the source. A module of its own so that `subscribe`, the RabbitMQ
 * consumer and the Redis fallback source all depend on it instead of on each other.
 */

/** One delivery of one message to one consumer group, as a handler receives it. */
export interface Delivery<T = unknown> {
  /** RMS's message id: the key of idempotency and of the ack. */
  id: string;
  /** The topic it was published on. */
  topic: string;
  /** The consumer group it was delivered to (`default` for a topic's shared queue). */
  group: string;
  /** The payload, parsed from JSON. */
  payload: T;
  /** The producer's headers (RMS's own `x-rms-*` headers removed). */
  headers: Record<string, string>;
  /** Which delivery of the message to this group this is, from 1 (`x-rms-attempt`). */
  attempt: number;
  /** The producing app (`x-rms-producer`). */
  producer: string;
  /**
   * The producer's idempotency key (`x-rms-message-id`): present whenever the producer gave
   * one at prepare, which the SDK's producer always does.
   */
  messageId?: string;
  /** What brought it: RabbitMQ normally, Redis during an MQ outage. */
  transport: 'rabbitmq' | 'redis';
}

/** Handles one delivery; resolving means "done, ack it", throwing means "failed, let RMS redeliver". */
export type Handler<T = unknown> = (delivery: Delivery<T>) => Promise<void>;

/**
 * How the receiver of a delivery settles it with its source. Each handle acts at most once
 * (a second ack of one delivery tag would make the broker close the channel), and both are
 * no-ops once the channel that delivered it has died.
 */
export interface DeliverySettlement {
  /** Acks the delivery to the source: it leaves the queue. */
  ack(): void;
  /**
   * Rejects the delivery without requeueing it (`basic.nack`, `requeue=false`). RMS, not the
   * broker, owns redelivery: it publishes the message again after its ack deadline.
   */
  reject(): void;
}

/** Receives each well-formed delivery; must not throw (a throw is logged and ignored). */
export type DeliveryListener = (delivery: Delivery, settlement: DeliverySettlement) => void;
