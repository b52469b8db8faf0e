/**
 * `subscribe`: how a downstream service consumes a topic (design sections 1, 6 and 8).
 *
 * Each delivery goes through one pipeline ({@link DeliveryProcessor}), whatever brought it
 * (RabbitMQ now; the Redis fallback lists of design section 7 feed the same pipeline):
 *
 * 1. idempotency `begin` (when configured): a message the group already finished is a
 *    duplicate (acked again to RMS, in case the first ack was lost, then to the broker);
 *    one another worker is running is acked to the broker and left to that worker;
 * 2. the handler runs, with a heartbeat to RMS pushing the ack deadline out while it does;
 * 3. on success: idempotency `complete`, a batched ack to RMS, and only then the broker ack;
 * 4. on failure: the failure is logged and reported to RMS (a nack carrying the error's
 *    message, so the message's history and `lastError` say why), idempotency `abandon`,
 *    and the broker delivery is rejected **without requeue**. RMS, not the broker, owns
 *    redelivery: it publishes the message again (at once after a nack, or after the ack
 *    deadline if the nack was lost), with `x-rms-attempt` counting up. That is
 *    why a failing handler causes no requeue storm (a requeued delivery would come straight
 *    back, again and again, as fast as the handler can fail).
 *
 * The broker ack comes last on purpose: if the process dies before it, the broker or RMS
 * delivers the message again, and idempotency turns that into a skipped duplicate.
 */
import { SpanKind, inSpan } from '../tracing/spans.js';
import type { RedisClient } from '../redis-client.js';
import { RmsHttpClient, type RmsHttpClientOptions } from '../http/rms-http-client.js';
import { type SdkLogger, stderrWarningLogger } from '../logger.js';
import type { QueueType } from '../transport/queue-type.js';
import { RabbitMqConsumer } from '../transport/rabbitmq-consumer.js';
import { DEFAULT_GROUP } from '../transport/group-routing.js';
import type { Delivery, DeliverySettlement, Handler } from './delivery.js';
import { AckBatcher } from './ack-batcher.js';
import { RedisIdempotency, type IdempotencyDecision } from './idempotency.js';
import type { DegradeSwitch } from '../degrade/degrade-switch.js';
import { FallbackConsumption } from './fallback-consumption.js';
import { RedisListSource } from './redis-list-source.js';

