/**
 * The SDK's HTTP client for RMS: every call has a timeout, answers become typed errors,
 * and calls that are safe to repeat are retried with capped exponential backoff and full
 * jitter on 503, network errors and timeouts (a 503's `Retry-After` sets the least wait).
 * Every call RMS offers is safe to repeat: prepare carries the producer's `messageId`, and
 * confirm, cancel, ack and heartbeat are idempotent by design.
 *
 * With several RMS URLs (instances sharing one store), a call that fails that way is
 * retried on the next URL, and the client stays on the URL that answered: one instance
 * going down costs a retry, not an outage.
 *
 * Requests go through one `undici` {@link Pool} of keep-alive connections per RMS URL,
 * not through `fetch`: the same exchange costs the client about a quarter of the CPU
 * (docs/benchmarks.md, "The SDK's HTTP client"), CPU the business service needs.
 * {@link RmsHttpClient.close} closes the pools.
 */
import type { TraceContext } from '../tracing/trace-context.js';
import { randomUUID } from 'node:crypto';
import { Pool } from 'undici';
import { noteRetryAfter, retryAfterMs, retryAfterOf } from './retry-after.js';
import { type MessageStatus, RmsError, RmsUnavailableError, errorFromAnswer } from '../errors.js';

/** A message as RMS returns it. */
export interface RmsMessage {
  id: string;
  producer: string;
  messageId: string | null;
  topic: string;
  payload: unknown;
  headers: Record<string, string>;
  status: MessageStatus;
  deadReason: 'CHECK_EXHAUSTED' | 'DELIVERY_EXHAUSTED' | null;
  createdAt: string;
  updatedAt: string;
  confirmedAt: string | null;
  completedAt: string | null;
  cancelledAt: string | null;
  checkAttempts: number;
  deliveryAttempts: number;
  nextAttemptAt: string | null;
  lastTransport: 'rabbitmq' | 'redis' | null;
  lastError: string | null;
  /** Not delivered before this time (a delayed message); `null`: at once on confirm. */
  deliverAt: string | null;
  /** One delivery per consumer group subscribed to the topic when it was confirmed. */
  deliveries: RmsDelivery[];
}

/** One consumer group's delivery of a message, as `GET /v1/messages/:id` shows it. */
export interface RmsDelivery {
  group: string;
  status: 'SENDING' | 'ACKED' | 'DEAD';
  /** Rounds made for this group. */
  attempts: number;
  /** The next round or the ack deadline; `null` unless SENDING. */
  nextAttemptAt: string | null;
  lastTransport: 'rabbitmq' | 'redis' | null;
  lastError: string | null;
  ackedAt: string | null;
}

/** When a message may be delivered: give at most one. */
export interface DeliveryDelay {
  /** Not before this time (sent as ISO 8601). */
  deliverAt?: Date;
  /** Not before this long after prepare, in milliseconds (RMS bounds it, 30 days by default). */
  delayMs?: number;
}

/** The delay fields of a prepare body. */
function delayFields(delay: DeliveryDelay): { deliverAt?: string; delayMs?: number } {
  return { ...(delay.deliverAt !== undefined && { deliverAt: delay.deliverAt.toISOString() }), ...(delay.delayMs !== undefined && { delayMs: delay.delayMs }) };
}

/**
 * A message prepared through the SDK: the SDK always sends a `messageId` (the caller's, or
 * a UUID it generates), so RMS's answer always carries it.
 */
export type PreparedMessage = RmsMessage & { messageId: string };

/**
 * What RMS answers a prepare, confirm or cancel sent with `Prefer: return=minimal`: the
 * message's id, the producer's key and the status, without the payload (and the rest) the
 * producer already has. An RMS that ignores the preference answers the whole message,
 * which has these fields too.
 */
export type MessageReceipt = Pick<RmsMessage, 'id' | 'messageId' | 'status'>;

/** How RMS should answer a prepare, confirm or cancel. */
export interface AnswerOptions {
  /**
   * Ask for receipts (`Prefer: return=minimal`) instead of whole messages: RMS does not
   * serialize the payload back, and the client does not parse it.
   * @defaultValue false
   */
  receipt?: boolean;
}

/** The header asking RMS for receipts (RFC 7240). */
const PREFER_MINIMAL = 'return=minimal';

/** What RMS answers a consumer's ack or heartbeat: the status only, never the payload. */
export type ConsumerAnswer = Pick<RmsMessage, 'id' | 'status' | 'nextAttemptAt'> & {
  /** Each consumer group's delivery: where it is, not what it carries. */
  deliveries: Pick<RmsDelivery, 'group' | 'status' | 'attempts' | 'nextAttemptAt'>[];
};

