/**
 * The message API of design section 4: prepare, confirm, cancel, ack, batch ack, get,
 * list and resend; and the operator's additions of issue 12: history, nack (single and
 * batch), search filters and bulk resend by filter.
 */
import { SpanKind, type TraceContext, inSpan, recordSpan, startSpan, traceContextFrom, traceContextOf } from '@rms/client-sdk';
import type { Span } from '@opentelemetry/api';
import { type Request, type Response, Router } from 'express';
import type { MessageFilter, MessageService, PrepareInput } from '../../application/message-service.js';
import { InvalidRequestError, PayloadTooLargeError } from '../../domain/errors.js';
import { findJsonValueProblem } from '../../validation/json-value-limits.js';
import { callerOf, requireRole } from '../authentication.js';
import { BATCH_BODY_LIMIT_BYTES, ENVELOPE_ALLOWANCE_BYTES, ID_LIST_BODY_LIMIT_BYTES, SMALL_BODY_LIMIT_BYTES, jsonBody } from '../json-body.js';
import { type MessageReceipt, type MessageView, toDeliveryStatusView, toEventView, toMessageReceipt, toMessageView } from '../message-view.js';
import type { JsonValue, Message } from '../../domain/message.js';
import { toHttpError } from '../error-mapping.js';
import { sendJson } from '../json-answer.js';
import { messageSpanAttributes, traceOf } from '../../observability/message-trace.js';
import {
  batchAckBodySchema,
  batchConfirmBodySchema,
  batchNackBodySchema,
  bulkResendBodySchema,
  nackBodySchema,
  batchPrepareBodySchema,
  groupBodySchema,
  decodeCursor,
  encodeCursor,
  heartbeatBodySchema,
  resendTopicBodySchema,
  topicSchema,
  listQuerySchema,
  messageIdSchema,
  parseOrThrow,
  prepareBodySchema,
} from '../request-schemas.js';

/** Dependencies of the message routes. */
export interface MessageRoutesOptions {
  service: MessageService;
  /** Largest payload, in bytes of its JSON. */
  maxPayloadBytes: number;
  /** Deepest nesting of arrays and objects in a payload (`RMS_MAX_PAYLOAD_DEPTH`). */
  maxPayloadDepth: number;
  /** Largest `extendMs` of a heartbeat (`RMS_MAX_HEARTBEAT_EXTEND_MS`). */
  maxHeartbeatExtendMs: number;
}

/** One element's answer in a batch: the status and body the single call would have answered. */
export interface BatchItemAnswer {
  status: number;
  body: unknown;
}

/**
 * The answer of one batch element. A refusal (400, 403, 404, 409, 413) is that element's
 * own; an unavailable store or an unexpected failure fails the whole request instead (503
 * or 500), since the client must retry or report it as a whole.
 */
function itemAnswer<T>(outcome: PromiseSettledResult<T>, view: (value: T) => unknown = (value) => value): BatchItemAnswer {
  if (outcome.status === 'fulfilled') return { status: 200, body: view(outcome.value) };
  const answer = toHttpError(outcome.reason);
  if (answer.status >= 500) throw outcome.reason;
  return { status: answer.status, body: answer.body };
}

/** RFC 7240's `Prefer: return=minimal`, among whatever else the caller prefers. */
const RETURN_MINIMAL = /(?:^|[\s,;])return\s*=\s*"?minimal"?\s*(?:$|[,;])/i;

/**
 * How a prepare, confirm or cancel (single or batch) shows a message: whole, or, to a
 * caller that prefers a minimal answer, as its receipt (id, key, status), saying so in
 * `Preference-Applied`. A producer that sent the payload rarely needs it echoed back.
 */
function messageViewFor(request: Request, response: Response): (message: Message) => MessageView | MessageReceipt {
  const prefer = request.headers['prefer'];
  if (typeof prefer !== 'string' || !RETURN_MINIMAL.test(prefer)) return toMessageView;
  return (message) => {
    response.setHeader('Preference-Applied', 'return=minimal');
    return toMessageReceipt(message);
  };
}

