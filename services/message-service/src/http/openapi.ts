/**
 * The OpenAPI 3.1 document of the whole HTTP API, generated from the zod schemas the
 * routes validate requests with (`request-schemas.ts`) and the schemas of their answers
 * (`response-schemas.ts`), so the document cannot say something the code does not check.
 * Served at `/openapi.json`; `npm run openapi` writes it to `docs/openapi.json`, and a
 * test fails when the two differ or when a route is not documented.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import type { Role } from '../config/app-registry.js';
import {
  batchAckBodySchema,
  batchConfirmBodySchema,
  batchNackBodySchema,
  batchPrepareBodySchema,
  bulkResendBodySchema,
  degradeBodySchema,
  groupBodySchema,
  heartbeatBodySchema,
  listQuerySchema,
  messageIdSchema,
  nackBodySchema,
  prepareBodySchema,
  resendTopicBodySchema,
  topicSchema,
} from './request-schemas.js';
import {
  ackResultsSchema,
  batchResultsSchema,
  bulkResendAnswerSchema,
  degradeViewSchema,
  deliveryStatusViewSchema,
  errorBodySchema,
  healthAnswerSchema,
  historyAnswerSchema,
  messageAnswerSchema,
  messagePageSchema,
  messageReceiptSchema,
  messageViewSchema,
  readinessAnswerSchema,
  resendTopicAnswerSchema,
  statsAnswerSchema,
} from './response-schemas.js';

/** What the document depends on besides the schemas: the limits set by configuration. */
export interface OpenApiOptions {
  /** The largest `extendMs` of a heartbeat (`RMS_MAX_HEARTBEAT_EXTEND_MS`). */
  maxHeartbeatExtendMs: number;
}

/** One documented answer. */
interface AnswerSpec {
  description: string;
  /** A schema of `components.schemas`, by name; omitted for a non-JSON answer. */
  schema?: string;
  /** @defaultValue application/json */
  contentType?: string;
}

/** One documented operation. */
export interface OperationSpec {
  method: 'get' | 'post' | 'put' | 'delete';
  /** OpenAPI path, parameters in braces: `/v1/messages/{id}`. */
  path: string;
  operationId: string;
  summary: string;
  /** The roles allowed; `public` when no token is needed; `any` for any registered app. */
  access: Role[] | 'public' | 'any';
  /** The request body's schema name, and whether the body may be left out. */
  body?: { schema: string; optional?: boolean };
  /** The query's zod object (each property becomes a parameter). */
  query?: z.ZodObject;
  /** Answers by status. */
  answers: Record<string, AnswerSpec>;
  /** Takes `Prefer: return=minimal` (answers with `MessageReceipt`s instead of `MessageView`s). */
  prefersMinimal?: boolean;
}

/** The `Prefer` header of the operations that take `return=minimal` (`components.parameters.Prefer`). */
const PREFER_HEADER = {
  name: 'Prefer',
  in: 'header',
  required: false,
  description: 'return=minimal (RFC 7240): answer each message as a MessageReceipt (id, messageId, status) instead of the whole MessageView; the answer then carries Preference-Applied: return=minimal',
  schema: { type: 'string' },
};

/** The path parameters' schemas, by name. */
const PATH_PARAMETERS: Record<string, z.ZodType> = { id: messageIdSchema, topic: topicSchema };

const json = (schema: string, description: string): AnswerSpec => ({ schema, description });

