/**
 * Every answer the run's clients get from RMS's API, with its timing, so the invariants can
 * count 5xx answers (and when they came) and find the slowest answer. The SDK talks HTTP
 * through the global `fetch`; wrapping it sees every call and every retry the SDK makes,
 * without changing the SDK.
 */

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
  const cause = (error as { cause?: { code?: unknown } }).cause;
  if (typeof cause?.code === 'string') return cause.code;
  return error instanceof Error ? error.name : String(error);
}

/**
 * Wraps the global `fetch` so that every request to an RMS API path (`/v1/…`) on one of
 * `rmsOrigins` is reported to `onAnswer`. Returns a function that puts the original back.
 */
export function recordRmsAnswers(rmsOrigins: readonly string[], onAnswer: (answer: RecordedAnswer) => void): () => void {
  const original = globalThis.fetch;
  const origins = new Set(rmsOrigins.map((origin) => new URL(origin).origin));
  globalThis.fetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = new URL(input instanceof Request ? input.url : input);
    if (!origins.has(url.origin) || !url.pathname.startsWith('/v1/')) return original(input, init);
    const route = routeOf(init?.method ?? (input instanceof Request ? input.method : 'GET'), url);
    const sentAt = Date.now();
    try {
      const response = await original(input, init);
      onAnswer({ route, sentAt, endedAt: Date.now(), status: response.status });
      return response;
    } catch (error) {
      onAnswer({ route, sentAt, endedAt: Date.now(), status: null, failure: failureOf(error) });
      throw error;
    }
  };
  return () => {
    globalThis.fetch = original;
  };
}
