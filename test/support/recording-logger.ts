/** An SDK logger for tests that keeps every entry it is given, to assert on what was logged. */
import type { SdkLogger } from '@rms/client-sdk';

/** One logged entry. */
export interface LoggedEntry {
  level: 'info' | 'warn' | 'error';
  obj: Record<string, unknown>;
  msg: string | undefined;
}

/** A logger and the entries it has kept, in order. */
export function recordingLogger(): { logger: SdkLogger; entries: LoggedEntry[] } {
  const entries: LoggedEntry[] = [];
  const keep = (level: LoggedEntry['level']) => (obj: object, msg?: string) => void entries.push({ level, obj: obj as Record<string, unknown>, msg });
  const logger: SdkLogger = { info: keep('info'), warn: keep('warn'), error: keep('error') };
  return { logger, entries };
}
