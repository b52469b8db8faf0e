/**
 * The degrade switch: the one flag that sends every publisher to the Redis fallback lists
 * and makes every consumer pop them (DESIGN §7). This file is the port; the ZooKeeper node
 * `<root>/degrade` is the production adapter, an in-memory switch the test and
 * single-process one.
 *
 * Two writers share the flag and never overwrite each other's decision:
 * - **automation** (the failure detector and the recovery probe) writes only `degraded`,
 *   and only while `mode` is `'auto'`;
 * - **SREs** write `mode`: `'on'` forces the fallback, `'off'` forbids it, `'auto'` hands
 *   the decision back to automation.
 */

/** Who decides: `'auto'` lets automation's `degraded` decide, `'on'` / `'off'` are forced by an SRE. */
export type DegradeMode = 'auto' | 'on' | 'off';

/** The switch's stored state, as in the ZooKeeper node, plus the node's version. */
export interface DegradeState {
  /** Who decides; see {@link DegradeMode}. */
  mode: DegradeMode;
  /** Automation's verdict (RabbitMQ is failing); only effective while `mode` is `'auto'`. */
  degraded: boolean;
  /** Why the last writer changed it, free text; `null` when never changed. */
  reason: string | null;
  /** When it was last changed, ISO 8601. */
  changedAt: string;
  /** Who changed it last: a host/process for automation, `user@host` for an SRE. */
  changedBy: string;
  /** The ZooKeeper node's version the state was read at (the compare-and-set token); -1 when never read. */
  version: number;
}

/** Every mode, for validation. */
export const DEGRADE_MODES: readonly DegradeMode[] = ['auto', 'on', 'off'];

/** The state of a switch nobody has written yet: automation decides, and RabbitMQ is fine. */
export const INITIAL_DEGRADE_STATE: DegradeState = Object.freeze({
  mode: 'auto',
  degraded: false,
  reason: null,
  changedAt: '1970-01-01T00:00:00.000Z',
  changedBy: 'rms',
  version: -1,
});

/**
 * The effective state: traffic goes to the fallback when an SRE forced it (`mode` `'on'`),
 * or when automation decided so and nobody overrides it (`mode` `'auto'` and `degraded`).
 */
export function isDegraded(state: DegradeState): boolean {
  return state.mode === 'on' || (state.mode === 'auto' && state.degraded);
}

/** Whether two states are the same stored state (same content and same node version). */
export function sameDegradeState(a: DegradeState, b: DegradeState): boolean {
  return (
    a.mode === b.mode &&
    a.degraded === b.degraded &&
    a.reason === b.reason &&
    a.changedAt === b.changedAt &&
    a.changedBy === b.changedBy &&
    a.version === b.version
  );
}

/** Machine-readable reason of a {@link DegradeSwitchError}. */
export type DegradeSwitchErrorCode = 'UNAVAILABLE' | 'CONFLICT' | 'CLOSED';

/** Any failed call to a degrade switch. Callers use `instanceof` on the subclasses, never the message. */
export class DegradeSwitchError extends Error {
  /** Why. */
  readonly code: DegradeSwitchErrorCode;

  constructor(code: DegradeSwitchErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'DegradeSwitchError';
    this.code = code;
  }
}

/**
 * The switch's store (ZooKeeper) could not be reached, or did not answer, within the
 * request timeout. Try again later; meanwhile act on {@link DegradeSwitch.current}.
 *
 * A write that timed out after it was sent may still be applied later (as with any
 * ZooKeeper connection loss); the switch's watch reports it if so.
 */
export class DegradeSwitchUnavailableError extends DegradeSwitchError {
  constructor(message: string, options?: ErrorOptions) {
    super('UNAVAILABLE', message, options);
    this.name = 'DegradeSwitchUnavailableError';
  }
}

/** A compare-and-set write kept losing to concurrent writers and gave up. Retrying later may succeed. */
export class DegradeSwitchConflictError extends DegradeSwitchError {
  constructor(message: string, options?: ErrorOptions) {
    super('CONFLICT', message, options);
    this.name = 'DegradeSwitchConflictError';
  }
}

/** The switch was used before {@link DegradeSwitch.start} or after {@link DegradeSwitch.close}: a programming error. */
export class DegradeSwitchClosedError extends DegradeSwitchError {
  constructor(message: string) {
    super('CLOSED', message);
    this.name = 'DegradeSwitchClosedError';
  }
}

/**
 * The degrade flag as a component sees it: the last state seen, change notifications,
 * and the two kinds of writes (automation's and an SRE's).
 */
export interface DegradeSwitch {
  /** The last state seen (kept while the store is unreachable). */
  current(): DegradeState;
  /** Whether the store (ZooKeeper) is reachable right now. */
  readonly connected: boolean;
  /**
   * Called on every change of the effective or stored state, and once when
   * {@link DegradeSwitch.start} completes. A listener that throws is logged and ignored.
   * @returns a function that unsubscribes the listener.
   */
  onChange(listener: (state: DegradeState) => void): () => void;
  /**
   * Automation's write: sets `degraded`, only while `mode` is `'auto'`, compare-and-set on
   * the version, re-reading and retrying on a version conflict.
   * @returns `true` when it wrote, `false` when nothing was written (mode is not `'auto'`,
   *   or `degraded` already has that value).
   * @throws DegradeSwitchUnavailableError when the store cannot be reached within the request timeout.
   * @throws DegradeSwitchConflictError when concurrent writers kept winning the compare-and-set.
   */
  setDegraded(degraded: boolean, reason: string, changedBy: string): Promise<boolean>;
  /**
   * An SRE's write: sets `mode` (keeping `degraded` as it is), compare-and-set on the
   * version. Always writes, so the reason and author are recorded even when the mode
   * does not change.
   * @returns the state written.
   * @throws DegradeSwitchUnavailableError when the store cannot be reached within the request timeout.
   * @throws DegradeSwitchConflictError when concurrent writers kept winning the compare-and-set.
   */
  setMode(mode: DegradeMode, reason: string, changedBy: string): Promise<DegradeState>;
  /** Connects, reads the state and starts watching it. */
  start(): Promise<void>;
  /** Stops watching and disconnects; {@link DegradeSwitch.current} keeps answering. */
  close(): Promise<void>;
}
