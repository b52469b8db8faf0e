/**
 * A degrade switch held in memory: for unit tests of components that use the switch, and
 * for single-process setups where there is nobody to share the flag with. Same rules as
 * the ZooKeeper switch (automation writes `degraded` only in `'auto'` mode, versions count
 * up on every write), without the network.
 */
import { silentLogger, type SdkLogger } from '../logger.js';
import {
  DEGRADE_MODES,
  DegradeSwitchClosedError,
  DegradeSwitchUnavailableError,
  INITIAL_DEGRADE_STATE,
  type DegradeMode,
  type DegradeState,
  type DegradeSwitch,
} from './degrade-switch.js';

/** Options of {@link MemoryDegradeSwitch}. */
export interface MemoryDegradeSwitchOptions {
  /**
   * The state to start from (the version is ignored: the in-memory "node" starts at version 0).
   * @defaultValue {@link INITIAL_DEGRADE_STATE}: mode `'auto'`, not degraded.
   */
  initial?: Partial<Omit<DegradeState, 'version'>>;
  /**
   * Where listener errors are logged.
   * @defaultValue a logger that logs nothing.
   */
  logger?: SdkLogger;
}

/** An in-memory {@link DegradeSwitch}. */
export class MemoryDegradeSwitch implements DegradeSwitch {
  #state: DegradeState;
  #reachable = true;
  #started = false;
  #closed = false;
  readonly #listeners = new Set<(state: DegradeState) => void>();
  readonly #logger: SdkLogger;

  constructor(options: MemoryDegradeSwitchOptions = {}) {
    this.#state = Object.freeze({ ...INITIAL_DEGRADE_STATE, ...options.initial, version: 0 });
    this.#logger = options.logger ?? silentLogger;
  }

  current(): DegradeState {
    return this.#state;
  }

  get connected(): boolean {
    return this.#reachable && this.#started && !this.#closed;
  }

  /**
   * Simulates the store going away (`false`) and coming back (`true`): while unreachable,
   * `connected` is false and writes reject with {@link DegradeSwitchUnavailableError}.
   */
  setReachable(reachable: boolean): void {
    this.#reachable = reachable;
  }

  onChange(listener: (state: DegradeState) => void): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  async setDegraded(degraded: boolean, reason: string, changedBy: string): Promise<boolean> {
    this.#assertWritable();
    const state = this.#state;
    if (state.mode !== 'auto' || state.degraded === degraded) return false;
    this.#write({ ...state, degraded, reason, changedBy });
    return true;
  }

  async setMode(mode: DegradeMode, reason: string, changedBy: string): Promise<DegradeState> {
    if (!DEGRADE_MODES.includes(mode)) throw new TypeError(`setMode: mode must be one of ${DEGRADE_MODES.join(', ')}, got '${String(mode)}'`);
    this.#assertWritable();
    this.#write({ ...this.#state, mode, reason, changedBy });
    return this.#state;
  }

  async start(): Promise<void> {
    if (this.#closed) throw new DegradeSwitchClosedError('the degrade switch is closed');
    if (this.#started) return;
    this.#started = true;
    this.#emit();
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#listeners.clear();
  }

  #assertWritable(): void {
    if (!this.#started || this.#closed) {
      throw new DegradeSwitchClosedError(this.#closed ? 'the degrade switch is closed' : 'the degrade switch is not started');
    }
    if (!this.#reachable) throw new DegradeSwitchUnavailableError('the in-memory degrade switch is set unreachable');
  }

  #write(next: Omit<DegradeState, 'version' | 'changedAt'>): void {
    this.#state = Object.freeze({ ...next, changedAt: new Date().toISOString(), version: this.#state.version + 1 });
    this.#emit();
  }

  #emit(): void {
    for (const listener of [...this.#listeners]) {
      try {
        listener(this.#state);
      } catch (error) {
        this.#logger.error({ err: error }, 'degrade switch: a change listener threw');
      }
    }
  }
}
