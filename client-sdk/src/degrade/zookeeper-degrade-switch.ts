/**
 * The degrade switch on ZooKeeper (DESIGN §7): node `<root>/degrade` holds
 * `{"mode","degraded","reason","changedAt","changedBy"}`, every instance watches it, and
 * every write is a compare-and-set on the node's version.
 *
 * node-zookeeper-client (1.1.3) is thin, and most of this file exists to cover what it
 * leaves to the caller:
 * - **No request timeouts.** A request made while disconnected waits in the client's queue
 *   until a reconnect, and one sent into a stalled connection waits forever. Every request
 *   here waits for a usable connection and for its answer under one deadline, and rejects
 *   with {@link DegradeSwitchUnavailableError} when it passes; a late answer is ignored.
 * - **No `expired` during a partition.** Only the server can expire a session, so a client
 *   that cannot reach it just stays `disconnected`; and a stalled connection is never even
 *   noticed (the client pings but never checks for the answers). A heartbeat here notices
 *   the silence, and "no answer for longer than the session timeout" counts as expired.
 * - **An expired client is unusable.** It stops reconnecting for good; so on expiry (real or
 *   presumed) the client is closed and a new one built, which then re-reads and re-watches.
 * - **`close()` is unsafe without a session.** Closing while disconnected can leave a
 *   socket or open a new one (alexguan/node-zookeeper-client#60), and closing during a
 *   pending handshake crashes the process when the handshake answer arrives (see
 *   {@link abandonClient}); a stalled close never completes. Only a client with a live
 *   session is closed politely, with a grace period; any other is shut down hard.
 * - **Watchers are one-shot.** Every read sets the watch again (the client deduplicates
 *   the same watcher function); a watch event triggers a read; a reconnect triggers a read;
 *   and a periodic check re-arms a watch that a failed read left unset.
 * - **Exceptions in callbacks surface in a socket handler** and would crash the process, so
 *   no callback or watcher here lets one escape.
 */
import type net from 'node:net';
import zookeeper, { type Client, type Event as ZkEvent, type Stat, type State as ZkState } from 'node-zookeeper-client';
import { silentLogger, type SdkLogger } from '../logger.js';
import {
  DEGRADE_MODES,
  DegradeSwitchClosedError,
  DegradeSwitchConflictError,
  DegradeSwitchUnavailableError,
  INITIAL_DEGRADE_STATE,
  isDegraded,
  sameDegradeState,
  type DegradeMode,
  type DegradeState,
  type DegradeSwitch,
} from './degrade-switch.js';

/** Options of {@link ZooKeeperDegradeSwitch}. */
export interface ZooKeeperDegradeSwitchOptions {
  /** ZooKeeper connection string, e.g. `'127.0.0.1:2181'` or `'zk1:2181,zk2:2181,zk3:2181'` (env `ZK_CONNECT`). */
  connect: string;
  /**
   * The RMS root node; the flag lives in `<root>/degrade` (env `RMS_ZK_ROOT`).
   * @defaultValue `'/rms'`
   */
  root?: string;
  /**
   * The ZooKeeper session timeout asked for. Also how long the switch tolerates having no
   * usable connection before it treats the session as expired and builds a new client.
   * (The server may negotiate a longer session, at least 2 × its tickTime; rebuilding
   * earlier than the server expires the session is harmless, since the switch owns no
   * ephemeral nodes.)
   * @defaultValue `6000`
   */
  sessionTimeoutMs?: number;
  /**
   * How long {@link ZooKeeperDegradeSwitch.start} waits for the first connection and read.
   * After that it resolves anyway, with the initial state and `connected` false, and keeps
   * connecting in the background.
   * @defaultValue `5000`
   */
  connectTimeoutMs?: number;
  /**
   * The deadline of every read and write, including the wait for a usable connection.
   * Past it the call rejects with {@link DegradeSwitchUnavailableError}.
   * @defaultValue `3000`
   */
  requestTimeoutMs?: number;
  /**
   * Where connection changes, state changes and malformed node data are logged (pino-compatible).
   * @defaultValue a logger that logs nothing.
   */
  logger?: SdkLogger;
}