/** Every operation of the API. `expressPath` of each must be a route of the app (tested). */
export const OPERATIONS: readonly OperationSpec[] = [
  { method: 'get', path: '/healthz', operationId: 'health', summary: 'The process answers', access: 'public', answers: { '200': json('HealthAnswer', 'alive') } },
  {
    method: 'get',
    path: '/readyz',
    operationId: 'readiness',
    summary: 'Every required dependency answers (store, transport); optional ones are reported',
    access: 'public',
    answers: { '200': json('ReadinessAnswer', 'ready'), '503': json('ReadinessAnswer', 'not ready: a required dependency is down') },
  },
  {
    method: 'get',
    path: '/metrics',
    operationId: 'metrics',
    summary: 'Prometheus metrics (text exposition format); see docs/observability/',
    access: 'public',
    answers: { '200': { description: 'the metrics', contentType: 'text/plain' } },
  },
  { method: 'get', path: '/openapi.json', operationId: 'openapi', summary: 'This document', access: 'public', answers: { '200': { description: 'the OpenAPI 3.1 document' } } },
  {
    method: 'post',
    path: '/v1/messages',
    operationId: 'prepareMessage',
    summary: 'Prepare a half message (PENDING) before the local transaction; a W3C traceparent header is stored with it',
    access: ['producer'],
    body: { schema: 'PrepareBody' },
    prefersMinimal: true,
    answers: { '201': json('MessageAnswer', 'prepared'), '200': json('MessageAnswer', 'the message already prepared under this messageId') },
  },
  {
    method: 'post',
    path: '/v1/messages/batch',
    operationId: 'prepareMessages',
    summary: 'Prepare up to 1000 messages; each element answers on its own',
    access: ['producer'],
    body: { schema: 'BatchPrepareBody' },
    prefersMinimal: true,
    answers: { '200': json('BatchResults', "each element's status and body") },
  },
  {
    method: 'post',
    path: '/v1/messages/{id}/confirm',
    operationId: 'confirmMessage',
    summary: 'The local transaction committed: the message becomes SENDING and is delivered',
    access: ['producer', 'admin'],
    prefersMinimal: true,
    answers: { '200': json('MessageAnswer', 'confirmed (or already confirmed)') },
  },
  {
    method: 'post',
    path: '/v1/confirms',
    operationId: 'confirmMessages',
    summary: 'Confirm up to 1000 messages; each id answers on its own',
    access: ['producer', 'admin'],
    body: { schema: 'BatchConfirmBody' },
    prefersMinimal: true,
    answers: { '200': json('BatchResults', "each id's status and body") },
  },
  {
    method: 'delete',
    path: '/v1/messages/{id}',
    operationId: 'cancelMessage',
    summary: 'The local transaction rolled back: the message becomes CANCELLED and is never delivered',
    access: ['producer', 'admin'],
    prefersMinimal: true,
    answers: { '200': json('MessageAnswer', 'cancelled (or already cancelled)') },
  },
  {
    method: 'post',
    path: '/v1/messages/{id}/ack',
    operationId: 'ackMessage',
    summary: "A consumer handled the message: its group's delivery is acked; the message is COMPLETED once every group's is",
    access: ['consumer'],
    body: { schema: 'GroupBody', optional: true },
    answers: { '200': json('DeliveryStatusView', 'acked (or already acked)') },
  },
  {
    method: 'post',
    path: '/v1/acks',
    operationId: 'ackMessages',
    summary: 'Ack up to 1000 messages; each id answers on its own',
    access: ['consumer'],
    body: { schema: 'BatchAckBody' },
    answers: { '200': json('AckResults', "each id's status or error") },
  },
  {
    method: 'get',
    path: '/v1/messages/{id}',
    operationId: 'getMessage',
    summary: 'One message (its producer or an admin; others get 404)',
    access: 'any',
    answers: { '200': json('MessageView', 'the message') },
  },
  {
    method: 'get',
    path: '/v1/messages',
    operationId: 'listMessages',
    summary: 'Messages newest first, filtered and cursor-paged',
    access: ['admin'],
    query: listQuerySchema,
    answers: { '200': json('MessagePage', 'one page') },
  },
  {
    method: 'post',
    path: '/v1/messages/{id}/heartbeat',
    operationId: 'heartbeatMessage',
    summary: 'A consumer still handling the message pushes its ack deadline',
    access: ['consumer'],
    body: { schema: 'HeartbeatBody', optional: true },
    answers: { '200': json('DeliveryStatusView', 'the new deadline') },
  },
  {
    method: 'post',
    path: '/v1/topics/{topic}/resend',
    operationId: 'resendTopic',
    summary: 'Resend the DEAD (delivery exhausted) messages of a topic',
    access: ['admin'],
    body: { schema: 'ResendTopicBody', optional: true },
    answers: { '200': json('ResendTopicAnswer', 'the ids resent') },
  },
  {
    method: 'post',
    path: '/v1/messages/{id}/resend',
    operationId: 'resendMessage',
    summary: "Deliver a DEAD delivery again (the group's, or every DEAD one), rounds reset",
    access: ['admin'],
    body: { schema: 'GroupBody', optional: true },
    answers: { '200': json('MessageView', 'resent') },
  },
  {
    method: 'post',
    path: '/v1/messages/{id}/nack',
    operationId: 'nackMessage',
    summary: "A consumer failed to handle its group's delivery: the round counts, the next is due now or after retryAfterMs",
    access: ['consumer'],
    body: { schema: 'NackBody' },
    answers: { '200': json('DeliveryStatusView', 'when the next round is due') },
  },
  {
    method: 'post',
    path: '/v1/nacks',
    operationId: 'nackMessages',
    summary: 'Report many failed handlings at once',
    access: ['consumer'],
    body: { schema: 'BatchNackBody' },
    answers: { '200': json('AckResults', 'one result per id, in the order given') },
  },
  {
    method: 'get',
    path: '/v1/messages/{id}/history',
    operationId: 'messageHistory',
    summary: 'Every transition and attempt of a message, oldest first',
    access: 'any',
    answers: { '200': json('HistoryAnswer', 'the history') },
  },
  {
    method: 'post',
    path: '/v1/resends',
    operationId: 'resendMatching',
    summary: 'Resend the DEAD messages matching a filter (or count them, with dryRun)',
    access: ['admin'],
    body: { schema: 'BulkResendBody' },
    answers: { '200': json('BulkResendAnswer', 'what was (or would be) resent') },
  },
  {
    method: 'get',
    path: '/v1/stats',
    operationId: 'stats',
    summary: 'Counts by status and topic, the oldest waiting messages, the failover state',
    access: ['admin'],
    answers: { '200': json('StatsAnswer', 'the counts') },
  },
  {
    method: 'get',
    path: '/v1/degrade',
    operationId: 'readDegradeSwitch',
    summary: 'The degrade switch as this instance sees it',
    access: ['admin'],
    answers: { '200': json('DegradeView', 'the switch') },
  },
  {
    method: 'put',
    path: '/v1/degrade',
    operationId: 'setDegradeSwitch',
    summary: 'Force the degrade switch on or off, or hand it back to automation',
    access: ['admin'],
    body: { schema: 'DegradeBody' },
    answers: { '200': json('DegradeView', 'the switch after the write') },
  },
];

