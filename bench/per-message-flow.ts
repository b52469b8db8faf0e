/**
 * The plain HTTP client of the bench: what a client without the TypeScript SDK (Java, Go,
 * Python, curl: the OpenAPI users) does, one message per request pair. An `undici` pool of
 * keep-alive connections, `POST /v1/messages` then `POST /v1/messages/:id/confirm` per
 * message, no batching. Also the `GET /healthz` baseline on the same server with the same
 * client: the cost of an HTTP request to RMS that does nothing, against which the
 * per-message flow's two requests per message are compared.
 */
import { randomUUID } from 'node:crypto';
import { Pool } from 'undici';
import { nowMs, percentiles } from './latency.js';
import { ProcessSampler } from './proc-usage.js';
import type { HealthzBaseline, MessageSender, RequestSummary } from './workload.js';

/** A request that took longer than this failed (it counts as a network error). */
const REQUEST_TIMEOUT_MS = 30_000;

/**
 * The plain HTTP client to one RMS: an `undici` pool of `connections` keep-alive
 * connections, one request in flight on each (no pipelining, as most HTTP clients).
 */
export function perMessagePool(url: string, connections: number): Pool {
  return new Pool(url, { connections, pipelining: 1, headersTimeout: REQUEST_TIMEOUT_MS, bodyTimeout: REQUEST_TIMEOUT_MS });
}

/** The answers of a plain HTTP client's requests: by status, and the latency of those admitted. */
export class RequestLedger {
  #byStatus: Record<string, number> = {};
  #admittedMs: number[] = [];
  #rejected = 0;
  #rejectedWithRetryAfter = 0;

  /** Records one answer (`status` `'error'` for a network error or timeout) and how long it took. */
  record(status: number | 'error', ms: number, retryAfter = false): void {
    const key = String(status);
    this.#byStatus[key] = (this.#byStatus[key] ?? 0) + 1;
    if (status === 503) {
      this.#rejected += 1;
      if (retryAfter) this.#rejectedWithRetryAfter += 1;
    } else if (status !== 'error') this.#admittedMs.push(ms);
  }

  /** Forgets everything recorded so far (after a warm-up). */
  reset(): void {
    this.#byStatus = {};
    this.#admittedMs = [];
    this.#rejected = 0;
    this.#rejectedWithRetryAfter = 0;
  }

