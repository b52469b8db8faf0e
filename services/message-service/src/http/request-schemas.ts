/**
 * What the HTTP API accepts, as zod schemas, and `parseOrThrow`, which turns a failed
 * parse into a 400 that names the field.
 */
import { z } from 'zod';
import { InvalidRequestError } from '../domain/errors.js';
import { GROUP_PATTERN, MESSAGE_STATUSES, TOPIC_PATTERN } from '../domain/message.js';
import type { ListCursor } from '../store/message-store.js';
import { describeIssue } from '../validation/describe-issue.js';
import { isWellFormedText } from '../validation/json-value-limits.js';

/** RMS ids are UUIDs; anything else cannot name a message. */
export const messageIdSchema = z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i, 'must be a UUID');

/** Header names are restricted so that they travel as AMQP headers unchanged; `x-rms-` is RMS's own. */
const headerNameSchema = z
  .string()
  .regex(/^[A-Za-z0-9._-]{1,128}$/, 'header names must match [A-Za-z0-9._-]{1,128}')
  .refine((name) => !name.toLowerCase().startsWith('x-rms-'), 'header names starting with x-rms- are reserved');

/** PostgreSQL's text and jsonb cannot hold a NUL character; refused here as a 400 rather than failing in the store. */
const noNul = (value: string) => !value.includes('\u0000');

/**
 * A stored string must be well-formed Unicode: a lone surrogate would be refused by jsonb,
 * or turned into U+FFFD in a text column so that two different keys became one.
 */
const storableText = (subject: string, max: number) =>
  z
    .string({ error: subject ? `${subject}must be strings` : 'must be a string' })
    .max(max, `${subject}must be at most ${max} characters`)
    .refine(noNul, `${subject}must not contain a NUL character`)
    .refine(isWellFormedText, `${subject}must be well-formed Unicode (no lone UTF-16 surrogate)`);

/** `POST /v1/messages`. */
export const prepareBodySchema = z.strictObject({
  topic: z.string({ error: 'is required' }).regex(TOPIC_PATTERN, 'must match [A-Za-z0-9._-]{1,128}'),
  payload: z.unknown().refine((value) => value !== undefined, 'is required: any JSON value'),
  messageId: storableText('', 256).min(1, 'must not be empty').optional(),
  headers: z
    .record(headerNameSchema, storableText('header values ', 4096))
    .refine((headers) => Object.keys(headers).length <= 64, 'at most 64 headers')
    .optional(),
  deliverAt: z.iso.datetime({ offset: true, error: 'must be an ISO 8601 date-time, e.g. 2026-12-01T10:00:00Z' }).optional(),
  delayMs: z.number({ error: 'must be a number' }).int('must be a whole number').min(0, 'must be at least 0').optional(),
  // W3C trace context of the message, for producers that batch prepares (a request header
  // would be the batch's). Like the headers, an invalid value is ignored, not refused.
  traceparent: z.string({ error: 'must be a string' }).max(256, 'must be at most 256 characters').optional(),
  tracestate: z.string({ error: 'must be a string' }).max(1024, 'must be at most 1024 characters').optional(),
});

/** A consumer group in a body. */
const groupSchema = z.string({ error: 'must be a string' }).regex(GROUP_PATTERN, 'must match [A-Za-z0-9_-]{1,64}');

/** `POST /v1/messages/:id/ack` and `/resend` (the body is optional): whose delivery. */
export const groupBodySchema = z.strictObject({ group: groupSchema.optional() }).optional();

/** Most messages in one batch request (`POST /v1/messages/batch`, `/v1/confirms`, `/v1/acks`). */
export const MAX_BATCH_ITEMS = 1000;

/**
 * `POST /v1/messages/batch`: only the envelope; each element is checked against
 * `prepareBodySchema` on its own, so one bad element is refused alone.
 */
export const batchPrepareBodySchema = z.strictObject({
  messages: z
    .array(z.unknown(), { error: 'must be an array of messages' })
    .min(1, 'must hold at least one message')
    .max(MAX_BATCH_ITEMS, `at most ${MAX_BATCH_ITEMS} messages`),
});

