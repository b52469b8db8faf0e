/**
 * The HTTP adapter of `CheckBackClient`: a signed JSON POST to the producer's registered
 * check URL (never a URL from a message, so no request forgery through RMS), with a timeout.
 */
import { SIGNATURE_HEADER, TIMESTAMP_HEADER, signCheckRequest, traceHeaders } from '@rms/client-sdk';
import type { CheckAnswer, CheckBackClient, CheckRequest, CheckTarget } from './check-back-client.js';

/** Options of the HTTP check-back client. */
export interface HttpCheckBackClientOptions {
  /** How long a producer has to answer; longer counts as UNKNOWN. @defaultValue 5000 */
  timeoutMs?: number;
  /** The clock for the signature timestamp. @defaultValue Date.now */
  now?: () => number;
}

/** Checks back over HTTP. */
export class HttpCheckBackClient implements CheckBackClient {
  private readonly timeoutMs: number;
  private readonly now: () => number;

  constructor(options: HttpCheckBackClientOptions = {}) {
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.now = options.now ?? Date.now;
  }

  async check(target: CheckTarget, request: CheckRequest): Promise<CheckAnswer> {
    const body = JSON.stringify({
      messageId: request.messageId,
      id: request.id,
      topic: request.topic,
      headers: request.headers,
      createdAt: request.createdAt.toISOString(),
      attempt: request.attempt,
    });
    const timestamp = String(this.now());
    let response: Response;
    try {
      response = await fetch(target.checkUrl, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          [TIMESTAMP_HEADER]: timestamp,
          [SIGNATURE_HEADER]: signCheckRequest(target.secret, timestamp, body),
          ...traceHeaders(request.trace),
        },
        body,
        redirect: 'error',
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (error) {
      const timedOut = error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError');
      return { verdict: 'UNKNOWN', detail: timedOut ? `no answer within ${this.timeoutMs} ms` : `request failed: ${describe(error)}` };
    }
    let text: string;
    try {
      text = await response.text();
    } catch (error) {
      return { verdict: 'UNKNOWN', detail: `reading the answer failed: ${describe(error)}` };
    }
    if (!response.ok) return { verdict: 'UNKNOWN', detail: `answered HTTP ${response.status}` };
    let status: unknown;
    try {
      status = (JSON.parse(text) as { status?: unknown } | null)?.status;
    } catch {
      return { verdict: 'UNKNOWN', detail: 'answer is not JSON' };
    }
    if (status === 'COMMIT' || status === 'ROLLBACK' || status === 'UNKNOWN') {
      return status === 'UNKNOWN' ? { verdict: 'UNKNOWN', detail: 'the producer does not know yet' } : { verdict: status };
    }
    return { verdict: 'UNKNOWN', detail: `malformed answer: status ${JSON.stringify(status)}` };
  }
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const cause = (error as { cause?: unknown }).cause;
    return cause instanceof Error ? `${error.message} (${cause.message})` : error.message;
  }
  return String(error);
}
