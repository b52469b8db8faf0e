/**
 * The consuming side of the RabbitMQ transport (design section 6): one consumer on a
 * consumer group's durable queue of a topic (`rms.<topic>.<group>`, or `rms.<topic>` for
 * the default group; see `groupQueueName`), bound to the durable direct exchange `rms`
 * under its own name, with a prefetch window and manual acks. It declares the exchange, the queue
 * and the binding itself, exactly as the publisher does, so a consumer may start before
 * anything was ever published.
 *
 * It keeps consuming across broker restarts and network faults by itself: a lost
 * connection or channel is replaced after a capped, jittered back-off, and a consumer the
 * broker cancelled (the queue was deleted, or its leader moved) is declared and consumed
 * again. Every 'error' and 'close' event of amqplib is handled, so none of that can crash
 * the process.
 *
 * Deliveries that were in flight on a channel that died are lost to this consumer: their
 * ack or reject becomes a no-op (acking a delivery tag of a dead channel on a new one would
 * make the broker close that channel with PRECONDITION_FAILED "unknown delivery tag"). The
 * broker puts unacked deliveries back in the queue when the channel dies, and RMS
 * redelivers anything not acked to it, so nothing is lost overall; a handler may see the
 * same message again, which the SDK's idempotency helper absorbs.
 *
 * Why not amqplib's built-in recovery (`connect(url, { recovery })`): it re-opens the
 * connection, but the channel, its prefetch, the topology and the consumer must be rebuilt
 * by us anyway, and ack handles must be tied to the channel that delivered, which is
 * simplest when we own the whole session.
 */
import type { Channel, ChannelModel, ConsumeMessage, Options } from 'amqplib';
import type { Delivery, DeliveryListener, DeliverySettlement } from '../consumer/delivery.js';
import { type SdkLogger, silentLogger } from '../logger.js';
import { DEFAULT_GROUP, DEFAULT_QUEUE_PREFIX, groupQueueName } from './group-routing.js';
import { queueArgumentsFor, type QueueType } from './queue-type.js';
import { BrokerEndpoints, brokerUrls, closeConnection, corkForThisTurn, describe, destroyConnection, noop } from './amqp-connection.js';

/** How a {@link RabbitMqConsumer} connects and consumes. */
export interface RabbitMqConsumerOptions {
  /**
   * The broker, as an AMQP URL, or the nodes of a cluster (a comma-separated list or an
   * array), tried in turn from the one that worked last. A `heartbeat` query parameter in
   * a URL wins over {@link RabbitMqConsumerOptions.heartbeatSeconds}.
   * @example `'amqp://guest:guest@127.0.0.1:5672'`
   * @example `'amqp://u:p@rabbit-1:5672,amqp://u:p@rabbit-2:5672,amqp://u:p@rabbit-3:5672'`
   */
  url: string | readonly string[];
  /** The topic to consume. */
  topic: string;
  /**
   * The consumer group whose queue is consumed: `<queuePrefix><topic>.<group>`.
   * @defaultValue `'default'`: the topic's shared queue `<queuePrefix><topic>`
   */
  group?: string;
  /**
   * Most deliveries the broker hands this consumer before they are acked or rejected
   * (`basic.qos`, per consumer): the number of handlers that can run at once.
   * @defaultValue `16`
   */
  prefetch?: number;
  /**
   * The durable direct exchange RMS publishes to.
   * @defaultValue `'rms'`
   */
  exchange?: string;
  /**
   * Prefix of the queue names; must match RMS's `RMS_RABBITMQ_QUEUE_PREFIX`.
   * @defaultValue `'rms.'`
   */
  queuePrefix?: string;
  /**
   * Arguments used when declaring the queue; they must match the publisher's
   * (`RabbitMqTransportOptions.queueArguments`), or the broker refuses the declaration.
   * @defaultValue none
   */
  queueArguments?: Record<string, unknown>;
  /**
   * The kind of queue to declare: `'quorum'` for a RabbitMQ cluster (replicated queues),
   * `'classic'` otherwise. Publisher and consumers must agree (see `queue-type.ts`).
   * @defaultValue `'classic'`
   */
  queueType?: QueueType;
  /**
   * AMQP heartbeat asked of the broker, in seconds; a connection silent for about two
   * intervals is declared dead and replaced. `0` disables heartbeats.
   * @defaultValue `10`
   */
  heartbeatSeconds?: number;
  /**
   * Hard limit on one connection attempt: TCP connect, AMQP handshake, opening the channel,
   * declaring the topology and starting the consumer.
   * @defaultValue `5000`
   */
  connectTimeoutMs?: number;
  /**
   * Wait before the first reconnection attempt after a loss or a failed attempt; it doubles
   * (with jitter) on each further failure, up to {@link RabbitMqConsumerOptions.maxReconnectDelayMs}.
   * @defaultValue `500`
   */
  reconnectDelayMs?: number;
  /**
   * Longest wait between reconnection attempts.
   * @defaultValue `30000`
   */
  maxReconnectDelayMs?: number;
  /**
   * Limit on cancelling the consumer and on closing the connection politely; past it the
   * connection is destroyed.
   * @defaultValue `5000`
   */
  closeTimeoutMs?: number;
  /**
   * Receives one line per event of the connection (lost, consuming again, cancelled by the
   * broker, malformed delivery), never one per good delivery.
   * @defaultValue a logger that drops everything
   */
  logger?: SdkLogger;
  /**
   * Name shown for the connection in the RabbitMQ management UI (`connection_name`).
   * @defaultValue none
   */
  connectionName?: string;
}