/** How to consume a topic. */
export interface SubscribeOptions {
  /** How to reach RMS, with the consumer app's token (role `consumer`). */
  rms: RmsHttpClientOptions;
  /**
   * The RabbitMQ broker, e.g. `'amqp://guest:guest@127.0.0.1:5672'`, or a cluster's nodes
   * (comma-separated or an array), tried in turn.
   */
  amqpUrl: string | readonly string[];
  /**
   * The kind of queue RMS declares (`RMS_QUEUE_TYPE`): give the same value as RMS, or the
   * broker refuses the consumer's declaration.
   * @defaultValue `'classic'`
   */
  queueType?: QueueType;
  /**
   * Prefix of the queue names; must match RMS's `RMS_RABBITMQ_QUEUE_PREFIX`.
   * @defaultValue `'rms.'`
   */
  queuePrefix?: string;
  /**
   * With `subscribe(topic, …)`: the scope of idempotency ("this group already handled that
   * message") while consuming the topic's shared queue (the default group's). With
   * `subscribe({ topic, group }, …)` the group is given there and this must be omitted or equal.
   * @defaultValue the group of `subscribe({ topic, group }, …)`
   */
  group?: string;
  /**
   * Deliveries handled at once: the broker's prefetch window and the limit on parallel
   * handler runs.
   * @defaultValue `16`
   */
  concurrency?: number;
  /**
   * How often a running handler tells RMS it is still working on the message (which pushes
   * the ack deadline out, so a slow handler is not redelivered under itself); `0` disables
   * heartbeats. Keep it well below the topic's ack timeout.
   * @defaultValue `30000`
   */
  heartbeatIntervalMs?: number;
  /**
   * How far each heartbeat pushes the ack deadline, from now.
   * @defaultValue RMS's ack timeout for the topic
   */
  heartbeatExtendMs?: number;
  /**
   * Longest an ack to RMS waits for others to share its `POST /v1/acks`.
   * @defaultValue `5`
   */
  ackBatchMs?: number;
  /**
   * Most acks in one `POST /v1/acks` (RMS takes at most 1000).
   * @defaultValue `100`
   */
  ackBatchSize?: number;
  /**
   * Runs the handler once per message and group, across processes, with keys
   * `rms:idem:<group>:<messageId>` in this Redis. Without it, a redelivered message runs the
   * handler again and the handler must be idempotent itself. See `RedisIdempotencyOptions`
   * for the TTLs (defaults: 24 hours for `ttlMs`, 5 minutes for `inProgressTtlMs`).
   * @defaultValue none
   */
  idempotency?: { redis: RedisClient; ttlMs?: number; inProgressTtlMs?: number };
  /**
   * How long {@link Subscription.close} waits for handlers still running before it closes
   * anyway (their messages are then redelivered by RMS).
   * @defaultValue `30000`
   */
  closeTimeoutMs?: number;
  /**
   * The MQ-outage fallback: while the degrade flag is on (or when neither ZooKeeper nor
   * RabbitMQ can be reached), also pop the topic's Redis shard lists with `workers` blocking
   * workers, through the same handler, idempotency and ack path; after the flag clears, pop
   * until the lists are empty, then stop.
   * @defaultValue none (RabbitMQ only)
   */
  fallback?: {
    degradeSwitch: DegradeSwitch;
    /**
     * The Redis holding the lists: a client (duplicated per worker), a URL, or the seed
     * nodes of a Redis Cluster (several URLs, comma-separated or an array).
     */
    redis: RedisClient | string | readonly string[];
    /** Treat a single URL in `redis` as the seed of a Redis Cluster. @defaultValue false */
    cluster?: boolean;
    /** Blocking workers. @defaultValue 2 */
    workers?: number;
    /** Shard lists per topic; must match the publishers'. @defaultValue 100 */
    shards?: number;
    /** Entries each worker pops at once (`BLMPOP … COUNT`, Redis 7; see `RedisListSourceOptions.popBatch`). @defaultValue 1 */
    popBatch?: number;
  };
  /**
   * Receives the consumer's log lines (a pino logger fits). Handler failures are logged
   * as warnings.
   * @defaultValue warnings and errors as JSON lines on stderr, nothing else
   */
  logger?: SdkLogger;
}

/** Longest failure reason sent to RMS; RMS refuses longer ones. */
export const MAX_FAILURE_REASON_LENGTH = 1000;

/**
 * What a handler's failure is reported to RMS as: the error's name and message, cut to
 * {@link MAX_FAILURE_REASON_LENGTH} characters.
 */
export function failureReason(error: unknown): string {
  const text = error instanceof Error ? `${error.name}: ${error.message}` : `thrown: ${String(error)}`;
  const reason = text.trim() === '' ? 'handler failed without a message' : text;
  return reason.length <= MAX_FAILURE_REASON_LENGTH ? reason : `${reason.slice(0, MAX_FAILURE_REASON_LENGTH - 1)}…`;
}

/**
 * How soon a handler's failure asks to be delivered again: an error with a numeric
 * `retryAfterMs` property (0 to one day) asks for that pause; any other means at once.
 */
function retryAfterOf(error: unknown): number | undefined {
  const value = (error as { retryAfterMs?: unknown } | null)?.retryAfterMs;
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 86_400_000 ? value : undefined;
}

