/**
 * The Redis adapter of the `Transport` port: the MQ-outage fallback of design section 7.
 * A publish is one `LPUSH` of the message's JSON envelope to its shard list
 * `rms:fb:<topic>:<NN>` (see `fallback-keys.ts`), or for a consumer group's delivery
 * `rms:fb:<topic>:<group>:<NN>` (one list set per group, hashed by message id alike); consumers `BRPOP`, so each shard list is
 * first in, first out.
 *
 * A publish never hangs. This matters more here than anywhere: the fallback is used
 * exactly when something is already broken, and a publisher stuck on Redis would stop the
 * failover detector from counting. What ioredis does by default works against that:
 * - with `enableOfflineQueue` (default `true`) a command sent while disconnected waits in
 *   the offline queue until the connection is back, with no time limit;
 * - with `maxRetriesPerRequest` (default 20) a command whose connection dropped is kept
 *   and re-sent across up to 20 reconnection attempts before it fails;
 * - `commandTimeout` is off by default, and a connection whose peer went silent (a stall,
 *   a partition) is not noticed without `socketTimeout` or TCP keep-alive.
 *
 * So a client this transport creates is configured to fail instead (no offline queue, no
 * retries per request, no re-sending of unanswered commands, `commandTimeout` and
 * `socketTimeout` at `commandTimeoutMs`), and every call, also on a client the caller
 * passed in, is additionally raced against `commandTimeoutMs` here. A caller's client
 * configured with ioredis's defaults still queues an `LPUSH` that timed out here, and sends
 * it when it reconnects: the message then arrives although `publish` failed. That is a
 * duplicate, which at-least-once delivery allows (consumers are idempotent), never a loss;
 * pass a client with `enableOfflineQueue: false` to avoid it.
 *
 * The same is true of an `LPUSH` whose reply was lost with its connection, or that timed
 * out on a stalled connection: Redis may have executed it. `publish` reports the failure,
 * the caller retries (on Redis or RabbitMQ), and the consumer sees a duplicate.
 *
 * On a Redis Cluster (or a primary with replicas) replication is asynchronous: a master
 * that dies right after answering an `LPUSH` can take the entry with it. With
 * `waitReplicas` set, a publish also sends `WAIT` on the same node and succeeds only once
 * that many replicas have the entry, so a failover loses nothing a publish reported as done.
 */
import type { RedisClient, RedisConnectionOptions } from '../redis-client.js';
import { createRedisClient, isCluster, redisEndpoint, type FallbackRedis } from './redis-connection.js';
import { type SdkLogger, silentLogger } from '../logger.js';
import { TransportError, type TransportErrorCode } from './errors.js';
import { DEFAULT_FALLBACK_SHARDS, encodeEnvelope, fallbackKey, fallbackShardOf } from './fallback-keys.js';
import { deliveryGroups, fallbackStreamName } from './group-routing.js';
import type { OutgoingMessage, Transport } from './transport.js';

/** How a {@link RedisListTransport} reaches Redis; give exactly one of `redis` and `url`. */
export interface RedisListTransportOptions {
  /**
   * An ioredis client the caller owns (creates, configures and quits): {@link
   * RedisListTransport.close} leaves it open. Best configured with
   * `enableOfflineQueue: false` (see the module notes); its `keyPrefix`, if any, applies to
   * the list keys.
   * @defaultValue none; then `url` is required
   */
  redis?: RedisClient;
  /**
   * Redis to connect to with a client of the transport's own, configured to fail fast: one
   * URL, or the seed nodes of a Redis Cluster (comma-separated or an array).
   * @example `'redis://127.0.0.1:6379'`
   * @example `'redis://10.0.0.1:6379,redis://10.0.0.2:6379,redis://10.0.0.3:6379'`
   * @defaultValue none; then `redis` is required
   */
  url?: string | readonly string[];
  /**
   * Treat a single `url` as the seed of a Redis Cluster (several URLs always are).
   * @defaultValue `false`
   */
  cluster?: boolean;
  /**
   * Replicas that must have each entry before a publish succeeds (`WAIT`), so that a
   * master's failover loses nothing acknowledged; `0` does not wait. Use `1` on a Redis
   * Cluster with replicas (`RMS_REDIS_WAIT_REPLICAS`).
   * @defaultValue `0`
   */
  waitReplicas?: number;
  /**
   * Shard lists per topic (`RMS_FALLBACK_SHARDS`). Publishers and consumers of a topic
   * must use the same number.
   * @defaultValue `100`
   */
  shards?: number;
  /**
   * Longest a publish or ping may take, waiting for a connection included; past it the
   * call fails with `UNAVAILABLE`.
   * @defaultValue `2000`
   */
  commandTimeoutMs?: number;
  /**
   * Receives one line when Redis becomes unreachable and one when it is back, never one
   * per message.
   * @defaultValue a logger that drops everything
   */
  logger?: SdkLogger;
  /**
   * Name of the transport's own connection in `CLIENT LIST`.
   * @defaultValue `'rms-fallback-publisher'`
   */
  connectionName?: string;
}