/** One entry of a batch ack's answer. */
export type AckResult =
  /** `status` is the message's; `group` and `delivery` the acking group's delivery (`ACKED` when the ack took). */
  | { id: string; status: MessageStatus; group?: string; delivery?: RmsDelivery['status'] }
  | { id: string; error: { code: string; message: string; status?: MessageStatus } };

/** One entry of a message's history, as `GET /v1/messages/:id/history` returns it. */
export interface RmsMessageEvent {
  at: string;
  type: 'prepared' | 'confirmed' | 'cancelled' | 'check-back' | 'delivery' | 'consumer-failure' | 'heartbeat' | 'acked' | 'dead' | 'resent';
  actor: 'producer' | 'consumer' | 'admin' | 'check-back' | 'rms';
  app: string | null;
  group: string | null;
  attempt: number | null;
  transport: 'rabbitmq' | 'redis' | null;
  outcome: string | null;
  durationMs: number | null;
  reason: string | null;
  nextAttemptAt: string | null;
}

/** Filters of the admin message search; every field narrows it. */
export interface MessageSearch {
  status?: MessageStatus;
  topic?: string;
  /** The producer app. */
  producer?: string;
  /** The producer's own key. */
  messageId?: string;
  /** Created at or after (ISO 8601). */
  from?: string;
  /** Created before (ISO 8601). */
  to?: string;
}

/** What `POST /v1/resends` did (or, on a dry run, would do). */
export interface BulkResendResult {
  matched: number;
  resendable: number;
  resent: string[];
  dryRun: boolean;
}

/** What `GET /v1/stats` answers. */
export interface RmsStats {
  /** When the counts were read (they are cached for a few seconds). */
  at: string;
  totals: Record<MessageStatus, number>;
  counts: { status: MessageStatus; topic: string; count: number }[];
  oldestWaiting: (RmsMessage & { waitingSeconds: number })[];
  /** The failover transport's state, or `null` when RMS runs without one. */
  failover: Record<string, unknown> | null;
  /** The degrade switch's state, or `null` when RMS runs without one. */
  degrade: Record<string, unknown> | null;
}

/** One element's answer in a batch request: the HTTP status and body the single call would have answered. */
export interface BatchItemAnswer {
  status: number;
  body: unknown;
}

/** One message of a batch prepare. */
export interface PrepareRequest {
  topic: string;
  payload: unknown;
  /** The producer's idempotency key; required here so a retried batch never makes two messages. */
  messageId: string;
  headers?: Record<string, string>;
  /** Deliver no earlier than this. */
  deliverAt?: Date;
  /** Deliver no earlier than this long after prepare. */
  delayMs?: number;
  /** The W3C trace context the message was prepared in; RMS stores it and carries it to the consumer. */
  trace?: TraceContext;
}

/** Retry policy for calls that fail with 503, a network error or a timeout. */
export interface RetryOptions {
  /** Attempts after the first. @defaultValue 5 */
  retries?: number;
  /** First backoff. @defaultValue 100 */
  baseDelayMs?: number;
  /** Largest backoff. @defaultValue 2000 */
  maxDelayMs?: number;
}

/** How to reach RMS. */
export interface RmsHttpClientOptions {
  /**
   * RMS's base URL, e.g. `http://127.0.0.1:8080`, or the URLs of several RMS instances on
   * one store (tried in turn: a connection error, a timeout or a 503 moves the client to the
   * next one). One URL behind a load balancer works as well.
   */
  url: string | readonly string[];
  /** The app's bearer token. */
  token: string;
  /** Limit on one HTTP exchange. @defaultValue 5000 */
  timeoutMs?: number;
  /**
   * Retry policy. A 503 that carries `Retry-After` waits at least that long (at most
   * `maxDelayMs`) before the next attempt that is not an immediate move to another URL.
   * @defaultValue `{ retries: 5, baseDelayMs: 100, maxDelayMs: 2000 }`
   */
  retry?: RetryOptions;
}

const DEFAULT_RETRY: Required<RetryOptions> = { retries: 5, baseDelayMs: 100, maxDelayMs: 2000 };

/** One RMS URL: its connection pool and the path prefix requests go under. */
interface Endpoint {
  /** The URL as given, without trailing slashes. */
  base: string;
  /** The path before `/v1/...` (empty unless RMS sits under a path behind a proxy). */
  prefix: string;
  pool: Pool;
}