/** What a subscription has done so far. */
export interface SubscriptionStats {
  /** Handler runs that succeeded. */
  handled: number;
  /** Deliveries that failed: the handler threw, or idempotency could not be checked (Redis down). */
  failed: number;
  /** Deliveries of messages the group had already finished: the handler was not run. */
  duplicatesSkipped: number;
  /** Deliveries of messages another worker of the group was running at the time: the handler was not run. */
  inProgressSkipped: number;
  /** Deliveries RMS confirmed as acked for the group. */
  acked: number;
  /** `POST /v1/acks` requests sent (one per batch). */
  ackRequests: number;
}

/** A running subscription. */
export interface Subscription {
  /** The topic consumed. */
  readonly topic: string;
  /** A snapshot of the counters. */
  stats(): SubscriptionStats;
  /**
   * Stops taking deliveries, waits for the handlers still running (at most
   * `closeTimeoutMs`), sends their acks, and closes the broker connection and the
   * connections to RMS. Idempotent.
   */
  close(): Promise<void>;
}

/** What a {@link DeliveryProcessor} needs. */
export interface DeliveryProcessorOptions {
  /** RMS, for heartbeats and failure reports. */
  client: Pick<RmsHttpClient, 'heartbeat' | 'nack'>;
  /** The consumer group whose delivery heartbeats extend and nacks report; none lets RMS take the app's group. */
  group?: string | undefined;
  /** Sends acks to RMS. */
  acks: Pick<AckBatcher, 'ack'>;
  /** Runs-once bookkeeping; none means every delivery runs the handler. */
  idempotency?: Pick<RedisIdempotency, 'begin' | 'complete' | 'abandon' | 'extend'> | undefined;
  /** Most handler runs at once. */
  concurrency: number;
  /** Heartbeat interval; `0` disables. */
  heartbeatIntervalMs: number;
  /** How far a heartbeat extends the ack deadline; none means RMS's topic default. */
  heartbeatExtendMs?: number | undefined;
  logger: SdkLogger;
}

/**
 * The per-delivery pipeline (see the module notes), independent of where deliveries come
 * from: every source (the RabbitMQ consumer, the Redis fallback workers) hands it a
 * {@link Delivery} with ack and reject callbacks for that source.
 */
export class DeliveryProcessor<T = unknown> {
  readonly #handler: Handler<T>;
  readonly #options: DeliveryProcessorOptions;
  readonly #stats = { handled: 0, failed: 0, duplicatesSkipped: 0, inProgressSkipped: 0, acked: 0 };
  readonly #running = new Set<Promise<void>>();
  #active = 0;
  readonly #waiting: (() => void)[] = [];

  constructor(handler: Handler<T>, options: DeliveryProcessorOptions) {
    this.#handler = handler;
    this.#options = options;
  }

  /** The counters, without `ackRequests` (the batcher's). */
  get stats(): Omit<SubscriptionStats, 'ackRequests'> {
    return { ...this.#stats };
  }

  /** Deliveries being processed (or waiting for a free slot). */
  get inFlight(): number {
    return this.#running.size;
  }

  /**
   * Processes one delivery to the end and settles it with its source through `settlement`.
   * Never rejects: every failure is logged, counted and turned into `reject()`.
   */
  process(delivery: Delivery, settlement: DeliverySettlement): Promise<void> {
    const processing = this.#withSlot(() => this.#process(delivery as Delivery<T>, settlement)).catch((error: unknown) => {
      this.#options.logger.error({ err: error, id: delivery.id }, 'processing a delivery failed unexpectedly; RMS will redeliver it');
      settlement.reject();
    });
    this.#running.add(processing);
    void processing.finally(() => this.#running.delete(processing));
    return processing;
  }

