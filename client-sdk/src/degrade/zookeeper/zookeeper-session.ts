/**
 * A ZooKeeper session kept usable, with node-zookeeper-client (1.1.3), which is thin: this
 * module covers what it leaves to the caller, so that the degrade switch only decides.
 *
 * - **No request timeouts.** A request made while disconnected waits in the client's queue
 *   until a reconnect, and one sent into a stalled connection waits forever. Every request
 *   here ({@link ZooKeeperSession.call}) waits for a usable connection and for its answer
 *   under one deadline, and rejects with {@link DegradeSwitchUnavailableError} when it
 *   passes; a late answer is ignored.
 * - **No `expired` during a partition.** Only the server can expire a session, so a client
 *   that cannot reach it just stays `disconnected`; and a stalled connection is never even
 *   noticed (the client pings but never checks for the answers). A heartbeat here notices
 *   the silence, and "no answer for longer than the session timeout" counts as expired.
 * - **An expired client is unusable.** It stops reconnecting for good; so on expiry (real or
 *   presumed) the client is abandoned and a new one built; the owner hears `onConnected`
 *   when it connects and re-reads and re-watches what it needs.
 * - **Several servers.** The connection string may name an ensemble
 *   (`zk1:2181,zk2:2181,zk3:2181`); the client moves to another server when one is lost,
 *   keeping its session, and the rebuild above covers the loss of a quorum.
 * - **Exceptions in callbacks surface in a socket handler** and would crash the process, so
 *   no callback or watcher here lets one escape.
 */
import zookeeper, { type Client, type Event as ZkEvent, type State as ZkState } from 'node-zookeeper-client';
import type { SdkLogger } from '../../logger.js';
import { DegradeSwitchClosedError, DegradeSwitchUnavailableError } from '../degrade-switch.js';
import { abandonClient, closeClient } from './client-shutdown.js';

/** How long a polite close may take before the client is abandoned. */
const CLOSE_GRACE_MS = 500;
const { CONNECTION_LOSS, SESSION_EXPIRED } = zookeeper.Exception;

/** The callback a request passes its answer to. */
export type Done<T> = (error: unknown, value?: T) => void;

/** The ZooKeeper error code of a client error, or `undefined` for anything else. */
export function zkCode(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const getCode = (error as { getCode?: unknown }).getCode;
  if (typeof getCode !== 'function') return undefined;
  const code: unknown = getCode.call(error);
  return typeof code === 'number' ? code : undefined;
}

/** A thrown value as a log-friendly sentence. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

/** Raised inside a request when its deadline passes; turned into a DegradeSwitchUnavailableError. */
const TIMED_OUT = Symbol('timed out');
/** Raised inside a request when its client is replaced by a new session; the request is sent again. */
const SUPERSEDED = Symbol('superseded');

/** What the owner of a session hears. Called from timers and socket handlers: they must not throw (they are guarded anyway). */
export interface ZooKeeperSessionHooks {
  /** A client got a usable connection (the first, or again, or a new session): read and watch again what you need. */
  onConnected(): void;
  /** A watch set with {@link ZooKeeperSession.watcher} fired on the current client. */
  onWatchEvent(event: ZkEvent): void;
  /** Every watchdog tick in which the session is fine (for the owner's periodic work). */
  onTick(now: number): void;
}

/** Options of {@link ZooKeeperSession}. */
export interface ZooKeeperSessionOptions {
  /** ZooKeeper connection string: one server or an ensemble. */
  connect: string;
  /** The session timeout asked for; also how long the session may be without a usable connection before it is rebuilt. */
  sessionTimeoutMs: number;
  /** The deadline of every request, including the wait for a usable connection. */
  requestTimeoutMs: number;
  /** A node whose existence the heartbeat asks about (any answer proves the server is there). */
  probePath: string;
  logger: SdkLogger;
}

/** One ZooKeeper session, rebuilt as often as needed, with deadlines on every request. */
export class ZooKeeperSession {
  readonly #options: ZooKeeperSessionOptions;
  readonly #hooks: ZooKeeperSessionHooks;
  // Derived timings: how often the watchdog looks at the connection, how often it asks
  // ZooKeeper for a sign of life when idle, and how long that sign may take.
  readonly #tickMs: number;
  readonly #heartbeatIntervalMs: number;
  readonly #heartbeatTimeoutMs: number;
  readonly #spinDelayMs: number;

