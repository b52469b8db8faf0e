/**
 * The `CheckBackClient` port: asks a producer whether the local transaction behind a
 * pending message committed (design section 5).
 */

import type { TraceContext } from '@rms/client-sdk';

/** The producer's verdict. Anything but a clear COMMIT or ROLLBACK is UNKNOWN. */
export type CheckVerdict = 'COMMIT' | 'ROLLBACK' | 'UNKNOWN';

/** What RMS asks about. */
export interface CheckRequest {
  /** RMS's id. */
  id: string;
  /** The producer's idempotency key, or RMS's id when it gave none. */
  messageId: string;
  topic: string;
  headers: Record<string, string>;
  createdAt: Date;
  /** Which check this is, from 1. */
  attempt: number;
  /** The W3C trace context to send as `traceparent` / `tracestate` headers. */
  trace?: TraceContext;
}

/** The answer, with why it is UNKNOWN when it is. */
export interface CheckAnswer {
  verdict: CheckVerdict;
  /** For UNKNOWN: the timeout, status or malformed body that made it so. */
  detail?: string;
}

/** Where and how to reach one producer. */
export interface CheckTarget {
  app: string;
  checkUrl: string;
  secret: string;
}

/** Asks producers about pending messages. */
export interface CheckBackClient {
  /** Never rejects: failures are UNKNOWN answers with a detail. */
  check(target: CheckTarget, request: CheckRequest): Promise<CheckAnswer>;
}
