/**
 * The consuming side of the Redis fallback (design section 7): workers that pop one
 * topic's shard lists `rms:fb:<topic>:<NN>` and hand each entry to the same pipeline as an
 * AMQP delivery (a {@link Delivery} with `transport: 'redis'` and a settlement).
 *
 * **One connection per worker.** `BRPOP` holds its connection until an entry arrives or
 * the block timeout passes, and Redis answers one connection's commands in order, so
 * nothing else can use that connection meanwhile (ioredis has a single socket per client;
 * its maintainers' advice is a dedicated connection, e.g. `duplicate()`, for blocking
 * work). Each worker owns one; `LLEN` for {@link RedisListSource.drainUntilEmpty} runs on
 * one more, the control connection. A client passed as `redis` is only the template that
 * is duplicated; it is never blocked or closed.
 *
 * **Rotation.** `BRPOP k1 … kN t` pops from the first non-empty key in the order given. With
 * a fixed order one busy shard listed first would be served alone until empty; so each
 * call starts one shard further than the previous call of any worker of this source, and
 * every shard is first in line once per `shards` calls. No shard waits more than about
 * `shards` pops behind a busy one.
 *
 * **Settlement.** There is nothing to settle with Redis: the pop removed the entry, and no
 * receipt or ack exists to give. `ack()` and `reject()` are therefore no-ops. This is safe
 * because RMS's store, not Redis, is the source of truth: a message whose handler failed,
 * or whose process died after the pop, is never acked to RMS, so RMS publishes it again
 * after its ack deadline. Each pop is at most once; delivery overall stays at least once,
 * and the SDK's idempotency helper absorbs the duplicates that redelivery can cause.
 * (`BLMOVE` to a processing list would make the pop itself recoverable, but that is a
 * second store of delivery state beside RMS's, with its own clean-up; the design keeps one.)
 *
 * **Bounded concurrency.** A worker pops the next entry only after the listener's promise
 * for the previous one has settled, so at most `workers` entries are out of the lists and
 * not yet handled; nothing piles up in memory that a crash would take along.
 *
 * **Faults.** While Redis is unreachable each worker retries after a capped, jittered
 * back-off (never a tight loop), logging once when the outage starts (a worker that was
 * popping fails) and once when it ends (a first worker pops again); a worker that fails
 * on after that, without having popped in between, is logged at debug. A `BRPOP` not
 * answered within its block timeout plus `commandTimeoutMs` means a dead connection
 * that never said so (a stall or a partition): the connection is dropped and replaced.
 * ioredis's own `commandTimeout` is not used on worker connections, since it
 * would also cut every `BRPOP` that is legitimately waiting (it applies to blocking
 * commands too). An entry that cannot be decoded is logged and dropped; if it was a real
 * message, RMS redelivers it.
 *
 * **Redis Cluster.** One `BRPOP` over all shard keys needs the keys in one slot, and the
 * keys carry no hash tag (so that they spread over the masters): a Cluster refuses it with
 * CROSSSLOT. On a Cluster each worker therefore sweeps the keys instead, in the same
 * rotated order, with one single-key `RPOP key count` per key (each goes to its key's
 * master), and when a whole sweep finds nothing waits `clusterIdleMs` before the next.
 * `LLEN` is likewise one command per key, never a pipeline across slots. A Cluster's
 * connections are the SDK's own (give `url` with the seed nodes, and `cluster`).
 */
import type { RedisClient, RedisConnectionOptions } from '../redis-client.js';
import { createRedisClient, isCluster, redisEndpoint, type FallbackRedis, type RedisEndpoint } from '../transport/redis-connection.js';
import { type SdkLogger, silentLogger } from '../logger.js';
import { decodeEnvelope, DEFAULT_FALLBACK_SHARDS, fallbackKeys } from '../transport/fallback-keys.js';
import { DEFAULT_GROUP, fallbackStreamName } from '../transport/group-routing.js';

import { DeadlineExceededError, FAIL_FAST_REDIS_OPTIONS, whenReady, withDeadline } from '../transport/redis-list-transport.js';
import type { Delivery, DeliverySettlement } from './delivery.js';