/** Low-level typed access to RMS's HTTP API; the producer and the consumer build on it. */
export class RmsHttpClient {
  private readonly endpoints: readonly Endpoint[];
  /** The URL calls go to now: the last one that answered. */
  private current = 0;
  private readonly timeoutMs: number;
  private readonly retry: Required<RetryOptions>;
  /** The request headers, built once: by whether a JSON body goes along, then by the answer asked for. */
  private readonly headers: Record<'bodiless' | 'json', Record<'message' | 'receipt', Record<string, string>>>;
  private closing: Promise<void> | undefined;

  constructor(options: RmsHttpClientOptions) {
    const urls = typeof options.url === 'string' ? [options.url] : [...options.url];
    if (urls.length === 0) throw new TypeError('RmsHttpClient: url must name at least one RMS URL');
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.retry = { ...DEFAULT_RETRY, ...options.retry };
    const authorization = `Bearer ${options.token}`;
    const json = { authorization, 'content-type': 'application/json' };
    this.headers = {
      bodiless: { message: { authorization }, receipt: { authorization, prefer: PREFER_MINIMAL } },
      json: { message: json, receipt: { ...json, prefer: PREFER_MINIMAL } },
    };
    this.endpoints = urls.map((url) => {
      const base = url.replace(/\/+$/, '');
      const parsed = new URL(base);
      const pool = new Pool(parsed.origin, {
        // Keep-alive (undici's default, shortened by the server's `Keep-Alive: timeout` hint);
        // as many connections as calls in flight, as with `fetch`; the whole exchange is
        // bounded by the request's own timer, these bound each phase as well.
        connect: { timeout: this.timeoutMs },
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
      });
      return { base, prefix: parsed.pathname.replace(/\/+$/, ''), pool };
    });
  }

  /**
   * Closes the connection pools: calls in flight finish, later ones fail with an
   * `RmsError` of code `CLIENT_CLOSED`. Idempotent. The pools' idle connections never keep
   * the process alive, so a client that is never closed does not stop it from exiting.
   */
  close(): Promise<void> {
    this.closing ??= Promise.all(this.endpoints.map(({ pool }) => pool.close())).then(() => undefined);
    return this.closing;
  }

  /** `POST /v1/messages`. Without a `messageId` one is generated, so a retried prepare never makes two messages. */
  async prepare(topic: string, payload: unknown, options: { messageId?: string; headers?: Record<string, string>; trace?: TraceContext } & DeliveryDelay = {}): Promise<PreparedMessage> {
    const body = { topic, payload, messageId: options.messageId ?? randomUUID(), ...(options.headers && { headers: options.headers }), ...delayFields(options), ...options.trace };
    return this.request<PreparedMessage>('POST', '/v1/messages', body);
  }

  /**
   * `POST /v1/messages/batch`: prepares up to 1000 messages in one request; one answer per
   * message, in order. A refused message (400, 409, 413) does not refuse the others; a 503
   * or a network failure fails (and retries) the whole request.
   */
  async prepareMany(messages: readonly PrepareRequest[], answer: AnswerOptions = {}): Promise<BatchItemAnswer[]> {
    const body = {
      messages: messages.map(({ topic, payload, messageId, headers, trace, ...delay }) => ({ topic, payload, messageId, ...(headers && { headers }), ...delayFields(delay), ...trace })),
    };
    return (await this.request<{ results: BatchItemAnswer[] }>('POST', '/v1/messages/batch', body, answer)).results;
  }

  /**
   * `POST /v1/confirms`: confirms up to 1000 messages in one request; one answer per id, in
   * order. With `receipt`, an accepted element's body is a {@link MessageReceipt}; refused
   * elements carry their error either way.
   */
  async confirmMany(ids: readonly string[], answer: AnswerOptions = {}): Promise<BatchItemAnswer[]> {
    return (await this.request<{ results: BatchItemAnswer[] }>('POST', '/v1/confirms', { ids }, answer)).results;
  }

  /** `POST /v1/messages/:id/confirm`. */
  confirm(id: string): Promise<RmsMessage> {
    return this.request<RmsMessage>('POST', `/v1/messages/${encodeURIComponent(id)}/confirm`);
  }

  /** `POST /v1/messages/:id/confirm` with `Prefer: return=minimal`: the confirmed message's receipt. */
  confirmReceipt(id: string): Promise<MessageReceipt> {
    return this.request<MessageReceipt>('POST', `/v1/messages/${encodeURIComponent(id)}/confirm`, undefined, { receipt: true });
  }