  /** Resolves `true` once nothing is in flight, or `false` when `timeoutMs` passes first. */
  async idle(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.#running.size > 0) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, left);
      });
      await Promise.race([Promise.all([...this.#running]), timedOut]);
      clearTimeout(timer);
    }
    return true;
  }

  async #withSlot(work: () => Promise<void>): Promise<void> {
    if (this.#active >= this.#options.concurrency) await new Promise<void>((resolve) => this.#waiting.push(resolve));
    this.#active += 1;
    try {
      await work();
    } finally {
      this.#active -= 1;
      this.#waiting.shift()?.();
    }
  }

  async #process(delivery: Delivery<T>, settlement: DeliverySettlement): Promise<void> {
    const { logger, idempotency } = this.#options;
    const { id } = delivery;
    let decision: IdempotencyDecision = 'run';
    if (idempotency !== undefined) {
      try {
        decision = await idempotency.begin(id);
      } catch (error) {
        // Fail closed (see idempotency.ts): not knowing whether it ran, do not run it now.
        this.#stats.failed += 1;
        logger.error({ err: error, id, attempt: delivery.attempt }, 'idempotency check failed; rejecting the delivery, RMS will redeliver it');
        settlement.reject();
        return;
      }
    }
    if (decision === 'in-progress') {
      // The worker running it acks RMS; if it fails, RMS redelivers. This copy is not needed.
      this.#stats.inProgressSkipped += 1;
      logger.debug?.({ id, attempt: delivery.attempt }, 'message is being handled by another worker; skipping this delivery');
      settlement.ack();
      return;
    }
    if (decision === 'duplicate') {
      // An earlier run finished it, but its ack to RMS may have been lost: ack again.
      this.#stats.duplicatesSkipped += 1;
      logger.debug?.({ id, attempt: delivery.attempt }, 'message was already handled; acking the duplicate');
      await this.#ackToRms(delivery, settlement);
      return;
    }

    const stopHeartbeat = this.#startHeartbeat(id);
    try {
      await inSpan(
        {
          name: 'rms.consume',
          kind: SpanKind.CONSUMER,
          parent: delivery.trace,
          attributes: { 'messaging.system': 'rms', 'messaging.destination.name': delivery.topic, 'messaging.message.id': id, 'rms.group': delivery.group, 'rms.attempt': delivery.attempt, 'rms.transport': delivery.transport },
        },
        () => this.#handler(delivery),
      );
    } catch (error) {
      stopHeartbeat();
      this.#stats.failed += 1;
      logger.warn({ err: error, id, topic: delivery.topic, attempt: delivery.attempt }, 'handler failed; reporting it to RMS, which will redeliver the message');
      await this.#reportFailure(delivery, error);
      if (idempotency !== undefined) {
        try {
          await idempotency.abandon(id);
        } catch (abandonError) {
          logger.warn({ err: abandonError, id }, 'could not release the idempotency claim; it expires by itself');
        }
      }
      settlement.reject();
      return;
    }
    stopHeartbeat();
    this.#stats.handled += 1;
    if (idempotency !== undefined) {
      try {
        await idempotency.complete(id);
      } catch (error) {
        // The work is done; acking it is still right. Until the claim expires a redelivery
        // is skipped as in-progress; only after that could it run again.
        logger.warn({ err: error, id }, 'could not record the message as handled in Redis; acking it anyway');
      }
    }
    await this.#ackToRms(delivery, settlement);
  }

  /** Tells RMS why the handler failed (a nack); if that fails too, RMS redelivers after the ack deadline anyway. */
  async #reportFailure(delivery: Delivery<T>, error: unknown): Promise<void> {
    try {
      const retryAfterMs = retryAfterOf(error);
      const { group } = this.#options;
      await this.#options.client.nack(delivery.id, failureReason(error), {
        attempt: delivery.attempt,
        ...(retryAfterMs !== undefined && { retryAfterMs }),
        ...(group !== undefined && { group }),
      });
    } catch (nackError) {
      this.#options.logger.warn({ err: nackError, id: delivery.id }, 'could not report the failure to RMS; it redelivers after the ack deadline');
    }
  }

  /** Acks to RMS, then to the source; a failed RMS ack rejects the delivery (RMS redelivers, idempotency absorbs it). */
  async #ackToRms(delivery: Delivery<T>, settlement: DeliverySettlement): Promise<void> {
    const outcome = await this.#options.acks.ack(delivery.id);
    if (outcome.acked) {
      this.#stats.acked += 1;
      settlement.ack();
      return;
    }
    this.#options.logger.warn({ id: delivery.id, code: outcome.code, reason: outcome.reason }, 'RMS did not take the ack; rejecting the delivery');
    settlement.reject();
  }

  /** Heartbeats every interval while the handler runs (never two at once); failures are only logged. */
  #startHeartbeat(id: string): () => void {
    const { heartbeatIntervalMs, heartbeatExtendMs, client, idempotency, logger, group } = this.#options;
    if (heartbeatIntervalMs <= 0) return () => undefined;
    let beating = false;
    const timer = setInterval(() => {
      if (beating) return;
      beating = true;
      const beats: Promise<unknown>[] = [
        client.heartbeat(id, heartbeatExtendMs, group).catch((error: unknown) => logger.warn({ err: error, id }, 'heartbeat to RMS failed')),
      ];
      if (idempotency !== undefined) {
        beats.push(idempotency.extend(id).catch((error: unknown) => logger.warn({ err: error, id }, 'extending the idempotency claim failed')));
      }
      void Promise.all(beats).finally(() => {
        beating = false;
      });
    }, heartbeatIntervalMs);
    return () => clearInterval(timer);
  }
}