/** Defaults of every optional {@link RedisListTransportOptions} field that has one. */
const DEFAULTS = {
  shards: DEFAULT_FALLBACK_SHARDS,
  commandTimeoutMs: 2000,
  connectionName: 'rms-fallback-publisher',
} as const;

const TRANSPORT = 'redis';

/** Does nothing; for ignored rejections. */
function noop(): void {}

/** The message of an error, or the value as text. */
function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * ioredis options that make a client fail rather than wait while Redis is away (see the
 * module notes). Shared by the transport's own client and the fallback consumer's
 * connections; `commandTimeout` and `socketTimeout` are added where no command blocks.
 * @internal
 */
export const FAIL_FAST_REDIS_OPTIONS = {
  // A command sent while disconnected fails at once instead of waiting for a reconnect.
  enableOfflineQueue: false,
  // A command whose connection dropped fails on that drop instead of being re-sent later.
  maxRetriesPerRequest: 0,
  autoResendUnfulfilledCommands: false,
  // Connect on first use, so constructing never touches the network.
  lazyConnect: true,
} as const satisfies RedisConnectionOptions;

/**
 * A call got no answer in time. Unlike an error Redis reported, it can mean a connection
 * that is dead without knowing it.
 * @internal
 */
export class DeadlineExceededError extends Error {
  constructor(what: string, ms: number) {
    super(`${what} took longer than ${ms} ms`);
    this.name = 'DeadlineExceededError';
  }
}

/**
 * Resolves with `promise`'s value, or rejects with a {@link DeadlineExceededError} once
 * `ms` pass (the promise is then left to settle alone).
 * @internal
 */
export function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DeadlineExceededError(what, ms)), Math.max(0, ms));
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

/**
 * Waits until the client is ready to take commands, for at most `ms`. Starts connecting a
 * lazy client. Resolves `false` at once when the client is between reconnection attempts
 * (its last attempt failed: waiting would only delay the failure) or closed, and when the
 * connection attempt under way fails or `ms` pass.
 * @internal
 */
export async function whenReady(redis: FallbackRedis, ms: number): Promise<boolean> {
  if (redis.status === 'ready') return true;
  if (redis.status === 'wait') redis.connect().catch(noop);
  else if (redis.status !== 'connecting' && redis.status !== 'connect') return false;
  let timer: NodeJS.Timeout | undefined;
  let settle: (ready: boolean) => void = noop;
  const onReady = (): void => settle(true);
  const onClose = (): void => settle(false);
  try {
    return await new Promise<boolean>((resolve) => {
      settle = resolve;
      redis.once('ready', onReady);
      redis.once('close', onClose);
      timer = setTimeout(onClose, Math.max(0, ms));
    });
  } finally {
    clearTimeout(timer);
    redis.off('ready', onReady);
    redis.off('close', onClose);
  }
}

function transportError(code: TransportErrorCode, message: string, cause?: unknown): TransportError {
  return new TransportError(TRANSPORT, code, message, cause === undefined ? undefined : { cause });
}