/** How a {@link RedisListSource} connects and pops; give exactly one of `redis` and `url`. */
export interface RedisListSourceOptions {
  /** The topic whose shard lists are popped. */
  topic: string;
  /**
   * The consumer group whose lists are popped (`rms:fb:<topic>:<group>:NN`).
   * @defaultValue `'default'`: the topic's shared lists `rms:fb:<topic>:NN`
   */
  group?: string;
  /**
   * An ioredis client used only as the template of the source's own connections
   * (`duplicate()`, with this module's fail-fast settings on top); it is never blocked,
   * used or closed by the source.
   * @defaultValue none; then `url` is required
   */
  redis?: RedisClient;
  /**
   * Redis to connect to: one URL, or the seed nodes of a Redis Cluster (comma-separated or
   * an array).
   * @example `'redis://127.0.0.1:6379'`
   * @defaultValue none; then `redis` is required
   */
  url?: string | readonly string[];
  /**
   * Treat a single `url` as the seed of a Redis Cluster (several URLs always are).
   * @defaultValue `false`
   */
  cluster?: boolean;
  /**
   * On a Redis Cluster, how long a worker waits after a sweep of every shard key found
   * them all empty: the most an entry waits while the lists are idle.
   * @defaultValue `100`
   */
  clusterIdleMs?: number;
  /**
   * Shard lists per topic; must match the publishers' (`RMS_FALLBACK_SHARDS`).
   * @defaultValue `100`
   */
  shards?: number;
  /**
   * Workers, each with its own connection: the number of entries handled at once.
   * @defaultValue `2`
   */
  workers?: number;
  /**
   * Entries a worker pops at once and handles together. Above 1, a worker pops with
   * `BLMPOP … RIGHT COUNT n` (Redis 7), so one round trip over the shard keys brings up to
   * n entries of one list instead of one; on a Redis without `BLMPOP` it falls back to
   * `BRPOP`. Entries handled at once are then up to `workers × popBatch`.
   * @defaultValue `1`
   */
  popBatch?: number;
  /**
   * How long one `BRPOP` waits for an entry, in seconds (fractions allowed). It bounds how
   * long {@link RedisListSource.stop} and {@link RedisListSource.drainUntilEmpty} wait for
   * workers that are blocked on empty lists; shorter costs one more round trip per worker
   * and interval while idle.
   * @defaultValue `1`
   */
  blockSeconds?: number;
  /**
   * Limit on every non-blocking call (`LLEN`, putting an entry back, waiting for a
   * connection), and the grace a `BRPOP` gets past its block timeout before its connection
   * is presumed dead and replaced.
   * @defaultValue `2000`
   */
  commandTimeoutMs?: number;
  /**
   * Wait after the first failure before a worker tries again; it doubles (with jitter) on
   * each further failure, up to `maxReconnectDelayMs`.
   * @defaultValue `200`
   */
  reconnectDelayMs?: number;
  /**
   * Longest wait between a worker's attempts while Redis is unreachable.
   * @defaultValue `5000`
   */
  maxReconnectDelayMs?: number;
  /**
   * How long {@link RedisListSource.stop} waits for workers to finish the entry they hold
   * (and a `BRPOP` under way to return) before it closes the connections anyway.
   * @defaultValue `30000`
   */
  stopTimeoutMs?: number;
  /**
   * Receives one line per outage (start and end), per dropped entry, and per listener
   * failure; never one per good entry.
   * @defaultValue a logger that drops everything
   */
  logger?: SdkLogger;
  /**
   * Name of the source's connections in `CLIENT LIST`, suffixed with the worker number.
   * @defaultValue `'rms-fallback-consumer'`
   */
  connectionName?: string;
}

/**
 * Receives each well-formed entry as a delivery. The worker that popped it takes the next
 * entry only once the returned promise settles. A throw or rejection is logged; the
 * message is then left to RMS's redelivery.
 */
export type RedisDeliveryListener = (delivery: Delivery, settlement: DeliverySettlement) => Promise<void> | void;

