/**
 * When a consumer pops the Redis fallback lists (design section 7): while the degrade flag
 * is on, and also when this consumer can reach neither ZooKeeper nor RabbitMQ (it cannot
 * know the flag, and RabbitMQ gives it nothing, so it polls the lists anyway). When the
 * flag clears, the workers keep popping until every shard list of the topic is empty, and
 * only then stop: messages published to Redis during the outage are not stranded.
 */
import { type DegradeSwitch, isDegraded } from '../degrade/degrade-switch.js';
import type { SdkLogger } from '../logger.js';
import type { RedisListSource } from './redis-list-source.js';

/** Options of the fallback controller. */
export interface FallbackConsumptionOptions {
  topic: string;
  degradeSwitch: DegradeSwitch;
  /** A fresh source for each activation (a stopped source cannot be restarted). */
  createSource: () => RedisListSource;
  /** Whether the AMQP consumer is consuming right now. */
  amqpConsuming: () => boolean;
  /** How often to re-evaluate without a flag change (the "isolated" case). @defaultValue 1000 */
  checkIntervalMs?: number;
  logger: SdkLogger;
}

/** Starts and stops the Redis workers of one subscription. */
export class FallbackConsumption {
  private source: RedisListSource | undefined;
  private draining: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  private closed = false;

  constructor(private readonly options: FallbackConsumptionOptions) {}

  /** Whether Redis workers are running now. */
  get active(): boolean {
    return this.source?.isRunning ?? false;
  }

  /** Watches the flag and the connections. */
  start(): void {
    this.unsubscribe = this.options.degradeSwitch.onChange(() => this.evaluate());
    this.timer = setInterval(() => this.evaluate(), this.options.checkIntervalMs ?? 1000);
    this.timer.unref();
    this.evaluate();
  }

  /** Stops the workers (those in flight finish) and stops watching. */
  async close(): Promise<void> {
    this.closed = true;
    this.unsubscribe?.();
    clearInterval(this.timer);
    await this.draining?.catch(() => undefined);
    await this.source?.stop();
    this.source = undefined;
  }

  private wanted(): boolean {
    const { degradeSwitch } = this.options;
    if (isDegraded(degradeSwitch.current())) return true;
    return !degradeSwitch.connected && !this.options.amqpConsuming();
  }

  private evaluate(): void {
    if (this.closed) return;
    const { topic, logger } = this.options;
    if (this.wanted()) {
      if (!this.source) {
        this.source = this.options.createSource();
        logger.warn({ topic, flag: this.options.degradeSwitch.current() }, 'degraded: popping the Redis fallback lists too');
        void this.source.start().catch((error: unknown) => logger.error({ err: error, topic }, 'starting the Redis fallback workers failed'));
      }
      return;
    }
    if (this.source && !this.draining) {
      const source = this.source;
      logger.info({ topic }, 'degrade flag cleared: draining the Redis fallback lists before stopping');
      this.draining = source
        .drainUntilEmpty()
        .then(async () => {
          // Degraded again while draining: keep the workers.
          if (this.wanted() && !this.closed) return;
          await source.stop();
          if (this.source === source) this.source = undefined;
          logger.info({ topic }, 'Redis fallback lists drained; workers stopped');
        })
        .catch((error: unknown) => logger.warn({ err: error, topic }, 'draining the Redis fallback lists failed; will retry'))
        .finally(() => {
          this.draining = undefined;
        });
    }
  }
}
