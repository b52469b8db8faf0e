/**
 * Checks a parsed JSON value against what RMS can store and hand on safely, without
 * recursion: a hostile body nested thousands of levels deep must be refused with a 400,
 * not overflow the stack of the code that measures or serialises it.
 *
 * Two rules, each a decision of its own:
 * - **nesting depth**: arrays and objects at most `maxDepth` levels deep (a scalar is
 *   depth 0, `[]` and `{}` are depth 1);
 * - **well-formed Unicode**: no string or object key holds a lone UTF-16 surrogate
 *   (`"\ud800"`). PostgreSQL's json and jsonb refuse those, and text columns turn them
 *   into U+FFFD, which would make two different keys one; the rule is the same for every
 *   store so that a message valid on one is valid on all.
 */

/** Why a value was refused, and where (a JSONPath-like location such as `payload.a[3]`). */
export type JsonValueProblem =
  | { kind: 'too-deep'; path: string; maxDepth: number }
  | { kind: 'ill-formed-unicode'; path: string };

/** With the `u` flag a paired surrogate reads as one astral code point, so only lone ones match. */
const LONE_SURROGATE = /\p{Cs}/u;

/** True when `text` holds no lone surrogate (`String.prototype.isWellFormed`, which the ES2023 lib does not type). */
export function isWellFormedText(text: string): boolean {
  return !LONE_SURROGATE.test(text);
}

const identifier = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

function childPath(parent: string, key: string | number): string {
  if (typeof key === 'number') return `${parent}[${key}]`;
  return identifier.test(key) ? `${parent}.${key}` : `${parent}[${JSON.stringify(key)}]`;
}

/**
 * The first problem of `value` (walked depth-first, iteratively), or `null` when it is
 * within the limits.
 * @param root the name of the value in the problem's path, e.g. `payload`
 */
export function findJsonValueProblem(value: unknown, maxDepth: number, root: string): JsonValueProblem | null {
  const pending: { value: unknown; depth: number; path: string }[] = [{ value, depth: 0, path: root }];
  while (pending.length > 0) {
    const { value: current, depth, path } = pending.pop() as { value: unknown; depth: number; path: string };
    if (typeof current === 'string') {
      if (!isWellFormedText(current)) return { kind: 'ill-formed-unicode', path };
      continue;
    }
    if (typeof current !== 'object' || current === null) continue;
    if (depth + 1 > maxDepth) return { kind: 'too-deep', path, maxDepth };
    if (Array.isArray(current)) {
      for (let index = current.length - 1; index >= 0; index--) {
        pending.push({ value: current[index], depth: depth + 1, path: childPath(path, index) });
      }
      continue;
    }
    for (const [key, child] of Object.entries(current)) {
      if (!isWellFormedText(key)) return { kind: 'ill-formed-unicode', path: `${path} (a key)` };
      pending.push({ value: child, depth: depth + 1, path: childPath(path, key) });
    }
  }
  return null;
}
