/**
 * Delivery schedules per topic: the global defaults from the environment, overridden for
 * some topics by `RMS_TOPIC_SCHEDULES` (a JSON object, or a path to a file holding one):
 * `{"payments.capture": {"ackTimeoutMs": 30000, "retryMax": 10}}`.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigurationError } from '../domain/errors.js';
import { TOPIC_PATTERN } from '../domain/message.js';
import type { DeliverySchedule } from '../domain/schedule.js';
import { describeIssue } from '../validation/describe-issue.js';

const count = (min: number) => z.number({ error: 'must be a number' }).int('must be a whole number').min(min, `must be at least ${min}`);

const overrideSchema = z.strictObject({
  ackTimeoutMs: count(1).optional(),
  retryImmediate: count(0).optional(),
  retryFirstDelayMs: count(0).optional(),
  retryIntervalMs: count(1).optional(),
  retryMax: count(1).optional(),
});

const overridesSchema = z.record(z.string().regex(TOPIC_PATTERN, 'topic names must match [A-Za-z0-9._-]{1,128}'), overrideSchema);

/** Overrides of the delivery schedule, by topic. */
export type TopicScheduleOverrides = Record<string, Partial<DeliverySchedule>>;

/**
 * Parses `RMS_TOPIC_SCHEDULES`.
 * @throws ConfigurationError naming the topic and field that is wrong.
 */
export function parseTopicSchedules(value: string | undefined): TopicScheduleOverrides {
  if (!value) return {};
  let text = value.trim();
  if (!text.startsWith('{')) {
    try {
      text = readFileSync(text, 'utf8');
    } catch (error) {
      throw new ConfigurationError(`RMS_TOPIC_SCHEDULES: not a JSON object and not a readable file (${(error as Error).message})`);
    }
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ConfigurationError(`RMS_TOPIC_SCHEDULES: not valid JSON (${(error as Error).message})`);
  }
  const parsed = overridesSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ConfigurationError(issue ? describeIssue(issue, 'RMS_TOPIC_SCHEDULES').message : 'RMS_TOPIC_SCHEDULES: invalid');
  }
  return parsed.data as TopicScheduleOverrides;
}

/** The delivery schedule of a topic: its overrides over the defaults. */
export function deliveryScheduleResolver(defaults: DeliverySchedule, overrides: TopicScheduleOverrides): (topic: string) => DeliverySchedule {
  const resolved = new Map(Object.entries(overrides).map(([topic, override]) => [topic, { ...defaults, ...override }]));
  return (topic) => resolved.get(topic) ?? defaults;
}
