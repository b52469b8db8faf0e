/**
 * The spans RMS records for a message (prepare, confirm, publish, check-back), and the
 * trace context stored with it. The span helpers are the SDK's (`@opentelemetry/api`
 * only): with no OpenTelemetry SDK registered they record nothing, and the producer's
 * trace context is passed on unchanged.
 */
import type { TraceContext } from '@rms/client-sdk';
import type { Message } from '../domain/message.js';

/** The trace context stored with `message`, if its producer sent one. */
export function traceOf(message: Message): TraceContext | undefined {
  if (!message.traceparent) return undefined;
  return message.tracestate ? { traceparent: message.traceparent, tracestate: message.tracestate } : { traceparent: message.traceparent };
}

/** The attributes every RMS span of a message carries. */
export function messageSpanAttributes(message: Pick<Message, 'id' | 'topic' | 'producer'>): Record<string, string> {
  return { 'messaging.system': 'rms', 'messaging.destination.name': message.topic, 'messaging.message.id': message.id, 'rms.producer': message.producer };
}