/** Records the `rms.confirm` span of a confirmed message, under the trace it was prepared in. */
function recordConfirmSpan(message: Message, startTime: Date): void {
  recordSpan({ name: 'rms.confirm', kind: SpanKind.SERVER, parent: traceOf(message), attributes: messageSpanAttributes(message), startTime });
}

/** The store's filter for the wire's filter fields (`messageId` is the producer's key, `from`/`to` the creation time). */
function messageFilterOf(filter: { topic?: string | undefined; producer?: string | undefined; messageId?: string | undefined; from?: Date | undefined; to?: Date | undefined }): MessageFilter {
  return {
    ...(filter.topic && { topic: filter.topic }),
    ...(filter.producer && { producer: filter.producer }),
    ...(filter.messageId && { producerMessageId: filter.messageId }),
    ...(filter.from && { createdFrom: filter.from }),
    ...(filter.to && { createdBefore: filter.to }),
  };
}

/** The `/v1/messages`, `/v1/confirms`, `/v1/acks`, `/v1/nacks` and `/v1/resends` routes. Mount after `authenticate`. */
export function messageRoutes({ service, maxPayloadBytes, maxPayloadDepth, maxHeartbeatExtendMs }: MessageRoutesOptions): Router {
  const router = Router();
  const heartbeatBody = heartbeatBodySchema(maxHeartbeatExtendMs);
  const prepareBody = jsonBody(maxPayloadBytes + ENVELOPE_ALLOWANCE_BYTES);
  const batchPrepareBody = jsonBody(Math.max(maxPayloadBytes + ENVELOPE_ALLOWANCE_BYTES, BATCH_BODY_LIMIT_BYTES));
  const idListBody = jsonBody(ID_LIST_BODY_LIMIT_BYTES);
  const smallBody = jsonBody(SMALL_BODY_LIMIT_BYTES);
  const batchNackBody = jsonBody(BATCH_BODY_LIMIT_BYTES);
  const idOf = (params: Record<string, string | string[] | undefined>): string => parseOrThrow(messageIdSchema, params['id'], 'id');

  /**
   * Checks one prepare body (`where` names it inside a batch) and returns what the service
   * takes. The trace context is the body's (`traceparent`, `tracestate`) or else the
   * request's headers'; an invalid one is ignored, as W3C Trace Context says.
   */
  const prepareInput = (body: unknown, requestTrace: TraceContext | undefined, where = ''): PrepareInput => {
    const parsed = parseOrThrow(prepareBodySchema, body, where);
    const field = where ? `${where}.payload` : 'payload';
    // Checked before anything measures or serialises the payload: both recurse.
    const problem = findJsonValueProblem(parsed.payload, maxPayloadDepth, field);
    if (problem?.kind === 'too-deep') {
      throw new InvalidRequestError(`${field}: nested deeper than ${maxPayloadDepth} levels of arrays and objects`, { field, maxDepth: maxPayloadDepth });
    }
    if (problem?.kind === 'ill-formed-unicode') {
      throw new InvalidRequestError(`${problem.path}: strings must be well-formed Unicode (no lone UTF-16 surrogate)`, { field: problem.path });
    }
    if (Buffer.byteLength(JSON.stringify(parsed.payload)) > maxPayloadBytes) throw new PayloadTooLargeError(maxPayloadBytes);
    const trace = traceContextFrom({ traceparent: parsed.traceparent, tracestate: parsed.tracestate }) ?? requestTrace;
    return {
      topic: parsed.topic,
      payload: parsed.payload as JsonValue,
      ...(parsed.messageId !== undefined && { messageId: parsed.messageId }),
      ...(parsed.headers !== undefined && { headers: parsed.headers }),
      ...(parsed.deliverAt !== undefined && { deliverAt: new Date(parsed.deliverAt) }),
      ...(parsed.delayMs !== undefined && { delayMs: parsed.delayMs }),
      ...(trace && { trace }),
    };
  };

  // The per-message path first: express tries routes in order, and these carry the load.
  router.post('/v1/messages', requireRole('producer'), prepareBody, async (request, response) => {
    const input = prepareInput(request.body, traceContextFrom(request.headers));
    const caller = callerOf(response);
    const attributes = { 'messaging.system': 'rms', 'messaging.destination.name': input.topic, 'rms.producer': caller.app };
    // The span's own context is stored, so publishes and check-backs become its children.
    const { message, created } = await inSpan({ name: 'rms.prepare', kind: SpanKind.SERVER, parent: input.trace, attributes }, async (span) => {
      const trace = traceContextOf(span, input.trace);
      const prepared = await service.prepare(caller, { ...input, ...(trace && { trace }) });
      span.setAttribute('messaging.message.id', prepared.message.id);
      return prepared;
    });
    response.setHeader('Location', `/v1/messages/${message.id}`);
    sendJson(response, messageViewFor(request, response)(message), created ? 201 : 200);
  });

  router.post('/v1/messages/:id/confirm', requireRole('producer', 'admin'), async (request, response) => {
    const startTime = new Date();
    const message = await service.confirm(callerOf(response), idOf(request.params));
    recordConfirmSpan(message, startTime);
    sendJson(response, messageViewFor(request, response)(message));
  });

  router.delete('/v1/messages/:id', requireRole('producer', 'admin'), async (request, response) => {
    sendJson(response, messageViewFor(request, response)(await service.cancel(callerOf(response), idOf(request.params))));
  });

  router.post('/v1/messages/:id/ack', requireRole('consumer'), smallBody, async (request, response) => {
    const body = parseOrThrow(groupBodySchema, request.body);
    sendJson(response, toDeliveryStatusView(await service.ack(callerOf(response), idOf(request.params), body?.group)));
  });

  router.post('/v1/acks', requireRole('consumer'), idListBody, async (request, response) => {
    const { ids, group } = parseOrThrow(batchAckBodySchema, request.body);
    sendJson(response, { results: await service.ackMany(callerOf(response), ids, group) });
  });

  router.post('/v1/messages/batch', requireRole('producer'), batchPrepareBody, async (request, response) => {
    const { messages } = parseOrThrow(batchPrepareBodySchema, request.body);
    const requestTrace = traceContextFrom(request.headers);
    const inputs = messages.map((body, index) => {
      try {
        return prepareInput(body, requestTrace, `messages[${index}]`);
      } catch (error) {
        return { refused: error };
      }
    });
    const caller = callerOf(response);
    // One rms.prepare span per message, under that message's own trace context (each may
    // come from a different producer request), stored with it like a single prepare's.
    const spans: Span[] = [];
    const valid = inputs
      .filter((input): input is PrepareInput => !('refused' in input))
      .map((input) => {
        const span = startSpan({ name: 'rms.prepare', kind: SpanKind.SERVER, parent: input.trace, attributes: { 'messaging.system': 'rms', 'messaging.destination.name': input.topic, 'rms.producer': caller.app } });
        spans.push(span);
        const trace = traceContextOf(span, input.trace);
        return { ...input, ...(trace && { trace }) };
      });
    let outcomes: Awaited<ReturnType<MessageService['prepareMany']>>;
    try {
      outcomes = await service.prepareMany(caller, valid);
      outcomes.forEach((outcome, index) => {
        if (outcome.status === 'fulfilled') spans[index]?.setAttribute('messaging.message.id', outcome.value.message.id);
      });
    } finally {
      for (const span of spans) span.end();
    }
    let next = 0;
    const view = messageViewFor(request, response);
    const results = inputs.map((input) => {
      if ('refused' in input) return itemAnswer({ status: 'rejected', reason: input.refused });
      const outcome = outcomes[next++] as PromiseSettledResult<{ message: Message; created: boolean }>;
      if (outcome.status === 'rejected') return itemAnswer(outcome);
      return { status: outcome.value.created ? 201 : 200, body: view(outcome.value.message) };
    });
    sendJson(response, { results });
  });

  router.post('/v1/confirms', requireRole('producer', 'admin'), idListBody, async (request, response) => {
    const { ids } = parseOrThrow(batchConfirmBodySchema, request.body);
    const startTime = new Date();
    const outcomes = await service.confirmMany(callerOf(response), ids);
    for (const outcome of outcomes) if (outcome.status === 'fulfilled') recordConfirmSpan(outcome.value, startTime);
    sendJson(response, { results: outcomes.map((outcome) => itemAnswer(outcome, messageViewFor(request, response))) });
  });

  router.post('/v1/messages/:id/heartbeat', requireRole('consumer'), smallBody, async (request, response) => {
    const body = parseOrThrow(heartbeatBody, request.body);
    sendJson(response, toDeliveryStatusView(await service.heartbeat(callerOf(response), idOf(request.params), body?.extendMs, body?.group)));
  });

  router.post('/v1/messages/:id/nack', requireRole('consumer'), smallBody, async (request, response) => {
    const id = idOf(request.params);
    const body = parseOrThrow(nackBodySchema, request.body);
    const input = {
      reason: body.reason,
      ...(body.retryAfterMs !== undefined && { retryAfterMs: body.retryAfterMs }),
      ...(body.attempt !== undefined && { attempt: body.attempt }),
    };
    sendJson(response, toDeliveryStatusView(await service.nack(callerOf(response), id, input, body.group)));
  });

  router.post('/v1/nacks', requireRole('consumer'), batchNackBody, async (request, response) => {
    const { nacks, group } = parseOrThrow(batchNackBodySchema, request.body);
    const items = nacks.map(({ id, reason, retryAfterMs, attempt }) => ({
      id,
      reason,
      ...(retryAfterMs !== undefined && { retryAfterMs }),
      ...(attempt !== undefined && { attempt }),
    }));
    sendJson(response, { results: await service.nackMany(callerOf(response), items, group) });
  });

  // Reads and the operator's calls.
  router.get('/v1/messages/:id/history', async (request, response) => {
    const { message, events } = await service.historyOf(callerOf(response), idOf(request.params));
    response.json({ id: message.id, status: message.status, events: events.map(toEventView) });
  });

  router.get('/v1/messages/:id', async (request, response) => {
    response.json(toMessageView(await service.get(callerOf(response), idOf(request.params))));
  });

  router.get('/v1/messages', requireRole('admin'), async (request, response) => {
    const query = parseOrThrow(listQuerySchema, request.query, 'query');
    const page = await service.list({
      limit: query.limit,
      ...messageFilterOf(query),
      ...(query.status && { status: query.status }),
      ...(query.cursor && { after: decodeCursor(query.cursor) }),
    });
    response.json({ messages: page.messages.map(toMessageView), nextCursor: page.next ? encodeCursor(page.next) : null });
  });

  router.post('/v1/topics/:topic/resend', requireRole('admin'), smallBody, async (request, response) => {
    const topic = parseOrThrow(topicSchema, request.params['topic'], 'topic');
    const body = parseOrThrow(resendTopicBodySchema, request.body);
    const ids = await service.resendTopic(callerOf(response), topic, body?.limit ?? 1000);
    response.json({ topic, resent: ids.length, ids });
  });

  router.post('/v1/resends', requireRole('admin'), smallBody, async (request, response) => {
    const body = parseOrThrow(bulkResendBodySchema, request.body);
    const result = await service.resendMatching(callerOf(response), messageFilterOf(body.filter), { limit: body.limit, dryRun: body.dryRun });
    response.json(result);
  });

  router.post('/v1/messages/:id/resend', requireRole('admin'), smallBody, async (request, response) => {
    const body = parseOrThrow(groupBodySchema, request.body);
    response.json(toMessageView(await service.resend(callerOf(response), idOf(request.params), body?.group)));
  });

  return router;
}
