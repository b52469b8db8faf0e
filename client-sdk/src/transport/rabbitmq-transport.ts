/**
 * The RabbitMQ adapter of the `Transport` port (design section 6): a durable direct
 * exchange `rms`, one durable queue per topic and consumer group (`rms.<topic>.<group>`,
 * or `rms.<topic>` for the default group; see `groupQueueName`) bound under its own name,
 * persistent messages, and publisher confirms. A delivery to several groups is one publish
 * routed to the first group's queue and blind-copied (`BCC`) to the others' by the broker. A publish resolves only on the
 * broker's ack, and every other outcome is a `TransportError` within a bounded time, so
 * the failover detector (design section 7) can count failures instead of waiting on them.
 *
 * Why not amqplib's built-in recovery (`connect(url, { recovery })`): it re-opens the
 * connection, but the confirm channel, its confirm mode and the declared topology must be
 * rebuilt by us anyway, and while it retries in the background a publish has nothing to
 * fail on. Connecting on demand instead gives each publish one bounded outcome (a confirm,
 * or a `TransportError` within `connectTimeoutMs` / `confirmTimeoutMs`) that the failover
 * detector can count, and keeps a broker outage from turning into a pile of waiting
 * publishes.
 */
import amqp, { type ChannelModel, type ConfirmChannel, type Options } from 'amqplib';
import { TransportError, type TransportErrorCode } from './errors.js';
import type { OutgoingMessage, Transport } from './transport.js';
import { queueArgumentsFor, type QueueType } from './queue-type.js';
import { BrokerEndpoints, brokerUrls, closeConnection, corkForThisTurn, describe, destroyConnection, noop } from './amqp-connection.js';
import { DEFAULT_GROUP, DEFAULT_QUEUE_PREFIX, deliveryGroups, groupQueueName } from './group-routing.js';

/** Where the transport reports what happened to its connection; a pino logger fits. */
export interface RabbitMqTransportLogger {
  info(obj: Record<string, unknown>, msg: string): void;
  warn(obj: Record<string, unknown>, msg: string): void;
  error(obj: Record<string, unknown>, msg: string): void;
}

/** How a {@link RabbitMqTransport} connects and publishes. */
export interface RabbitMqTransportOptions {
  /**
   * The broker, as an AMQP URL, or the nodes of a cluster (a comma-separated list or an
   * array), tried in turn from the one that worked last. A `heartbeat` query parameter in
   * a URL wins over {@link RabbitMqTransportOptions.heartbeatSeconds}.
   * @example `'amqp://guest:guest@127.0.0.1:5672'`
   * @example `'amqp://u:p@rabbit-1:5672,amqp://u:p@rabbit-2:5672,amqp://u:p@rabbit-3:5672'`
   */
  url: string | readonly string[];
  /**
   * The durable direct exchange every delivery is published to.
   * @defaultValue `'rms'`
   */
  exchange?: string;
  /**
   * Prefix of the queue names (`<queuePrefix><topic>.<group>`): two RMS deployments sharing
   * a broker stay apart with different prefixes.
   * @defaultValue `'rms.'`
   */
  queuePrefix?: string;
  /**
   * Arguments passed when the transport declares a topic's queue. Only for queues with
   * limits, e.g. a length limit that rejects publishes
   * (`{ 'x-max-length': 1000, 'x-overflow': 'reject-publish' }`); they must match how the
   * queue was declared elsewhere, or the broker refuses the declaration and the publish
   * fails with `CHANNEL_CLOSED`.
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
   * How long a publish may wait for the broker's confirm (counted from the moment it has a
   * channel, so it also bounds declaring the queue and waiting for `'drain'`). When it
   * passes, the publish fails with `CONFIRM_TIMEOUT` and the connection is dropped, because
   * a stalled connection does not recover by itself.
   * @defaultValue `5000`
   */
  confirmTimeoutMs?: number;
  /**
   * Hard limit on opening a connection: TCP connect, AMQP handshake, opening the confirm
   * channel and declaring the exchange. A connection that arrives later is closed.
   * @defaultValue `5000`
   */
  connectTimeoutMs?: number;
  /**
   * AMQP heartbeat asked of the broker, in seconds; a connection silent for about two
   * intervals is declared dead. `0` disables heartbeats.
   * @defaultValue `10`
   */
  heartbeatSeconds?: number;
  /**
   * Least time between connection attempts after a failure (a failed attempt, or the loss
   * of a connection opened less than this long ago). Publishes in that window fail at once
   * with `UNAVAILABLE` instead of hammering a broker that is down.
   * @defaultValue `500`
   */
  reconnectDelayMs?: number;
  /**
   * Receives one line per event of the connection (lost, reconnected, blocked, ...), never
   * one per message.
   * @defaultValue a logger that drops everything
   */
  logger?: RabbitMqTransportLogger;
  /**
   * Name shown for the connection in the RabbitMQ management UI (`connection_name`).
   * @defaultValue none
   */
  connectionName?: string;
}

