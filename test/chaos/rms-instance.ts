/**
 * One RMS instance of the run, a real process (`spawnRms`) on a port of its own that it
 * keeps across restarts, so clients keep their URL while it is killed and started again.
 * Its output is appended to a log file for reading after the run.
 */
import { createWriteStream, readFileSync, type WriteStream } from 'node:fs';
import { type RmsProcess, spawnRms } from '../support/rms-process.js';

/** A restartable RMS process. */
export class RmsInstance {
  #process: RmsProcess | undefined;
  #frozen = false;
  readonly #log: WriteStream;
  /** Times the process was started. */
  starts = 0;

  /**
   * @param name - for the log and the report, e.g. `rms-0`.
   * @param port - the fixed HTTP port.
   * @param env - RMS's environment (`PORT` is set from `port`).
   * @param logPath - where its stdout and stderr are appended.
   */
  constructor(
    readonly name: string,
    readonly port: number,
    private readonly env: Record<string, string>,
    private readonly logPath: string,
  ) {
    this.#log = createWriteStream(logPath, { flags: 'a' });
  }

  /** Its log lines at `minLevel` or above (pino's numbers: 50 error, 60 fatal), counted by message. */
  logMessages(minLevel: number): Map<string, number> {
    const counts = new Map<string, number>();
    for (const line of readFileSync(this.logPath, 'utf8').split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        const entry = JSON.parse(line) as { level?: number; msg?: string };
        if ((entry.level ?? 0) < minLevel) continue;
        const message = entry.msg ?? '(no message)';
        counts.set(message, (counts.get(message) ?? 0) + 1);
      } catch {
        // A line cut off by a SIGKILL is not JSON; it says nothing about the level.
      }
    }
    return counts;
  }

  /** `http://127.0.0.1:<port>`. */
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Whether the process is running (possibly frozen). */
  get running(): boolean {
    const child = this.#process?.child;
    return child !== undefined && child.exitCode === null && child.signalCode === null;
  }

  /** Starts the process and resolves once it listens; rejects when it exits first or takes longer than `timeoutMs`. */
  async start(timeoutMs = 60_000): Promise<void> {
    const started = spawnRms({ ...this.env, PORT: String(this.port) });
    this.#process = started;
    this.starts += 1;
    this.#frozen = false;
    started.child.stdout?.on('data', (chunk: Buffer) => this.#log.write(chunk));
    started.child.stderr?.on('data', (chunk: Buffer) => this.#log.write(chunk));
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${this.name} did not listen within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      await Promise.race([started.listening, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** SIGKILL, and wait until the process is gone. */
  async kill(): Promise<void> {
    const started = this.#process;
    if (!started || !this.running) return;
    started.child.kill('SIGKILL');
    await started.exited;
  }

  /** SIGSTOP: the process keeps its sockets and its claims but does nothing. */
  freeze(): void {
    if (!this.running) return;
    this.#process?.child.kill('SIGSTOP');
    this.#frozen = true;
  }

  /** SIGCONT after {@link RmsInstance.freeze}. */
  thaw(): void {
    if (!this.#frozen) return;
    this.#process?.child.kill('SIGCONT');
    this.#frozen = false;
  }

  /** Thaws and starts it again when it is not running: the state every cycle begins from. */
  async heal(): Promise<void> {
    this.thaw();
    if (!this.running) await this.start();
  }

  /** SIGTERM (graceful), SIGKILL after `timeoutMs`; closes the log. */
  async stop(timeoutMs = 10_000): Promise<void> {
    const started = this.#process;
    if (started && this.running) {
      this.thaw();
      started.child.kill('SIGTERM');
      const timer = setTimeout(() => started.child.kill('SIGKILL'), timeoutMs);
      await started.exited;
      clearTimeout(timer);
    }
    if (!this.#log.writableEnded) await new Promise((resolve) => this.#log.end(resolve));
  }
}