/** The express route path of an OpenAPI path: `/v1/messages/{id}` → `/v1/messages/:id`. */
export function expressPath(path: string): string {
  return path.replace(/\{([^}]+)\}/g, ':$1');
}

/** The JSON Schemas of `schemas`, by name, with references between them to `#/components/schemas/<name>`. */
function componentSchemas(schemas: Record<string, z.ZodType>, io: 'input' | 'output'): Record<string, unknown> {
  const registry = z.registry<{ id: string }>();
  for (const [id, schema] of Object.entries(schemas)) registry.add(schema, { id });
  const { schemas: converted } = z.toJSONSchema(registry, { io, unrepresentable: 'any', uri: (id) => `#/components/schemas/${id}` });
  return Object.fromEntries(
    Object.entries(converted).map(([id, schema]) => {
      const { $schema: _dialect, $id: _id, ...rest } = schema as Record<string, unknown>;
      return [id, rest];
    }),
  );
}

/** A JSON Schema of one zod schema, without the dialect key (the document's dialect applies). */
function inlineSchema(schema: z.ZodType): Record<string, unknown> {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  return rest;
}

/** The version of the message service, from its package.json (the same two levels up from src/ and dist/). */
function serviceVersion(): string {
  return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

/** Builds the OpenAPI 3.1 document. */
export function buildOpenApiDocument(options: OpenApiOptions): Record<string, unknown> {
  const schemas = {
    ...componentSchemas(
      {
        PrepareBody: prepareBodySchema,
        BatchPrepareBody: batchPrepareBodySchema,
        BatchConfirmBody: batchConfirmBodySchema,
        BatchAckBody: batchAckBodySchema,
        HeartbeatBody: heartbeatBodySchema(options.maxHeartbeatExtendMs).unwrap(),
        ResendTopicBody: resendTopicBodySchema.unwrap(),
        GroupBody: groupBodySchema.unwrap(),
        NackBody: nackBodySchema,
        BatchNackBody: batchNackBodySchema,
        BulkResendBody: bulkResendBodySchema,
        DegradeBody: degradeBodySchema,
      },
      'input',
    ),
    ...componentSchemas(
      {
        MessageView: messageViewSchema,
        MessageReceipt: messageReceiptSchema,
        MessageAnswer: messageAnswerSchema,
        DeliveryStatusView: deliveryStatusViewSchema,
        ErrorBody: errorBodySchema,
        BatchResults: batchResultsSchema,
        AckResults: ackResultsSchema,
        MessagePage: messagePageSchema,
        ResendTopicAnswer: resendTopicAnswerSchema,
        HealthAnswer: healthAnswerSchema,
        ReadinessAnswer: readinessAnswerSchema,
        HistoryAnswer: historyAnswerSchema,
        BulkResendAnswer: bulkResendAnswerSchema,
        StatsAnswer: statsAnswerSchema,
        DegradeView: degradeViewSchema,
      },
      'output',
    ),
  };
  const paths: Record<string, Record<string, unknown>> = {};
  for (const operation of OPERATIONS) {
    const pathParameters = [...operation.path.matchAll(/\{([^}]+)\}/g)].map(([, name]) => ({
      name,
      in: 'path',
      required: true,
      schema: inlineSchema(PATH_PARAMETERS[name as string] ?? z.string()),
    }));
    const queryShape = operation.query ? (inlineSchema(operation.query) as { properties?: Record<string, unknown>; required?: string[] }) : undefined;
    const queryParameters = Object.entries(queryShape?.properties ?? {}).map(([name, schema]) => ({
      name,
      in: 'query',
      required: queryShape?.required?.includes(name) ?? false,
      schema,
    }));
    const answers: Record<string, unknown> = {};
    for (const [status, answer] of Object.entries(operation.answers)) {
      const contentType = answer.contentType ?? 'application/json';
      answers[status] = {
        description: answer.description,
        content: { [contentType]: { schema: answer.schema ? { $ref: `#/components/schemas/${answer.schema}` } : contentType === 'text/plain' ? { type: 'string' } : {} } },
      };
    }
    answers['4XX'] = { description: 'refused: the error names the problem (and the field, when one is at fault)', content: { 'application/json': { schema: { $ref: '#/components/schemas/ErrorBody' } } } };
    const overload = operation.path.startsWith('/v1/') ? '; or RMS already handles as many requests as it admits now, at most RMS_MAX_INFLIGHT_REQUESTS (503 OVERLOADED, with Retry-After, nothing done)' : '';
    answers['5XX'] = { description: `a dependency is unavailable (503, with Retry-After)${overload}; or an unexpected failure`, content: { 'application/json': { schema: { $ref: '#/components/schemas/ErrorBody' } } } };
    paths[operation.path] ??= {};
    (paths[operation.path] as Record<string, unknown>)[operation.method] = {
      operationId: operation.operationId,
      summary: operation.summary,
      ...(operation.access === 'public' ? { security: [] } : {}),
      ...(Array.isArray(operation.access) ? { 'x-rms-roles': operation.access } : {}),
      parameters: [
        ...pathParameters,
        ...queryParameters,
        { $ref: '#/components/parameters/RequestId' },
        { $ref: '#/components/parameters/Traceparent' },
        ...(operation.prefersMinimal ? [{ $ref: '#/components/parameters/Prefer' }] : []),
      ],
      ...(operation.body && {
        requestBody: {
          required: !operation.body.optional,
          content: { 'application/json': { schema: { $ref: `#/components/schemas/${operation.body.schema}` } } },
        },
      }),
      responses: answers,
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'RMS, the Reliable Message Service',
      version: serviceVersion(),
      description:
        'Transactional (half) messages over RabbitMQ with check-back, redelivery and a Redis fallback. Every answer carries X-Request-Id. Roles per operation are listed in x-rms-roles.',
    },
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    security: [{ bearerAuth: [] }],
    paths,
    components: {
      securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', description: "the app's token from RMS_APPS" } },
      parameters: {
        RequestId: {
          name: 'X-Request-Id',
          in: 'header',
          required: false,
          description: 'kept when it is 1 to 128 of [A-Za-z0-9._:-], replaced by a new id otherwise; echoed in the answer',
          schema: { type: 'string' },
        },
        Prefer: PREFER_HEADER,
        Traceparent: {
          name: 'traceparent',
          in: 'header',
          required: false,
          description: 'W3C trace context (with tracestate); an invalid one is ignored, never refused',
          schema: { type: 'string' },
        },
      },
      schemas,
    },
  };
}