  /** `DELETE /v1/messages/:id`. */
  cancel(id: string): Promise<RmsMessage> {
    return this.request<RmsMessage>('DELETE', `/v1/messages/${encodeURIComponent(id)}`);
  }

  /** `DELETE /v1/messages/:id` with `Prefer: return=minimal`: the cancelled message's receipt. */
  cancelReceipt(id: string): Promise<MessageReceipt> {
    return this.request<MessageReceipt>('DELETE', `/v1/messages/${encodeURIComponent(id)}`, undefined, { receipt: true });
  }

  /** `GET /v1/messages/:id`. */
  get(id: string): Promise<RmsMessage> {
    return this.request<RmsMessage>('GET', `/v1/messages/${encodeURIComponent(id)}`);
  }

  /**
   * `POST /v1/messages/:id/ack`: acks `group`'s delivery.
   * @param group - the consumer group. @defaultValue the app's group for the topic (RMS decides)
   */
  ack(id: string, group?: string): Promise<ConsumerAnswer> {
    return this.request<ConsumerAnswer>('POST', `/v1/messages/${encodeURIComponent(id)}/ack`, group === undefined ? undefined : { group });
  }

  /** `POST /v1/acks`: acks `group`'s deliveries; per-id results, in the order given. */
  async ackMany(ids: readonly string[], group?: string): Promise<AckResult[]> {
    return (await this.request<{ results: AckResult[] }>('POST', '/v1/acks', { ids, ...(group !== undefined && { group }) })).results;
  }

  /** `POST /v1/messages/:id/heartbeat`: pushes `group`'s ack deadline out. */
  heartbeat(id: string, extendMs?: number, group?: string): Promise<ConsumerAnswer> {
    return this.request<ConsumerAnswer>('POST', `/v1/messages/${encodeURIComponent(id)}/heartbeat`, {
      ...(extendMs !== undefined && { extendMs }),
      ...(group !== undefined && { group }),
    });
  }

  /**
   * `POST /v1/messages/:id/nack`: this consumer failed to handle the message. RMS records
   * `reason` (at most 1000 characters) and delivers again at once, or after `retryAfterMs`.
   * `attempt` is the delivery's `x-rms-attempt`, so the round counts even when the consumer
   * fails it before RMS has recorded it; `group` names the consumer's group when the app
   * reads the topic in several.
   */
  nack(id: string, reason: string, options: { retryAfterMs?: number; attempt?: number; group?: string } = {}): Promise<ConsumerAnswer> {
    return this.request<ConsumerAnswer>('POST', `/v1/messages/${encodeURIComponent(id)}/nack`, { reason, ...options });
  }

  /** `POST /v1/nacks`: per-id results, in the order given. */
  async nackMany(nacks: readonly { id: string; reason: string; retryAfterMs?: number; attempt?: number }[], group?: string): Promise<AckResult[]> {
    return (await this.request<{ results: AckResult[] }>('POST', '/v1/nacks', { nacks, ...(group !== undefined && { group }) })).results;
  }

  /** `GET /v1/messages` (admin): newest first, one page; pass `nextCursor` back as `cursor` for the next. */
  listMessages(search: MessageSearch & { limit?: number; cursor?: string } = {}): Promise<{ messages: RmsMessage[]; nextCursor: string | null }> {
    const query = new URLSearchParams(Object.entries(search).flatMap(([key, value]): [string, string][] => (value === undefined ? [] : [[key, String(value)]])));
    const suffix = query.size > 0 ? `?${query.toString()}` : '';
    return this.request('GET', `/v1/messages${suffix}`);
  }

  /** `GET /v1/messages/:id/history` (owner or admin): the message's events, oldest first. */
  history(id: string): Promise<{ id: string; status: MessageStatus; events: RmsMessageEvent[] }> {
    return this.request('GET', `/v1/messages/${encodeURIComponent(id)}/history`);
  }

  /** `POST /v1/messages/:id/resend` (admin). */
  resend(id: string): Promise<RmsMessage> {
    return this.request<RmsMessage>('POST', `/v1/messages/${encodeURIComponent(id)}/resend`);
  }

  /** `POST /v1/resends` (admin): resends the DEAD messages matching `filter`, or with `dryRun` counts them. */
  resendMatching(filter: Omit<MessageSearch, 'status'>, options: { dryRun?: boolean; limit?: number } = {}): Promise<BulkResendResult> {
    return this.request<BulkResendResult>('POST', '/v1/resends', { filter, ...options });
  }

