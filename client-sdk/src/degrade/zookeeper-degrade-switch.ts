/**
 * The degrade switch on ZooKeeper (DESIGN §7): node `<root>/degrade` holds
 * `{"mode","degraded","reason","changedAt","changedBy"}`, every instance watches it, and
 * every write is a compare-and-set on the node's version.
 *
 * This module holds the switch's decisions: what the state is, when to read it again,
 * how a write is decided and retried on a lost compare-and-set, and when listeners hear of
 * a change. Keeping a ZooKeeper session usable (deadlines on every request, a heartbeat,
 * rebuilding a session that is presumed expired, moving between the servers of an
 * ensemble, closing clients safely) is `zookeeper/zookeeper-session.ts`'s; the node's data
 * format is `zookeeper/degrade-node.ts`'s.
 *
 * Watchers are one-shot: every read sets the watch again (the client deduplicates the
 * same watcher function); a watch event triggers a read; a (re)connect triggers a read;
 * and a periodic check re-arms a watch that a failed read left unset.
 */
import zookeeper, { type Event as ZkEvent, type Stat } from 'node-zookeeper-client';
import { silentLogger, type SdkLogger } from '../logger.js';
import {
  DEGRADE_MODES,
  DegradeSwitchClosedError,
  DegradeSwitchConflictError,
  INITIAL_DEGRADE_STATE,
  isDegraded,
  sameDegradeState,
  type DegradeMode,
  type DegradeState,
  type DegradeSwitch,
} from './degrade-switch.js';
import { decodeNode, encodeNode } from './zookeeper/degrade-node.js';
import { describeError, zkCode, ZooKeeperSession } from './zookeeper/zookeeper-session.js';

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
const { NO_NODE, NODE_EXISTS, BAD_VERSION } = zookeeper.Exception;

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
  readonly #connectTimeoutMs: number;
  readonly #requestTimeoutMs: number;
  readonly #logger: SdkLogger;
  readonly #session: ZooKeeperSession;

  #state: DegradeState = INITIAL_DEGRADE_STATE;
  /** Creation zxid of the node the state was read from: a deleted and re-created node restarts its versions. */
  #czxid: string | null = null;
  #malformedLoggedFor: string | null = null;

  /** Whether the current client holds a watch on the node (set by a successful read on it). */
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
  readonly #listeners = new Set<(state: DegradeState) => void>();

  constructor(options: ZooKeeperDegradeSwitchOptions) {
    if (typeof options.connect !== 'string' || options.connect.trim() === '') {
      throw new TypeError('ZooKeeperDegradeSwitch: connect must be a non-empty connection string');
    }
    const defaults = DEFAULT_ZOOKEEPER_DEGRADE_SWITCH_OPTIONS;
    this.#connect = options.connect;
    this.#root = normalizeRoot(options.root ?? defaults.root);
    this.path = `${this.#root}/${DEGRADE_NODE_NAME}`;
    const sessionTimeoutMs = positive('sessionTimeoutMs', options.sessionTimeoutMs ?? defaults.sessionTimeoutMs);
    this.#connectTimeoutMs = positive('connectTimeoutMs', options.connectTimeoutMs ?? defaults.connectTimeoutMs);
    this.#requestTimeoutMs = positive('requestTimeoutMs', options.requestTimeoutMs ?? defaults.requestTimeoutMs);
    this.#logger = options.logger ?? silentLogger;
    this.#session = new ZooKeeperSession(
      { connect: this.#connect, sessionTimeoutMs, requestTimeoutMs: this.#requestTimeoutMs, probePath: this.path, logger: this.#logger },
      {
        onConnected: () => {
          // Read again: re-arms the watch and catches any change missed while disconnected.
          this.#watchArmed = false;
          void this.#refresh();
        },
        onWatchEvent: (event) => this.#onWatchEvent(event),
        onTick: (now) => {
          if (this.#session.reachable && !this.#watchArmed && this.#refreshing === undefined && now >= this.#nextRefreshAt) void this.#refresh();
        },
      },
    );
    this.#firstSync = new Promise<void>((resolve) => {
      this.#resolveFirstSync = resolve;
    });
  }

  current(): DegradeState {
    return this.#state;
  }

  get connected(): boolean {
    return this.#session.reachable;
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
    this.#session.start();
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
    this.#resolveFirstSync?.();
    this.#listeners.clear();
    // Requests in flight give up on their client and then find the switch closed.
    this.#closing = this.#session.close();
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
        const stat = await this.#session.call<Stat>(what, deadline, (client, done) =>
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
        const { data, stat } = await this.#session.call<{ data: Buffer | undefined; stat: Stat }>('getData', deadline, (client, done) => {
          generation = this.#session.generation;
          const watcher = this.#session.watcher;
          const callback = (error: unknown, data: Buffer | undefined, stat: Stat): void => done(error, { data, stat });
          if (watcher) client.getData(this.path, watcher, callback);
          else client.getData(this.path, callback);
        });
        if (generation === this.#session.generation) this.#watchArmed = true;
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
      await this.#session.call<string>('mkdirp', deadline, (client, done) => client.mkdirp(this.#root, (error, path) => done(error, path)));
    }
    const initial = { ...INITIAL_DEGRADE_STATE, changedAt: new Date().toISOString() };
    try {
      await this.#session.call<string>('create', deadline, (client, done) => client.create(this.path, encodeNode(initial), (error, path) => done(error, path)));
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

  #onWatchEvent(event: ZkEvent): void {
    if (this.#closed) return;
    this.#watchArmed = false;
    this.#logger.debug?.({ path: this.path, event: event.getName() }, 'degrade switch: watch fired');
    void this.#refresh();
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
          this.#logger.warn({ path: this.path, err: describeError(error) }, 'degrade switch: reading the degrade node failed; will retry');
        }
      } finally {
        this.#refreshing = undefined;
      }
    })();
    return this.#refreshing;
  }

  #assertOpen(): void {
    if (this.#closed) throw new DegradeSwitchClosedError('the degrade switch is closed');
    if (this.#starting === undefined) throw new DegradeSwitchClosedError('the degrade switch is not started');
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
