/**
 * A polling loop over due messages: claim a batch (with a lease), handle each with bounded
 * concurrency, repeat at once while batches come back full, else sleep. Used by the
 * check-back loop (PENDING) and the redelivery loop (SENDING).
 */
import type { Logger } from 'pino';
import type { Message } from '../domain/message.js';

/** Options of a due loop. */
export interface DueLoopOptions {
  /** For logs: `check-back`, `redelivery`. */
  name: string;
  /** Claims up to `limit` due messages. */
  claim: (limit: number) => Promise<Message[]>;
  /** Handles one claimed message; errors are logged and the lease brings it back later. */
  handle: (message: Message) => Promise<void>;
  /** Messages claimed per pass. */
  batchSize: number;
  /** Messages handled at once. */
  concurrency: number;
  /** Sleep between passes that found less than a full batch. */
  pollIntervalMs: number;
  logger: Logger;
}

/** A claim-and-handle loop that can be started and stopped. */
export class DueLoop {
  private running: Promise<void> | undefined;
  private stopped = false;
  private wake: (() => void) | undefined;

  constructor(private readonly options: DueLoopOptions) {}

  /** Starts the loop (idempotent). */
  start(): void {
    if (this.running) return;
    this.stopped = false;
    this.running = this.run();
  }

  /** Stops claiming, lets the handlers in flight finish, and resolves. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.running;
    this.running = undefined;
  }

  private async run(): Promise<void> {
    const { logger, name } = this.options;
    let failures = 0;
    while (!this.stopped) {
      let claimed: Message[];
      try {
        claimed = await this.options.claim(this.options.batchSize);
        failures = 0;
      } catch (error) {
        failures += 1;
        if (failures === 1 || failures % 30 === 0) logger.warn({ err: error, loop: name, failures }, 'claiming due messages failed');
        await this.sleep(Math.min(this.options.pollIntervalMs * 2 ** Math.min(failures, 5), 30_000));
        continue;
      }
      await this.handleAll(claimed);
      if (claimed.length < this.options.batchSize) await this.sleep(this.options.pollIntervalMs);
    }
  }

  private async handleAll(messages: Message[]): Promise<void> {
    let next = 0;
    const worker = async () => {
      while (next < messages.length) {
        const message = messages[next++];
        if (!message) continue;
        try {
          await this.options.handle(message);
        } catch (error) {
          this.options.logger.warn({ err: error, loop: this.options.name, id: message.id }, 'handling a due message failed; it comes back when its lease ends');
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.options.concurrency, messages.length) }, worker));
  }

  private sleep(ms: number): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }
}
