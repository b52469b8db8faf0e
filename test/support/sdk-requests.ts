/**
 * Sees every HTTP request the SDK makes, through undici's `undici:request:create`
 * diagnostics channel (the SDK's client is undici; Node's own `fetch` publishes there too,
 * so callers filter by origin).
 */
import { channel } from 'node:diagnostics_channel';

/** One request as the channel reports it. */
export interface SeenRequest {
  /** `http://host:port`. */
  origin: string;
  method: string;
  /** Path and query. */
  path: string;
}

interface UndiciRequestCreated {
  request: { origin: string | URL; method: string; path: string };
}

/**
 * Records requests from now until `stop()` is called (tests: `t.after(stop)`).
 * @returns the requests seen so far, and `stop`.
 */
export function recordSdkRequests(): { seen: () => SeenRequest[]; stop: () => void } {
  const requests: SeenRequest[] = [];
  const created = channel('undici:request:create');
  const listener = (message: unknown) => {
    const { request } = message as UndiciRequestCreated;
    requests.push({ origin: String(request.origin).replace(/\/+$/, ''), method: request.method, path: request.path });
  };
  created.subscribe(listener);
  return { seen: () => [...requests], stop: () => created.unsubscribe(listener) };
}
