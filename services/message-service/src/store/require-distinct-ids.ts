/**
 * The precondition of `MessageStore.transitionMany`, shared by the adapters: two changes
 * of one message in one call would race inside the statement, so they are refused.
 */
import type { Transition } from './message-store.js';

/** @throws RangeError naming the first id that appears twice in `changes`. */
export function requireDistinctIds(changes: readonly Transition[]): void {
  const seen = new Set<string>();
  for (const { id } of changes) {
    if (seen.has(id)) throw new RangeError(`transitionMany: message ${id} appears twice; send its changes in separate calls`);
    seen.add(id);
  }
}