/** `POST /v1/confirms`. */
export const batchConfirmBodySchema = z.strictObject({
  ids: z.array(messageIdSchema, { error: 'must be an array of message ids' }).min(1, 'must hold at least one id').max(MAX_BATCH_ITEMS, `at most ${MAX_BATCH_ITEMS} ids`),
});

/** `POST /v1/acks`. */
export const batchAckBodySchema = z.strictObject({
  ids: z.array(messageIdSchema, { error: 'must be an array of message ids' }).min(1, 'must hold at least one id').max(MAX_BATCH_ITEMS, `at most ${MAX_BATCH_ITEMS} ids`),
  group: groupSchema.optional(),
});

/**
 * `POST /v1/messages/:id/heartbeat` (the body is optional).
 * @param maxExtendMs the largest `extendMs` (`RMS_MAX_HEARTBEAT_EXTEND_MS`)
 */
export const heartbeatBodySchema = (maxExtendMs: number) =>
  z
    .strictObject({
      extendMs: z.number({ error: 'must be a number' }).int('must be a whole number').min(1, 'must be at least 1').max(maxExtendMs, `must be at most ${maxExtendMs}`).optional(),
      group: groupSchema.optional(),
    })
    .optional();

/** `POST /v1/topics/:topic/resend` (the body is optional). */
export const resendTopicBodySchema = z
  .strictObject({
    limit: z.number({ error: 'must be a number' }).int('must be a whole number').min(1, 'must be at least 1').max(10_000, 'must be at most 10000').optional(),
  })
  .optional();

/** A topic in a path. */
export const topicSchema = z.string().regex(TOPIC_PATTERN, 'must match [A-Za-z0-9._-]{1,128}');

/** An ISO 8601 date-time with a time zone (`2026-12-01T10:00:00Z`), in the years cursors allow. */
const isoTimeSchema = z
  .string({ error: 'must be an ISO 8601 date-time' })
  .datetime({ offset: true, error: 'must be an ISO 8601 date-time with a time zone, such as 2026-12-01T10:00:00Z' })
  .transform((text) => new Date(text));

/** The filters of a message search: every field narrows it. */
const messageFilterShape = {
  status: z.enum(MESSAGE_STATUSES, { error: `must be one of ${MESSAGE_STATUSES.join(', ')}` }).optional(),
  topic: z.string().regex(TOPIC_PATTERN, 'must match [A-Za-z0-9._-]{1,128}').optional(),
  producer: z.string().regex(/^[A-Za-z0-9._-]{1,128}$/, 'must be an app name, [A-Za-z0-9._-]{1,128}').optional(),
  messageId: storableText('', 256).min(1, 'must not be empty').optional(),
  from: isoTimeSchema.optional(),
  to: isoTimeSchema.optional(),
};

/** Refuses a time range that ends before it starts. */
const orderedRange = <T extends { from?: Date | undefined; to?: Date | undefined }>(filter: T) => !(filter.from && filter.to && filter.from > filter.to);
const ORDERED_RANGE_ERROR = { error: 'from must not be later than to', path: ['from'] };

/** `GET /v1/messages` query. */
export const listQuerySchema = z
  .strictObject({
    ...messageFilterShape,
    limit: z.coerce.number({ error: 'must be a number' }).int('must be a whole number').min(1, 'must be at least 1').max(500, 'must be at most 500').default(50),
    cursor: z.string().min(1, 'must not be empty').max(512, 'must be at most 512 characters').optional(),
  })
  .refine(orderedRange, ORDERED_RANGE_ERROR);

/** `POST /v1/resends`: resend the DEAD messages matching a filter (the status is DEAD by definition). */
export const bulkResendBodySchema = z.strictObject({
  filter: z
    .strictObject({ topic: messageFilterShape.topic, producer: messageFilterShape.producer, messageId: messageFilterShape.messageId, from: messageFilterShape.from, to: messageFilterShape.to }, { error: 'must be an object of filters' })
    .refine(orderedRange, ORDERED_RANGE_ERROR)
    .default({}),
  dryRun: z.boolean({ error: 'must be true or false' }).default(false),
  limit: z.number({ error: 'must be a number' }).int('must be a whole number').min(1, 'must be at least 1').max(10_000, 'must be at most 10000').default(1000),
});

