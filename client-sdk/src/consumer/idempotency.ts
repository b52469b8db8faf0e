/**
 * The consumer's idempotency helper (design section 8, guarantee 3): RMS delivers at least
 * once, so the same message can reach a consumer group twice (a redelivery racing a late
 * ack, a broker requeue after a connection loss). One Redis key per message and group,
 * `rms:idem:<group>:<messageId>`, records whether a worker of the group is running the
 * message (`in-progress:<token>`, with a short TTL) or has finished it (`done`, with a long
 * TTL), so the handler runs once per message even across processes.
 *
 * Redis errors fail closed: {@link RedisIdempotency.begin} throws rather than guessing.
 * Failing open (running the handler without the check) would turn every Redis hiccup into
 * duplicate side effects, exactly what the helper is there to hide; failing closed only
 * delays the message, because the subscriber rejects the delivery without acking RMS, and
 * RMS redelivers it after its ack deadline, by which time Redis is usually back.
 */
import { randomUUID } from 'node:crypto';
import type { RedisClient } from '../redis-client.js';

/**
 * What a worker should do with a delivery:
 * - `run`: this worker now owns the message; run the handler, then `complete` or `abandon`.
 * - `duplicate`: the group finished this message before; skip the handler.
 * - `in-progress`: another worker (or this one) is running it right now; skip the handler.
 */
export type IdempotencyDecision = 'run' | 'duplicate' | 'in-progress';

/** How a {@link RedisIdempotency} stores its keys. */
export interface RedisIdempotencyOptions {
  /** An ioredis client; the caller owns it (creates, configures and quits it). */
  redis: RedisClient;
  /** The consumer group: the scope of "already handled". Groups never see each other's keys. */
  group: string;
  /**
   * How long a finished message is remembered. It must outlast RMS's whole redelivery
   * window for the topic (ack deadline × attempts), or a late redelivery runs again.
   * @defaultValue `86400000` (24 hours)
   */
  ttlMs?: number;
  /**
   * How long a running message stays claimed without {@link RedisIdempotency.extend}.
   * After a worker crashed mid-handler, redeliveries are skipped as `in-progress` until
   * this passes; a handler that outruns it (with no heartbeat extending it) can be run a
   * second time in parallel. Keep it above the heartbeat interval, and short enough that a
   * crashed worker's message is retried soon.
   * @defaultValue `300000` (5 minutes)
   */
  inProgressTtlMs?: number;
}

/** Redis could not answer, so whether a message was handled is unknown. The delivery should be retried later. */
export class IdempotencyUnavailableError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'IdempotencyUnavailableError';
  }
}

const DONE = 'done';
const IN_PROGRESS = 'in-progress:';

