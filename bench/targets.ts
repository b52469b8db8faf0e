/**
 * Issue 15's targets (and the earlier ones the bench still checks), each with the figure
 * measured and whether it was met. With several runs a figure is the median over them and
 * a ratio the median of the ratios each run formed within itself; the per-run values are
 * listed beside it. Pure: it reads a run's results, measures nothing.
 */
import type { BenchResults, TargetCheck } from './report.js';
import { median, perRun } from './runs.js';
import type { PhaseResult } from './workload.js';

/** The bounds the targets are checked against. */
export interface TargetBounds {
  /** The steady latency phase's rate, msgs/s. @defaultValue 1000 */
  steadyRate: number;
  /** Largest p99 of the admitted requests under overload still called bounded, ms. @defaultValue 1000 */
  overloadP99Ms: number;
}

/** The defaults of {@link TargetBounds}. */
export const DEFAULT_TARGET_BOUNDS: TargetBounds = { steadyRate: 1000, overloadP99Ms: 1000 };

const whole = (value: number) => (Number.isFinite(value) ? Math.round(value).toLocaleString('en-US') : '?');
const decimals = (value: number, digits: number) => (Number.isFinite(value) ? value.toFixed(digits) : '?');

/**
 * Evaluates every target whose phases ran. `results.phases` holds the figures (the
 * medians when there were several runs); `results.runs`, when present, each run's flow
 * phases, from which the per-run values and the ratios' medians are read.
 */
