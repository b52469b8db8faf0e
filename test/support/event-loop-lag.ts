/**
 * Wall-clock bounds on a loaded machine. A test that asserts "this failed within its
 * timeout plus a little" measures the code's wait and also every moment the process could
 * not run: CI runs test files side by side on 2 cores, and a timer due at 800 ms can fire
 * at 1,200 ms. `EventLoopLag` measures those moments (the event loop's longest delay while
 * it watched) so that a bound can excuse the machine's stall and nothing else: a timeout
 * that does not work still fails the assertion, since the process was free to run.
 */
import { type IntervalHistogram, monitorEventLoopDelay } from 'node:perf_hooks';

/** Watches the event loop's delay from `start()` until `stop()`. */
export class EventLoopLag {
  private readonly histogram: IntervalHistogram;

  private constructor() {
    // 10 ms sampling: a stall is seen as the sample that came late by that much.
    this.histogram = monitorEventLoopDelay({ resolution: 10 });
  }

  /** Starts watching. */
  static start(): EventLoopLag {
    const lag = new EventLoopLag();
    lag.histogram.enable();
    return lag;
  }

  /** Stops watching; the longest delay seen, in milliseconds (0 if none was sampled). */
  stop(): number {
    this.histogram.disable();
    const maxNs = this.histogram.count > 0 ? this.histogram.max : 0;
    return Math.round(maxNs / 1e6);
  }
}
