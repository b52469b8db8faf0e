/**
 * Turns a zod issue into the sentence RMS shows a person: where the problem is (a field
 * path like `ids[3]` or `headers.x-trace`) and what is wrong with it.
 */
import type { z } from 'zod';

/** `['ids', 3]` → `ids[3]`; `['a', 'b']` → `a.b`; `[]` → `''`. */
export function formatPath(path: readonly PropertyKey[]): string {
  return path
    .map((segment, index) => (typeof segment === 'number' ? `[${segment}]` : `${index === 0 ? '' : '.'}${String(segment)}`))
    .join('');
}

/** The field a zod issue is about (for unknown keys, the first unknown key), and a readable message. */
export function describeIssue(issue: z.core.$ZodIssue, prefix = ''): { field: string; message: string } {
  const segments: PropertyKey[] = prefix ? [prefix, ...issue.path] : [...issue.path];
  if (issue.code === 'unrecognized_keys') {
    const field = formatPath([...segments, issue.keys[0] ?? '']);
    return { field, message: `unknown field ${field}` };
  }
  const field = formatPath(segments);
  // A bad record key carries the key schema's own message one level down.
  const text = issue.code === 'invalid_key' ? (issue.issues[0]?.message ?? issue.message) : issue.message;
  return { field, message: field ? `${field}: ${text}` : text };
}