export function evaluateTargets(results: Pick<BenchResults, 'phases' | 'runs' | 'dueScan' | 'delayedScan'>, bounds: TargetBounds = DEFAULT_TARGET_BOUNDS): TargetCheck[] {
  const runs = results.runs && results.runs.length > 0 ? results.runs : [results.phases];
  const by = (name: string) => results.phases.find((phase) => phase.phase === name);
  /** A figure's median over the runs (the phase's own figure with one run), and the per-run list when there were several. */
  const figure = (name: string, pick: (phase: PhaseResult) => number | undefined, format: (value: number) => string = whole) => {
    const values = perRun(runs, name, pick);
    return { value: median(values), list: values.length > 1 ? ` (median of ${values.length} runs: ${values.map(format).join(', ')})` : '' };
  };
  const ratioFormat = (value: number) => decimals(value, 3);
  const checks: TargetCheck[] = [];
  const push = (target: string, measured: string, met: boolean) => checks.push({ target, measured, met });

  const raw = by('raw');
  if (by('reliable')) {
    const rate = figure('reliable', (phase) => phase.messagesPerSecond);
    push('SDK flow (reliable) ≥ 5,000 msgs/s', `${whole(rate.value)} msgs/s${rate.list}`, rate.value >= 5000);
    if (raw) {
      const ratio = figure('reliable', (phase) => phase.ratios?.toRaw, ratioFormat);
      push('SDK flow ≥ 0.25 × raw amqplib (ratio within each run)', `${decimals(ratio.value, 3)} × raw (raw ${whole(figure('raw', (phase) => phase.messagesPerSecond).value)} msgs/s)${ratio.list}`, ratio.value >= 0.25);
    }
    const rmsCpu = figure('reliable', (phase) => phase.efficiency?.rmsCpuMs, ratioFormat);
    push(
      'RMS CPU per message ≤ 0.1 ms on the SDK path (≥ 10,000 msgs/s per dedicated RMS core)',
      `${decimals(rmsCpu.value, 3)} ms (${whole(1000 / rmsCpu.value)} msgs/s per RMS core)${rmsCpu.list}`,
      rmsCpu.value <= 0.1,
    );
  }
  if (by('three-groups')) {
    const rate = figure('three-groups', (phase) => phase.messagesPerSecond);
    push('SDK flow with three consumer groups ≥ 3,000 msgs/s', `${whole(rate.value)} msgs/s, each delivered to and acked by 3 groups${rate.list}`, rate.value >= 3000);
  }
  const perMessage = by('per-message');
  if (perMessage) {
    const rate = figure('per-message', (phase) => phase.messagesPerSecond);
    push('per-message HTTP flow ≥ 1,000 msgs/s (undici, 64 connections)', `${whole(rate.value)} msgs/s${rate.list}`, rate.value >= 1000);
    if (perMessage.healthz) {
      const ratio = figure('per-message', (phase) => phase.ratios?.toHealthz, ratioFormat);
      const healthz = figure('per-message', (phase) => phase.healthz?.requestsPerSecond);
      push(
        'per-message flow ≥ 0.4 × GET /healthz req/s on the same server (ratio within each run)',
        `${decimals(ratio.value, 3)} × (/healthz ${whole(healthz.value)} req/s)${ratio.list}`,
        ratio.value >= 0.4,
      );
    }
  }
  const overload = by('overload');
  if (overload?.rms) {
    const rss = overload.rms.peakRssMb;
    const requests = overload.requests;
    push(
      `overload (${whole(overload.offeredPerSecond ?? Number.NaN)} msgs/s offered): RMS peak RSS < 250 MB`,
      `${decimals(rss, 0)} MB`,
      rss < 250,
    );
    if (requests) {
      const p99 = requests.admitted.p99;
      push(
        `overload: admitted requests' p99 ≤ ${whole(bounds.overloadP99Ms)} ms`,
        `p99 ${decimals(p99, 1)} ms over ${whole(requests.admitted.count)} admitted requests; ${whole(requests.rejected)} answered 503 (${whole(requests.rejectedWithRetryAfter)} with Retry-After), ${whole(requests.byStatus['error'] ?? 0)} failed`,
        p99 <= bounds.overloadP99Ms,
      );
    }
  }
  const steady = by(`steady-${bounds.steadyRate}`);
  if (steady) {
    push(
      `p99 confirm → handler < 25 ms at a steady ${whole(bounds.steadyRate)} msgs/s`,
      `p99 ${decimals(steady.latency.p99, 1)} ms at ${whole(steady.messagesPerSecond)} msgs/s achieved`,
      steady.latency.p99 < 25 && steady.messagesPerSecond >= 0.95 * bounds.steadyRate,
    );
  }
  const reliable = by('reliable');
  const degraded = by('degraded');
  if (reliable && degraded) {
    const ratio = figure('degraded', (phase) => {
      const sameRun = runs.find((phases) => phases.includes(phase))?.find((candidate) => candidate.phase === 'reliable');
      return sameRun ? phase.messagesPerSecond / sameRun.messagesPerSecond : undefined;
    }, ratioFormat);
    push('degraded ≥ normal (ratio within each run)', `${whole(degraded.messagesPerSecond)} vs ${whole(reliable.messagesPerSecond)} msgs/s (${decimals(ratio.value, 2)} ×)${ratio.list}`, ratio.value >= 1);
  }
  if (results.dueScan && results.dueScan.points.length > 1) {
    const points = results.dueScan.points;
    push(
      `due-scan at ${points.at(-1)?.storedMessages.toLocaleString('en-US')} within 1.5 × the ${points[0]?.storedMessages.toLocaleString('en-US')} figure`,
      `${points.map((point) => `${point.medianMs.toFixed(1)} ms`).join(' vs ')}, ratio ${results.dueScan.ratio.toFixed(2)}`,
      results.dueScan.ratio <= 1.5,
    );
    const [smallest, largest] = [points[0], points.at(-1)];
    if (smallest?.operations && largest?.operations) {
      const ratios = (['prepare', 'confirm', 'ack'] as const).map((operation) => ({
        operation,
        ratio: (largest.operations?.[operation].p50 ?? Number.NaN) / (smallest.operations?.[operation].p50 ?? Number.NaN),
      }));
      push(
        `prepare / confirm / ack p50 at ${largest.storedMessages.toLocaleString('en-US')} within 1.5 × the ${smallest.storedMessages.toLocaleString('en-US')} figures`,
        ratios.map(({ operation, ratio }) => `${operation} ${ratio.toFixed(2)} ×`).join(', '),
        ratios.every(({ ratio }) => ratio <= 1.5),
      );
    }
  }
  if (results.dueScan?.retention) {
    const { messages, ms } = results.dueScan.retention;
    push('retention drops a finished day’s partition in under 1 s', `${ms.toFixed(0)} ms for a day of ${messages.toLocaleString('en-US')} messages`, ms < 1000);
  }
  if (results.delayedScan && results.delayedScan.points.length > 1) {
    const [without, withDelayed] = results.delayedScan.points;
    push(
      `redelivery claim pass with ${((withDelayed?.storedMessages ?? 0) - (without?.storedMessages ?? 0)).toLocaleString('en-US')} delayed messages stored within 2 × the figure without`,
      `${withDelayed?.medianMs.toFixed(1)} vs ${without?.medianMs.toFixed(1)} ms, ratio ${results.delayedScan.ratio.toFixed(2)}`,
      results.delayedScan.ratio <= 2,
    );
  }
  // Overload has its own RSS target; the profiler's overhead is not RMS's.
  const measuredRss = results.phases.filter((phase) => phase.rms && phase.phase !== 'profiled' && phase.phase !== 'overload');
  if (measuredRss.length > 0) {
    const peak = Math.max(...measuredRss.map((phase) => phase.rms?.peakRssMb ?? 0));
    push('RMS peak RSS < 250 MB', `${peak.toFixed(0)} MB (largest of ${measuredRss.map((phase) => phase.phase).join(', ')})`, peak < 250);
  }
  return checks;
}