  #client: Client | undefined;
  /** Bumped for every new client; events and answers of an older client are ignored. */
  #generation = 0;
  /** The watcher of the current client: always the same function, so re-arming does not stack watchers. */
  #watcher: ((event: ZkEvent) => void) | undefined;
  #clientConnected = false;
  #reachable = false;
  /** Since when the session has had no usable connection; `null` while it has one. */
  #lostSince: number | null = null;
  #lastHeardAt = 0;
  #heartbeatSentAt: number | null = null;
  #ticker: NodeJS.Timeout | undefined;
  #closed = false;
  readonly #reachableWaiters = new Set<() => void>();
  /** Requests waiting for an answer, by the function that makes them give up on their client. */
  readonly #inFlight = new Set<() => void>();

  constructor(options: ZooKeeperSessionOptions, hooks: ZooKeeperSessionHooks) {
    this.#options = options;
    this.#hooks = hooks;
    const { sessionTimeoutMs, requestTimeoutMs } = options;
    this.#tickMs = Math.min(500, Math.max(50, Math.floor(sessionTimeoutMs / 10)));
    this.#heartbeatIntervalMs = Math.floor(sessionTimeoutMs / 3);
    this.#heartbeatTimeoutMs = Math.min(requestTimeoutMs, Math.floor(sessionTimeoutMs / 2));
    this.#spinDelayMs = Math.min(1000, Math.max(100, Math.floor(sessionTimeoutMs / 4)));
  }

  /** Whether a request can be answered now (connected, and the server heard from recently). */
  get reachable(): boolean {
    return this.#reachable;
  }

  /** Which client is current; a request's answer counts for the watch only if the client is still the same. */
  get generation(): number {
    return this.#generation;
  }

  /** The current client's watcher, to pass to reads that set a watch. */
  get watcher(): ((event: ZkEvent) => void) | undefined {
    return this.#watcher;
  }

  /** The session id of the current client, as hex (for logs), or `null` without one. */
  get sessionId(): string | null {
    return this.#client?.getSessionId().toString('hex') ?? null;
  }

  /** Connects, and starts the watchdog. */
  start(): void {
    this.#lostSince = Date.now();
    this.#connectClient();
    this.#ticker = setInterval(() => this.#tick(), this.#tickMs);
    this.#ticker.unref();
  }

