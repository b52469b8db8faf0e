/**
 * The logger shape the SDK writes to: pino's, so a pino logger can be passed as it is.
 */

/** A pino-compatible logger. */
export interface SdkLogger {
  debug?(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** Logs nothing: the default. */
export const silentLogger: SdkLogger = { info: () => undefined, warn: () => undefined, error: () => undefined };
