/**
 * Admission control: a bound on the API requests (`/v1/...`) RMS handles at once.
 *
 * Without it an overload grows a queue inside RMS: every accepted request holds its body,
 * its parsed message, its promises and its place in the store's queue, so the heap (and
 * the latency of every request) grows for as long as the overload lasts. With it, a
 * request that arrives while `maxInFlight` are being handled is answered 503 `OVERLOADED`
 * with `Retry-After` at once, before its body is read, authenticated or parsed: it costs
 * RMS a few microseconds and nothing of it happens, so the client may simply retry it.
 * The requests admitted are served as before; at most `maxInFlight` of them are in RMS at
 * once (which bounds their queue, though not yet their tail latency when the store is
 * slower than the bound assumes: docs/benchmarks.md, overload).
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
import { toHttpError } from './error-mapping.js';

/** The bound of an {@link AdmissionControl}. */
export interface AdmissionOptions {
  /** Most API requests handled at once; past it a request is refused with 503 at once. @defaultValue 512 (`RMS_MAX_INFLIGHT_REQUESTS`) */
  maxInFlight: number;
  /** Called for each refused request (the refusal metric). */
  onRefused?: () => void;
}

/** Counts the API requests in flight and refuses those past the bound. */
export class AdmissionControl {
  #inFlight = 0;
  readonly #maxInFlight: number;
  readonly #onRefused: () => void;
  readonly #refusal: ReturnType<typeof toHttpError>;

  constructor(options: AdmissionOptions) {
    this.#maxInFlight = options.maxInFlight;
    this.#onRefused = options.onRefused ?? (() => undefined);
    // The same answer every time: built once, so refusing stays cheap under overload.
    this.#refusal = toHttpError(new OverloadedError(options.maxInFlight));
  }

  /** API requests admitted and not yet answered (or abandoned by their client). */
  get inFlight(): number {
    return this.#inFlight;
  }

  /**
   * Middleware: admits the request, counting it until its answer is sent or its connection
   * closes, or answers 503 `OVERLOADED` with `Retry-After` without reading anything more of
   * it. Mount before authentication and body parsing, on the paths it bounds.
   */
  middleware() {
    const release = () => {
      this.#inFlight -= 1;
    };
    return (_request: Request, response: Response, next: NextFunction): void => {
      if (this.#inFlight >= this.#maxInFlight) {
        this.#onRefused();
        const { status, headers, body } = this.#refusal;
        response.status(status).set(headers).json(body);
        return;
      }
      this.#inFlight += 1;
      // 'close' comes once per response, after 'finish' or when the client goes away first.
      response.once('close', release);
      next();
    };
  }
}