/** The defaults of {@link ZooKeeperDegradeSwitchOptions}. */
export const DEFAULT_ZOOKEEPER_DEGRADE_SWITCH_OPTIONS = Object.freeze({
  root: '/rms',
  sessionTimeoutMs: 6000,
  connectTimeoutMs: 5000,
  requestTimeoutMs: 3000,
});

/** The node under the root that holds the flag. */
export const DEGRADE_NODE_NAME = 'degrade';

// A compare-and-set that loses this many times in a row gives up with a conflict error;
// with a fresh read before every try, that only happens under a storm of writers.
const MAX_CAS_ATTEMPTS = 16;
// How long a rebuilt session waits before retrying a read that failed.
const REFRESH_BACKOFF_MS = 500;
// ConnectionManager's state numbers (lib/ConnectionManager.js), for closing clients safely.
const MANAGER_CONNECTED = 2;
const MANAGER_CONNECTED_READ_ONLY = 3;
const MANAGER_CLOSING = -1;
const MANAGER_CLOSED = -2;
// How long a polite close may take before the client is abandoned.
const CLOSE_GRACE_MS = 500;
const { CONNECTION_LOSS, SESSION_EXPIRED, NO_NODE, NODE_EXISTS, BAD_VERSION } = zookeeper.Exception;

type Done<T> = (error: unknown, value?: T) => void;

/** The ZooKeeper error code of a client error, or `undefined` for anything else. */
function zkCode(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const getCode = (error as { getCode?: unknown }).getCode;
  if (typeof getCode !== 'function') return undefined;
  const code: unknown = getCode.call(error);
  return typeof code === 'number' ? code : undefined;
}

function describe(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

/** `'/rms'`, `'/rms/'` → `'/rms'`; `'/'` → `''` (the node is then `/degrade`). */
function normalizeRoot(root: string): string {
  if (!root.startsWith('/')) throw new TypeError(`ZooKeeperDegradeSwitch: root must start with '/', got '${root}'`);
  const trimmed = root.replace(/\/+$/, '');
  if (trimmed.includes('//')) throw new TypeError(`ZooKeeperDegradeSwitch: root must not contain '//', got '${root}'`);
  return trimmed;
}

function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`ZooKeeperDegradeSwitch: ${name} must be a positive number, got ${value}`);
  return value;
}

/** The node's JSON: the state without its version (the version is the node's, not the data's). */
function encodeNode(state: Omit<DegradeState, 'version'>): Buffer {
  const { mode, degraded, reason, changedAt, changedBy } = state;
  return Buffer.from(JSON.stringify({ mode, degraded, reason, changedAt, changedBy }), 'utf8');
}

/**
 * Reads the node's JSON. `mode` and `degraded` are required, since they decide where the
 * traffic goes; the descriptive fields may be missing (an SRE writing by hand), but not of
 * the wrong type.
 * @returns the state, or the problem with the data.
 */
function decodeNode(data: Buffer | undefined | null, version: number): DegradeState | string {
  const text = data?.toString('utf8') ?? '';
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return 'not JSON';
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return 'not a JSON object';
  const record = parsed as Record<string, unknown>;
  const { mode, degraded, reason = null, changedAt = INITIAL_DEGRADE_STATE.changedAt, changedBy = 'unknown' } = record;
  if (typeof mode !== 'string' || !DEGRADE_MODES.includes(mode as DegradeMode)) return `"mode" must be one of ${DEGRADE_MODES.join(', ')}`;
  if (typeof degraded !== 'boolean') return '"degraded" must be true or false';
  if (reason !== null && typeof reason !== 'string') return '"reason" must be a string or null';
  if (typeof changedAt !== 'string') return '"changedAt" must be a string';
  if (typeof changedBy !== 'string') return '"changedBy" must be a string';
  return { mode: mode as DegradeMode, degraded, reason, changedAt, changedBy, version };
}