// Deletes the key only while it still holds this worker's claim: after the claim expired
// another worker may have claimed the message, and its claim must survive our failure.
const RELEASE_IF_OWNED = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;
// Pushes the claim's expiry out, again only while the claim is still ours.
const EXTEND_IF_OWNED = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`;

/**
 * Runs-once bookkeeping for a consumer group in Redis.
 *
 * The Lua scripts go through `EVAL` rather than `defineCommand`, so the caller's shared
 * client is not given new methods; Redis caches the (tiny) scripts by hash either way.
 *
 * @example
 * ```ts
 * const idempotency = new RedisIdempotency({ redis, group: 'inventory' });
 * if ((await idempotency.begin(id)) === 'run') {
 *   try { await work(); await idempotency.complete(id); } catch (e) { await idempotency.abandon(id); throw e; }
 * }
 * ```
 */
export class RedisIdempotency {
  /** The consumer group. */
  readonly group: string;
  readonly #redis: RedisClient;
  readonly #ttlMs: number;
  readonly #inProgressTtlMs: number;
  /** This instance's claim token per message it is running. */
  readonly #claims = new Map<string, string>();

  constructor(options: RedisIdempotencyOptions) {
    if (options.group === '') throw new RangeError('the idempotency group must not be empty');
    const ttlMs = options.ttlMs ?? 86_400_000;
    const inProgressTtlMs = options.inProgressTtlMs ?? 300_000;
    for (const [name, value] of [['ttlMs', ttlMs], ['inProgressTtlMs', inProgressTtlMs]] as const) {
      if (!Number.isInteger(value) || value < 1) throw new RangeError(`idempotency ${name} must be a whole number of at least 1, got ${value}`);
    }
    this.group = options.group;
    this.#redis = options.redis;
    this.#ttlMs = ttlMs;
    this.#inProgressTtlMs = inProgressTtlMs;
  }

  /** The Redis key of message `id` in this group: `rms:idem:<group>:<id>`. */
  key(id: string): string {
    return `rms:idem:${this.group}:${id}`;
  }

  /**
   * Claims message `id` for this worker (`SET key in-progress:<token> NX PX inProgressTtlMs`),
   * or says why not.
   * @throws IdempotencyUnavailableError when Redis fails (fail-closed: see the module notes).
   */
  async begin(id: string): Promise<IdempotencyDecision> {
    // This instance runs it right now; Redis would say so too, unless the claim expired.
    if (this.#claims.has(id)) return 'in-progress';
    const key = this.key(id);
    // Claim, else read who holds it. The key can expire between the two calls; then claim again.
    for (let round = 0; round < 3; round++) {
      const token = randomUUID();
      const answer = await this.#call('claim', async () => {
        if ((await this.#redis.set(key, `${IN_PROGRESS}${token}`, 'PX', this.#inProgressTtlMs, 'NX')) === 'OK') return { claimed: true } as const;
        return { claimed: false, value: await this.#redis.get(key) } as const;
      });
      if (answer.claimed) {
        this.#claims.set(id, token);
        return 'run';
      }
      const { value } = answer;
      if (value === null) continue; // the holder's key expired between SET and GET
      if (value === DONE) return 'duplicate';
      if (value.startsWith(IN_PROGRESS)) return 'in-progress';
      throw new IdempotencyUnavailableError(`idempotency key ${key} holds an unexpected value; is another program using that key?`);
    }
    throw new IdempotencyUnavailableError(`idempotency key ${key} kept changing while it was being claimed`);
  }

  /**
   * Records that message `id` was handled (`SET key done PX ttlMs`). Call it only after the
   * handler succeeded: from then on, deliveries of `id` to this group are duplicates.
   * @throws IdempotencyUnavailableError when Redis fails.
   */
  async complete(id: string): Promise<void> {
    this.#claims.delete(id);
    await this.#call('complete', () => this.#redis.set(this.key(id), DONE, 'PX', this.#ttlMs));
  }

  /**
   * Releases this worker's claim on `id` after its handler failed, so the redelivery can
   * run it. Does nothing if the claim is no longer this worker's (it expired and another
   * worker claimed the message meanwhile).
   * @returns whether a claim was released.
   * @throws IdempotencyUnavailableError when Redis fails (the claim then expires by itself).
   */
  async abandon(id: string): Promise<boolean> {
    const token = this.#claims.get(id);
    this.#claims.delete(id);
    if (token === undefined) return false;
    const released = await this.#call('abandon', () => this.#redis.eval(RELEASE_IF_OWNED, 1, this.key(id), `${IN_PROGRESS}${token}`));
    return released === 1;
  }

  /**
   * Renews this worker's claim on `id` for another `inProgressTtlMs`, so a handler that
   * runs long is not run again in parallel. The subscriber calls it with each heartbeat.
   * @returns whether the claim was still this worker's.
   * @throws IdempotencyUnavailableError when Redis fails.
   */
  async extend(id: string): Promise<boolean> {
    const token = this.#claims.get(id);
    if (token === undefined) return false;
    const extended = await this.#call('extend', () =>
      this.#redis.eval(EXTEND_IF_OWNED, 1, this.key(id), `${IN_PROGRESS}${token}`, String(this.#inProgressTtlMs)),
    );
    return extended === 1;
  }

  async #call<T>(what: string, command: () => Promise<T>): Promise<T> {
    try {
      return await command();
    } catch (error) {
      throw new IdempotencyUnavailableError(`Redis failed during idempotency ${what}: ${error instanceof Error ? error.message : String(error)}`, {
        cause: error,
      });
    }
  }
}