/**
 * Publishes deliveries to the Redis fallback lists.
 *
 * @example
 * ```ts
 * const transport = new RedisListTransport({ url: 'redis://127.0.0.1:6379', logger });
 * await transport.publish({ id, topic: 'orders.paid', payload, headers: {}, attempt: 1, producer: 'orders' });
 * await transport.close();
 * ```
 */
export class RedisListTransport implements Transport {
  readonly name = TRANSPORT;
  /** Shard lists per topic. */
  readonly shards: number;

  readonly #redis: FallbackRedis;
  readonly #owned: boolean;
  readonly #waitReplicas: number;
  readonly #commandTimeoutMs: number;
  readonly #logger: SdkLogger;
  /** Calls have been failing since this many failures ago: log the outage once, and its end. */
  #failures = 0;
  #closed = false;
  #closing: Promise<void> | undefined;

  constructor(options: RedisListTransportOptions) {
    const shards = options.shards ?? DEFAULTS.shards;
    const commandTimeoutMs = options.commandTimeoutMs ?? DEFAULTS.commandTimeoutMs;
    if (!Number.isInteger(shards) || shards < 1) throw new RangeError(`shards must be a whole number of at least 1, got ${shards}`);
    if (!Number.isFinite(commandTimeoutMs) || commandTimeoutMs <= 0) throw new RangeError(`commandTimeoutMs must be above 0, got ${commandTimeoutMs}`);
    if ((options.redis === undefined) === (options.url === undefined)) throw new TypeError('give exactly one of `redis` and `url`');
    this.shards = shards;
    this.#commandTimeoutMs = commandTimeoutMs;
    this.#waitReplicas = options.waitReplicas ?? 0;
    if (!Number.isInteger(this.#waitReplicas) || this.#waitReplicas < 0) throw new RangeError(`waitReplicas must be a whole number of at least 0, got ${this.#waitReplicas}`);
    this.#logger = options.logger ?? silentLogger;
    if (options.redis !== undefined) {
      this.#redis = options.redis;
      this.#owned = false;
    } else {
      this.#redis = createRedisClient(redisEndpoint(options.url as string | readonly string[], options.cluster), {
        ...FAIL_FAST_REDIS_OPTIONS,
        commandTimeout: commandTimeoutMs,
        // Replaces a connection that went silent with commands pending (a stall, a
        // partition): without it, a zombie connection would time out every command forever.
        socketTimeout: commandTimeoutMs,
        connectTimeout: commandTimeoutMs,
        connectionName: options.connectionName ?? DEFAULTS.connectionName,
      });
      this.#owned = true;
      // Without a listener ioredis prints every connection error to the console; the
      // outage is logged once by the calls that fail.
      this.#redis.on('error', noop);
    }
  }

  /**
   * Pushes the message's envelope onto its shard list and resolves once Redis has it.
   * Rejects with a `TransportError`: `UNAVAILABLE` when Redis is unreachable, answers with
   * an error, or does not answer within `commandTimeoutMs`; `CLOSED` after {@link close}.
   * Rejects with a `TypeError` when the payload cannot be serialised.
   * @returns the transport's name, `'redis'`.
   */
  async publish(message: OutgoingMessage): Promise<'redis'> {
    if (this.#closed) throw transportError('CLOSED', 'the Redis fallback transport is closed');
    const entry = encodeEnvelope(message);
    const shard = fallbackShardOf(message.id, this.shards);
    const keys = deliveryGroups(message.groups).map((group) => fallbackKey(fallbackStreamName(message.topic, group), shard, this.shards));
    if (this.#waitReplicas > 0 || isCluster(this.#redis)) {
      // One command per key: a Cluster refuses a transaction over keys in different slots
      // (the groups' lists of one shard are), and WAIT must follow each key's own push. Not
      // all-or-none: a publish that fails midway is retried, and the groups already pushed
      // see a duplicate, which at-least-once delivery allows.
      for (const key of keys) {
        if (this.#waitReplicas === 0) await this.#call('LPUSH', () => this.#redis.lpush(key, entry));
        else await this.#call('LPUSH+WAIT', () => this.#pushReplicated(key, entry));
      }
      return TRANSPORT;
    }
    if (keys.length === 1) {
      await this.#call('LPUSH', () => this.#redis.lpush(keys[0] as string, entry));
      return TRANSPORT;
    }
    // One copy per group's list, all or none (MULTI/EXEC), as RabbitMQ copies one publish.
    await this.#call('MULTI LPUSH', async () => {
      const transaction = this.#redis.multi();
      for (const key of keys) transaction.lpush(key, entry);
      const replies = await transaction.exec();
      const failed = replies?.find(([error]) => error !== null)?.[0];
      if (replies === null || failed) throw failed ?? new Error('the transaction was aborted');
      return replies.length;
    });
    return TRANSPORT;
  }

