/**
 * The `Transport` port: how a delivery leaves RMS (or a producer) for the consumers.
 * Adapters: RabbitMQ (the normal path) and Redis lists (the MQ-outage fallback).
 */

/** The transports a delivery can go out on. */
export type TransportName = 'rabbitmq' | 'redis';

/** One delivery of one message: what the consumer will receive. */
export interface OutgoingMessage {
  /** RMS's message id; the AMQP `messageId`. */
  id: string;
  /** The topic. */
  topic: string;
  /**
   * The consumer groups this delivery goes to, each into its own queue (see
   * `groupQueueName`): one publish, copied by the broker to every group's queue.
   * @defaultValue the default group alone (the topic's shared queue `rms.<topic>`)
   */
  groups?: readonly string[];
  /** The payload, sent as its JSON. */
  payload: unknown;
  /** The producer's headers, carried unchanged. */
  headers: Record<string, string>;
  /** Which delivery this is, from 1; `x-rms-attempt`. */
  attempt: number;
  /** The producing app; `x-rms-producer`. */
  producer: string;
  /** The producer's idempotency key, when it gave one at prepare; `x-rms-message-id`. */
  messageId?: string;
}

/** Publishes deliveries durably. */
export interface Transport {
  /** Which transport this is, recorded on each delivery attempt. */
  readonly name: TransportName;
  /**
   * Resolves once the broker has taken responsibility for the delivery (publisher confirm),
   * with the name of the transport that carried it (a failover transport may use either);
   * rejects with a `TransportError` otherwise (unreachable, nack, channel or connection
   * lost, no confirm in time). Never hangs past its configured timeout.
   */
  publish(message: OutgoingMessage): Promise<TransportName>;
  /**
   * Proves that publishing works again without delivering anything (used by the failover
   * probe); transports without a cheaper check may publish nothing and just `ping()`.
   */
  probe?(): Promise<void>;
  /** Resolves when the transport can publish right now (for readiness); rejects otherwise. */
  ping(): Promise<void>;
  /** Releases connections. Publishes in flight are rejected. Idempotent. */
  close(): Promise<void>;
}
