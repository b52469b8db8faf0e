/**
 * W3C Trace Context (`traceparent`, `tracestate`) as RMS carries it: parsed and checked
 * wherever it enters (an HTTP header, an AMQP header, a Redis envelope), so a malformed or
 * hostile value is dropped (as the W3C recommendation says: start a new trace), never
 * stored, forwarded or refused.
 */

/** The trace context of a message: where its trace continues. */
export interface TraceContext {
  /** `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`. */
  traceparent: string;
  /** Vendor-specific trace state, forwarded as received. */
  tracestate?: string;
}

/** The header (and AMQP header, and envelope field) names. */
export const TRACEPARENT_HEADER = 'traceparent';
/** The W3C `tracestate` header name. */
export const TRACESTATE_HEADER = 'tracestate';

/** The longest `tracestate` kept (the W3C limit of 32 list members fits well within it). */
export const MAX_TRACESTATE_LENGTH = 512;

const TRACEPARENT_PATTERN = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const ALL_ZERO = /^0+$/;

/**
 * The `traceparent` to keep from `value`, or `undefined` when it is not a valid one.
 * Version `ff` and all-zero ids are invalid; version `00` must be exactly 55 characters;
 * a later version is read by the `00` rules and kept as its first 55 characters.
 */
export function parseTraceparent(value: unknown): string | undefined {
  if (typeof value !== 'string' || value.length > 256) return undefined;
  const match = TRACEPARENT_PATTERN.exec(value);
  if (!match) return undefined;
  const [, version, traceId, parentId, , rest] = match;
  if (version === 'ff' || ALL_ZERO.test(traceId as string) || ALL_ZERO.test(parentId as string)) return undefined;
  if (version === '00' && rest !== undefined) return undefined;
  return value.slice(0, 55);
}

/** The `tracestate` to keep from `value` (printable ASCII, at most 512 characters), or `undefined`. */
export function parseTracestate(value: unknown): string | undefined {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_TRACESTATE_LENGTH) return undefined;
  return /^[\x20-\x7e]+$/.test(value) ? value : undefined;
}

/**
 * The trace context carried by `carrier` (HTTP headers, AMQP headers, an envelope), or
 * `undefined` when it carries no valid `traceparent` (a `tracestate` alone means nothing).
 * Values may be strings or, from AMQP, Buffers.
 */
export function traceContextFrom(carrier: Record<string, unknown> | undefined): TraceContext | undefined {
  if (!carrier) return undefined;
  const text = (value: unknown) => (Buffer.isBuffer(value) ? value.toString('utf8') : Array.isArray(value) ? undefined : value);
  const traceparent = parseTraceparent(text(carrier[TRACEPARENT_HEADER]));
  if (!traceparent) return undefined;
  const tracestate = parseTracestate(text(carrier[TRACESTATE_HEADER]));
  return tracestate ? { traceparent, tracestate } : { traceparent };
}

/** `trace` as headers to send (`traceparent`, and `tracestate` when there is one); none without a trace. */
export function traceHeaders(trace: TraceContext | undefined): Record<string, string> {
  if (!trace) return {};
  return trace.tracestate ? { [TRACEPARENT_HEADER]: trace.traceparent, [TRACESTATE_HEADER]: trace.tracestate } : { [TRACEPARENT_HEADER]: trace.traceparent };
}
