/**
 * The adaptive bound of admission control: how many API requests RMS should handle at once
 * so that the admitted ones are answered within a latency target. Pure (time is passed
 * in), so the rule is unit-tested on its own (`test/unit/admission-limit.test.ts`).
 *
 * Why: a fixed bound (`RMS_MAX_INFLIGHT_REQUESTS`) is right for one store speed only. By
 * Little's law the requests in RMS wait about `inFlight / throughput`; 512 in flight on a
 * store serving 300 requests/s is 1.7 s of queue, and the admitted requests waited up to
 * 15 s in the bench's overload (docs/benchmarks.md). A bound of 64 held the latency but
 * refused most requests when the store was fast. The limit has to follow the store.
 *
 * The rule, once per interval (a quarter of the target, within 100–250 ms), on the
 * latencies of the requests that ended in it (admission to answer sent, or client gone)
 * and the age of the oldest request still in flight (so a store that stops answering is
 * seen before anything completes):
 * - observed = the interval's 90th percentile latency, or the oldest in-flight request's
 *   age if that is larger;
 * - observed above the target: the limit is multiplied by `target / observed` (at most
 *   halved per interval). With latency ≈ inFlight / throughput this lands on
 *   `throughput × target` in one step when the store's speed holds, and backs off fast
 *   when it does not. But only while cutting helps: after a cut, the limit is cut again
 *   only once the latency has fallen by a tenth (the cut worked, there is more queue to
 *   drain), or has doubled (things got worse), or nothing completed in the interval while
 *   the oldest request in flight has aged half as much again (a stalled store). Otherwise
 *   it holds. Latency that does not follow the limit is not a queue in RMS: a store that
 *   is slow per call (a batch takes as long for 8 as for 500), or a busy CPU. Cutting then only refuses what could have been served: measured on the
 *   shared bench box (target 250 ms), the rule without this check fell to its floor and
 *   admitted 1,608 requests where the fixed bound admitted 8,000–19,000, at no better
 *   latency (docs/benchmarks.md, overload);
 * - observed at or under the target and the limit was used (at least half of it in flight
 *   at some point in the interval): it grows by `limit × min(1, target / observed − 1)`
 *   (at least 1, at most doubling per interval), so it probes upwards gently near the
 *   target and recovers within a second or so once the store is fast again (a store
 *   outage ends with the limit at its floor: clients must not be refused for long after).
 *   A limit that was not used does not grow (an idle RMS learns nothing about its store);
 * - no latency seen (nothing ended, nothing in flight): unchanged.
 * The limit stays within `[minLimit, maxLimit]`; `maxLimit` is `RMS_MAX_INFLIGHT_REQUESTS`.
 *
 * This is a gradient limit in the spirit of Netflix's concurrency-limits (Gradient2,
 * Vegas), but against an absolute target rather than the measured minimum latency: RMS's
 * unloaded latency is a few milliseconds and moves with the store's, while what operators
 * and clients need is a bound on the wait (`RMS_ADMISSION_TARGET_MS`). Written here
 * because no maintained npm package does this for a Node HTTP server (searched: the
 * adaptive limiters found were for Java, .NET, Rust, Elixir, OpenResty; the Node ones were
 * fixed-rate or event-loop-lag shedders), and the rule is a few dozen lines.
 */

/** The settings of an {@link AdmissionLimit}. */
export interface AdmissionLimitOptions {
  /** The latency the admitted requests are held to (their 90th percentile per interval), ms. @defaultValue 1000 (`RMS_ADMISSION_TARGET_MS`) */
  targetMs: number;
  /** The ceiling: the limit never exceeds it, and starts at it. @defaultValue 512 (`RMS_MAX_INFLIGHT_REQUESTS`) */
  maxLimit: number;
  /** The floor: so few are always admitted that the latency can still be measured. @defaultValue `min(8, maxLimit)` */
  minLimit?: number;
  /** How often the limit is adjusted, ms. @defaultValue a quarter of `targetMs`, within 100–250 */
  intervalMs?: number;
}