/** Defaults of every optional {@link RedisListSourceOptions} field that has one. */
const DEFAULTS = {
  shards: DEFAULT_FALLBACK_SHARDS,
  workers: 2,
  blockSeconds: 1,
  commandTimeoutMs: 2000,
  reconnectDelayMs: 200,
  maxReconnectDelayMs: 5000,
  stopTimeoutMs: 30_000,
  connectionName: 'rms-fallback-consumer',
  clusterIdleMs: 100,
} as const;

/** How often {@link RedisListSource.drainUntilEmpty} looks again while entries remain. */
const DRAIN_POLL_MS = 50;

/**
 * The settlement of a popped entry: nothing left to do with Redis either way (see the
 * module notes). Frozen and shared: it carries no state.
 */
const REDIS_SETTLEMENT: DeliverySettlement = Object.freeze({ ack: () => undefined, reject: () => undefined });

function noop(): void {}

/** One worker: its connection and what it has done, for stop() and drainUntilEmpty(). */
interface Worker {
  readonly index: number;
  readonly redis: FallbackRedis;
  /** `BRPOP` calls sent. */
  started: number;
  /** `BRPOP` calls that have returned or failed; an entry popped by one is already counted in `busy`. */
  finished: number;
  /** Holds a popped entry that is not yet handled. */
  busy: boolean;
  /** Failed attempts in a row. */
  failures: number;
}

type State = 'idle' | 'running' | 'stopping' | 'stopped';

/** Rejects waits when the source stops under them. */
class SourceStoppedError extends Error {
  constructor() {
    super('the Redis fallback source was stopped');
    this.name = 'SourceStoppedError';
  }
}

/**
 * Pops one topic's Redis fallback lists with `workers` workers and hands each entry to a
 * listener, until stopped.
 *
 * @example
 * ```ts
 * const processor = new DeliveryProcessor(handler, { ... });
 * const source = new RedisListSource({ url: 'redis://127.0.0.1:6379', topic: 'orders.paid', workers: 4, logger },
 *   (delivery, settlement) => processor.process(delivery, settlement));
 * await source.start();
 * // MQ is back: pop until every shard list is empty, then stop.
 * await source.drainUntilEmpty();
 * await source.stop();
 * ```
 */
export class RedisListSource {
  /** The topic popped. */
  readonly topic: string;
  /** The consumer group whose lists are popped. */
  readonly group: string;
  /** Shard lists of the topic. */
  readonly shards: number;
  /** The topic's shard list keys, in shard order. */
  readonly keys: readonly string[];

  readonly #template: RedisClient | undefined;
  readonly #endpoint: RedisEndpoint | undefined;
  readonly #clusterIdleMs: number;
  readonly #workerCount: number;
  readonly #blockSeconds: number;
  readonly #commandTimeoutMs: number;
  /** Entries per pop; back to 1 for good once Redis says it has no BLMPOP. */
  #popBatch: number;
  readonly #reconnectDelayMs: number;
  readonly #maxReconnectDelayMs: number;
  readonly #stopTimeoutMs: number;
  readonly #connectionName: string;
  readonly #logger: SdkLogger;
  readonly #onDelivery: RedisDeliveryListener;

  #state: State = 'idle';
  readonly #workers: Worker[] = [];
  #loops: Promise<void>[] = [];
  #control: FallbackRedis | undefined;
  /** The shard the next `BRPOP` starts at, shared by all workers. */
  #nextShard = 0;
  /** Entries popped so far. */
  #popped = 0;
  /** Redis is failing for this source: logged once, until a call succeeds again. */
  #outage = false;
  /** Wakes everything that waits for a change of the workers' state. */
  #changeWaiters = new Set<() => void>();
  /** Wakes back-off sleeps early when stopping. */
  readonly #sleepers = new Set<() => void>();
  #stopping: Promise<void> | undefined;