/** The internals of node-zookeeper-client 1.1.3 that closing a client for good needs. */
interface ConnectionManagerInternals {
  state?: unknown;
  socket?: net.Socket;
  setState?: (state: number) => void;
  connect?: () => void;
  onSocketConnected?: () => void;
  onPacketQueueReadable?: () => void;
}

function managerOf(client: Client): ConnectionManagerInternals | undefined {
  const manager = (client as unknown as { connectionManager?: unknown }).connectionManager;
  return typeof manager === 'object' && manager !== null ? (manager as ConnectionManagerInternals) : undefined;
}

/**
 * Shuts a client down without a word to the server: it never reconnects, never writes
 * again, and its socket is destroyed. For a client without an established session, where
 * the polite close() is unsafe: close() queues CLOSE_SESSION with xid 0, and when the
 * pending handshake's ConnectResponse then arrives, the client (now CLOSING) parses it as
 * that request's reply (its protocolVersion 0 reads as xid 0), takes session-id bytes for
 * an error code and throws "Unknown code" from a socket handler, which kills the process.
 * Also for a client presumed dead (its server session expires on its own).
 *
 * Without the expected internals (another client version) it falls back to close().
 */
function abandonClient(client: Client): void {
  const manager = managerOf(client);
  if (manager?.setState === undefined || manager.state === MANAGER_CLOSED) {
    if (manager?.state !== MANAGER_CLOSED) {
      try {
        client.close();
      } catch {
        // close() throws when the client has no socket yet.
      }
    }
    return;
  }
  // Instance properties shadow the prototype: a reconnect already scheduled (the client
  // waits up to spinDelay between rounds) binds these when it opens its socket.
  manager.connect = () => undefined;
  manager.onPacketQueueReadable = () => undefined;
  manager.onSocketConnected = function (this: ConnectionManagerInternals) {
    this.socket?.destroy();
  };
  try {
    // CLOSING: the socket's close then ends in CLOSED instead of a retry, and new requests fail at once.
    manager.setState(MANAGER_CLOSING);
  } catch {
    // setState only throws for a non-number.
  }
  manager.socket?.destroy();
}

/**
 * Closes a client for good. With an established session, politely (CLOSE_SESSION ends the
 * session on the server at once), and if the server does not confirm within `graceMs`
 * (stalled), by abandoning it; without one, by abandoning it right away.
 */
function closeClient(client: Client, graceMs: number): Promise<void> {
  const manager = managerOf(client);
  if (manager === undefined || manager.state === MANAGER_CLOSED) return Promise.resolve();
  if (manager.state !== MANAGER_CONNECTED && manager.state !== MANAGER_CONNECTED_READ_ONLY) {
    abandonClient(client);
    return Promise.resolve();
  }
  try {
    client.close();
  } catch {
    abandonClient(client);
    return Promise.resolve();
  }
  return new Promise<void>((resolve) => {
    const startedAt = Date.now();
    const timer = setInterval(() => {
      if (manager.state === MANAGER_CLOSED) {
        clearInterval(timer);
        resolve();
      } else if (Date.now() - startedAt >= graceMs) {
        clearInterval(timer);
        abandonClient(client);
        resolve();
      }
    }, 20);
    // Not unref'd: whoever awaits close() expects it to settle, and it is bounded by graceMs.
  });
}

/** Raised inside a request when its deadline passes; turned into a DegradeSwitchUnavailableError. */
const TIMED_OUT = Symbol('timed out');
/** Raised inside a request when its client is replaced by a new session; the request is sent again. */
const SUPERSEDED = Symbol('superseded');

/**
 * The {@link DegradeSwitch} on ZooKeeper. One instance per process; every instance of
 * every service watches the same node.
 *
 * @example
 * ```ts
 * const degrade = new ZooKeeperDegradeSwitch({ connect: process.env.ZK_CONNECT ?? '127.0.0.1:2181', logger });
 * degrade.onChange((state) => transport.useFallback(isDegraded(state)));
 * await degrade.start(); // resolves even when ZooKeeper is down; see `connected`
 * // ... automation, after 10 failed publishes in a row:
 * await degrade.setDegraded(true, 'RabbitMQ: 10 publishes failed in a row', 'orders@host-1');
 * await degrade.close();
 * ```
 */
