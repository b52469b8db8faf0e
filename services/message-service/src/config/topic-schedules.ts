/**
 * Delivery schedules per topic and consumer group: the global defaults from the
 * environment, overridden for some topics by `RMS_TOPIC_SCHEDULES` (a JSON object, or a
 * path to a file holding one), and for some groups of a topic by its `groups` entry:
 * `{"payments.capture": {"ackTimeoutMs": 30000, "retryMax": 10, "groups": {"ledger": {"ackTimeoutMs": 120000}}}}`.
 */
import { z } from 'zod';
import { GROUP_PATTERN, TOPIC_PATTERN } from '../domain/message.js';
import type { DeliverySchedule } from '../domain/schedule.js';
import { readJsonSetting } from './json-setting.js';

const count = (min: number) => z.number({ error: 'must be a number' }).int('must be a whole number').min(min, `must be at least ${min}`);

const scheduleFields = {
  ackTimeoutMs: count(1).optional(),
  retryImmediate: count(0).optional(),
  retryFirstDelayMs: count(0).optional(),
  retryIntervalMs: count(1).optional(),
  retryMax: count(1).optional(),
};

const overrideSchema = z.strictObject({
  ...scheduleFields,
  groups: z.record(z.string().regex(GROUP_PATTERN, 'group names must match [A-Za-z0-9_-]{1,64}'), z.strictObject(scheduleFields)).optional(),
});

const overridesSchema = z.record(z.string().regex(TOPIC_PATTERN, 'topic names must match [A-Za-z0-9._-]{1,128}'), overrideSchema);

/** Overrides of the delivery schedule, by topic, and within a topic by consumer group. */
export type TopicScheduleOverrides = Record<string, Partial<DeliverySchedule> & { groups?: Record<string, Partial<DeliverySchedule>> }>;

/**
 * Parses `RMS_TOPIC_SCHEDULES`.
 * @throws ConfigurationError naming the topic and field that is wrong.
 */
export function parseTopicSchedules(value: string | undefined): TopicScheduleOverrides {
  return value ? (readJsonSetting('RMS_TOPIC_SCHEDULES', value, overridesSchema) as TopicScheduleOverrides) : {};
}

/** The delivery schedule of a topic's group: the group's overrides over the topic's over the defaults. */
export function deliveryScheduleResolver(defaults: DeliverySchedule, overrides: TopicScheduleOverrides): (topic: string, group?: string) => DeliverySchedule {
  const byTopic = new Map<string, { schedule: DeliverySchedule; groups: Map<string, DeliverySchedule> }>();
  for (const [topic, { groups, ...override }] of Object.entries(overrides)) {
    const schedule = { ...defaults, ...override };
    byTopic.set(topic, { schedule, groups: new Map(Object.entries(groups ?? {}).map(([group, own]) => [group, { ...schedule, ...own }])) });
  }
  return (topic, group) => {
    const entry = byTopic.get(topic);
    if (!entry) return defaults;
    return (group !== undefined && entry.groups.get(group)) || entry.schedule;
  };
}
