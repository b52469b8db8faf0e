/**
 * Runs RMS as a separate process (`services/message-service/src/main.ts` through tsx), the
 * way `npm start` does, for tests of start-up, signals and crashes.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const MAIN = 'services/message-service/src/main.ts';

/**
 * Settings for RMS processes in fault tests: schedules in milliseconds (a missing ack is
 * redelivered after 1.5 s, a claim is leased for 2.5 s), no check-back during the test, and
 * the log level at which `spawnRms` learns the port.
 */
export const FAST_PROCESS_ENV = Object.freeze({
  PORT: '0',
  LOG_LEVEL: 'info',
  RMS_POLL_INTERVAL_MS: '50',
  RMS_ACK_TIMEOUT_MS: '1500',
  RMS_RETRY_IMMEDIATE: '1',
  RMS_RETRY_FIRST_DELAY_MS: '300',
  RMS_RETRY_INTERVAL_MS: '300',
  RMS_PUBLISH_TIMEOUT_MS: '1000',
  RMS_LEASE_MS: '2500',
  RMS_CHECK_TIMEOUT_MS: '500',
  RMS_CHECK_DELAY_MS: '60000',
});

/** A started RMS process and what it printed. */
export interface RmsProcess {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the port once the server logs that it listens. */
  listening: Promise<number>;
  /** Resolves with the exit code (or the signal's name). */
  exited: Promise<number | string>;
}

/** Spawns RMS with exactly `env` (plus PATH), from the repository root. */
export function spawnRms(env: Record<string, string>): RmsProcess {
  const child = spawn(process.execPath, ['--conditions=rms-source', '--import', 'tsx', MAIN], {
    cwd: ROOT,
    env: { PATH: process.env['PATH'] ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stderr?.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const listening = new Promise<number>((resolve, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const match = /"port":(\d+)[^\n]*"msg":"RMS listening"/.exec(out);
      if (match) resolve(Number(match[1]));
    });
    child.once('exit', () => reject(new Error(`RMS exited before listening:\n${out}\n${err}`)));
  });
  listening.catch(() => undefined);
  const exited = once(child, 'exit').then(([code, signal]) => (code ?? signal) as number | string);
  return { child, stdout: () => out, stderr: () => err, listening, exited };
}