  /** `GET /v1/stats` (admin): messages by status and topic, the oldest waiting, the failover state. */
  stats(): Promise<RmsStats> {
    return this.request<RmsStats>('GET', '/v1/stats');
  }

  /** The RMS URL calls go to now. */
  get url(): string {
    return (this.endpoints[this.current] as Endpoint).base;
  }

  /**
   * Sends one request, retrying 503s, network errors and timeouts per the retry policy;
   * with several URLs each retry goes to the next one. `answer.receipt` sends
   * `Prefer: return=minimal` (RMS honours it on prepare, confirm and cancel).
   */
  async request<T>(method: string, path: string, body?: unknown, answer: AnswerOptions = {}): Promise<T> {
    if (this.closing) throw new RmsError('CLIENT_CLOSED', 0, `${method} ${path}: this RMS client was closed`);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    for (let attempt = 0; ; attempt++) {
      const current = this.current;
      try {
        return await this.once<T>(this.endpoints[current] as Endpoint, method, path, payload, answer.receipt === true);
      } catch (error) {
        if (!(error instanceof RmsUnavailableError) || attempt >= this.retry.retries || this.closing) throw error;
        // Move on unless a concurrent call already did.
        if (this.current === current) this.current = (current + 1) % this.endpoints.length;
        // With another instance to try, the first retry goes at once.
        if (this.endpoints.length > 1 && attempt === 0) continue;
        const cap = Math.min(this.retry.maxDelayMs, this.retry.baseDelayMs * 2 ** attempt);
        // RMS asked for a pause (admission control, a dependency down): at least that, plus the jitter.
        const floor = Math.min(retryAfterOf(error) ?? 0, this.retry.maxDelayMs);
        await new Promise((resolve) => setTimeout(resolve, floor + Math.random() * cap));
      }
    }
  }

  /** One exchange with one RMS URL: the answer's JSON, or a typed error. */
  private async once<T>({ base, prefix, pool }: Endpoint, method: string, path: string, payload: string | undefined, receipt: boolean): Promise<T> {
    // One timer bounds the whole exchange (connect, answer, body), as `AbortSignal.timeout`
    // did with `fetch`, for a twentieth of its CPU.
    const abort = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      abort.abort();
    }, this.timeoutMs);
    const unavailable = (error: unknown, status: number, reading: boolean) => {
      const timeout = timedOut || isTimeout(error);
      return new RmsUnavailableError(
        timeout ? 'TIMEOUT' : 'NETWORK',
        status,
        timeout
          ? `RMS at ${base} did not answer ${method} ${path} within ${this.timeoutMs} ms`
          : reading
            ? `reading RMS's answer to ${method} ${path} failed: ${describeCause(error)}`
            : `RMS at ${base} unreachable for ${method} ${path}: ${describeCause(error)}`,
        {},
        { cause: error },
      );
    };
    try {
      let response: Awaited<ReturnType<Pool['request']>>;
      try {
        response = await pool.request({
          method: method as 'GET',
          path: `${prefix}${path}`,
          headers: this.headers[payload === undefined ? 'bodiless' : 'json'][receipt ? 'receipt' : 'message'],
          body: payload ?? null,
          signal: abort.signal,
        });
      } catch (error) {
        if (isClosed(error)) throw new RmsError('CLIENT_CLOSED', 0, `${method} ${path}: this RMS client was closed`, {}, { cause: error });
        throw unavailable(error, 0, false);
      }
      const status = response.statusCode;
      let text: string;
      try {
        text = await response.body.text();
      } catch (error) {
        throw unavailable(error, status, true);
      }
      let json: unknown = null;
      if (text) {
        try {
          json = JSON.parse(text);
        } catch {
          throw new RmsError('MALFORMED_ANSWER', status, `RMS answered ${method} ${path} with something that is not JSON`);
        }
      }
      if (status < 200 || status >= 300) {
        const error = errorFromAnswer(status, json);
        if (status === 503) noteRetryAfter(error, retryAfterMs(response.headers['retry-after']));
        throw error;
      }
      return json as T;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** undici's own timeouts (connect, headers, body) and an aborted request. */
function isTimeout(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT';
}

/** A request made on a pool that is closing or closed. */
function isClosed(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'UND_ERR_CLOSED' || code === 'UND_ERR_DESTROYED';
}

function describeCause(error: unknown): string {
  const cause = (error as { cause?: unknown } | null)?.cause;
  if (cause instanceof Error) return cause.message;
  if (error instanceof AggregateError && error.errors[0] instanceof Error) return error.errors[0].message;
  return error instanceof Error ? error.message : String(error);
}
