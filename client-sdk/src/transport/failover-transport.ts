/**
 * The wrapped MQ client of design section 7: publishes to RabbitMQ, counts consecutive
 * failed publishes, and at the threshold flips the degrade flag in ZooKeeper; while the
 * flag is on (by automation or by hand) publishes go to the Redis lists instead. In `auto`
 * mode a probe tries RabbitMQ every few seconds and clears the flag when it works again.
 *
 * If ZooKeeper cannot be reached when the threshold is hit, this publisher falls back to
 * Redis on its own ("locally degraded") and probes RabbitMQ itself, so an outage of both
 * RabbitMQ and ZooKeeper does not stop delivery.
 */
import { hostname } from 'node:os';
import { type DegradeState, type DegradeSwitch, isDegraded } from '../degrade/degrade-switch.js';
import { type SdkLogger, silentLogger } from '../logger.js';
import { describe } from './amqp-connection.js';
import { TransportError } from './errors.js';
import type { OutgoingMessage, Transport, TransportName } from './transport.js';

/** Options of the failover transport. */
export interface FailoverTransportOptions {
  /** The normal path (RabbitMQ). */
  primary: Transport;
  /** The fallback (Redis lists). */
  fallback: Transport;
  /** The shared flag. */
  degradeSwitch: DegradeSwitch;
  /** Consecutive failed publishes that flip the flag. @defaultValue 10 */
  threshold?: number;
  /** How often a degraded publisher probes the primary. @defaultValue 5000 */
  probeIntervalMs?: number;
  /** Recorded as `changedBy` on the flag. @defaultValue `<hostname>:<pid>` */
  instance?: string;
  logger?: SdkLogger;
}

/** What the failover transport is doing, for `/readyz` and logs. */
export interface FailoverStatus {
  /** Where publishes go now. */
  mode: TransportName;
  /** Failed primary publishes in a row. */
  consecutiveFailures: number;
  /** The flag as last seen. */
  degradeState: DegradeState;
  /** Degraded on this publisher's own because ZooKeeper was unreachable. */
  locallyDegraded: boolean;
  /** Whether ZooKeeper is reachable. */
  zookeeperConnected: boolean;
}

/** A `Transport` that fails over from RabbitMQ to Redis and back. */
export class FailoverTransport implements Transport {
  private consecutiveFailures = 0;
  private locallyDegraded = false;
  private flipping: Promise<void> | undefined;
  private probeTimer: NodeJS.Timeout | undefined;
  private probing = false;
  private closed = false;
  private readonly threshold: number;
  private readonly probeIntervalMs: number;
  private readonly instance: string;
  private readonly logger: SdkLogger;
  private readonly unsubscribe: () => void;

  constructor(private readonly options: FailoverTransportOptions) {
    this.threshold = options.threshold ?? 10;
    this.probeIntervalMs = options.probeIntervalMs ?? 5000;
    this.instance = options.instance ?? `${hostname()}:${process.pid}`;
    this.logger = options.logger ?? silentLogger;
    this.unsubscribe = options.degradeSwitch.onChange(() => this.reconsiderProbe());
  }

  /** The transport publishes go to right now. */
  get name(): TransportName {
    return this.mode;
  }

  /** Where publishes go right now. */
  get mode(): TransportName {
    return this.currentMode();
  }

  private currentMode(): TransportName {
    return this.locallyDegraded || isDegraded(this.options.degradeSwitch.current()) ? 'redis' : 'rabbitmq';
  }

  /** The current mode, failure count and flag, for readiness reports. */
  status(): FailoverStatus {
    return {
      mode: this.mode,
      consecutiveFailures: this.consecutiveFailures,
      degradeState: this.options.degradeSwitch.current(),
      locallyDegraded: this.locallyDegraded,
      zookeeperConnected: this.options.degradeSwitch.connected,
    };
  }