/** What the limit knows of the requests in flight at the moment of an adjustment. */
export interface InFlightView {
  /** Age of the oldest request still in flight, ms (0 when none). */
  oldestAgeMs: number;
}

/** The decision rule of the adaptive admission limit; see the module comment. */
export class AdmissionLimit {
  readonly #targetMs: number;
  readonly #minLimit: number;
  readonly #maxLimit: number;
  readonly #intervalMs: number;
  #limit: number;
  #intervalStart: number | undefined;
  #samples: number[] = [];
  #peakInFlight = 0;
  /** The observed latency that made the last cut, while the latency stays above the target. */
  #cutAt: number | undefined;

  constructor(options: AdmissionLimitOptions) {
    const { targetMs, maxLimit } = options;
    if (!(targetMs > 0)) throw new RangeError(`targetMs must be above 0, not ${targetMs}`);
    if (!Number.isInteger(maxLimit) || maxLimit < 1) throw new RangeError(`maxLimit must be a whole number ≥ 1, not ${maxLimit}`);
    const minLimit = options.minLimit ?? Math.min(8, maxLimit);
    if (!Number.isInteger(minLimit) || minLimit < 1 || minLimit > maxLimit) throw new RangeError(`minLimit must be a whole number in [1, maxLimit], not ${minLimit}`);
    this.#targetMs = targetMs;
    this.#maxLimit = maxLimit;
    this.#minLimit = minLimit;
    const intervalMs = options.intervalMs ?? Math.min(250, Math.max(100, targetMs / 4));
    if (!(intervalMs > 0)) throw new RangeError(`intervalMs must be above 0, not ${intervalMs}`);
    this.#intervalMs = intervalMs;
    this.#limit = maxLimit;
  }

  /** The requests to admit at once now. */
  get limit(): number {
    return this.#limit;
  }

  /** Notes that `inFlight` requests are being handled as a request arrives (call on each arrival, admitted or not). */
  observeInFlight(inFlight: number): void {
    if (inFlight > this.#peakInFlight) this.#peakInFlight = inFlight;
  }

  /** Records the latency of one admitted request that ended (answered, or its client gone), ms. */
  ended(latencyMs: number): void {
    this.#samples.push(latencyMs);
  }

  /**
   * Adjusts the limit if an interval has passed since the last adjustment (cheap otherwise:
   * call it on each arrival). `now` is a monotonic clock in ms. Returns the limit.
   */
  update(now: number, inFlight: InFlightView): number {
    if (this.#intervalStart === undefined) {
      this.#intervalStart = now;
      return this.#limit;
    }
    if (now - this.#intervalStart < this.#intervalMs) return this.#limit;
    const completed = this.#samples.length;
    const observed = Math.max(ninetiethPercentile(this.#samples), inFlight.oldestAgeMs);
    const used = this.#peakInFlight * 2 >= this.#limit;
    this.#intervalStart = now;
    this.#samples = [];
    this.#peakInFlight = 0;
    if (observed <= 0) return this.#limit;
    const ratio = this.#targetMs / observed;
    let next = this.#limit;
    if (ratio < 1) {
      const cutAt = this.#cutAt;
      const stalled = completed === 0 && cutAt !== undefined && inFlight.oldestAgeMs > cutAt * 1.5;
      const mayCut = cutAt === undefined || observed < cutAt * 0.9 || observed > cutAt * 2 || stalled;
      if (mayCut) {
        next = Math.floor(this.#limit * Math.max(0.5, ratio));
        this.#cutAt = observed;
      }
    } else {
      this.#cutAt = undefined;
      if (used) next = this.#limit + Math.max(1, Math.floor(this.#limit * Math.min(1, ratio - 1)));
    }
    this.#limit = Math.min(this.#maxLimit, Math.max(this.#minLimit, next));
    return this.#limit;
  }
}

/** The 90th percentile (nearest rank) of `samples`, 0 when there are none. */
function ninetiethPercentile(samples: number[]): number {
  if (samples.length === 0) return 0;
  samples.sort((a, b) => a - b);
  return samples[Math.min(samples.length - 1, Math.ceil(samples.length * 0.9) - 1)] ?? 0;
}