/** Defaults of the optional {@link SubscribeOptions} fields that have one. */
const DEFAULTS = { concurrency: 16, heartbeatIntervalMs: 30_000, closeTimeoutMs: 30_000 } as const;

/** What to consume: a topic in a consumer group (declared in RMS's app registry). */
export interface SubscriptionTarget {
  topic: string;
  /** The consumer group: its queue `rms.<topic>.<group>` is consumed and its delivery acked. */
  group: string;
}

/**
 * Consumes a topic: with `{ topic, group }`, the group's own queue, acking the group's
 * delivery (every group subscribed to a topic gets every message); with a topic name alone,
 * the topic's shared queue `rms.<topic>` of the default group (the layout before consumer
 * groups, for topics no app subscribes to). Each message is handed to `handler`, acked to RMS when it resolves, and
 * left to RMS's redelivery when it throws (the broker delivery is rejected without requeue,
 * so a failing message comes back only after its ack deadline, with the next
 * `x-rms-attempt`, not in a tight loop).
 *
 * Resolves once the first attempt to consume has finished; if RabbitMQ is down then, the
 * subscription keeps retrying in the background (and logs it).
 *
 * @example
 * ```ts
 * const subscription = await subscribe<{ sku: string; qty: number }>({ topic: 'stock.reduce', group: 'inventory' }, async ({ payload }) => {
 *   await stock.reduce(payload.sku, payload.qty);
 * }, { rms: { url, token }, amqpUrl, idempotency: { redis } });
 * // on shutdown:
 * await subscription.close();
 * ```
 */