export class ZooKeeperDegradeSwitch implements DegradeSwitch {
  /** The node holding the flag, e.g. `/rms/degrade`. */
  readonly path: string;
  readonly #root: string;
  readonly #connect: string;
  readonly #sessionTimeoutMs: number;
  readonly #connectTimeoutMs: number;
  readonly #requestTimeoutMs: number;
  readonly #logger: SdkLogger;
  // Derived timings: how often the switch looks at its connection, how often it asks
  // ZooKeeper for a sign of life when idle, and how long that sign may take.
  readonly #tickMs: number;
  readonly #heartbeatIntervalMs: number;
  readonly #heartbeatTimeoutMs: number;
  readonly #spinDelayMs: number;

  #state: DegradeState = INITIAL_DEGRADE_STATE;
  /** Creation zxid of the node the state was read from: a deleted and re-created node restarts its versions. */
  #czxid: string | null = null;
  #malformedLoggedFor: string | null = null;

  #client: Client | undefined;
  /** Bumped for every new client; events and answers of an older client are ignored. */
  #generation = 0;
  /** The watcher of the current client: always the same function, so re-arming does not stack watchers. */
  #watcher: ((event: ZkEvent) => void) | undefined;
  #clientConnected = false;
  #reachable = false;
  /** Since when the switch has had no usable connection; `null` while it has one. */
  #lostSince: number | null = null;
  #lastHeardAt = 0;
  #heartbeatSentAt: number | null = null;
  #watchArmed = false;
  #refreshing: Promise<void> | undefined;
  #refreshAgain = false;
  #nextRefreshAt = 0;

  #starting: Promise<void> | undefined;
  #announced = false;
  #synced = false;
  #resolveFirstSync: (() => void) | undefined;
  readonly #firstSync: Promise<void>;
  #closed = false;
  #closing: Promise<void> | undefined;
  #ticker: NodeJS.Timeout | undefined;
  readonly #listeners = new Set<(state: DegradeState) => void>();
  readonly #reachableWaiters = new Set<() => void>();
  /** Requests waiting for an answer, by the function that makes them give up on their client. */
  readonly #inFlight = new Set<() => void>();

