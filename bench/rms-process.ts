/**
 * RMS as a child process of the bench, started the way `npm start` runs it but from the
 * TypeScript sources, so that its CPU and memory are its own and not mixed with the
 * producers' and the consumer's (which live in the bench process).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../scripts/demo-stack.js';

/** How to start one RMS process. */
export interface RmsProcessOptions {
  /** The repository root (the working directory of the child). */
  cwd: string;
  /** Environment on top of the bench's own (STORE_URL, RMS_APPS, schedules, ...); PORT is set here. */
  env: Record<string, string>;
  /** Where the child's stdout and stderr go. */
  logFile: string;
  /** When set, the child runs with `--cpu-prof` and writes its profile here on exit. */
  cpuProfileDir?: string;
  /** How long to wait for `/readyz` to answer 200. @defaultValue 60000 */
  startTimeoutMs?: number;
}



/** A running RMS child process. */
export class RmsProcess {
  #exited: Promise<number | null>;
  #exitCode: number | null | undefined;

  private constructor(
    private readonly child: ChildProcess,
    /** RMS's base URL. */
    readonly url: string,
    private readonly logFile: string,
  ) {
    this.#exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.#exitCode = code ?? (signal ? -1 : null);
        resolve(this.#exitCode);
      });
    });
  }

  /** The child's process id (node itself, not a shell). */
  get pid(): number {
    return this.child.pid as number;
  }

  /**
   * Spawns `node --conditions=rms-source --import tsx services/message-service/src/main.ts`
   * on a free port and waits until `/readyz` answers 200 (store, RabbitMQ, Redis and
   * ZooKeeper connected). LOG_LEVEL stays `warn` unless the caller sets it, so the
   * request path is not paying for log lines; readiness is polled instead of read from
   * the 'RMS listening' line.
   */
  static async start(options: RmsProcessOptions): Promise<RmsProcess> {
    const port = await freePort();
    const out = openSync(options.logFile, 'a');
    const args = [
      '--conditions=rms-source',
      '--import',
      'tsx',
      ...(options.cpuProfileDir ? ['--cpu-prof', `--cpu-prof-dir=${options.cpuProfileDir}`] : []),
      'services/message-service/src/main.ts',
    ];
    const child = spawn(process.execPath, args, {
      cwd: options.cwd,
      env: { ...process.env, LOG_LEVEL: 'warn', ...options.env, PORT: String(port) },
      stdio: ['ignore', out, out],
    });
    closeSync(out);
    const rms = new RmsProcess(child, `http://127.0.0.1:${port}`, options.logFile);
    const deadline = Date.now() + (options.startTimeoutMs ?? 60_000);
    while (Date.now() < deadline) {
      if (rms.#exitCode !== undefined) throw new Error(`RMS exited during start-up (code ${rms.#exitCode}); log:\n${rms.logTail()}`);
      try {
        const response = await fetch(`${rms.url}/readyz`, { signal: AbortSignal.timeout(2000) });
        await response.body?.cancel();
        if (response.status === 200) return rms;
      } catch {
        // Not listening yet.
      }
      await sleep(100);
    }
    await rms.kill();
    throw new Error(`RMS did not become ready within ${options.startTimeoutMs ?? 60_000} ms; log:\n${rms.logTail()}`);
  }

  /** The last lines of the child's log, for error messages. */
  logTail(lines = 30): string {
    try {
      return readFileSync(this.logFile, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  /**
   * SIGTERM (RMS's graceful shutdown, which also lets `--cpu-prof` write its profile),
   * then SIGKILL if it has not exited within `graceMs`.
   * @returns the exit code.
   */
  async stop(graceMs = 20_000): Promise<number | null> {
    if (this.#exitCode !== undefined) return this.#exitCode;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    const code = await this.#exited;
    clearTimeout(timer);
    return code;
  }

  /** SIGKILL, for clean-up after a failure. */
  async kill(): Promise<void> {
    if (this.#exitCode !== undefined) return;
    this.child.kill('SIGKILL');
    await this.#exited;
  }
}
