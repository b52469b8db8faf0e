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

/**
 * Writes warnings and errors to stderr, one JSON line each (`level`, `time`, `msg`, the
 * fields; an `err` as its name and message), and drops info and debug: the default of
 * `subscribe`, so a failing handler is never silent.
 */
export const stderrWarningLogger: SdkLogger = {
  info: () => undefined,
  warn: (obj, msg) => writeLine('warn', obj, msg),
  error: (obj, msg) => writeLine('error', obj, msg),
};

function writeLine(level: string, obj: object, msg: string | undefined): void {
  const fields: Record<string, unknown> = { ...obj };
  const err = fields['err'];
  // Cut: a handler's error message can be anything, and one line must stay readable.
  if (err instanceof Error) fields['err'] = { name: err.name, message: err.message.length > 1000 ? `${err.message.slice(0, 999)}…` : err.message };
  process.stderr.write(`${JSON.stringify({ level, time: new Date().toISOString(), msg, ...fields })}\n`);
}

/** Logs nothing: the default of the SDK's other parts. */
export const silentLogger: SdkLogger = { info: () => undefined, warn: () => undefined, error: () => undefined };