/** Defaults of every optional {@link RabbitMqTransportOptions} field that has one. */
const DEFAULTS = {
  exchange: 'rms',
  queuePrefix: DEFAULT_QUEUE_PREFIX,
  confirmTimeoutMs: 5000,
  connectTimeoutMs: 5000,
  heartbeatSeconds: 10,
  reconnectDelayMs: 500,
} as const;

/**
 * The queue of a topic's default group (see `groupQueueName` for the other groups').
 * @param prefix - the queue prefix. @defaultValue `'rms.'`
 * @returns `<prefix><topic>`, e.g. `rms.orders.paid`.
 */
export function rabbitMqQueueName(topic: string, prefix: string = DEFAULTS.queuePrefix): string {
  return groupQueueName(topic, DEFAULT_GROUP, prefix);
}

const TRANSPORT = 'rabbitmq';

/** The routing key of probes: no queue is ever bound to it. */
const PROBE_ROUTING_KEY = '__rms.probe__';

const SILENT_LOGGER: RabbitMqTransportLogger = { info: noop, warn: noop, error: noop };

function transportError(code: TransportErrorCode, message: string, cause?: unknown): TransportError {
  return new TransportError(TRANSPORT, code, message, cause === undefined ? undefined : { cause });
}


/** One AMQP connection and what the transport knows about it. */
interface Link {
  readonly model: ChannelModel;
  readonly openedAt: number;
  /** The broker has blocked publishing (resource alarm) until 'unblocked'. */
  blocked: boolean;
  /** 'close' has fired. */
  dead: boolean;
  /** We closed or dropped it on purpose: its 'close' is not news. */
  discarded: boolean;
  /** The last 'error' it reported: the cause of a loss. */
  error: Error | undefined;
}

/** The confirm channel on a link, with its per-channel caches. */
interface ChannelState {
  readonly link: Link;
  readonly confirm: ConfirmChannel;
  /** Queues declared and bound on this channel (or being so). */
  readonly declared: Map<string, Promise<void>>;
  /** Publishes that hold this channel: declaring, waiting for drain, or for a confirm. */
  readonly pending: Set<PendingPublish>;
  closed: boolean;
  error: Error | undefined;
  /** Set while `publish` has returned false; resolves on 'drain' or close. */
  drained: Promise<void> | undefined;
  releaseDrain: () => void;
}

/** One publish until it settles; settles once, whoever gets there first. */
class PendingPublish {
  settled = false;
  channel: ChannelState | undefined;
  timer: NodeJS.Timeout | undefined;

  constructor(private readonly done: (error?: Error) => void) {}

  settle(error?: Error): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.timer);
    this.channel?.pending.delete(this);
    this.done(error);
  }
}

/**
 * Publishes deliveries to RabbitMQ with publisher confirms. One connection and one confirm
 * channel, opened on the first publish or ping and again on demand after a loss; no
 * background reconnect loop.
 *
 * @example
 * ```ts
 * const transport = new RabbitMqTransport({ url: 'amqp://guest:guest@127.0.0.1:5672', logger });
 * await transport.publish({ id, topic: 'orders.paid', payload, headers: {}, attempt: 1, producer: 'orders' });
 * await transport.close();
 * ```
 */
export class RabbitMqTransport implements Transport {
  readonly name = TRANSPORT;

  readonly #broker: BrokerEndpoints;
  readonly #exchange: string;
  readonly #queuePrefix: string;
  readonly #queueArguments: Record<string, unknown> | undefined;
  readonly #confirmTimeoutMs: number;
  readonly #connectTimeoutMs: number;
  readonly #reconnectDelayMs: number;
  readonly #logger: RabbitMqTransportLogger;
  readonly #socketOptions: { timeout: number; noDelay: boolean; clientProperties: Record<string, unknown> };