/** Longest failure reason a consumer may send; the SDK cuts its error messages to fit. */
export const MAX_NACK_REASON_LENGTH = 1000;

/** Longest pause a consumer may ask for before the next delivery: one day. */
export const MAX_RETRY_AFTER_MS = 86_400_000;

const nackFields = {
  reason: storableText('', MAX_NACK_REASON_LENGTH).min(1, 'must not be empty'),
  retryAfterMs: z
    .number({ error: 'must be a number' })
    .int('must be a whole number')
    .min(0, 'must be at least 0')
    .max(MAX_RETRY_AFTER_MS, `must be at most ${MAX_RETRY_AFTER_MS}`)
    .optional(),
  attempt: z.number({ error: 'must be a number' }).int('must be a whole number').min(1, 'must be at least 1').max(1_000_000, 'must be at most 1000000').optional(),
};

/** `POST /v1/messages/:id/nack`: `group` names the consumer's group when it reads the topic in several. */
export const nackBodySchema = z.strictObject({ ...nackFields, group: groupSchema.optional() });

/** `POST /v1/nacks`. */
export const batchNackBodySchema = z.strictObject({
  group: groupSchema.optional(),
  nacks: z
    .array(z.strictObject({ id: messageIdSchema, ...nackFields }), { error: 'must be an array of {id, reason, retryAfterMs?, attempt?}' })
    .min(1, 'must hold at least one nack')
    .max(MAX_BATCH_ITEMS, `at most ${MAX_BATCH_ITEMS} nacks`)
    .refine((nacks) => new Set(nacks.map((nack) => nack.id.toLowerCase())).size === nacks.length, 'must not name a message twice'),
});

/** `PUT /v1/degrade`: an SRE's write of the degrade switch's mode. */
export const degradeBodySchema = z.strictObject({
  mode: z.enum(['auto', 'on', 'off'], { error: 'must be one of auto, on, off' }),
  reason: storableText('', 500).min(1, 'must not be empty'),
});

/**
 * Parses `value` with `schema`, or throws a 400 naming the first offending field.
 * @param where prefixes the field name (`query`, `path`) where that helps the reader.
 */
export function parseOrThrow<Schema extends z.ZodType>(schema: Schema, value: unknown, where = ''): z.output<Schema> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  if (where === '' && issue?.path.length === 0 && issue.code === 'invalid_type') {
    throw new InvalidRequestError('request body must be a JSON object');
  }
  const { field, message } = issue ? describeIssue(issue, where) : { field: where, message: 'invalid request' };
  throw new InvalidRequestError(message, field ? { field } : {});
}

/** Opaque cursor of the newest-first listing: base64url of `{t, i}`. */
export function encodeCursor(cursor: ListCursor): string {
  return Buffer.from(JSON.stringify({ t: cursor.createdAt.toISOString(), i: cursor.id })).toString('base64url');
}

/**
 * Cursors hold creation times, all of them in this range; a forged one outside it (a date
 * the store cannot hold, such as year -271821) is refused rather than sent to the store.
 */
const CURSOR_YEARS = { min: 1970, max: 9999 } as const;

/** Reads a cursor made by `encodeCursor`. @throws InvalidRequestError if it was not. */
export function decodeCursor(text: string): ListCursor {
  try {
    const { t, i } = JSON.parse(Buffer.from(text, 'base64url').toString('utf8')) as { t?: unknown; i?: unknown };
    const createdAt = new Date(typeof t === 'string' ? t : Number.NaN);
    const year = createdAt.getUTCFullYear();
    if (Number.isNaN(year) || year < CURSOR_YEARS.min || year > CURSOR_YEARS.max || !messageIdSchema.safeParse(i).success) throw new Error('bad cursor');
    return { createdAt, id: i as string };
  } catch {
    throw new InvalidRequestError('cursor: not a cursor returned by this API', { field: 'cursor' });
  }
}
