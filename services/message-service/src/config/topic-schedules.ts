/**
 * Delivery schedules per topic: the global defaults from the environment, overridden for
 * some topics by `RMS_TOPIC_SCHEDULES` (a JSON object, or a path to a file holding one):
 * `{"payments.capture": {"ackTimeoutMs": 30000, "retryMax": 10}}`.
 */
import { z } from 'zod';
import { TOPIC_PATTERN } from '../domain/message.js';
import type { DeliverySchedule } from '../domain/schedule.js';
import { readJsonSetting } from './json-setting.js';

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
  return value ? (readJsonSetting('RMS_TOPIC_SCHEDULES', value, overridesSchema) as TopicScheduleOverrides) : {};
}

/** The delivery schedule of a topic: its overrides over the defaults. */
export function deliveryScheduleResolver(defaults: DeliverySchedule, overrides: TopicScheduleOverrides): (topic: string) => DeliverySchedule {
  const resolved = new Map(Object.entries(overrides).map(([topic, override]) => [topic, { ...defaults, ...override }]));
  return (topic) => resolved.get(topic) ?? defaults;
}