  /**
   * Ends the session: requests waiting for a connection reject with
   * {@link DegradeSwitchClosedError}, those waiting for an answer give up, and the client
   * is closed (politely when it has a session, else abandoned). Idempotent in effect.
   */
  close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#ticker);
    this.#setUnreachable(Date.now(), 'closed');
    this.#wakeWaiters();
    for (const supersede of [...this.#inFlight]) supersede();
    this.#inFlight.clear();
    const client = this.#client;
    this.#client = undefined;
    this.#watcher = undefined;
    this.#generation += 1;
    return client ? closeClient(client, CLOSE_GRACE_MS) : Promise.resolve();
  }

  /**
   * Sends one request on the current client once it has a usable connection, and waits
   * for the answer, all before `deadline`. Retries when the connection drops under it
   * (the client answers CONNECTION_LOSS) or the session is rebuilt, while time is left.
   * A ZooKeeper error answer is passed on as it is.
   * @param what names the request in errors and logs
   */
  async call<T>(what: string, deadline: number, send: (client: Client, done: Done<T>) => void): Promise<T> {
    for (;;) {
      this.#assertOpen();
      await this.#whenReachable(what, deadline);
      const client = this.#client;
      const remaining = deadline - Date.now();
      if (client === undefined || remaining <= 0) throw this.unavailable(what);
      const generation = this.#generation;
      const sentAt = Date.now();
      try {
        const value = await new Promise<T>((resolve, reject) => {
          const supersede = (): void => {
            clearTimeout(timer);
            reject(SUPERSEDED);
          };
          const timer = setTimeout(() => {
            this.#inFlight.delete(supersede);
            reject(TIMED_OUT);
          }, remaining);
          this.#inFlight.add(supersede);
          try {
            send(client, (error, value) => {
              clearTimeout(timer);
              this.#inFlight.delete(supersede);
              if (error) reject(error);
              else resolve(value as T);
            });
          } catch (error) {
            clearTimeout(timer);
            this.#inFlight.delete(supersede);
            reject(error);
          }
        });
        if (generation === this.#generation) this.#heard();
        return value;
      } catch (error) {
        // The client was replaced under the request; an abandoned client sends nothing more, so sending again is safe.
        if (error === SUPERSEDED) continue;
        if (error === TIMED_OUT) {
          // The client believes it is connected, but the server did not answer: a stalled
          // connection. Count the outage from the last answer we had.
          if (generation === this.#generation) this.#setUnreachable(Math.min(sentAt, this.#lastHeardAt), `no answer to ${what}`);
          throw this.unavailable(what);
        }
        const code = zkCode(error);
        if (code === CONNECTION_LOSS || code === SESSION_EXPIRED) {
          if (Date.now() < deadline) {
            await sleep(Math.min(50, deadline - Date.now()));
            continue;
          }
          throw this.unavailable(what, error);
        }
        if (code !== undefined && generation === this.#generation) this.#heard();
        throw error;
      }
    }
  }

  /** The error of a request that could not be answered in time. */
  unavailable(what: string, cause?: unknown): DegradeSwitchUnavailableError {
    return new DegradeSwitchUnavailableError(
      `degrade switch: ZooKeeper at ${this.#options.connect} did not answer ${what} on ${this.#options.probePath} within ${this.#options.requestTimeoutMs} ms`,
      cause === undefined ? undefined : { cause },
    );
  }

  #whenReachable(what: string, deadline: number): Promise<void> {
    if (this.#reachable) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.#reachableWaiters.delete(wake);
        if (this.#closed) reject(new DegradeSwitchClosedError('the degrade switch is closed'));
        else resolve();
      };
      const timer = setTimeout(() => {
        this.#reachableWaiters.delete(wake);
        reject(this.unavailable(what));
      }, Math.max(0, deadline - Date.now()));
      this.#reachableWaiters.add(wake);
    });
  }

  #wakeWaiters(): void {
    for (const wake of [...this.#reachableWaiters]) wake();
  }

  #assertOpen(): void {
    if (this.#closed) throw new DegradeSwitchClosedError('the degrade switch is closed');
  }

  #connectClient(): void {
    const generation = (this.#generation += 1);
    const client = zookeeper.createClient(this.#options.connect, {
      sessionTimeout: this.#options.sessionTimeoutMs,
      spinDelay: this.#spinDelayMs,
      // The client's own retries wait for a reconnect without a deadline; ours have one.
      retries: 0,
    });
    client.on('state', (state: ZkState) => this.#onState(generation, state));
    // The client does not emit 'error' today; if a version does, it must not crash the process.
    (client as unknown as NodeJS.EventEmitter).on('error', (error: unknown) =>
      this.#options.logger.error({ err: describeError(error) }, 'degrade switch: ZooKeeper client error'),
    );
    this.#client = client;
    this.#watcher = (event: ZkEvent) => this.#onWatchEvent(generation, event);
    this.#clientConnected = false;
    this.#heartbeatSentAt = null;
    client.connect();
  }

  #onWatchEvent(generation: number, event: ZkEvent): void {
    // Runs inside the client's socket handler: nothing may throw out of here.
    try {
      if (generation !== this.#generation || this.#closed) return;
      this.#hooks.onWatchEvent(event);
    } catch (error) {
      this.#options.logger.error({ err: error }, 'degrade switch: handling a watch event failed');
    }
  }

  #onState(generation: number, state: ZkState): void {
    // Emitted from the client's socket handlers: nothing may throw out of here.
    try {
      if (generation !== this.#generation || this.#closed) return;
      const { State } = zookeeper;
      const { connect, logger } = this.#options;
      if (state === State.SYNC_CONNECTED || state === State.CONNECTED_READ_ONLY) {
        this.#clientConnected = true;
        this.#heartbeatSentAt = null;
        logger.info({ connect, sessionId: this.sessionId }, 'degrade switch: connected to ZooKeeper');
        this.#heard();
        // Watches survive a reconnect within the session in theory; the owner reads anyway,
        // which re-arms the watch and catches any change missed while disconnected.
        this.#hooks.onConnected();
      } else if (state === State.DISCONNECTED) {
        this.#clientConnected = false;
        this.#heartbeatSentAt = null;
        this.#setUnreachable(Date.now(), 'disconnected');
      } else if (state === State.EXPIRED) {
        this.#clientConnected = false;
        this.#setUnreachable(Date.now(), 'session expired');
        // Not from inside the client's own state emission.
        setImmediate(() => {
          if (generation === this.#generation && !this.#closed) this.#rebuild('the ZooKeeper session expired');
        });
      } else if (state === State.AUTH_FAILED) {
        this.#clientConnected = false;
        logger.error({ connect }, 'degrade switch: ZooKeeper authentication failed');
        this.#setUnreachable(Date.now(), 'authentication failed');
      }
    } catch (error) {
      this.#options.logger.error({ err: error }, 'degrade switch: handling a ZooKeeper state change failed');
    }
  }

  /** A sign of life from the server on the current client. */
  #heard(): void {
    this.#lastHeardAt = Date.now();
    if (this.#reachable || !this.#clientConnected || this.#closed) return;
    this.#reachable = true;
    this.#lostSince = null;
    this.#wakeWaiters();
  }

  #setUnreachable(since: number, why: string): void {
    if (this.#reachable && !this.#closed) {
      this.#options.logger.warn({ connect: this.#options.connect, why }, 'degrade switch: ZooKeeper unreachable; keeping the last state seen');
    }
    this.#reachable = false;
    this.#lostSince ??= since;
  }

  /** Abandons the current client (presumed or really expired) and builds a new one. */
  #rebuild(why: string): void {
    const old = this.#client;
    this.#options.logger.warn(
      { connect: this.#options.connect, why, sessionTimeoutMs: this.#options.sessionTimeoutMs },
      'degrade switch: building a new ZooKeeper session',
    );
    this.#setUnreachable(Date.now(), why);
    // The new client gets a full session timeout of its own before it is given up on.
    this.#lostSince = Date.now();
    this.#connectClient();
    // Presumed dead: no polite close, which could not get through anyway.
    if (old) abandonClient(old);
    for (const supersede of [...this.#inFlight]) supersede();
    this.#inFlight.clear();
  }

  /**
   * The watchdog: rebuilds the session after a session timeout without a usable
   * connection, sends a heartbeat when the connection has been quiet, notices when a
   * heartbeat goes unanswered; then gives the owner its tick.
   */
  #tick(): void {
    try {
      if (this.#closed) return;
      const now = Date.now();
      if (this.#lostSince !== null && now - this.#lostSince >= this.#options.sessionTimeoutMs) {
        this.#rebuild(this.#clientConnected ? 'ZooKeeper stopped answering for longer than the session timeout' : 'disconnected for longer than the session timeout');
        return;
      }
      const client = this.#client;
      if (client !== undefined && this.#clientConnected) {
        if (this.#heartbeatSentAt !== null) {
          if (now - this.#heartbeatSentAt >= this.#heartbeatTimeoutMs) this.#setUnreachable(this.#lastHeardAt, 'heartbeat unanswered');
        } else if (now - this.#lastHeardAt >= this.#heartbeatIntervalMs || !this.#reachable) {
          this.#heartbeat(client);
        }
      }
      this.#hooks.onTick(now);
    } catch (error) {
      this.#options.logger.error({ err: error }, 'degrade switch: watchdog failed');
    }
  }

  /** An `exists` on the probe node: any answer proves the server is there (the client's own pings are never checked). */
  #heartbeat(client: Client): void {
    const generation = this.#generation;
    this.#heartbeatSentAt = Date.now();
    try {
      client.exists(this.#options.probePath, (error) => {
        try {
          if (generation !== this.#generation) return;
          this.#heartbeatSentAt = null;
          const code = zkCode(error);
          if (code === CONNECTION_LOSS || code === SESSION_EXPIRED) return; // the state events tell the rest
          this.#heard();
        } catch (failure) {
          this.#options.logger.error({ err: failure }, 'degrade switch: handling a heartbeat failed');
        }
      });
    } catch (error) {
      this.#heartbeatSentAt = null;
      this.#options.logger.error({ err: describeError(error) }, 'degrade switch: sending a heartbeat failed');
    }
  }
}