export async function subscribe<T = unknown>(target: string | SubscriptionTarget, handler: Handler<T>, options: SubscribeOptions): Promise<Subscription> {
  const topic = typeof target === 'string' ? target : target.topic;
  // The group whose deliveries are consumed and acked; none: the topic's shared queue.
  const ownGroup = typeof target === 'string' ? undefined : target.group;
  if (ownGroup !== undefined && options.group !== undefined && options.group !== ownGroup) {
    throw new TypeError(`options.group (${options.group}) differs from the subscribed group (${ownGroup})`);
  }
  const idempotencyGroup = ownGroup ?? options.group;
  if (idempotencyGroup === undefined) throw new TypeError('name the consumer group: subscribe({ topic, group }, …)');
  const concurrency = options.concurrency ?? DEFAULTS.concurrency;
  const heartbeatIntervalMs = options.heartbeatIntervalMs ?? DEFAULTS.heartbeatIntervalMs;
  const closeTimeoutMs = options.closeTimeoutMs ?? DEFAULTS.closeTimeoutMs;
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 65_535) {
    throw new RangeError(`concurrency must be a whole number from 1 to 65535, got ${concurrency}`);
  }
  if (!Number.isFinite(heartbeatIntervalMs) || heartbeatIntervalMs < 0) throw new RangeError(`heartbeatIntervalMs must be at least 0, got ${heartbeatIntervalMs}`);
  if (!Number.isFinite(closeTimeoutMs) || closeTimeoutMs < 0) throw new RangeError(`closeTimeoutMs must be at least 0, got ${closeTimeoutMs}`);
  const logger = options.logger ?? stderrWarningLogger;
  const client = new RmsHttpClient(options.rms);
  const acks = new AckBatcher({
    client,
    logger,
    ...(ownGroup !== undefined && { group: ownGroup }),
    ...(options.ackBatchMs !== undefined && { batchMs: options.ackBatchMs }),
    ...(options.ackBatchSize !== undefined && { batchSize: options.ackBatchSize }),
  });
  const idempotency =
    options.idempotency === undefined
      ? undefined
      : new RedisIdempotency({
          redis: options.idempotency.redis,
          group: idempotencyGroup,
          ...(options.idempotency.ttlMs !== undefined && { ttlMs: options.idempotency.ttlMs }),
          ...(options.idempotency.inProgressTtlMs !== undefined && { inProgressTtlMs: options.idempotency.inProgressTtlMs }),
        });
  const processor = new DeliveryProcessor<T>(handler, {
    client,
    acks,
    idempotency,
    concurrency,
    heartbeatIntervalMs,
    heartbeatExtendMs: options.heartbeatExtendMs,
    group: ownGroup,
    logger,
  });
  const consumer = new RabbitMqConsumer({ url: options.amqpUrl, topic, group: ownGroup ?? DEFAULT_GROUP, prefetch: concurrency, logger, ...(options.queuePrefix !== undefined && { queuePrefix: options.queuePrefix }), ...(options.queueType && { queueType: options.queueType }) }, (delivery, settlement) => {
    void processor.process(delivery, settlement);
  });
  await consumer.start();
  const fallbackOptions = options.fallback;
  const fallback =
    fallbackOptions &&
    new FallbackConsumption({
      topic,
      degradeSwitch: fallbackOptions.degradeSwitch,
      amqpConsuming: () => consumer.consuming,
      logger,
      createSource: () =>
        new RedisListSource(
          {
            topic,
            group: ownGroup ?? DEFAULT_GROUP,
            ...(typeof fallbackOptions.redis === 'string' || Array.isArray(fallbackOptions.redis)
              ? { url: fallbackOptions.redis as string | readonly string[], ...(fallbackOptions.cluster && { cluster: true }) }
              : { redis: fallbackOptions.redis as RedisClient }),
            ...(fallbackOptions.workers !== undefined && { workers: fallbackOptions.workers }),
            ...(fallbackOptions.shards !== undefined && { shards: fallbackOptions.shards }),
            ...(fallbackOptions.popBatch !== undefined && { popBatch: fallbackOptions.popBatch }),
            logger,
          },
          (delivery, settlement) => processor.process(delivery, settlement),
        ),
    });
  fallback?.start();

  let closing: Promise<void> | undefined;
  return {
    topic,
    stats: () => ({ ...processor.stats, ackRequests: acks.requests }),
    close() {
      closing ??= (async () => {
        await consumer.cancel();
        await fallback?.close();
        acks.expedite();
        if (!(await processor.idle(closeTimeoutMs))) {
          logger.warn({ topic, stillRunning: processor.inFlight }, `handlers still running after ${closeTimeoutMs} ms; closing anyway, RMS will redeliver their messages`);
        }
        await acks.flush();
        await consumer.close();
        await client.close();
      })();
      return closing;
    },
  };
}