  #link: Link | undefined;
  #channel: ChannelState | undefined;
  /** The open attempt every caller shares while it runs. */
  #opening: Promise<ChannelState> | undefined;
  /** No new connection attempt before this time (back-off after a failure). */
  #nextAttemptAt = 0;
  #lastFailure: unknown;
  #failedAttempts = 0;
  /** A connection was lost or could not be opened since the last good one: say when it is back. */
  #interrupted = false;
  #lastChannelError: { message: string; at: number } | undefined;
  /** Every publish not yet settled, so close() can reject them all. */
  readonly #inFlight = new Set<PendingPublish>();
  #closed = false;
  #closing: Promise<void> | undefined;

  constructor(options: RabbitMqTransportOptions) {
    const heartbeatSeconds = options.heartbeatSeconds ?? DEFAULTS.heartbeatSeconds;
    this.#broker = new BrokerEndpoints(brokerUrls(options.url, heartbeatSeconds));
    this.#exchange = options.exchange ?? DEFAULTS.exchange;
    this.#queuePrefix = options.queuePrefix ?? DEFAULTS.queuePrefix;
    this.#queueArguments = queueArgumentsFor(options.queueType, options.queueArguments);
    this.#confirmTimeoutMs = options.confirmTimeoutMs ?? DEFAULTS.confirmTimeoutMs;
    this.#connectTimeoutMs = options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs;
    this.#reconnectDelayMs = options.reconnectDelayMs ?? DEFAULTS.reconnectDelayMs;
    this.#logger = options.logger ?? SILENT_LOGGER;
    this.#socketOptions = {
      // amqplib's socket inactivity timeout during the handshake: it frees the socket of a
      // stalled attempt that our own deadline has already given up on.
      timeout: this.#connectTimeoutMs,
      noDelay: true,
      clientProperties: options.connectionName === undefined ? {} : { connection_name: options.connectionName },
    };
  }

  /**
   * Publishes one delivery and resolves on the broker's confirm. Rejects with a
   * `TransportError`: `NACKED`, `CHANNEL_CLOSED`, `CONFIRM_TIMEOUT`, `BLOCKED`,
   * `UNAVAILABLE` or `CLOSED`, with the underlying error as `cause`.
   */
  async publish(message: OutgoingMessage): Promise<'rabbitmq'> {
    const queues = deliveryGroups(message.groups).map((group) => groupQueueName(message.topic, group, this.#queuePrefix));
    await this.#publish(queues, message);
    return 'rabbitmq';
  }

  /**
   * Publishes a probe to the exchange with a routing key no queue is bound to and waits for
   * the confirm: proof that the broker accepts publishes again, without leaving anything in
   * a queue (an unroutable message is confirmed and dropped).
   */
  async probe(): Promise<void> {
    const probe: OutgoingMessage = { id: `probe-${Date.now()}`, topic: PROBE_ROUTING_KEY, payload: null, headers: {}, attempt: 0, producer: 'rms-probe' };
    await this.#publish([PROBE_ROUTING_KEY], probe, false);
  }

  /**
   * Publishes once, routed to `queues[0]` and blind-copied to the other queues; with
   * `declareQueues`, each queue is declared and bound (under its own name) first.
   */
  #publish(queues: readonly string[], message: OutgoingMessage, declareQueues = true): Promise<void> {
    if (this.#closed) return Promise.reject(transportError('CLOSED', 'the RabbitMQ transport is closed'));
    let content: Buffer;
    try {
      content = Buffer.from(JSON.stringify(message.payload ?? null));
    } catch (error) {
      return Promise.reject(error as Error); // not serialisable: the caller's bug, not the broker's
    }
    const options: Options.Publish = {
      persistent: true,
      messageId: message.id,
      contentType: 'application/json',
      timestamp: Math.floor(Date.now() / 1000), // AMQP timestamps are in seconds
      headers: {
        ...message.headers,
        'x-rms-topic': message.topic,
        'x-rms-attempt': message.attempt,
        'x-rms-producer': message.producer,
        ...(message.messageId !== undefined && { 'x-rms-message-id': message.messageId }),
      },
      ...(queues.length > 1 && { BCC: queues.slice(1) }),
    };
    return new Promise<void>((resolve, reject) => {
      const pending = new PendingPublish((error) => {
        this.#inFlight.delete(pending);
        if (error === undefined) resolve();
        else reject(error);
      });
      this.#inFlight.add(pending);
      this.#send(pending, queues, content, options, declareQueues).catch((error: unknown) => pending.settle(error as Error));
    });
  }

  /** Resolves when a confirm channel is open (connecting if needed); rejects with a `TransportError` otherwise. */
  async ping(): Promise<void> {
    const channel = await this.#ensureChannel();
    if (channel.link.blocked) throw transportError('BLOCKED', 'the broker has blocked this connection (resource alarm)');
  }

  /** Rejects publishes in flight with `CLOSED` and closes the channel and connection. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#shutDown();
    return this.#closing;
  }

  async #shutDown(): Promise<void> {
    this.#closed = true;
    const closedError = transportError('CLOSED', 'the RabbitMQ transport was closed before the broker confirmed');
    for (const pending of [...this.#inFlight]) pending.settle(closedError);
    // An attempt still running discards its connection when it lands (it sees #closed).
    await this.#opening?.catch(noop);
    const link = this.#link;
    this.#link = undefined;
    this.#channel = undefined;
    if (link !== undefined && !link.dead) {
      link.discarded = true;
      // Closing the connection closes its channel; a blocked one is closed at once by amqplib.
      await closeConnection(link.model, this.#connectTimeoutMs);
    }
  }

  async #send(pending: PendingPublish, queues: readonly string[], content: Buffer, options: Options.Publish, declareQueues: boolean): Promise<void> {
    let channel: ChannelState;
    try {
      channel = await this.#ensureChannel();
    } catch (error) {
      pending.settle(error as Error);
      return;
    }
    if (pending.settled) return; // closed meanwhile
    if (channel.closed) {
      pending.settle(this.#channelClosedError(channel));
      return;
    }
    if (channel.link.blocked) {
      pending.settle(transportError('BLOCKED', 'the broker has blocked this connection (resource alarm)'));
      return;
    }
    pending.channel = channel;
    channel.pending.add(pending);
    pending.timer = setTimeout(() => this.#onConfirmTimeout(pending, channel), this.#confirmTimeoutMs);

    try {
      // The exchange is declared when the channel opens; probes need nothing more.
      if (declareQueues) await Promise.all(queues.map((queue) => this.#declare(channel, queue)));
    } catch (error) {
      pending.settle(transportError('CHANNEL_CLOSED', `declaring the queues ${queues.join(', ')} failed: ${describe(error)}`, error));
      return;
    }
    // Back-pressure: once the channel's buffer is full, wait for 'drain' (bounded by the
    // confirm timer); those woken earlier may fill it again, hence the loop.
    while (channel.drained !== undefined && !pending.settled) await channel.drained;
    if (pending.settled) return;
    if (channel.link.blocked) {
      pending.settle(transportError('BLOCKED', 'the broker has blocked this connection (resource alarm)'));
      return;
    }
    try {
      corkForThisTurn(channel.link.model);
      const flowing = channel.confirm.publish(this.#exchange, queues[0] ?? PROBE_ROUTING_KEY, content, options, (error: unknown) => {
        if (error === null || error === undefined) pending.settle();
        else if (/nack/i.test(describe(error))) pending.settle(transportError('NACKED', `the broker refused the message (nack)`, error));
        else pending.settle(this.#channelClosedError(channel, error));
      });
      if (!flowing && channel.drained === undefined) {
        channel.drained = new Promise<void>((resolve) => {
          channel.releaseDrain = resolve;
        });
      }
    } catch (error) {
      // IllegalOperationError: the channel or connection is closing. Anything else is a
      // message amqplib cannot encode (e.g. headers over 64 KiB); it is no broker failure, so
      // it keeps its own error.
      pending.settle(error instanceof amqp.IllegalOperationError ? this.#channelClosedError(channel, error) : (error as Error));
    }
  }

  /** Declares a queue and binds it under its own name, once per channel; concurrent first publishes share it. */
  #declare(channel: ChannelState, queue: string): Promise<void> {
    let declared = channel.declared.get(queue);
    if (declared === undefined) {
      const assertOptions: Options.AssertQueue = { durable: true };
      if (this.#queueArguments !== undefined) assertOptions.arguments = this.#queueArguments;
      const declaring = (async () => {
        await channel.confirm.assertQueue(queue, assertOptions);
        await channel.confirm.bindQueue(queue, this.#exchange, queue);
      })();
      declared = declaring;
      channel.declared.set(queue, declaring);
      declaring.catch(() => {
        if (channel.declared.get(queue) === declaring) channel.declared.delete(queue);
      });
    }
    return declared;
  }

  #onConfirmTimeout(pending: PendingPublish, channel: ChannelState): void {
    pending.settle(transportError('CONFIRM_TIMEOUT', `the broker did not confirm within ${this.#confirmTimeoutMs} ms`));
    this.#discardLink(channel.link, `no confirm within ${this.#confirmTimeoutMs} ms`);
  }

  /** The open channel, or one being opened, or a new one; rejects with a `TransportError`. */
  #ensureChannel(): Promise<ChannelState> {
    if (this.#closed) return Promise.reject(transportError('CLOSED', 'the RabbitMQ transport is closed'));
    const current = this.#channel;
    if (current !== undefined && !current.closed && !current.link.dead) return Promise.resolve(current);
    if (this.#opening !== undefined) return this.#opening;
    const link = this.#link;
    const needsConnection = link === undefined || link.dead;
    if (needsConnection && Date.now() < this.#nextAttemptAt) {
      return Promise.reject(
        transportError(
          'UNAVAILABLE',
          `RabbitMQ is unavailable (${describe(this.#lastFailure)}); next connection attempt in ${this.#nextAttemptAt - Date.now()} ms`,
          this.#lastFailure,
        ),
      );
    }
    const opening = this.#openWithin(this.#connectTimeoutMs).then(
      (channel) => {
        this.#opening = undefined;
        if (needsConnection && this.#interrupted) {
          this.#logger.info({ failedAttempts: this.#failedAttempts }, 'connected to RabbitMQ again');
        }
        this.#interrupted = false;
        this.#failedAttempts = 0;
        return channel;
      },
      (error: unknown) => {
        this.#opening = undefined;
        if (this.#closed) throw transportError('CLOSED', 'the RabbitMQ transport is closed', error);
        this.#lastFailure = error;
        this.#interrupted = true;
        this.#nextAttemptAt = Math.max(this.#nextAttemptAt, Date.now() + this.#reconnectDelayMs);
        if (this.#failedAttempts === 0) {
          this.#logger.warn({ err: error, retryInMs: this.#reconnectDelayMs }, 'cannot connect to RabbitMQ; publishes fail until it is back');
        }
        this.#failedAttempts += 1;
        throw transportError('UNAVAILABLE', `cannot open a RabbitMQ channel: ${describe(error)}`, error);
      },
    );
    this.#opening = opening;
    return opening;
  }

  /**
   * Opens a connection (unless one is alive) and a confirm channel, under one deadline. On
   * the deadline the connection is dropped, since whatever stalled it will not heal by itself.
   */
  #openWithin(timeoutMs: number): Promise<ChannelState> {
    return new Promise<ChannelState>((resolve, reject) => {
      let expired = false;
      const timer = setTimeout(() => {
        expired = true;
        reject(new Error(`no connection and channel within ${timeoutMs} ms`));
        if (this.#link !== undefined) this.#discardLink(this.#link, `opening took longer than ${timeoutMs} ms`, false);
      }, timeoutMs);
      this.#open(() => expired || this.#closed).then(
        (channel) => {
          clearTimeout(timer);
          resolve(channel);
        },
        (error: unknown) => {
          clearTimeout(timer);
          reject(error);
        },
      );
    });
  }

  async #open(abandoned: () => boolean): Promise<ChannelState> {
    let link = this.#link;
    if (link === undefined || link.dead) {
      this.#nextAttemptAt = Date.now() + this.#reconnectDelayMs;
      const model = await this.#broker.connect(this.#socketOptions);
      if (abandoned()) {
        // Too late (or closed meanwhile): nobody will use it.
        model.on('error', noop);
        void closeConnection(model, this.#connectTimeoutMs);
        throw new Error('the connection arrived after the deadline and was closed');
      }
      link = this.#adopt(model);
    }
    const confirm = await link.model.createConfirmChannel();
    const channel = this.#watchChannel(link, confirm);
    await confirm.assertExchange(this.#exchange, 'direct', { durable: true });
    if (abandoned()) {
      this.#discardLink(link, 'the channel arrived after the deadline', false);
      throw new Error('the channel arrived after the deadline and was closed');
    }
    this.#channel = channel;
    return channel;
  }

  /** Makes a new connection the current one and handles every event it can emit. */
  #adopt(model: ChannelModel): Link {
    const link: Link = { model, openedAt: Date.now(), blocked: false, dead: false, discarded: false, error: undefined };
    // 'error' always precedes 'close' here; without this listener it would crash the process.
    model.on('error', (error: Error) => {
      link.error = error;
    });
    model.on('close', (error?: Error) => {
      link.dead = true;
      if (this.#link === link) this.#link = undefined;
      if (this.#channel?.link === link) this.#channel = undefined;
      if (link.discarded || this.#closed) return;
      // A connection that was lost soon after opening is not retried at once.
      this.#nextAttemptAt = Math.max(this.#nextAttemptAt, link.openedAt + this.#reconnectDelayMs);
      this.#lastFailure = error ?? link.error ?? new Error('connection closed');
      this.#interrupted = true;
      this.#logger.warn({ err: this.#lastFailure }, 'RabbitMQ connection lost; reconnecting on the next publish');
    });
    model.on('blocked', (reason: string) => {
      link.blocked = true;
      this.#logger.warn({ reason }, 'RabbitMQ blocked the connection; publishes fail with BLOCKED until it unblocks');
    });
    model.on('unblocked', () => {
      link.blocked = false;
      this.#logger.info({}, 'RabbitMQ unblocked the connection');
    });
    this.#link = link;
    return link;
  }

  #watchChannel(link: Link, confirm: ConfirmChannel): ChannelState {
    const channel: ChannelState = {
      link,
      confirm,
      declared: new Map(),
      pending: new Set(),
      closed: false,
      error: undefined,
      drained: undefined,
      releaseDrain: noop,
    };
    // A channel 'error' is the broker closing the channel (e.g. PRECONDITION_FAILED on a
    // queue declared with other arguments); 'close' follows.
    confirm.on('error', (error: Error) => {
      channel.error = error;
    });
    confirm.on('close', () => {
      channel.closed = true;
      if (this.#channel === channel) this.#channel = undefined;
      channel.drained = undefined;
      channel.releaseDrain();
      const error = this.#channelClosedError(channel);
      for (const pending of [...channel.pending]) pending.settle(error);
      // A connection loss is logged once by the connection; a channel the broker closed
      // on a live connection is a configuration problem worth its own line.
      if (channel.error !== undefined && !link.discarded && !this.#closed) this.#logChannelError(channel.error);
    });
    confirm.on('drain', () => {
      channel.drained = undefined;
      channel.releaseDrain();
    });
    return channel;
  }

  /**
   * Drops a connection on purpose: forgets it at once (the next publish opens a new one,
   * after the back-off), fails what waits on it, and destroys it without a handshake.
   */
  #discardLink(link: Link, reason: string, log = true): void {
    if (link.discarded || link.dead) return;
    link.discarded = true;
    if (this.#link === link) this.#link = undefined;
    const channel = this.#channel?.link === link ? this.#channel : undefined;
    if (channel !== undefined) this.#channel = undefined;
    this.#lastFailure = new Error(reason);
    this.#interrupted = true;
    this.#nextAttemptAt = Math.max(this.#nextAttemptAt, link.openedAt + this.#reconnectDelayMs);
    if (log) this.#logger.warn({ reason }, 'dropping the RabbitMQ connection; reconnecting on the next publish');
    if (channel !== undefined) {
      const error = transportError('CHANNEL_CLOSED', `the RabbitMQ connection was dropped (${reason}) before the broker confirmed`);
      for (const pending of [...channel.pending]) pending.settle(error);
    }
    destroyConnection(link.model, reason);
  }

  /**
   * A broker that keeps refusing the same thing (say a queue declared with other
   * arguments) closes a channel per publish; say so once a minute, not per message.
   */
  #logChannelError(error: Error): void {
    const now = Date.now();
    const last = this.#lastChannelError;
    if (last !== undefined && last.message === error.message && now - last.at < 60_000) return;
    this.#lastChannelError = { message: error.message, at: now };
    this.#logger.error({ err: error }, 'RabbitMQ closed the publishing channel; opening a new one on the next publish');
  }

  #channelClosedError(channel: ChannelState, error?: unknown): TransportError {
    const cause = channel.error ?? channel.link.error ?? error;
    const why = cause === undefined ? 'channel closed' : describe(cause);
    return transportError('CHANNEL_CLOSED', `the RabbitMQ channel closed before the broker confirmed: ${why}`, cause);
  }
}
