/**
 * Latency from the confirm answer to the handler, measured in the bench process, where
 * both ends live: the producer records when its confirm returned, the handler when it ran.
 *
 * The two can arrive in either order. RMS starts publishing as soon as the confirm is
 * durable, before the HTTP answer is written, and RabbitMQ delivers before it sends the
 * publisher confirm; so a handler may run before the producer has its answer. Such a
 * message counts as latency 0 and is counted as `handledBeforeConfirm`, rather than
 * being dropped (which would bias the percentiles upwards) or given a negative latency.
 */

/** Milliseconds on a monotonic clock, as the brief suggests (`timeOrigin + now`). */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/** Percentiles of a set of samples, in milliseconds. */
export interface Percentiles {
  count: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

/** The latencies of one phase, in milliseconds. */
export interface LatencySummary extends Percentiles {
  /** Messages whose handler ran before the producer had the confirm answer (counted as 0 ms). */
  handledBeforeConfirm: number;
  /**
   * From the moment the confirm was *called* (the publish, for raw) to the handler: never
   * negative, and it includes the confirm's own round trip.
   */
  fromConfirmCall: Percentiles;
}

/** Nearest-rank percentile of an ascending array; `NaN` when empty. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] as number;
}

/** Pairs confirm times with handler times by message id. */
export class ConfirmToHandlerClock {
  readonly #confirmedAt = new Map<string, number>();
  readonly #handledAt = new Map<string, number>();
  readonly #handled = new Set<string>();
  readonly #calledAt = new Map<string, number>();
  #samples: number[] = [];
  #fromCall: number[] = [];
  #early = 0;
  #duplicates = 0;

  /** Forgets everything measured so far (after a warm-up). */
  reset(): void {
    this.#confirmedAt.clear();
    this.#handledAt.clear();
    this.#handled.clear();
    this.#calledAt.clear();
    this.#samples = [];
    this.#fromCall = [];
    this.#early = 0;
    this.#duplicates = 0;
  }

  /** The producer is about to call confirm for `id` (or to publish it, for raw). */
  confirmCalled(id: string, at: number = nowMs()): void {
    this.#calledAt.set(id, at);
  }

  /** The producer got the confirm answer for `id`. */
  confirmed(id: string, at: number = nowMs()): void {
    const handledAt = this.#handledAt.get(id);
    if (handledAt === undefined) {
      this.#confirmedAt.set(id, at);
      return;
    }
    this.#handledAt.delete(id);
    this.#early += 1;
    this.#samples.push(Math.max(0, handledAt - at));
  }

  /** The handler ran for `id`. */
  handled(id: string, at: number = nowMs()): void {
    if (this.#handled.has(id)) {
      this.#duplicates += 1;
      return;
    }
    this.#handled.add(id);
    const calledAt = this.#calledAt.get(id);
    if (calledAt !== undefined) {
      this.#calledAt.delete(id);
      this.#fromCall.push(at - calledAt);
    }
    const confirmedAt = this.#confirmedAt.get(id);
    if (confirmedAt === undefined) {
      this.#handledAt.set(id, at);
      return;
    }
    this.#confirmedAt.delete(id);
    this.#samples.push(at - confirmedAt);
  }

  /** Distinct messages the handler has seen. */
  get handledCount(): number {
    return this.#handled.size;
  }

  /** Handler runs for a message it had already seen (redeliveries). */
  get duplicates(): number {
    return this.#duplicates;
  }

  /** The percentiles of the samples so far. */
  summary(): LatencySummary {
    return { ...percentiles(this.#samples), handledBeforeConfirm: this.#early, fromConfirmCall: percentiles(this.#fromCall) };
  }
}

/** Count, p50, p95, p99 and max of unsorted samples. */
export function percentiles(samples: readonly number[]): Percentiles {
  const sorted = Array.from(Float64Array.from(samples).sort());
  return {
    count: sorted.length,
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    p99: percentile(sorted, 99),
    max: sorted.at(-1) ?? Number.NaN,
  };
}
