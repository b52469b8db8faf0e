/**
 * The Redis client the SDK accepts, as the few methods it calls rather than ioredis's
 * `Redis` class. Users hold their own ioredis, of whichever major (5 or 6): typing against
 * one major's class would make the other's clients a type error (two copies of a class with
 * private members are not assignable to each other). Both majors' `Redis` clients fit these
 * interfaces; the connections the SDK opens itself come from the ioredis the application
 * installed (a peer dependency).
 */

/** The options the SDK sets on the connections it opens (a subset of ioredis's `RedisOptions`). */
export interface RedisConnectionOptions {
  /** @defaultValue ioredis's: `true` */
  enableOfflineQueue?: boolean;
  /** @defaultValue ioredis's: `20` */
  maxRetriesPerRequest?: number | null;
  /** @defaultValue ioredis's: `true` */
  autoResendUnfulfilledCommands?: boolean;
  /** @defaultValue ioredis's: `false` */
  lazyConnect?: boolean;
  /** @defaultValue ioredis's: `10000` */
  connectTimeout?: number;
  /** @defaultValue ioredis's: none */
  commandTimeout?: number;
  /** @defaultValue ioredis's: none */
  socketTimeout?: number;
  /** @defaultValue ioredis's: none */
  blockingTimeout?: number;
  /** @defaultValue ioredis's: none */
  connectionName?: string;
  /** Milliseconds until reconnection attempt `times`. @defaultValue ioredis's: `min(times × 50, 2000)` */
  retryStrategy?: (times: number) => number | void | null;
}

/** A pipeline of the commands the SDK queues (`LLEN`; `LPUSH` then `WAIT` for a replicated publish). */
export interface RedisPipeline {
  /** Queues `LLEN key`. */
  llen(key: string): unknown;
  /** Queues `LPUSH key value…`. */
  lpush(key: string, ...values: string[]): RedisPipeline;
  /** Queues any command. */
  call(command: string, ...args: (string | number)[]): RedisPipeline;
  /** Sends the queued commands; one `[error, result]` per command, or `null` when discarded. */
  exec(): Promise<[error: Error | null, result: unknown][] | null>;
}

/** A transaction (`MULTI` … `EXEC`) of the commands the SDK queues in one (`LPUSH`). */
export interface RedisTransaction {
  /** Queues `LPUSH key value…`. */
  lpush(key: string, ...values: string[]): unknown;
  /** Runs the queued commands atomically; one `[error, result]` per command, or `null` when aborted. */
  exec(): Promise<[error: Error | null, result: unknown][] | null>;
}

/**
 * An ioredis client (`new Redis(...)` of ioredis 5 or 6), as far as the SDK uses it: the
 * connection state and events, and the commands of idempotency and of the fallback lists.
 */
export interface RedisClient {
  /** ioredis's connection state: `wait`, `connecting`, `connect`, `ready`, `close`, `reconnecting`, `end`. */
  readonly status: string;
  connect(): Promise<void>;
  on(event: string, listener: (...args: unknown[]) => void): unknown;
  once(event: string, listener: (...args: unknown[]) => void): unknown;
  off(event: string, listener: (...args: unknown[]) => void): unknown;
  /** A new connection with this client's options, `options` overriding them. */
  duplicate(options?: RedisConnectionOptions): RedisClient;
  quit(): Promise<unknown>;
  disconnect(reconnect?: boolean): void;
  ping(): Promise<unknown>;
  get(key: string): Promise<string | null>;
  set(key: string, value: string, px: 'PX', milliseconds: number, nx: 'NX'): Promise<'OK' | null>;
  set(key: string, value: string, px: 'PX', milliseconds: number): Promise<'OK'>;
  eval(script: string, numberOfKeys: number, ...keysAndArgs: string[]): Promise<unknown>;
  lpush(key: string, ...values: string[]): Promise<number>;
  rpush(key: string, ...values: string[]): Promise<number>;
  brpop(...keysAndTimeout: [...keys: string[], timeoutSeconds: number]): Promise<[key: string, value: string] | null>;
  rpop(key: string, count: number): Promise<string[] | null>;
  llen(key: string): Promise<number>;
  call(command: string, ...args: (string | number)[]): Promise<unknown>;
  pipeline(): RedisPipeline;
  /** A transaction: every group's fallback list of a delivery gets its copy, or none does. */
  multi(): RedisTransaction;
}