  /**
   * `LPUSH` and `WAIT` in one pipeline: on a Cluster a pipeline goes to the node of its
   * key's slot, so `WAIT` asks that very master about its replicas. ioredis does not follow
   * a redirection (MOVED, ASK) inside a pipeline whose other command succeeded, nor learn
   * the new slot owner from it: after a failover the pipeline would keep going to the old
   * node. So on a redirection the slot map is re-read and the pipeline sent once more (the
   * `LPUSH` that was redirected was not executed).
   */
  async #pushReplicated(key: string, entry: string): Promise<void> {
    const waitMs = Math.max(1, this.#commandTimeoutMs - 100);
    for (let attempt = 1; ; attempt++) {
      const results = await this.#redis.pipeline().lpush(key, entry).call('WAIT', this.#waitReplicas, waitMs).exec();
      if (results === null) throw new Error('the LPUSH+WAIT pipeline was discarded');
      const pushError = results[0]?.[0];
      if (pushError && attempt === 1 && isCluster(this.#redis) && /^(MOVED|ASK) /.test(pushError.message)) {
        const cluster = this.#redis;
        await new Promise<void>((resolve) => cluster.refreshSlotsCache(() => resolve()));
        continue;
      }
      for (const [error] of results) if (error) throw error;
      const replicas = Number(results[1]?.[1]);
      if (replicas < this.#waitReplicas) {
        throw new Error(`only ${replicas} of ${this.#waitReplicas} replicas confirmed the entry within ${waitMs} ms`);
      }
      return;
    }
  }

  /** Resolves when Redis answers a `PING` within `commandTimeoutMs`; rejects with a `TransportError` otherwise. */
  async ping(): Promise<void> {
    if (this.#closed) throw transportError('CLOSED', 'the Redis fallback transport is closed');
    await this.#call('PING', () => this.#redis.ping());
  }

  /**
   * Closes the transport's own connection (politely within `commandTimeoutMs`, then by
   * force); a client passed in as `redis` is left open. Publishes after this fail with
   * `CLOSED`. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= this.#shutDown();
    return this.#closing;
  }

  async #shutDown(): Promise<void> {
    this.#closed = true;
    if (!this.#owned) return;
    if (this.#redis.status === 'ready') {
      await withDeadline(this.#redis.quit(), this.#commandTimeoutMs, 'QUIT').catch(noop);
    }
    this.#redis.disconnect();
  }

  /** Runs one command within `commandTimeoutMs`, waiting for a connection included; every failure is a `TransportError`. */
  async #call<T>(command: string, run: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.#commandTimeoutMs;
    try {
      if (!(await whenReady(this.#redis, this.#commandTimeoutMs))) {
        throw new Error(`no connection to Redis (${this.#redis.status})`);
      }
      const value = await withDeadline(run(), deadline - Date.now(), command);
      if (this.#failures > 0) this.#logger.info({ transport: TRANSPORT, failedCalls: this.#failures }, 'Redis fallback lists reachable again');
      this.#failures = 0;
      return value;
    } catch (error) {
      if (this.#closed && this.#owned) throw transportError('CLOSED', 'the Redis fallback transport was closed', error);
      if (this.#failures === 0) {
        this.#logger.warn({ err: error, transport: TRANSPORT, command }, 'Redis fallback lists unreachable; publishes fail until it is back');
      }
      this.#failures += 1;
      throw transportError('UNAVAILABLE', `Redis did not take ${command}: ${describe(error)}`, error);
    }
  }
}
