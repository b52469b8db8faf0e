/**
 * The process's structured logger (pino, JSON lines on stdout).
 */
import { pino, type DestinationStream, type Logger } from 'pino';

/**
 * A logger at `level`, tagged with the service name.
 * @param destination where the JSON lines go. @defaultValue stdout
 */
export function createLogger(level: string, name = 'rms', destination?: DestinationStream): Logger {
  const options = { name, level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime };
  return destination ? pino(options, destination) : pino(options);
}

export type { Logger };
