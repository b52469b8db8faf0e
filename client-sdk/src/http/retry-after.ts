/**
 * `Retry-After` on RMS's 503 answers (admission control, a dependency down): how long it
 * asks the client to wait, and which error carried it, so the retry loop can honour it
 * without widening the public error classes.
 */

/**
 * The delay a `Retry-After` header asks for, in ms: delta-seconds or an HTTP date (a date
 * in the past is 0); `undefined` when absent or unreadable.
 */
export function retryAfterMs(header: string | string[] | undefined, now = Date.now()): number | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  // An HTTP date names its weekday or month; without a letter, `Date.parse` would take `-1` for a year.
  if (!/[a-z]/i.test(trimmed)) return undefined;
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** The `Retry-After` of the 503 answers that became these errors. */
const asked = new WeakMap<object, number>();

/** Records that the answer behind `error` asked for `delayMs` (nothing when `undefined`). */
export function noteRetryAfter(error: object, delayMs: number | undefined): void {
  if (delayMs !== undefined) asked.set(error, delayMs);
}

/** What the answer behind `error` asked for, in ms; `undefined` when it asked nothing. */
export function retryAfterOf(error: object): number | undefined {
  return asked.get(error);
}
