/**
 * Admission control: a bound on the API requests (`/v1/...`) RMS handles at once.
 *
 * Without it an overload grows a queue inside RMS: every accepted request holds its body,
 * its parsed message, its promises and its place in the store's queue, so the heap (and
 * the latency of every request) grows for as long as the overload lasts. With it, a
 * request that arrives while the limit's worth of requests are being handled is answered
 * 503 `OVERLOADED` with `Retry-After` at once, before its body is read, authenticated or
 * parsed: it costs RMS a few microseconds and nothing of it happens, so the client may
 * simply retry it.
 *
 * The limit adapts (`admission-limit.ts`): it follows what the store serves within
 * `targetMs` (`RMS_ADMISSION_TARGET_MS`), so the admitted requests' latency stays near the
 * target however fast the store is, and `maxInFlight` (`RMS_MAX_INFLIGHT_REQUESTS`) is its
 * ceiling. With `targetMs` 0 the limit is the ceiling alone, as before the adaptive limit.
 * A request's latency here runs from its admission to its answer sent (or its client
 * gone); time spent before RMS read it (kernel queues, RMS's event loop busy) is not in it.
 *
 * Health, readiness, `/metrics`, `/openapi.json` and the dashboard's files are outside
 * `/v1` and never refused: an overloaded RMS must still say how it is.
 *
 * The store keeps its own bound (`RMS_STORE_MAX_PENDING`, in `BoundedMessageStore`),
 * which also covers the work of the loops and of batch requests (a batch counts one
 * store call per element, but one request here).
 */
import type { NextFunction, Request, Response } from 'express';
import { OverloadedError } from '../domain/errors.js';
import { AdmissionLimit } from './admission-limit.js';
import { toHttpError } from './error-mapping.js';

/** The bound of an {@link AdmissionControl}. */
export interface AdmissionOptions {
  /** Most API requests handled at once, the adaptive limit's ceiling; past it a request is refused with 503 at once. @defaultValue 512 (`RMS_MAX_INFLIGHT_REQUESTS`) */
  maxInFlight: number;
  /** The latency the adaptive limit holds admitted requests to, ms; 0 keeps the limit at `maxInFlight`. @defaultValue 0 here; 1000 from the configuration (`RMS_ADMISSION_TARGET_MS`) */
  targetMs?: number;
  /** Called for each refused request (the refusal metric). */
  onRefused?: () => void;
  /** A monotonic clock in ms. @defaultValue `performance.now` */
  now?: () => number;
}

/** Counts the API requests in flight and refuses those past the limit. */
export class AdmissionControl {
  #inFlight = 0;
  readonly #maxInFlight: number;
  readonly #adaptive: AdmissionLimit | undefined;
  readonly #onRefused: () => void;
  readonly #now: () => number;
  /** Admission time of each request in flight, oldest first (a Map keeps insertion order). */
  readonly #admittedAt = new Map<Response, number>();
  #refusal: ReturnType<typeof toHttpError>;
  #refusalLimit: number;

  constructor(options: AdmissionOptions) {
    this.#maxInFlight = options.maxInFlight;
    this.#onRefused = options.onRefused ?? (() => undefined);
    this.#now = options.now ?? (() => performance.now());
    const targetMs = options.targetMs ?? 0;
    this.#adaptive = targetMs > 0 ? new AdmissionLimit({ targetMs, maxLimit: options.maxInFlight }) : undefined;
    // The same answer while the limit holds: built once per limit, so refusing stays cheap.
    this.#refusalLimit = options.maxInFlight;
    this.#refusal = toHttpError(new OverloadedError(options.maxInFlight));
  }

  /** API requests admitted and not yet answered (or abandoned by their client). */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** The requests admitted at once now: the adaptive limit, or `maxInFlight` without one. */
  get limit(): number {
    return this.#adaptive?.limit ?? this.#maxInFlight;
  }

  /**
   * Middleware: admits the request, counting it until its answer is sent or its connection
   * closes, or answers 503 `OVERLOADED` with `Retry-After` without reading anything more of
   * it. Mount before authentication and body parsing, on the paths it bounds.
   */
  middleware() {
    return (_request: Request, response: Response, next: NextFunction): void => {
      const limit = this.#currentLimit();
      if (this.#inFlight >= limit) {
        this.#onRefused();
        if (limit !== this.#refusalLimit) {
          this.#refusalLimit = limit;
          this.#refusal = toHttpError(new OverloadedError(limit));
        }
        const { status, headers, body } = this.#refusal;
        response.status(status).set(headers).json(body);
        return;
      }
      this.#inFlight += 1;
      if (this.#adaptive) this.#admittedAt.set(response, this.#now());
      // 'close' comes once per response, after 'finish' or when the client goes away first.
      response.once('close', () => this.#release(response));
      next();
    };
  }

  #currentLimit(): number {
    const adaptive = this.#adaptive;
    if (!adaptive) return this.#maxInFlight;
    adaptive.observeInFlight(this.#inFlight);
    const now = this.#now();
    // The Map keeps admission order: its first entry is the oldest request in flight.
    const oldestAdmittedAt = this.#admittedAt.values().next().value;
    return adaptive.update(now, { oldestAgeMs: oldestAdmittedAt === undefined ? 0 : now - oldestAdmittedAt });
  }

  #release(response: Response): void {
    this.#inFlight -= 1;
    const admittedAt = this.#admittedAt.get(response);
    if (admittedAt === undefined) return;
    this.#admittedAt.delete(response);
    this.#adaptive?.ended(this.#now() - admittedAt);
  }
}