  /**
   * @param options - where and what to pop.
   * @param onDelivery - receives each well-formed entry; see {@link RedisDeliveryListener}.
   */
  constructor(options: RedisListSourceOptions, onDelivery: RedisDeliveryListener) {
    const shards = options.shards ?? DEFAULTS.shards;
    const workers = options.workers ?? DEFAULTS.workers;
    const blockSeconds = options.blockSeconds ?? DEFAULTS.blockSeconds;
    const commandTimeoutMs = options.commandTimeoutMs ?? DEFAULTS.commandTimeoutMs;
    if (typeof options.topic !== 'string' || options.topic === '') throw new TypeError('topic must be a non-empty string');
    if (!Number.isInteger(shards) || shards < 1) throw new RangeError(`shards must be a whole number of at least 1, got ${shards}`);
    if (!Number.isInteger(workers) || workers < 1) throw new RangeError(`workers must be a whole number of at least 1, got ${workers}`);
    // BRPOP's timeout 0 means "block forever", which the dead-connection watchdog cannot tell from a stall.
    if (!Number.isFinite(blockSeconds) || blockSeconds <= 0) throw new RangeError(`blockSeconds must be above 0, got ${blockSeconds}`);
    if (!Number.isFinite(commandTimeoutMs) || commandTimeoutMs <= 0) throw new RangeError(`commandTimeoutMs must be above 0, got ${commandTimeoutMs}`);
    if ((options.redis === undefined) === (options.url === undefined)) throw new TypeError('give exactly one of `redis` and `url`');
    this.topic = options.topic;
    this.shards = shards;
    this.group = options.group ?? DEFAULT_GROUP;
    this.keys = Object.freeze(fallbackKeys(fallbackStreamName(options.topic, this.group), shards));
    this.#template = options.redis;
    this.#endpoint = options.url === undefined ? undefined : redisEndpoint(options.url, options.cluster);
    this.#clusterIdleMs = options.clusterIdleMs ?? DEFAULTS.clusterIdleMs;
    this.#workerCount = workers;
    this.#blockSeconds = blockSeconds;
    this.#commandTimeoutMs = commandTimeoutMs;
    this.#popBatch = options.popBatch ?? 1;
    if (!Number.isInteger(this.#popBatch) || this.#popBatch < 1) throw new RangeError(`popBatch must be a whole number of at least 1, got ${this.#popBatch}`);
    this.#reconnectDelayMs = options.reconnectDelayMs ?? DEFAULTS.reconnectDelayMs;
    this.#maxReconnectDelayMs = Math.max(this.#reconnectDelayMs, options.maxReconnectDelayMs ?? DEFAULTS.maxReconnectDelayMs);
    this.#stopTimeoutMs = options.stopTimeoutMs ?? DEFAULTS.stopTimeoutMs;
    this.#connectionName = options.connectionName ?? DEFAULTS.connectionName;
    this.#logger = options.logger ?? silentLogger;
    this.#onDelivery = onDelivery;
  }

  /** Whether the workers are popping: from {@link start} until {@link stop} is called. */
  get isRunning(): boolean {
    return this.#state === 'running';
  }

  /**
   * Opens the connections and starts the workers. Resolves once each worker's first
   * connection attempt has finished (at most `commandTimeoutMs`), whether it succeeded or
   * not: with Redis down the workers keep retrying in the background, so a consumer can
   * start during an outage. Only the first call does anything.
   */
  async start(): Promise<void> {
    if (this.#state !== 'idle') return;
    this.#state = 'running';
    this.#control = this.#connect('control', {
      commandTimeout: this.#commandTimeoutMs,
      socketTimeout: this.#commandTimeoutMs,
    });
    for (let index = 0; index < this.#workerCount; index += 1) {
      const redis = this.#connect(
        String(index),
        this.#onCluster
          ? // A Cluster worker sends only non-blocking commands: each gets the command timeout.
            { commandTimeout: this.#commandTimeoutMs, socketTimeout: this.#commandTimeoutMs }
          : // No per-command limit: it would cut every BRPOP that is waiting (see the module notes).
            { commandTimeout: undefined, socketTimeout: undefined, blockingTimeout: undefined },
      );
      this.#workers.push({ index, redis, started: 0, finished: 0, busy: false, failures: 0 });
    }
    this.#loops = this.#workers.map((worker) => this.#work(worker));
    await Promise.all(this.#workers.map((worker) => whenReady(worker.redis, this.#commandTimeoutMs)));
  }

  /**
   * Stops popping, waits for the entries the workers hold to be handled and for a `BRPOP`
   * under way to return (at most `stopTimeoutMs` in all), then closes the source's
   * connections. An entry a `BRPOP` returns after this was called is pushed back where it
   * was (the tail of its list), not handled. Idempotent.
   */
  stop(): Promise<void> {
    this.#stopping ??= this.#shutDown();
    return this.#stopping;
  }

  /**
   * Resolves once a look at every shard list of the topic (`LLEN` of all keys, in one
   * pipeline) found them all empty and the workers are idle: nothing popped is still being
   * handled, and every `BRPOP` that could have taken an entry before that look has
   * returned. Used after an outage: keep popping until the lists are empty, then stop.
   *
   * Keeps waiting while Redis is unreachable (retrying `LLEN` with back-off); rejects if
   * the source is not running or is stopped before the lists are drained. To bound it,
   * race it with a timer and call {@link stop}.
   */
  async drainUntilEmpty(): Promise<void> {
    let failures = 0;
    for (;;) {
      this.#assertRunning();
      const popped = this.#popped;
      let lengths: number[];
      try {
        lengths = await this.#lengths();
        failures = 0;
      } catch (error) {
        failures += 1;
        this.#logger.debug?.({ err: error, topic: this.topic }, 'could not read the lengths of the fallback lists; trying again');
        await this.#sleep(this.#backoff(failures));
        continue;
      }
      if (lengths.some((length) => length > 0)) {
        await this.#sleep(DRAIN_POLL_MS);
        continue;
      }
      // A BRPOP sent before the LLEN answer arrived may have popped an entry that LLEN no
      // longer counted, its answer still on the way: wait for those calls, and for the
      // entries being handled.
      const sent = this.#workers.map((worker) => worker.started);
      await this.#until(() => this.#workers.every((worker, i) => worker.finished >= (sent[i] ?? 0) && !worker.busy));
      if (this.#popped === popped) return;
    }
  }

  /** Whether the source's connections go to a Redis Cluster (which has no multi-key pops). */
  get #onCluster(): boolean {
    return this.#endpoint?.kind === 'cluster';
  }

  #assertRunning(): void {
    if (this.#state !== 'running') throw new SourceStoppedError();
  }

  /** A new connection of the source's own, with the fail-fast settings and `overrides`. */
  #connect(name: string, overrides: RedisConnectionOptions): FallbackRedis {
    const options: RedisConnectionOptions = {
      ...FAIL_FAST_REDIS_OPTIONS,
      connectTimeout: this.#commandTimeoutMs,
      retryStrategy: (times: number) => Math.min(this.#maxReconnectDelayMs, this.#reconnectDelayMs * 2 ** Math.min(times - 1, 20)),
      connectionName: `${this.#connectionName}-${name}`,
      ...overrides,
    };
    const redis = this.#template !== undefined ? this.#template.duplicate(options) : createRedisClient(this.#endpoint as RedisEndpoint, options);
    // Without a listener ioredis prints every connection error; the loops log outages once.
    redis.on('error', noop);
    return redis;
  }

  /** One worker's loop: pop (rotating), hand over, repeat; back off while Redis fails. */
  async #work(worker: Worker): Promise<void> {
    while (this.#state === 'running') {
      if (!(await whenReady(worker.redis, this.#commandTimeoutMs))) {
        if (this.#state !== 'running') break;
        await this.#failed(worker, new Error(`no connection to Redis (${worker.redis.status})`));
        continue;
      }
      const keys = this.#rotatedKeys();
      let reply: [string, string[]] | null;
      worker.started += 1;
      try {
        const deadlineMs = this.#onCluster ? this.#commandTimeoutMs * (keys.length + 1) : this.#blockSeconds * 1000 + this.#commandTimeoutMs;
        reply = await withDeadline(this.#pop(worker, keys), deadlineMs, this.#onCluster ? 'RPOP sweep' : 'BRPOP');
      } catch (error) {
        worker.finished += 1;
        this.#changed();
        if (this.#state !== 'running') break;
        if (this.#popBatch > 1 && isUnknownCommand(error)) {
          this.#logger.warn({ err: error, topic: this.topic }, 'this Redis has no BLMPOP (Redis 7); popping one entry at a time with BRPOP');
          this.#popBatch = 1;
          continue;
        }
        if (error instanceof DeadlineExceededError) {
          // Connected but silent past the block timeout: a dead connection. Replace it; an
          // entry Redis popped for it meanwhile is lost to this worker, and RMS redelivers it.
          worker.redis.disconnect(true);
        }
        await this.#failed(worker, error);
        continue;
      }
      this.#recovered(worker);
      if (reply === null) {
        worker.finished += 1;
        this.#changed();
        // A sweep does not block on empty lists the way BRPOP does: pause before the next.
        if (this.#onCluster) await this.#sleep(this.#clusterIdleMs);
        continue;
      }
      // Busy before finished, in one step: drainUntilEmpty must never see neither.
      const [key, entries] = reply;
      this.#popped += entries.length;
      worker.busy = true;
      worker.finished += 1;
      this.#changed();
      try {
        if (this.#state === 'running') await Promise.all(entries.map((entry) => this.#deliver(key, entry)));
        // Back to the tail they were popped from, newest first, so the list keeps its order.
        else for (const entry of entries.toReversed()) await this.#putBack(worker, key, entry);
      } finally {
        worker.busy = false;
        this.#changed();
      }
    }
  }

  /** One blocking pop over `keys`: the list it popped from and its entries, oldest first; `null` when none arrived in time. */
  async #pop(worker: Worker, keys: string[]): Promise<[string, string[]] | null> {
    if (this.#onCluster) return this.#sweep(worker, keys);
    if (this.#popBatch === 1) {
      const reply = await worker.redis.brpop(...keys, this.#blockSeconds);
      return reply === null ? null : [reply[0], [reply[1]]];
    }
    const reply = (await worker.redis.call('BLMPOP', this.#blockSeconds, keys.length, ...keys, 'RIGHT', 'COUNT', this.#popBatch)) as [string, string[]] | null;
    return reply;
  }

  /**
   * On a Cluster: one single-key `RPOP key count` per key, in the order given, until one
   * yields entries; `null` when every list was empty.
   */
  async #sweep(worker: Worker, keys: string[]): Promise<[string, string[]] | null> {
    for (const key of keys) {
      if (this.#state !== 'running') return null;
      const entries = await worker.redis.rpop(key, this.#popBatch);
      if (entries !== null && entries.length > 0) return [key, entries];
    }
    return null;
  }

  /** The shard keys starting one shard further than the previous call's. */
  #rotatedKeys(): string[] {
    const start = this.#nextShard;
    this.#nextShard = (start + 1) % this.shards;
    return start === 0 ? [...this.keys] : [...this.keys.slice(start), ...this.keys.slice(0, start)];
  }

  async #deliver(key: string, entry: string): Promise<void> {
    const envelope = decodeEnvelope(entry);
    if ('invalid' in envelope) return this.#drop(key, entry, envelope.invalid);
    if (envelope.topic !== this.topic) return this.#drop(key, entry, `it belongs to topic ${JSON.stringify(envelope.topic)}`);
    const delivery: Delivery = { ...envelope, group: this.group, transport: 'redis' };
    try {
      await this.#onDelivery(delivery, REDIS_SETTLEMENT);
    } catch (error) {
      this.#logger.error({ err: error, id: delivery.id, topic: this.topic }, 'the delivery listener failed; the message is left to RMS to redeliver');
    }
  }

  #drop(key: string, entry: string, reason: string): void {
    this.#logger.error(
      { topic: this.topic, key, entry: entry.length > 200 ? `${entry.slice(0, 200)}…` : entry },
      `dropped a Redis fallback entry because ${reason}; RMS redelivers the message if it is one`,
    );
  }

  /** Returns an entry popped while stopping to the tail of its list, where BRPOP took it from. */
  async #putBack(worker: Worker, key: string, entry: string): Promise<void> {
    try {
      await withDeadline(worker.redis.rpush(key, entry), this.#commandTimeoutMs, 'RPUSH');
    } catch (error) {
      this.#logger.warn({ err: error, key }, 'could not put back an entry popped while stopping; RMS redelivers the message');
    }
  }

  /** `LLEN` of every shard key, in one round trip on the control connection. */
  async #lengths(): Promise<number[]> {
    const control = this.#control;
    if (control === undefined || !(await whenReady(control, this.#commandTimeoutMs))) {
      throw new Error(`no connection to Redis (${control?.status ?? 'not started'})`);
    }
    // A pipeline across slots is refused by a Cluster: there, one LLEN per key, sent at once.
    if (isCluster(control)) return withDeadline(Promise.all(this.keys.map((key) => control.llen(key))), this.#commandTimeoutMs, 'LLEN');
    const pipeline = control.pipeline();
    for (const key of this.keys) pipeline.llen(key);
    const results = await withDeadline(pipeline.exec(), this.#commandTimeoutMs, 'LLEN');
    if (results === null) throw new Error('the LLEN pipeline was discarded');
    return results.map(([error, length]) => {
      if (error) throw error;
      return Number(length);
    });
  }

  async #failed(worker: Worker, error: unknown): Promise<void> {
    // A worker still retrying since before the outage ended (say, a connection the cut
    // accepted and reset only after Redis was back) is the old outage's tail, not a new one:
    // only a worker that had been popping starts an outage (and, later, logs its end).
    const alreadyFailing = worker.failures > 0;
    worker.failures += 1;
    const delayMs = this.#backoff(worker.failures);
    if (!this.#outage && !alreadyFailing) {
      this.#outage = true;
      this.#logger.warn({ err: error, topic: this.topic, retryInMs: delayMs }, 'cannot pop the Redis fallback lists; retrying with back-off');
    } else {
      this.#logger.debug?.({ err: error, topic: this.topic, worker: worker.index, failedAttempts: worker.failures }, 'Redis still unreachable');
    }
    await this.#sleep(delayMs);
  }

  #recovered(worker: Worker): void {
    worker.failures = 0;
    if (!this.#outage) return;
    this.#outage = false;
    this.#logger.info({ topic: this.topic }, 'popping the Redis fallback lists again');
  }

  /** Capped exponential back-off with jitter (half to all of the step), so workers do not retry in lockstep. */
  #backoff(failures: number): number {
    const step = Math.min(this.#maxReconnectDelayMs, this.#reconnectDelayMs * 2 ** Math.min(failures - 1, 30));
    return Math.round(step / 2 + (Math.random() * step) / 2);
  }

  /** Sleeps `ms`, or less if the source stops. */
  #sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.#sleepers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.#sleepers.add(wake);
    });
  }

  /** Tells waiters that a worker's state changed. */
  #changed(): void {
    const waiters = this.#changeWaiters;
    this.#changeWaiters = new Set();
    for (const wake of waiters) wake();
  }

  /** Resolves once `condition` holds, re-checking on every change; rejects if the source stops first. */
  async #until(condition: () => boolean): Promise<void> {
    while (!condition()) {
      this.#assertRunning();
      await new Promise<void>((resolve) => this.#changeWaiters.add(resolve));
    }
  }

  async #shutDown(): Promise<void> {
    if (this.#state === 'idle') {
      this.#state = 'stopped';
      return;
    }
    this.#state = 'stopping';
    for (const wake of [...this.#sleepers]) wake();
    this.#changed();
    let timer: NodeJS.Timeout | undefined;
    const finished = await Promise.race([
      Promise.all(this.#loops).then(() => true),
      new Promise<false>((resolve) => {
        timer = setTimeout(() => resolve(false), this.#stopTimeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (!finished) {
      const holding = this.#workers.filter((worker) => worker.busy).length;
      this.#logger.warn({ topic: this.topic, holding }, `workers still busy after ${this.#stopTimeoutMs} ms; closing anyway, RMS redelivers what they held`);
    }
    for (const worker of this.#workers) worker.redis.disconnect();
    this.#control?.disconnect();
    this.#state = 'stopped';
  }
}

/** Redis's answer to a command it does not have (`ERR unknown command 'BLMPOP'`). */
function isUnknownCommand(error: unknown): boolean {
  return error instanceof Error && /unknown command/i.test(error.message);
}