  /**
   * Publishes through the current mode. A failed primary publish below the threshold is
   * rethrown (the caller's retry schedule applies); the one that reaches the threshold
   * flips the flag and is itself sent through the fallback, so it is not lost.
   */
  async publish(message: OutgoingMessage): Promise<TransportName> {
    if (this.closed) throw new TransportError('failover', 'CLOSED', 'the failover transport is closed');
    if (this.currentMode() === 'redis') return this.options.fallback.publish(message);
    try {
      const carrier = await this.options.primary.publish(message);
      this.consecutiveFailures = 0;
      return carrier;
    } catch (error) {
      if (!(error instanceof TransportError)) throw error;
      this.consecutiveFailures += 1;
      if (this.consecutiveFailures < this.threshold) throw error;
      await this.degrade(error);
      // degrade() may have changed the mode (TypeScript still holds the narrowing from above).
      if (this.currentMode() === 'redis') return this.options.fallback.publish(message);
      throw error; // a forced `off` mode keeps us on RabbitMQ, failing
    }
  }

  async ping(): Promise<void> {
    await (this.mode === 'redis' ? this.options.fallback.ping() : this.options.primary.ping());
  }

  async close(): Promise<void> {
    this.closed = true;
    this.unsubscribe();
    clearInterval(this.probeTimer);
    this.probeTimer = undefined;
    await Promise.allSettled([this.options.primary.close(), this.options.fallback.close()]);
  }

  /** Flips the flag once for concurrent callers; falls back locally when ZooKeeper is out of reach. */
  private degrade(cause: TransportError): Promise<void> {
    this.flipping ??= (async () => {
      const reason = `${this.consecutiveFailures} consecutive RabbitMQ publish failures (last: ${describe(cause)})`;
      try {
        const written = await this.options.degradeSwitch.setDegraded(true, reason, this.instance);
        this.logger.warn({ reason, written, state: this.options.degradeSwitch.current() }, 'RabbitMQ failing: degrade flag set; publishing to Redis');
      } catch (error) {
        this.locallyDegraded = true;
        this.logger.error({ err: error, reason }, 'RabbitMQ failing and ZooKeeper unreachable: publishing to Redis on this instance only');
      }
      this.reconsiderProbe();
    })().finally(() => {
      this.flipping = undefined;
    });
    return this.flipping;
  }

  /** Runs the probe while degraded by automation (auto mode) or locally; stops it otherwise. */
  private reconsiderProbe(): void {
    const state = this.options.degradeSwitch.current();
    const shouldProbe = !this.closed && (this.locallyDegraded || (state.mode === 'auto' && state.degraded));
    if (shouldProbe && !this.probeTimer) {
      this.probeTimer = setInterval(() => void this.runProbe(), this.probeIntervalMs);
      this.probeTimer.unref();
    } else if (!shouldProbe && this.probeTimer) {
      clearInterval(this.probeTimer);
      this.probeTimer = undefined;
    }
  }

  private async runProbe(): Promise<void> {
    if (this.probing) return;
    this.probing = true;
    try {
      const { primary } = this.options;
      await (primary.probe ? primary.probe() : primary.ping());
      this.consecutiveFailures = 0;
      if (this.locallyDegraded) {
        this.locallyDegraded = false;
        this.logger.info({}, 'RabbitMQ answers again: this instance publishes to RabbitMQ');
      }
      const state = this.options.degradeSwitch.current();
      if (state.mode === 'auto' && state.degraded) {
        await this.options.degradeSwitch.setDegraded(false, 'probe: RabbitMQ confirms publishes again', this.instance);
        this.logger.info({}, 'RabbitMQ answers again: degrade flag cleared');
      }
    } catch (error) {
      this.logger.debug?.({ err: error }, 'probe: RabbitMQ still failing (or ZooKeeper unreachable)');
    } finally {
      this.probing = false;
      this.reconsiderProbe();
    }
  }
}