/** Defaults of every optional {@link RabbitMqConsumerOptions} field that has one. */
const DEFAULTS = {
  prefetch: 16,
  exchange: 'rms',
  queuePrefix: DEFAULT_QUEUE_PREFIX,
  heartbeatSeconds: 10,
  connectTimeoutMs: 5000,
  reconnectDelayMs: 500,
  maxReconnectDelayMs: 30_000,
  closeTimeoutMs: 5000,
} as const;


/** Resolves with the promise's outcome, or with `undefined` after `ms` (the promise is left to settle alone). */
async function within<T>(promise: Promise<T>, ms: number): Promise<{ value: T } | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  try {
    return await Promise.race([promise.then((value) => ({ value })), timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Turns a broker message into a delivery, or says why it is not one. Header values are
 * strings on the wire for producer headers; other scalars are stringified, and RMS's own
 * `x-rms-*` headers are lifted into the delivery's fields.
 */
export function parseAmqpDelivery(topic: string, message: ConsumeMessage, group: string = DEFAULT_GROUP): Delivery | { invalid: string } {
  const id = message.properties.messageId as unknown;
  if (typeof id !== 'string' || id === '') return { invalid: 'it has no messageId' };
  let payload: unknown;
  try {
    payload = JSON.parse(message.content.toString('utf8'));
  } catch {
    return { invalid: 'its body is not JSON' };
  }
  const raw = (message.properties.headers ?? {}) as Record<string, unknown>;
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(raw)) {
    if (name.toLowerCase().startsWith('x-rms-')) continue;
    if (typeof value === 'string') headers[name] = value;
    else if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') headers[name] = String(value);
    else if (Buffer.isBuffer(value)) headers[name] = value.toString('utf8');
  }
  const attempt = Number(raw['x-rms-attempt']);
  const producer = raw['x-rms-producer'];
  const messageId = headerText(raw['x-rms-message-id']);
  return {
    id,
    topic,
    group,
    payload,
    headers,
    attempt: Number.isInteger(attempt) && attempt > 0 ? attempt : 1,
    producer: headerText(producer) ?? '',
    ...(messageId !== undefined && messageId !== '' && { messageId }),
    transport: 'rabbitmq',
  };
}

/** An AMQP header value as text: a string, or a long string amqplib hands over as a Buffer. */
function headerText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  return Buffer.isBuffer(value) ? value.toString('utf8') : undefined;
}

/** One connection with its one channel and consumer. */
interface Session {
  readonly model: ChannelModel;
  channel: Channel | undefined;
  consumerTag: string | undefined;
  /** The connection or channel is gone (or being dropped): its delivery tags are void. */
  lost: boolean;
  /** The last 'error' amqplib reported on it: the cause of a loss. */
  error: Error | undefined;
}

type State = 'idle' | 'running' | 'stopping' | 'closed';

/**
 * Consumes one topic's queue and hands each delivery to a listener with its ack and reject
 * handles; reconnects and re-consumes by itself until closed.
 *
 * @example
 * ```ts
 * const consumer = new RabbitMqConsumer({ url, topic: 'orders.paid', prefetch: 16, logger }, (delivery, settlement) => {
 *   void handle(delivery).then(() => settlement.ack(), () => settlement.reject());
 * });
 * await consumer.start();
 * // ...
 * await consumer.cancel(); // no new deliveries; acks still work
 * await consumer.close();
 * ```
 */
export class RabbitMqConsumer {
  /** The topic consumed. */
  readonly topic: string;
  /** The consumer group whose queue is consumed. */
  readonly group: string;
  /** The queue consumed: `<queuePrefix><topic>.<group>` (`<queuePrefix><topic>` for the default group). */
  readonly queue: string;

  readonly #broker: BrokerEndpoints;
  readonly #exchange: string;
  readonly #queueArguments: Record<string, unknown> | undefined;
  readonly #prefetch: number;
  readonly #connectTimeoutMs: number;
  readonly #reconnectDelayMs: number;
  readonly #maxReconnectDelayMs: number;
  readonly #closeTimeoutMs: number;
  readonly #logger: SdkLogger;
  readonly #socketOptions: { timeout: number; noDelay: boolean; clientProperties: Record<string, unknown> };
  readonly #onDelivery: DeliveryListener;

  #state: State = 'idle';
  #session: Session | undefined;
  #opening: Promise<void> | undefined;
  #reconnectTimer: NodeJS.Timeout | undefined;
  /** Failed attempts in a row since the last session that consumed. */
  #failures = 0;
  /** A session was lost or an attempt failed since the last one that consumed: say when it is back. */
  #interrupted = false;
  #cancelling: Promise<void> | undefined;
  #closing: Promise<void> | undefined;

  /**
   * @param options - where and what to consume.
   * @param onDelivery - receives each well-formed delivery with its settlement handles.
   */
  constructor(options: RabbitMqConsumerOptions, onDelivery: DeliveryListener) {
    const prefetch = options.prefetch ?? DEFAULTS.prefetch;
    if (!Number.isInteger(prefetch) || prefetch < 1 || prefetch > 65_535) {
      throw new RangeError(`prefetch must be a whole number from 1 to 65535, got ${prefetch}`);
    }
    this.topic = options.topic;
    this.group = options.group ?? DEFAULT_GROUP;
    this.queue = groupQueueName(options.topic, this.group, options.queuePrefix ?? DEFAULTS.queuePrefix);
    this.#broker = new BrokerEndpoints(brokerUrls(options.url, options.heartbeatSeconds ?? DEFAULTS.heartbeatSeconds));
    this.#exchange = options.exchange ?? DEFAULTS.exchange;
    this.#queueArguments = queueArgumentsFor(options.queueType, options.queueArguments);
    this.#prefetch = prefetch;
    this.#connectTimeoutMs = options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs;
    this.#reconnectDelayMs = options.reconnectDelayMs ?? DEFAULTS.reconnectDelayMs;
    this.#maxReconnectDelayMs = Math.max(this.#reconnectDelayMs, options.maxReconnectDelayMs ?? DEFAULTS.maxReconnectDelayMs);
    this.#closeTimeoutMs = options.closeTimeoutMs ?? DEFAULTS.closeTimeoutMs;
    this.#logger = options.logger ?? silentLogger;
    this.#onDelivery = onDelivery;
    this.#socketOptions = {
      // amqplib's socket inactivity timeout during the handshake: frees the socket of an
      // attempt that our own deadline has already given up on.
      timeout: this.#connectTimeoutMs,
      noDelay: true,
      clientProperties: options.connectionName === undefined ? {} : { connection_name: options.connectionName },
    };
  }

  /** Whether a consumer is registered with the broker right now. */
  get consuming(): boolean {
    return this.#session?.consumerTag !== undefined && !this.#session.lost;
  }

  /**
   * Starts consuming. Resolves once the first attempt has finished, whether it succeeded or
   * not: a broker that is down at start-up is retried in the background (and logged), so a
   * service can start during a RabbitMQ outage (design section 7).
   */
  async start(): Promise<void> {
    if (this.#state !== 'idle') return;
    this.#state = 'running';
    await this.#attempt();
  }

  /**
   * Stops taking deliveries: cancels the consumer (bounded by `closeTimeoutMs`) and stops
   * reconnecting, but keeps the channel open so deliveries already handed out can still be
   * acked or rejected. Deliveries that arrive after this are left unacked, and the broker
   * requeues them when the channel closes. Idempotent.
   */
  cancel(): Promise<void> {
    this.#cancelling ??= this.#stopConsuming();
    return this.#cancelling;
  }

  /**
   * Cancels the consumer (if {@link RabbitMqConsumer.cancel} has not) and closes the channel
   * and connection, politely within `closeTimeoutMs` and by force after it. Unacked
   * deliveries go back to the queue. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= this.#shutDown();
    return this.#closing;
  }

  async #stopConsuming(): Promise<void> {
    if (this.#state === 'idle' || this.#state === 'running') this.#state = 'stopping';
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
    // An attempt still running discards its session when it lands (it sees the state).
    await this.#opening?.catch(noop);
    const session = this.#session;
    const tag = session?.consumerTag;
    if (session === undefined || session.lost || session.channel === undefined || tag === undefined) return;
    session.consumerTag = undefined;
    try {
      const done = await within(session.channel.cancel(tag), this.#closeTimeoutMs);
      if (done === undefined) this.#logger.warn({ queue: this.queue }, `RabbitMQ did not confirm cancelling the consumer within ${this.#closeTimeoutMs} ms`);
    } catch (error) {
      this.#logger.warn({ err: error, queue: this.queue }, 'cancelling the RabbitMQ consumer failed; closing the connection returns its deliveries anyway');
    }
  }

  async #shutDown(): Promise<void> {
    await this.cancel();
    this.#state = 'closed';
    const session = this.#session;
    this.#session = undefined;
    if (session === undefined || session.lost) return;
    session.lost = true;
    // Closing the connection closes the channel; the broker requeues what is still unacked.
    await closeConnection(session.model, this.#closeTimeoutMs);
  }

  /** One connection attempt; on failure, schedules the next one. */
  #attempt(): Promise<void> {
    if (this.#opening !== undefined) return this.#opening;
    const opening = this.#openWithin(this.#connectTimeoutMs).then(
      (session) => {
        this.#opening = undefined;
        if (this.#state !== 'running') {
          // Cancelled or closed while connecting: nobody wants this consumer.
          if (this.#session === session) this.#session = undefined;
          session.lost = true;
          void closeConnection(session.model, this.#closeTimeoutMs);
          return;
        }
        if (this.#interrupted) this.#logger.info({ queue: this.queue, failedAttempts: this.#failures }, 'consuming from RabbitMQ again');
        this.#interrupted = false;
        this.#failures = 0;
      },
      (error: unknown) => {
        this.#opening = undefined;
        if (this.#state !== 'running') return;
        const delayMs = this.#backoff();
        if (this.#failures === 0) {
          this.#logger.warn({ err: error, queue: this.queue, retryInMs: delayMs }, 'cannot consume from RabbitMQ; retrying with back-off');
        } else {
          this.#logger.debug?.({ err: error, queue: this.queue, retryInMs: delayMs, failedAttempts: this.#failures }, 'RabbitMQ still unreachable');
        }
        this.#failures += 1;
        this.#interrupted = true;
        this.#scheduleReconnect(delayMs);
      },
    );
    this.#opening = opening;
    return opening;
  }

  /** Capped exponential back-off with jitter (half to all of the step), so many consumers do not reconnect in lockstep. */
  #backoff(): number {
    const step = Math.min(this.#maxReconnectDelayMs, this.#reconnectDelayMs * 2 ** Math.min(this.#failures, 30));
    return Math.round(step / 2 + (Math.random() * step) / 2);
  }

  #scheduleReconnect(delayMs: number): void {
    if (this.#state !== 'running' || this.#reconnectTimer !== undefined) return;
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      void this.#attempt();
    }, delayMs);
  }

  /** Opens a session under one deadline; on the deadline the half-open connection is destroyed. */
  #openWithin(timeoutMs: number): Promise<Session> {
    return new Promise<Session>((resolve, reject) => {
      let expired = false;
      let opened: Session | undefined;
      const timer = setTimeout(() => {
        expired = true;
        reject(new Error(`no consuming channel within ${timeoutMs} ms`));
        if (opened !== undefined) this.#drop(opened, `opening took longer than ${timeoutMs} ms`);
      }, timeoutMs);
      this.#open(
        () => expired,
        (session) => {
          opened = session;
        },
      ).then(
        (session) => {
          clearTimeout(timer);
          if (expired) this.#drop(session, 'the consumer started after the deadline');
          else resolve(session);
        },
        (error: unknown) => {
          clearTimeout(timer);
          if (opened !== undefined) this.#drop(opened, `opening failed: ${describe(error)}`);
          reject(error as Error);
        },
      );
    });
  }

  async #open(expired: () => boolean, adopted: (session: Session) => void): Promise<Session> {
    const model = await this.#broker.connect(this.#socketOptions);
    const session: Session = { model, channel: undefined, consumerTag: undefined, lost: false, error: undefined };
    adopted(session);
    // Without an 'error' listener, an error event (socket reset, heartbeat timeout) would
    // crash the process; 'close' always follows it.
    model.on('error', (error: Error) => {
      session.error = error;
    });
    model.on('close', (error?: Error) => this.#onLost(session, error ?? session.error ?? new Error('connection closed')));
    if (expired()) throw new Error('the connection arrived after the deadline');
    const channel = await model.createChannel();
    session.channel = channel;
    // A channel 'error' is the broker closing the channel (e.g. PRECONDITION_FAILED);
    // 'close' follows, also when the connection goes.
    channel.on('error', (error: Error) => {
      session.error = error;
    });
    channel.on('close', () => this.#onLost(session, session.error ?? new Error('channel closed')));
    await channel.assertExchange(this.#exchange, 'direct', { durable: true });
    await this.#declareQueue(channel);
    // Per consumer in RabbitMQ (global=false): at most `prefetch` unacked deliveries.
    await channel.prefetch(this.#prefetch);
    if (expired()) throw new Error('the channel arrived after the deadline');
    this.#session = session;
    await this.#consume(session, channel);
    return session;
  }

  async #declareQueue(channel: Channel): Promise<void> {
    const options: Options.AssertQueue = { durable: true };
    if (this.#queueArguments !== undefined) options.arguments = this.#queueArguments;
    await channel.assertQueue(this.queue, options);
    await channel.bindQueue(this.queue, this.#exchange, this.queue);
  }

  async #consume(session: Session, channel: Channel): Promise<void> {
    // amqplib registers the callback before the first delivery can arrive.
    const { consumerTag } = await channel.consume(this.queue, (message) => this.#onMessage(session, channel, message), { noAck: false });
    session.consumerTag = consumerTag;
  }

  #onMessage(session: Session, channel: Channel, message: ConsumeMessage | null): void {
    if (message === null) {
      // The broker cancelled the consumer (queue deleted, leader moved): the channel lives on.
      session.consumerTag = undefined;
      if (this.#state !== 'running' || session.lost || this.#session !== session) return;
      this.#logger.warn({ queue: this.queue }, 'RabbitMQ cancelled the consumer; declaring the queue and consuming again');
      void this.#reconsume(session, channel);
      return;
    }
    // After cancel(): leave it unacked; the broker requeues it when the channel closes.
    if (this.#state !== 'running') return;
    const settlement = this.#settlement(session, channel, message);
    const delivery = parseAmqpDelivery(this.topic, message, this.group);
    if ('invalid' in delivery) {
      this.#logger.error(
        { queue: this.queue, messageId: message.properties.messageId as unknown, deliveryTag: message.fields.deliveryTag },
        `rejected a RabbitMQ delivery because ${delivery.invalid}`,
      );
      settlement.reject();
      return;
    }
    try {
      this.#onDelivery(delivery, settlement);
    } catch (error) {
      // The listener must not throw; if it does, amqplib would take the connection down.
      this.#logger.error({ err: error, id: delivery.id }, 'the delivery listener threw; the delivery is left to RMS to redeliver');
      settlement.reject();
    }
  }

  async #reconsume(session: Session, channel: Channel): Promise<void> {
    try {
      await this.#declareQueue(channel);
      if (this.#state !== 'running' || session.lost) return;
      await this.#consume(session, channel);
    } catch (error) {
      this.#drop(session, `consuming again after a cancel failed: ${describe(error)}`);
    }
  }

  /** Ack and reject handles bound to the channel that delivered; each acts once, and not at all on a dead channel. */
  #settlement(session: Session, channel: Channel, message: ConsumeMessage): DeliverySettlement {
    let settled = false;
    const settle = (how: 'ack' | 'reject'): void => {
      if (settled) return;
      settled = true;
      if (session.lost) return; // the broker has requeued it already
      try {
        corkForThisTurn(session.model);
        if (how === 'ack') channel.ack(message);
        else channel.nack(message, false, false);
      } catch (error) {
        // IllegalOperationError: the channel is closing; same as dead.
        this.#logger.debug?.({ err: error, deliveryTag: message.fields.deliveryTag }, `could not ${how} a delivery on a closing channel`);
      }
    };
    return { ack: () => settle('ack'), reject: () => settle('reject') };
  }

  /** A connection or channel went away: forget it, and reconnect unless stopping. */
  #onLost(session: Session, error: Error): void {
    if (session.lost) return;
    session.lost = true;
    session.consumerTag = undefined;
    // The channel may have died on a live connection: drop the connection too, one session each.
    destroyConnection(session.model, 'the consuming channel closed');
    if (this.#session !== session) return; // still opening: the attempt reports it
    this.#session = undefined;
    if (this.#state !== 'running') return;
    this.#interrupted = true;
    const delayMs = this.#backoff();
    this.#logger.warn({ err: error, queue: this.queue, retryInMs: delayMs }, 'lost the RabbitMQ consumer; reconnecting');
    this.#scheduleReconnect(delayMs);
  }

  /** Drops a session on purpose, which then counts as lost. */
  #drop(session: Session, reason: string): void {
    if (session.lost) return;
    this.#onLost(session, new Error(reason));
  }
}
