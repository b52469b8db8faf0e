/**
 * What the HTTP API answers, as zod schemas: the source of the response schemas in the
 * OpenAPI document, and what the contract test checks every answer against.
 */
import { z } from 'zod';
import { DEAD_REASONS, DELIVERY_STATUSES, MESSAGE_STATUSES } from '../domain/message.js';
import { MESSAGE_EVENT_TYPES } from '../domain/message-event.js';

const timestamp = z.iso.datetime();
const transport = z.enum(['rabbitmq', 'redis']);

/** One consumer group's delivery of a message. */
const deliveryViewSchema = z.strictObject({
  group: z.string(),
  status: z.enum(DELIVERY_STATUSES),
  attempts: z.int().min(0),
  nextAttemptAt: timestamp.nullable(),
  lastTransport: transport.nullable(),
  lastError: z.string().nullable(),
  ackedAt: timestamp.nullable(),
});

/** A message as the API shows it (`toMessageView`). */
export const messageViewSchema = z.strictObject({
  id: z.string(),
  producer: z.string(),
  messageId: z.string().nullable().describe("the producer's idempotency key, when it gave one"),
  topic: z.string(),
  payload: z.unknown().describe('the payload as the producer sent it: any JSON value'),
  headers: z.record(z.string(), z.string()),
  status: z.enum(MESSAGE_STATUSES),
  deadReason: z.enum(DEAD_REASONS).nullable(),
  createdAt: timestamp,
  updatedAt: timestamp,
  confirmedAt: timestamp.nullable(),
  completedAt: timestamp.nullable(),
  cancelledAt: timestamp.nullable(),
  checkAttempts: z.int().min(0),
  deliveryAttempts: z.int().min(0),
  nextAttemptAt: timestamp.nullable(),
  lastTransport: transport.nullable(),
  lastError: z.string().nullable(),
  deliverAt: timestamp.nullable().describe('not delivered before this time (a delayed message); null: at once on confirm'),
  deliveries: z.array(deliveryViewSchema).describe("one per consumer group subscribed when it was confirmed; empty before confirm"),
});

/**
 * The minimal answer about a message (`toMessageReceipt`), for a caller that sent
 * `Prefer: return=minimal`: what it needs to go on (the id to confirm, the status), not the
 * payload it sent.
 */
export const messageReceiptSchema = z.strictObject({
  id: z.string(),
  messageId: z.string().nullable().describe("the producer's idempotency key, when it gave one"),
  status: z.enum(MESSAGE_STATUSES),
});

/** A prepare's, confirm's or cancel's answer: the message, or its receipt with `Prefer: return=minimal`. */
export const messageAnswerSchema = z.union([messageViewSchema, messageReceiptSchema]);

/** What a consumer is told after an ack or a heartbeat (`toDeliveryStatusView`). */
export const deliveryStatusViewSchema = z.strictObject({
  id: z.string(),
  status: z.enum(MESSAGE_STATUSES),
  nextAttemptAt: timestamp.nullable(),
  deliveries: z.array(
    z.strictObject({ group: z.string(), status: z.enum(DELIVERY_STATUSES), attempts: z.int().min(0), nextAttemptAt: timestamp.nullable() }),
  ),
});

/** Every refusal and failure: a code, a message naming the problem, and details such as `field`. */
export const errorBodySchema = z.strictObject({
  error: z.looseObject({
    code: z.string(),
    message: z.string().min(1),
  }),
});

/** One element of a batch answer: the status and body the single call would have answered. */
const batchItemSchema = z.strictObject({
  status: z.int(),
  body: z.union([messageViewSchema, messageReceiptSchema, errorBodySchema]),
});

/** `POST /v1/messages/batch` and `POST /v1/confirms`. */
export const batchResultsSchema = z.strictObject({ results: z.array(batchItemSchema) });

/** `POST /v1/acks`. */
export const ackResultsSchema = z.strictObject({
  results: z.array(
    z.union([
      z.strictObject({ id: z.string(), status: z.enum(MESSAGE_STATUSES), group: z.string(), delivery: z.enum(DELIVERY_STATUSES) }),
      z.strictObject({ id: z.string(), error: z.strictObject({ code: z.string(), message: z.string(), status: z.enum(MESSAGE_STATUSES).optional() }) }),
    ]),
  ),
});

/** `GET /v1/messages`. */
export const messagePageSchema = z.strictObject({
  messages: z.array(messageViewSchema),
  nextCursor: z.string().nullable().describe('pass as `cursor` for the next page; null on the last page'),
});

/** `POST /v1/topics/{topic}/resend`. */
export const resendTopicAnswerSchema = z.strictObject({
  topic: z.string(),
  resent: z.int().min(0),
  ids: z.array(z.string()),
});

/** `GET /healthz`. */
export const healthAnswerSchema = z.strictObject({ status: z.literal('ok') });

/** `GET /readyz`. */
export const readinessAnswerSchema = z.strictObject({
  status: z.enum(['ready', 'not ready']),
  dependencies: z.record(z.string(), z.looseObject({ status: z.enum(['up', 'down']) })),
});

/** One event of a message's history (`toEventView`). */
const messageEventViewSchema = z.strictObject({
  at: timestamp,
  type: z.enum(MESSAGE_EVENT_TYPES),
  actor: z.string(),
  app: z.string().nullable(),
  group: z.string().nullable(),
  attempt: z.int().nullable(),
  transport: transport.nullable(),
  outcome: z.string().nullable(),
  durationMs: z.number().nullable(),
  reason: z.string().nullable(),
  nextAttemptAt: timestamp.nullable(),
});

/** `GET /v1/messages/{id}/history`. */
export const historyAnswerSchema = z.strictObject({
  id: z.string(),
  status: z.enum(MESSAGE_STATUSES),
  events: z.array(messageEventViewSchema).describe('oldest first'),
});

/** `POST /v1/resends`. */
export const bulkResendAnswerSchema = z.strictObject({
  matched: z.int().min(0),
  resendable: z.int().min(0),
  resent: z.array(z.string()).describe('empty on a dry run'),
  dryRun: z.boolean(),
});

/** `GET` and `PUT /v1/degrade`: the switch's state as this instance sees it. */
export const degradeViewSchema = z.object({
  mode: z.enum(['auto', 'on', 'off']),
  degraded: z.boolean(),
  reason: z.string().nullable(),
  changedAt: z.string(),
  changedBy: z.string(),
  version: z.int(),
  effective: z.enum(['degraded', 'normal']),
  connected: z.boolean(),
});

/** `GET /v1/stats`: counts by status and topic, the oldest waiting messages, failover state. */
export const statsAnswerSchema = z.object({
  at: timestamp,
  totals: z.record(z.string(), z.number()),
  counts: z.array(z.object({ status: z.enum(MESSAGE_STATUSES), topic: z.string(), count: z.int().min(0) })),
  oldestWaiting: z.array(messageViewSchema.extend({ waitingSeconds: z.int().min(0) })),
  failover: z.record(z.string(), z.unknown()).nullable(),
  degrade: degradeViewSchema.nullable(),
});
