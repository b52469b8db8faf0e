/**
 * The runner's handle on the consumer process (`consumer-main.ts`): starts it, collects
 * what it reports, makes it crash in the middle of a handler, restarts it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import type { RecordedAnswer } from './answer-log.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const MAIN = fileURLToPath(new URL('./consumer-main.ts', import.meta.url));

/** What the consumer process is told at start (as `CHAOS_CONSUMER`). */
export interface ConsumerSettings {
  topic: string;
  rmsUrl: string;
  token: string;
  amqpUrl: string;
  redisUrl: string;
  zkConnect: string;
  zkRoot: string;
  zkSessionTimeoutMs: number;
  heartbeatIntervalMs: number;
  clientTimeoutMs: number;
  /** How long each handler works. */
  handlerMs: number;
}

/** Runner → consumer. */
export type ConsumerCommand = { type: 'crash-mid-handler' } | { type: 'close' };

/** Consumer → runner. */
export type ConsumerReport =
  | { type: 'ready' }
  | { type: 'handled'; key: string; id: string; transport: 'rabbitmq' | 'redis'; attempt: number }
  | { type: 'crashed'; key: string; id: string }
  | { type: 'answer'; answer: RecordedAnswer };

/** A consumer process that can be crashed and started again; reports go to `onReport`. */
export class ConsumerProcess {
  #child: ChildProcess | undefined;
  #exited: Promise<unknown> = Promise.resolve();
  /** Times the process was started. */
  starts = 0;

  constructor(
    private readonly settings: ConsumerSettings,
    private readonly onReport: (report: ConsumerReport) => void,
  ) {}

  /** Whether the process is running. */
  get running(): boolean {
    return this.#child !== undefined && this.#child.exitCode === null && this.#child.signalCode === null;
  }

  /** Starts the process and resolves once it consumes; rejects if it exits or is not ready within `timeoutMs`. */
  async start(timeoutMs = 60_000): Promise<void> {
    const child = spawn(process.execPath, ['--conditions=rms-source', '--import', 'tsx', MAIN], {
      cwd: ROOT,
      env: { PATH: process.env['PATH'] ?? '', CHAOS_CONSUMER: JSON.stringify(this.settings) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.#child = child;
    this.starts += 1;
    this.#exited = once(child, 'exit');
    const ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the consumer was not ready within ${timeoutMs} ms`)), timeoutMs);
      child.on('message', (report: ConsumerReport) => {
        if (report.type === 'ready') {
          clearTimeout(timer);
          resolve();
        }
        this.onReport(report);
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`the consumer exited (${code ?? signal}) before it was ready`));
      });
    });
    await ready;
  }

  /**
   * Has the next handler crash the process; resolves once it has exited. When no delivery
   * arrives within `timeoutMs` (nothing to handle), the process is SIGKILLed anyway and the
   * result says so.
   */
  async crashMidHandler(timeoutMs: number): Promise<'mid-handler' | 'idle'> {
    const child = this.#child;
    if (!child || !this.running) return 'idle';
    child.send({ type: 'crash-mid-handler' } satisfies ConsumerCommand);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    let crashedInHandler = false;
    const onReport = (report: ConsumerReport) => void (report.type === 'crashed' && (crashedInHandler = true));
    child.on('message', onReport);
    await this.#exited;
    clearTimeout(timer);
    child.off('message', onReport);
    return crashedInHandler ? 'mid-handler' : 'idle';
  }

  /** Closes the subscription cleanly (acks flushed); SIGKILLs after `timeoutMs`. */
  async close(timeoutMs = 15_000): Promise<void> {
    const child = this.#child;
    if (!child || !this.running) return;
    child.send({ type: 'close' } satisfies ConsumerCommand);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    await this.#exited;
    clearTimeout(timer);
  }
}
