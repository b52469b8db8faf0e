/**
 * OpenTelemetry spans through `@opentelemetry/api` only: when the application registers an
 * OpenTelemetry SDK, RMS and the SDK record spans (prepare, confirm, publish, check-back,
 * consumer handling) into it; without one, the API is a no-op and costs next to nothing.
 * No exporter is chosen for the user.
 *
 * The parent of a span is a W3C trace context RMS carries itself (stored with the message,
 * sent in AMQP headers and the Redis envelope), so traces join up whatever propagator the
 * application registered; the context passed on is the new span's when it records, else
 * the one received, so a trace is never broken by a hop that does not record.
 */
import {
  type Attributes,
  type Context,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  TraceFlags,
  context,
  createTraceState,
  trace,
} from '@opentelemetry/api';
import { type TraceContext, parseTraceparent } from './trace-context.js';

/** The tracer's name (the instrumentation scope of every RMS span). */
export const TRACER_NAME = 'rms';

export { SpanKind };

/** An OpenTelemetry context whose remote parent is `parent`, on top of `base`. */
export function contextWithParent(parent: TraceContext | undefined, base: Context = ROOT_CONTEXT): Context {
  const traceparent = parseTraceparent(parent?.traceparent);
  if (!traceparent) return base;
  const [, traceId, spanId, flags] = traceparent.split('-') as [string, string, string, string];
  return trace.setSpanContext(base, {
    traceId,
    spanId,
    traceFlags: Number.parseInt(flags, 16) & TraceFlags.SAMPLED,
    isRemote: true,
    ...(parent?.tracestate && { traceState: createTraceState(parent.tracestate) }),
  });
}

/** The trace context to pass on from inside `span`: the span's own when it is valid, else `received`. */
export function traceContextOf(span: Span, received: TraceContext | undefined): TraceContext | undefined {
  const spanContext = span.spanContext();
  if (!trace.isSpanContextValid(spanContext) || !span.isRecording()) return received;
  const traceparent = `00-${spanContext.traceId}-${spanContext.spanId}-${(spanContext.traceFlags & 0xff).toString(16).padStart(2, '0')}`;
  const tracestate = spanContext.traceState?.serialize() || received?.tracestate;
  return tracestate ? { traceparent, tracestate } : { traceparent };
}

/** What a span is made of. */
export interface SpanOptions {
  /** A span name such as `rms.publish`. */
  name: string;
  kind: SpanKind;
  /** The remote parent; without one, the active context's span (if any) is the parent. */
  parent?: TraceContext | undefined;
  attributes?: Attributes;
}

/**
 * Runs `work` inside a new active span, ending it when `work` settles; a rejection is
 * recorded on the span (status ERROR with the exception) and rethrown.
 */
export async function inSpan<T>(options: SpanOptions, work: (span: Span) => Promise<T>): Promise<T> {
  const tracer = trace.getTracer(TRACER_NAME);
  const parentContext = options.parent ? contextWithParent(options.parent, context.active()) : context.active();
  return tracer.startActiveSpan(options.name, { kind: options.kind, ...(options.attributes && { attributes: options.attributes }) }, parentContext, async (span) => {
    try {
      return await work(span);
    } catch (error) {
      span.recordException(error instanceof Error ? error : String(error));
      span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
      throw error;
    } finally {
      span.end();
    }
  });
}

/**
 * Starts a span that is not made active, for work the caller cannot wrap in a callback
 * (one span per element of a batch); the caller ends it.
 */
export function startSpan(options: SpanOptions): Span {
  const parentContext = options.parent ? contextWithParent(options.parent, context.active()) : context.active();
  return trace.getTracer(TRACER_NAME).startSpan(options.name, { kind: options.kind, ...(options.attributes && { attributes: options.attributes }) }, parentContext);
}

/** The trace context of the active span (for a producer's outgoing request), or `undefined` when no span is recording. */
export function activeTraceContext(): TraceContext | undefined {
  const span = trace.getSpan(context.active());
  return span ? traceContextOf(span, undefined) : undefined;
}

/**
 * Records a span that already happened, from `startTime` to now: for steps whose parent
 * is only known once they are done (a confirm learns the message's trace context from the
 * write that confirmed it).
 */
export function recordSpan(options: SpanOptions & { startTime: Date }): void {
  const parentContext = options.parent ? contextWithParent(options.parent, context.active()) : context.active();
  const span = trace
    .getTracer(TRACER_NAME)
    .startSpan(options.name, { kind: options.kind, startTime: options.startTime, ...(options.attributes && { attributes: options.attributes }) }, parentContext);
  span.end();
}