  constructor(options: ZooKeeperDegradeSwitchOptions) {
    if (typeof options.connect !== 'string' || options.connect.trim() === '') {
      throw new TypeError('ZooKeeperDegradeSwitch: connect must be a non-empty connection string');
    }
    const defaults = DEFAULT_ZOOKEEPER_DEGRADE_SWITCH_OPTIONS;
    this.#connect = options.connect;
    this.#root = normalizeRoot(options.root ?? defaults.root);
    this.path = `${this.#root}/${DEGRADE_NODE_NAME}`;
    this.#sessionTimeoutMs = positive('sessionTimeoutMs', options.sessionTimeoutMs ?? defaults.sessionTimeoutMs);
    this.#connectTimeoutMs = positive('connectTimeoutMs', options.connectTimeoutMs ?? defaults.connectTimeoutMs);
    this.#requestTimeoutMs = positive('requestTimeoutMs', options.requestTimeoutMs ?? defaults.requestTimeoutMs);
    this.#logger = options.logger ?? silentLogger;
    this.#tickMs = Math.min(500, Math.max(50, Math.floor(this.#sessionTimeoutMs / 10)));
    this.#heartbeatIntervalMs = Math.floor(this.#sessionTimeoutMs / 3);
    this.#heartbeatTimeoutMs = Math.min(this.#requestTimeoutMs, Math.floor(this.#sessionTimeoutMs / 2));
    this.#spinDelayMs = Math.min(1000, Math.max(100, Math.floor(this.#sessionTimeoutMs / 4)));
    this.#firstSync = new Promise<void>((resolve) => {
      this.#resolveFirstSync = resolve;
    });
  }

  current(): DegradeState {
    return this.#state;
  }

  get connected(): boolean {
    return this.#reachable;
  }

  onChange(listener: (state: DegradeState) => void): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  /**
   * Connects, creates the node with the initial state if it is missing, reads it and
   * watches it. Resolves once that is done, or after `connectTimeoutMs` with the initial
   * state and `connected` false (logged as a warning): a ZooKeeper outage must not keep a
   * service from starting. The switch keeps connecting in the background either way.
   * Notifies the listeners once when it resolves.
   * @throws DegradeSwitchClosedError after {@link ZooKeeperDegradeSwitch.close}.
   */
  start(): Promise<void> {
    if (this.#closed) return Promise.reject(new DegradeSwitchClosedError('the degrade switch is closed'));
    this.#starting ??= this.#start();
    return this.#starting;
  }

  async #start(): Promise<void> {
    this.#lostSince = Date.now();
    this.#connectClient();
    this.#ticker = setInterval(() => this.#tick(), this.#tickMs);
    this.#ticker.unref();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.#firstSync, new Promise<void>((resolve) => (timer = setTimeout(resolve, this.#connectTimeoutMs)))]);
    clearTimeout(timer);
    if (this.#closed) return;
    if (!this.#synced) {
      this.#logger.warn(
        { connect: this.#connect, path: this.path, connectTimeoutMs: this.#connectTimeoutMs },
        'degrade switch: ZooKeeper not reachable at start; acting on the initial state and connecting in the background',
      );
    }
    this.#announced = true;
    this.#emit();
  }

  /**
   * Stops watching and closes the ZooKeeper session. Calls in flight reject with
   * {@link DegradeSwitchClosedError}; {@link ZooKeeperDegradeSwitch.current} keeps the
   * last state. Safe to call more than once.
   */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#closed = true;
    clearInterval(this.#ticker);
    this.#resolveFirstSync?.();
    this.#setUnreachable(Date.now(), 'closed');
    this.#wakeWaiters();
    // Requests waiting for an answer give up on their client and then find the switch closed.
    for (const supersede of [...this.#inFlight]) supersede();
    this.#inFlight.clear();
    this.#listeners.clear();
    const client = this.#client;
    this.#client = undefined;
    this.#watcher = undefined;
    this.#generation += 1;
    this.#closing = client ? closeClient(client, CLOSE_GRACE_MS) : Promise.resolve();
    return this.#closing;
  }

  /**
   * Reads the node now (and re-arms the watch), rather than answering from the last state
   * seen: for a command line that must show what is in ZooKeeper.
   * @throws DegradeSwitchUnavailableError when ZooKeeper cannot be reached within the request timeout.
   */
  async refresh(): Promise<DegradeState> {
    this.#assertOpen();
    return this.#read(Date.now() + this.#requestTimeoutMs);
  }

  async setDegraded(degraded: boolean, reason: string, changedBy: string): Promise<boolean> {
    const { written } = await this.#update('setDegraded', (state) =>
      state.mode !== 'auto' || state.degraded === degraded
        ? null
        : { ...state, degraded, reason, changedBy, changedAt: new Date().toISOString() },
    );
    return written;
  }

  async setMode(mode: DegradeMode, reason: string, changedBy: string): Promise<DegradeState> {
    if (!DEGRADE_MODES.includes(mode)) throw new TypeError(`setMode: mode must be one of ${DEGRADE_MODES.join(', ')}, got '${String(mode)}'`);
    const { state } = await this.#update('setMode', (current) => ({
      ...current,
      mode,
      reason,
      changedBy,
      changedAt: new Date().toISOString(),
    }));
    return state;
  }

  // ---------------------------------------------------------------------------------
  // Compare-and-set

  /**
   * Reads the node, lets `decide` compute the next state (or `null` for "nothing to
   * write"), and writes it at the version read. A version conflict means someone wrote in
   * between: read again and decide again. All under one deadline.
   */
  async #update(
    what: string,
    decide: (state: DegradeState) => DegradeState | null,
  ): Promise<{ written: boolean; state: DegradeState }> {
    this.#assertOpen();
    const deadline = Date.now() + this.#requestTimeoutMs;
    for (let attempt = 1; ; attempt += 1) {
      const read = await this.#read(deadline);
      const next = decide(read);
      if (next === null) return { written: false, state: read };
      try {
        const stat = await this.#call<Stat>(what, deadline, (client, done) =>
          client.setData(this.path, encodeNode(next), read.version, (error, stat) => done(error, stat)),
        );
        const written: DegradeState = Object.freeze({ ...next, version: stat.version });
        this.#apply(written, stat);
        return { written: true, state: written };
      } catch (error) {
        const code = zkCode(error);
        // BAD_VERSION: someone wrote since our read; NO_NODE: someone deleted the node (the read re-creates it).
        if (code !== BAD_VERSION && code !== NO_NODE) throw error;
        if (attempt >= MAX_CAS_ATTEMPTS) {
          throw new DegradeSwitchConflictError(`${what}: lost the compare-and-set on ${this.path} ${attempt} times in a row`, { cause: error });
        }
        this.#logger.debug?.({ path: this.path, attempt, version: read.version }, `degrade switch: ${what} lost a compare-and-set race; re-reading`);
      }
    }
  }

  // ---------------------------------------------------------------------------------
  // Reading and watching

  /** Reads the node with the watch set, creating it first if it is missing, and applies what it read. */
  async #read(deadline: number): Promise<DegradeState> {
    for (let attempt = 1; ; attempt += 1) {
      try {
        let generation = 0;
        const { data, stat } = await this.#call<{ data: Buffer | undefined; stat: Stat }>('getData', deadline, (client, done) => {
          generation = this.#generation;
          const watcher = this.#watcher;
          const callback = (error: unknown, data: Buffer | undefined, stat: Stat): void => done(error, { data, stat });
          if (watcher) client.getData(this.path, watcher, callback);
          else client.getData(this.path, callback);
        });
        if (generation === this.#generation) this.#watchArmed = true;
        const state = this.#decode(data, stat);
        this.#apply(state, stat);
        if (!this.#synced) {
          this.#synced = true;
          this.#resolveFirstSync?.();
        }
        return state;
      } catch (error) {
        if (zkCode(error) !== NO_NODE || attempt >= 3) throw error;
        await this.#createNode(deadline);
      }
    }
  }

  /** Creates the parents and the node with the initial state; losing that race to another instance is fine. */
  async #createNode(deadline: number): Promise<void> {
    if (this.#root !== '') {
      await this.#call<string>('mkdirp', deadline, (client, done) => client.mkdirp(this.#root, (error, path) => done(error, path)));
    }
    const initial = { ...INITIAL_DEGRADE_STATE, changedAt: new Date().toISOString() };
    try {
      await this.#call<string>('create', deadline, (client, done) => client.create(this.path, encodeNode(initial), (error, path) => done(error, path)));
      this.#logger.info({ path: this.path }, 'degrade switch: created the degrade node with the initial state');
    } catch (error) {
      if (zkCode(error) !== NODE_EXISTS) throw error;
    }
  }

  #decode(data: Buffer | undefined, stat: Stat): DegradeState {
    const decoded = decodeNode(data, stat.version);
    if (typeof decoded !== 'string') return Object.freeze(decoded);
    // Log once per bad version, not on every re-read of it.
    const key = `${stat.czxid.toString('hex')}:${stat.version}`;
    if (this.#malformedLoggedFor !== key) {
      this.#malformedLoggedFor = key;
      this.#logger.error(
        { path: this.path, version: stat.version, problem: decoded, data: (data?.toString('utf8') ?? '').slice(0, 200) },
        'degrade switch: malformed data in the degrade node; acting on the initial state until a valid write',
      );
    }
    // Keep the node's version so a compare-and-set write can replace the bad data.
    return Object.freeze({ ...INITIAL_DEGRADE_STATE, version: stat.version });
  }

  /** Takes a state read or written, unless an answer about a newer version of the same node already came in. */
  #apply(state: DegradeState, stat: Stat): void {
    const czxid = stat.czxid.toString('hex');
    const previous = this.#state;
    if (czxid === this.#czxid && (state.version < previous.version || sameDegradeState(state, previous))) return;
    this.#czxid = czxid;
    this.#state = state;
    if (isDegraded(state) !== isDegraded(previous) || state.mode !== previous.mode) {
      this.#logger.info(
        { path: this.path, mode: state.mode, degraded: state.degraded, effective: isDegraded(state) ? 'degraded' : 'normal', reason: state.reason, changedBy: state.changedBy, version: state.version },
        'degrade switch: state changed',
      );
    }
    this.#emit();
  }

  #onWatchEvent(generation: number, event: ZkEvent): void {
    // Runs inside the client's socket handler: nothing may throw out of here.
    try {
      if (generation !== this.#generation || this.#closed) return;
      this.#watchArmed = false;
      this.#logger.debug?.({ path: this.path, event: event.getName() }, 'degrade switch: watch fired');
      void this.#refresh();
    } catch (error) {
      this.#logger.error({ err: error }, 'degrade switch: handling a watch event failed');
    }
  }

  /** One read at a time; a request during a read makes it read once more afterwards. Never rejects. */
  #refresh(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    if (this.#refreshing) {
      this.#refreshAgain = true;
      return this.#refreshing;
    }
    this.#refreshing = (async () => {
      try {
        do {
          this.#refreshAgain = false;
          await this.#read(Date.now() + this.#requestTimeoutMs);
        } while (this.#refreshAgain && !this.#closed);
      } catch (error) {
        if (!this.#closed) {
          this.#nextRefreshAt = Date.now() + REFRESH_BACKOFF_MS;
          this.#logger.warn({ path: this.path, err: describe(error) }, 'degrade switch: reading the degrade node failed; will retry');
        }
      } finally {
        this.#refreshing = undefined;
      }
    })();
    return this.#refreshing;
  }

  // ---------------------------------------------------------------------------------
  // Requests with a deadline

  /**
   * Sends one request on the current client once it has a usable connection, and waits
   * for the answer, all before `deadline`. Retries when the connection drops under it
   * (the client answers CONNECTION_LOSS) while time is left. A ZooKeeper error answer is
   * passed on as it is.
   */
  async #call<T>(what: string, deadline: number, send: (client: Client, done: Done<T>) => void): Promise<T> {
    for (;;) {
      this.#assertOpen();
      await this.#whenReachable(what, deadline);
      const client = this.#client;
      const remaining = deadline - Date.now();
      if (client === undefined || remaining <= 0) throw this.#unavailable(what);
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
          throw this.#unavailable(what);
        }
        const code = zkCode(error);
        if (code === CONNECTION_LOSS || code === SESSION_EXPIRED) {
          if (Date.now() < deadline) {
            await sleep(Math.min(50, deadline - Date.now()));
            continue;
          }
          throw this.#unavailable(what, error);
        }
        if (code !== undefined && generation === this.#generation) this.#heard();
        throw error;
      }
    }
  }

  #unavailable(what: string, cause?: unknown): DegradeSwitchUnavailableError {
    return new DegradeSwitchUnavailableError(
      `degrade switch: ZooKeeper at ${this.#connect} did not answer ${what} on ${this.path} within ${this.#requestTimeoutMs} ms`,
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
        reject(this.#unavailable(what));
      }, Math.max(0, deadline - Date.now()));
      this.#reachableWaiters.add(wake);
    });
  }

  #wakeWaiters(): void {
    for (const wake of [...this.#reachableWaiters]) wake();
  }

  #assertOpen(): void {
    if (this.#closed) throw new DegradeSwitchClosedError('the degrade switch is closed');
    if (this.#starting === undefined) throw new DegradeSwitchClosedError('the degrade switch is not started');
  }

  // ---------------------------------------------------------------------------------
  // Connection and session

  #connectClient(): void {
    const generation = (this.#generation += 1);
    const client = zookeeper.createClient(this.#connect, {
      sessionTimeout: this.#sessionTimeoutMs,
      spinDelay: this.#spinDelayMs,
      // The client's own retries wait for a reconnect without a deadline; ours have one.
      retries: 0,
    });
    client.on('state', (state: ZkState) => this.#onState(generation, state));
    // The client does not emit 'error' today; if a version does, it must not crash the process.
    (client as unknown as NodeJS.EventEmitter).on('error', (error: unknown) =>
      this.#logger.error({ err: describe(error) }, 'degrade switch: ZooKeeper client error'),
    );
    this.#client = client;
    this.#watcher = (event: ZkEvent) => this.#onWatchEvent(generation, event);
    this.#clientConnected = false;
    this.#heartbeatSentAt = null;
    this.#watchArmed = false;
    client.connect();
  }

  #onState(generation: number, state: ZkState): void {
    // Emitted from the client's socket handlers: nothing may throw out of here.
    try {
      if (generation !== this.#generation || this.#closed) return;
      const { State } = zookeeper;
      if (state === State.SYNC_CONNECTED || state === State.CONNECTED_READ_ONLY) {
        this.#clientConnected = true;
        this.#heartbeatSentAt = null;
        this.#logger.info({ connect: this.#connect, sessionId: this.#client?.getSessionId().toString('hex') }, 'degrade switch: connected to ZooKeeper');
        this.#heard();
        // Watches survive a reconnect within the session in theory; read anyway, which
        // re-arms the watch and catches any change missed while disconnected.
        this.#watchArmed = false;
        void this.#refresh();
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
        this.#logger.error({ connect: this.#connect }, 'degrade switch: ZooKeeper authentication failed');
        this.#setUnreachable(Date.now(), 'authentication failed');
      }
    } catch (error) {
      this.#logger.error({ err: error }, 'degrade switch: handling a ZooKeeper state change failed');
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
      this.#logger.warn({ connect: this.#connect, why }, 'degrade switch: ZooKeeper unreachable; keeping the last state seen');
    }
    this.#reachable = false;
    this.#lostSince ??= since;
  }

  /** Closes the current client (presumed or really expired) and builds a new one, which re-reads and re-watches. */
  #rebuild(why: string): void {
    const old = this.#client;
    this.#logger.warn({ connect: this.#connect, why, sessionTimeoutMs: this.#sessionTimeoutMs }, 'degrade switch: building a new ZooKeeper session');
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
   * heartbeat goes unanswered, and re-arms a watch that a failed read left unset.
   */
  #tick(): void {
    try {
      if (this.#closed) return;
      const now = Date.now();
      if (this.#lostSince !== null && now - this.#lostSince >= this.#sessionTimeoutMs) {
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
      if (this.#reachable && !this.#watchArmed && this.#refreshing === undefined && now >= this.#nextRefreshAt) void this.#refresh();
    } catch (error) {
      this.#logger.error({ err: error }, 'degrade switch: watchdog failed');
    }
  }

  /** An `exists` on the node: any answer proves the server is there (the client's own pings are never checked). */
  #heartbeat(client: Client): void {
    const generation = this.#generation;
    this.#heartbeatSentAt = Date.now();
    try {
      client.exists(this.path, (error) => {
        try {
          if (generation !== this.#generation) return;
          this.#heartbeatSentAt = null;
          const code = zkCode(error);
          if (code === CONNECTION_LOSS || code === SESSION_EXPIRED) return; // the state events tell the rest
          this.#heard();
        } catch (failure) {
          this.#logger.error({ err: failure }, 'degrade switch: handling a heartbeat failed');
        }
      });
    } catch (error) {
      this.#heartbeatSentAt = null;
      this.#logger.error({ err: describe(error) }, 'degrade switch: sending a heartbeat failed');
    }
  }

  #emit(): void {
    if (!this.#announced || this.#closed) return;
    const state = this.#state;
    for (const listener of [...this.#listeners]) {
      try {
        listener(state);
      } catch (error) {
        this.#logger.error({ err: error }, 'degrade switch: a change listener threw');
      }
    }
  }
}
