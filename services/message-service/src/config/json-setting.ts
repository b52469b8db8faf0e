/**
 * Settings that hold JSON: either the JSON itself, or a path to a file holding it
 * (`RMS_APPS`, `RMS_TOPIC_SCHEDULES`). Read, parsed and validated in one place, with errors
 * that name the variable and the offending field.
 */
import { readFileSync } from 'node:fs';
import type { z } from 'zod';
import { ConfigurationError } from '../domain/errors.js';
import { describeIssue } from '../validation/describe-issue.js';

/**
 * Reads `value` as JSON (inline when it starts with `[` or `{`, else a file path) and
 * validates it with `schema`.
 * @throws ConfigurationError naming `variable` and the first problem.
 */
export function readJsonSetting<Schema extends z.ZodType>(variable: string, value: string, schema: Schema): z.output<Schema> {
  let text = value.trim();
  if (!text.startsWith('[') && !text.startsWith('{')) {
    try {
      text = readFileSync(text, 'utf8');
    } catch (error) {
      throw new ConfigurationError(`${variable}: not inline JSON and not a readable file (${(error as Error).message})`);
    }
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ConfigurationError(`${variable}: not valid JSON (${(error as Error).message})`);
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ConfigurationError(issue ? describeIssue(issue, variable).message : `${variable}: invalid`);
  }
  return parsed.data;
}
