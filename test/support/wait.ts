/**
 * Waiting on a condition in tests: poll until it holds or a deadline passes, and fail
 * with a message that says what never happened.
 */

/** Polls `condition` every `intervalMs` until it returns a truthy value; rejects after `timeoutMs`. */
export async function waitUntil<T>(
  condition: () => T | Promise<T>,
  what: string,
  timeoutMs = 15_000,
  intervalMs = 25,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await condition();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
