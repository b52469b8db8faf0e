/**
 * RMS as a child process of the bench, started the way production runs it (`node
 * services/message-service/dist/main.js`, as in the Dockerfile and the manifests), so that
 * its CPU and memory are its own and not mixed with the producers' and the consumer's
 * (which live in the bench process), and are those of the compiled build: run from the
 * TypeScript sources under tsx, RMS held 34 MB more at rest (137 against 103 MB).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
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

/** The compiled entry point the bench runs, relative to the repository root. */
export const RMS_ENTRY = 'services/message-service/dist/main.js';

/** The newest modification time of the `.ts` files under `dir`, in ms. */
function newestSource(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(path));
    else if (entry.name.endsWith('.ts')) newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

/**
 * Throws unless the build is at least as new as the sources of RMS and of the SDK it
 * uses, so that a bench never measures code older than the checkout (`npm run bench`
 * builds first).
 */
export function assertBuildFresh(cwd: string): void {
  const entry = join(cwd, RMS_ENTRY);
  let built: number;
  try {
    built = statSync(entry).mtimeMs;
  } catch {
    throw new Error(`${RMS_ENTRY} is missing: run \`npm run build\` first`);
  }
  const sources = Math.max(newestSource(join(cwd, 'services/message-service/src')), newestSource(join(cwd, 'client-sdk/src')));
  if (sources > built) throw new Error(`${RMS_ENTRY} is older than the sources: run \`npm run build\` first`);
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
   * Spawns `node services/message-service/dist/main.js` (after checking the build is
   * fresh) on a free port and waits until `/readyz` answers 200 (store, RabbitMQ, Redis and
   * ZooKeeper connected). LOG_LEVEL stays `warn` unless the caller sets it, so the
   * request path is not paying for log lines; readiness is polled instead of read from
   * the 'RMS listening' line.
   */
  static async start(options: RmsProcessOptions): Promise<RmsProcess> {
    assertBuildFresh(options.cwd);
    const port = await freePort();
    const out = openSync(options.logFile, 'a');
    const args = [...(options.cpuProfileDir ? ['--cpu-prof', `--cpu-prof-dir=${options.cpuProfileDir}`] : []), RMS_ENTRY];
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
