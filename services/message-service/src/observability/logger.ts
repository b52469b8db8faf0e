/**
 * The process's structured logger (pino, JSON lines on stdout).
 */
import { pino, type Logger } from 'pino';

/** A logger at `level`, tagged with the service name. */
export function createLogger(level: string, name = 'rms'): Logger {
  return pino({ name, level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime });
}

export type { Logger };
