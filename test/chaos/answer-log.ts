/**
 * Every answer the run's clients get from RMS's API, with its timing, so the invariants can
 * count 5xx answers (and when they came) and find the slowest answer. undici's diagnostics
 * channels see every call and every retry the SDK makes (its HTTP client is undici),
 * without changing the SDK.
 */
import { channel } from 'node:diagnostics_channel';

/** One exchange with RMS's API as a client saw it. */
export interface RecordedAnswer {
  /** `POST /v1/messages/batch`, with ids replaced by `:id` so calls group by route. */
  route: string;
  /** Epoch ms when the request was sent. */
  sentAt: number;
  /** Epoch ms when the answer's status arrived, or the exchange failed. */
  endedAt: number;
  /** The HTTP status, or `null` when there was no answer (refused, reset, timed out). */
  status: number | null;
  /** Why there was no answer (e.g. `ECONNREFUSED`, `TimeoutError`). */
  failure?: string;
}

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi;

function routeOf(method: string, url: URL): string {
  return `${method} ${url.pathname.replace(UUID, ':id')}`;
}

function failureOf(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return code;
  const cause = (error as { cause?: { code?: unknown } } | null)?.cause;
  if (typeof cause?.code === 'string') return cause.code;
  return error instanceof Error ? error.name : String(error);
}

/** What undici's `undici:request:*` diagnostics channels carry (the parts read here). */
interface UndiciRequest {
  origin: string | URL;
  method: string;
  path: string;
}

/**
 * Reports every request to an RMS API path (`/v1/…`) on one of `rmsOrigins` to `onAnswer`,
 * seen through undici's diagnostics channels (`undici:request:create`, `:headers`, `:error`),
 * which both the SDK's undici pools and Node's `fetch` publish to. Returns a function that
 * stops recording.
 */
export function recordRmsAnswers(rmsOrigins: readonly string[], onAnswer: (answer: RecordedAnswer) => void): () => void {
  const origins = new Set(rmsOrigins.map((origin) => new URL(origin).origin));
  const open = new WeakMap<object, { route: string; sentAt: number }>();
  const created = channel('undici:request:create');
  const headers = channel('undici:request:headers');
  const failed = channel('undici:request:error');
  const onCreate = (message: unknown) => {
    const { request } = message as { request: UndiciRequest };
    const url = new URL(request.path, String(request.origin));
    if (!origins.has(url.origin) || !url.pathname.startsWith('/v1/')) return;
    open.set(request, { route: routeOf(request.method, url), sentAt: Date.now() });
  };
  const onHeaders = (message: unknown) => {
    const { request, response } = message as { request: UndiciRequest; response: { statusCode: number } };
    const sent = open.get(request);
    if (sent === undefined) return;
    open.delete(request);
    onAnswer({ ...sent, endedAt: Date.now(), status: response.statusCode });
  };
  const onError = (message: unknown) => {
    const { request, error } = message as { request: UndiciRequest; error: unknown };
    const sent = open.get(request);
    if (sent === undefined) return; // answered already (a failure while reading the body) or not RMS's
    open.delete(request);
    onAnswer({ ...sent, endedAt: Date.now(), status: null, failure: failureOf(error) });
  };
  created.subscribe(onCreate);
  headers.subscribe(onHeaders);
  failed.subscribe(onError);
  return () => {
    created.unsubscribe(onCreate);
    headers.unsubscribe(onHeaders);
    failed.unsubscribe(onError);
  };
}
