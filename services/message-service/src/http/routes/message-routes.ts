/**
 * The message API of design section 4: prepare, confirm, cancel, ack, batch ack, get,
 * list and resend.
 */
import { Router } from 'express';
import type { MessageService } from '../../application/message-service.js';
import { PayloadTooLargeError } from '../../domain/errors.js';
import { callerOf, requireRole } from '../authentication.js';
import { toMessageView } from '../message-view.js';
import {
  batchAckBodySchema,
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
}

/** The `/v1/messages` and `/v1/acks` routes. Mount after `authenticate`. */
export function messageRoutes({ service, maxPayloadBytes }: MessageRoutesOptions): Router {
  const router = Router();
  const idOf = (params: Record<string, string | string[] | undefined>): string => parseOrThrow(messageIdSchema, params['id'], 'id');

  router.post('/v1/messages', requireRole('producer'), async (request, response) => {
    const body = parseOrThrow(prepareBodySchema, request.body);
    if (Buffer.byteLength(JSON.stringify(body.payload)) > maxPayloadBytes) throw new PayloadTooLargeError(maxPayloadBytes);
    const { message, created } = await service.prepare(callerOf(response), {
      topic: body.topic,
      payload: body.payload as never,
      ...(body.messageId !== undefined && { messageId: body.messageId }),
      ...(body.headers !== undefined && { headers: body.headers }),
    });
    response.status(created ? 201 : 200).location(`/v1/messages/${message.id}`).json(toMessageView(message));
  });

  router.post('/v1/messages/:id/confirm', requireRole('producer', 'admin'), async (request, response) => {
    response.json(toMessageView(await service.confirm(callerOf(response), idOf(request.params))));
  });

  router.delete('/v1/messages/:id', requireRole('producer', 'admin'), async (request, response) => {
    response.json(toMessageView(await service.cancel(callerOf(response), idOf(request.params))));
  });

  router.post('/v1/messages/:id/ack', requireRole('consumer'), async (request, response) => {
    response.json(toMessageView(await service.ack(callerOf(response), idOf(request.params))));
  });

  router.post('/v1/acks', requireRole('consumer'), async (request, response) => {
    const { ids } = parseOrThrow(batchAckBodySchema, request.body);
    response.json({ results: await service.ackMany(callerOf(response), ids) });
  });

  router.get('/v1/messages/:id', async (request, response) => {
    response.json(toMessageView(await service.get(callerOf(response), idOf(request.params))));
  });

  router.get('/v1/messages', requireRole('admin'), async (request, response) => {
    const query = parseOrThrow(listQuerySchema, request.query, 'query');
    const page = await service.list({
      limit: query.limit,
      ...(query.status && { status: query.status }),
      ...(query.topic && { topic: query.topic }),
      ...(query.cursor && { after: decodeCursor(query.cursor) }),
    });
    response.json({ messages: page.messages.map(toMessageView), nextCursor: page.next ? encodeCursor(page.next) : null });
  });

  router.post('/v1/messages/:id/heartbeat', requireRole('consumer'), async (request, response) => {
    const body = parseOrThrow(heartbeatBodySchema, request.body);
    response.json(toMessageView(await service.heartbeat(callerOf(response), idOf(request.params), body?.extendMs)));
  });

  router.post('/v1/topics/:topic/resend', requireRole('admin'), async (request, response) => {
    const topic = parseOrThrow(topicSchema, request.params['topic'], 'topic');
    const body = parseOrThrow(resendTopicBodySchema, request.body);
    const ids = await service.resendTopic(callerOf(response), topic, body?.limit ?? 1000);
    response.json({ topic, resent: ids.length, ids });
  });

  router.post('/v1/messages/:id/resend', requireRole('admin'), async (request, response) => {
    response.json(toMessageView(await service.resend(callerOf(response), idOf(request.params))));
  });

  return router;
}