  /** The figures so far. */
  summary(): RequestSummary {
    return {
      requests: Object.values(this.#byStatus).reduce((sum, count) => sum + count, 0),
      byStatus: { ...this.#byStatus },
      rejected: this.#rejected,
      rejectedWithRetryAfter: this.#rejectedWithRetryAfter,
      admitted: percentiles(this.#admittedMs),
    };
  }
}

/** How to reach one RMS with the plain HTTP client. */
export interface PerMessageSenderOptions {
  /** The client: a {@link perMessagePool}; the sender does not close it. */
  pool: Pool;
  /** The producer app's bearer token. */
  token: string;
  /** Where each request's answer is recorded. */
  ledger: RequestLedger;
}

/** An HTTP error answer of the per-message client. */
export class PerMessageHttpError extends Error {
  constructor(
    readonly status: number | 'error',
    message: string,
  ) {
    super(message);
    this.name = 'PerMessageHttpError';
  }
}

/**
 * One message per request pair over an `undici` {@link Pool}: prepare, then confirm. No
 * retries: a refused or failed request is counted, and the message is an error (prepare)
 * or unconfirmed (confirm; RMS would check back on it).
 */
export class PerMessageHttpSender implements MessageSender {
  readonly #pool: Pool;
  readonly #authorization: string;

  constructor(private readonly options: PerMessageSenderOptions) {
    this.#pool = options.pool;
    this.#authorization = `Bearer ${options.token}`;
  }

  async send(topic: string, payload: unknown, confirming: (id: string) => void): Promise<{ id: string; confirmed: boolean }> {
    const prepared = await this.#request('/v1/messages', JSON.stringify({ topic, payload, messageId: randomUUID() }));
    const id = (prepared as { id?: unknown } | undefined)?.id;
    if (typeof id !== 'string') throw new PerMessageHttpError('error', 'prepare answered without an id');
    confirming(id);
    try {
      await this.#request(`/v1/messages/${id}/confirm`);
      return { id, confirmed: true };
    } catch (error) {
      if (error instanceof PerMessageHttpError) return { id, confirmed: false };
      throw error;
    }
  }

  /** One POST; resolves with the parsed answer of a 2xx (`undefined` when there is no `body` to send), rejects otherwise. */
  async #request(path: string, body?: string): Promise<unknown> {
    const startedAt = nowMs();
    let answer;
    try {
      answer = await this.#pool.request({
        method: 'POST',
        path,
        // The client needs the prepare's id and nothing of the confirm's answer: it asks for
        // receipts (RFC 7240), as any API client that only goes on with the id should.
        headers: body === undefined
          ? { authorization: this.#authorization, prefer: 'return=minimal' }
          : { authorization: this.#authorization, 'content-type': 'application/json', prefer: 'return=minimal' },
        ...(body !== undefined && { body }),
      });
    } catch (error) {
      this.options.ledger.record('error', nowMs() - startedAt);
      throw new PerMessageHttpError('error', error instanceof Error ? error.message : String(error));
    }
    const { statusCode, headers } = answer;
    // The prepare's answer holds the id; the confirm's is not needed.
    const parsed = statusCode < 300 && body !== undefined ? await answer.body.json() : await answer.body.dump();
    this.options.ledger.record(statusCode, nowMs() - startedAt, headers['retry-after'] !== undefined);
    if (statusCode >= 300) throw new PerMessageHttpError(statusCode, `${path} answered ${statusCode}`);
    return body === undefined ? undefined : parsed;
  }

  /** Nothing to close: the pool is its owner's. */
  async close(): Promise<void> {}
}

/** How the `GET /healthz` baseline runs. */
export interface HealthzBaselineOptions {
  /** The client (a {@link perMessagePool}), left open for the per-message flow that follows. */
  pool: Pool;
  /** RMS's pid, for its CPU. */
  pid: number;
  /** Requests in flight: the pool's connections, each with one request at a time, back to back. */
  connections: number;
  warmupMs: number;
  durationMs: number;
}

/**
 * `GET /healthz` back to back on every connection of an `undici` pool: the request rate of
 * RMS's cheapest route with this client, and RMS's and the client's CPU per request.
 */
export async function runHealthzBaseline(options: HealthzBaselineOptions): Promise<HealthzBaseline> {
  const { pool } = options;
  let ok = 0;
  let errors = 0;
  let samples: number[] = [];
  const load = async (ms: number) => {
    const deadline = nowMs() + ms;
    await Promise.all(
      Array.from({ length: options.connections }, async () => {
        while (nowMs() < deadline) {
          const startedAt = nowMs();
          try {
            const answer = await pool.request({ method: 'GET', path: '/healthz' });
            await answer.body.dump();
            if (answer.statusCode === 200) {
              ok += 1;
              samples.push(nowMs() - startedAt);
            } else errors += 1;
          } catch {
            errors += 1;
          }
        }
      }),
    );
  };
  await load(options.warmupMs);
  ok = 0;
  errors = 0;
  samples = [];
  const sampler = new ProcessSampler(options.pid);
  const clientBefore = process.cpuUsage();
  sampler.start();
  const startedAt = nowMs();
  await load(options.durationMs);
  const seconds = (nowMs() - startedAt) / 1000;
  const rms = sampler.stop();
  const client = process.cpuUsage(clientBefore);
  return {
    connections: options.connections,
    requests: ok,
    seconds,
    requestsPerSecond: ok / seconds,
    rmsCpuMs: (rms.cpuSeconds * 1000) / Math.max(1, ok),
    clientCpuMs: (client.user + client.system) / 1000 / Math.max(1, ok),
    latency: percentiles(samples),
    errors,
  };
}
