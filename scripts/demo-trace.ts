/**
 * The demo's trace printer: registers an OpenTelemetry SDK with an in-memory exporter in
 * the demo process (where RMS and both example services run), so the spans RMS and the SDK
 * record through `@opentelemetry/api` are kept, and prints one message's trace as a tree.
 */
import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';

/** Spans recorded since `startTraceRecorder`. */
export interface TraceRecorder {
  /** The trace of a message that went through `spanName` (e.g. `rms.check-back`), as printable lines; `[]` if none did. */
  traceOfOneMessage(spanName: string): string[];
  stop(): Promise<void>;
}

/** Registers the in-memory OpenTelemetry SDK. Call before anything records spans. */
export function startTraceRecorder(): TraceRecorder {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  trace.setGlobalTracerProvider(provider);
  const millis = (time: [number, number]) => time[0] * 1000 + time[1] / 1e6;
  return {
    traceOfOneMessage(spanName) {
      const spans = exporter.getFinishedSpans();
      const traceIds = new Set(spans.filter((span) => span.name === 'rms.consume').map((span) => span.spanContext().traceId));
      const marker = spans.find((span) => span.name === spanName && traceIds.has(span.spanContext().traceId));
      if (!marker) return [];
      const traceId = marker.spanContext().traceId;
      const inTrace = spans.filter((span) => span.spanContext().traceId === traceId);
      const start = Math.min(...inTrace.map((span) => millis(span.startTime)));
      const children = (parentId: string | undefined) =>
        inTrace.filter((span) => span.parentSpanContext?.spanId === parentId).sort((a, b) => millis(a.startTime) - millis(b.startTime));
      const lines = [`trace ${traceId} (message ${String(marker.attributes['messaging.message.id'])})`];
      const print = (span: ReadableSpan, depth: number) => {
        const offset = (millis(span.startTime) - start).toFixed(1);
        const duration = (millis(span.endTime) - millis(span.startTime)).toFixed(1);
        const detail = ['rms.group', 'rms.groups', 'rms.attempt', 'rms.transport', 'rms.verdict'].filter((key) => span.attributes[key] !== undefined).map((key) => `${key.slice(4)}=${String(span.attributes[key])}`);
        lines.push(`${'  '.repeat(depth)}${span.name.padEnd(18 - 2 * Math.min(depth, 4))} +${offset.padStart(8)} ms  ${duration.padStart(8)} ms  ${detail.join(' ')}${span.status.code === 2 ? `  ERROR ${span.status.message ?? ''}` : ''}`);
        for (const child of children(span.spanContext().spanId)) print(child, depth + 1);
      };
      const ids = new Set(inTrace.map((span) => span.spanContext().spanId));
      for (const root of inTrace.filter((span) => !span.parentSpanContext || !ids.has(span.parentSpanContext.spanId))) print(root, 0);
      return lines;
    },
    async stop() {
      await provider.shutdown();
      trace.disable();
      context.disable();
    },
  };
}
