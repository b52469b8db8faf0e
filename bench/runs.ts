/**
 * Several runs of the flow phases (`BENCH_RUNS=3` or `npm run bench -- --runs 3`) and
 * their medians: every figure of a phase is the median of that figure over the runs, so a
 * ratio is the median of the ratios each run formed within itself (see `efficiency.ts`).
 */
import type { PhaseResult } from './workload.js';

/** The bench's command-line arguments or environment asked for a number of runs that is not a positive integer. */
export class RunsSettingError extends Error {
  constructor(value: string) {
    super(`the number of runs must be a positive integer, got "${value}"`);
    this.name = 'RunsSettingError';
  }
}

/**
 * How many times to run the flow phases: `--runs N` (or `--runs=N`) among `argv`, else
 * `BENCH_RUNS`, else 1.
 * @throws {@link RunsSettingError} for anything but a positive integer.
 */
export function runsSetting(argv: readonly string[], environment: string | undefined): number {
  let value = environment === '' ? undefined : environment;
  argv.forEach((argument, index) => {
    // A bare `--runs` (nothing after it) is a mistake, not "the default".
    if (argument === '--runs') value = argv[index + 1] ?? '';
    else if (argument.startsWith('--runs=')) value = argument.slice('--runs='.length);
  });
  if (value === undefined) return 1;
  const runs = Number(value);
  if (!Number.isInteger(runs) || runs < 1) throw new RunsSettingError(value);
  return runs;
}

/** The median of the finite values (the mean of the middle two for an even count); `NaN` when there are none. */
export function median(values: readonly number[]): number {
  const sorted = values.filter((value) => Number.isFinite(value)).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[middle] as number) : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

/**
 * The figure-by-figure median of values of one shape: numbers by {@link median}; booleans
 * true when any is (a phase contended in one run is flagged); strings kept when all
 * agree, else joined with ` / `; arrays element by element; objects key by key (a key
 * missing from some values takes the median of those that have it).
 */
export function medianOf<T>(values: readonly T[]): T {
  const present = values.filter((value) => value !== undefined && value !== null);
  const first = present[0];
  if (first === undefined) return values[0] as T;
  if (typeof first === 'number') return median(present as number[]) as T;
  if (typeof first === 'boolean') return present.some(Boolean) as T;
  if (typeof first === 'string') {
    const distinct = [...new Set(present as string[])];
    return (distinct.length === 1 ? distinct[0] : distinct.join(' / ')) as T;
  }
  if (Array.isArray(first)) {
    const length = Math.max(...(present as unknown[][]).map((array) => array.length));
    return Array.from({ length }, (_, index) => medianOf((present as unknown[][]).map((array) => array[index]))) as T;
  }
  if (typeof first === 'object') {
    const keys = [...new Set(present.flatMap((value) => Object.keys(value as object)))];
    return Object.fromEntries(keys.map((key) => [key, medianOf(present.map((value) => (value as Record<string, unknown>)[key]))])) as T;
  }
  return first;
}

/**
 * The median phases of several runs, in the order the phases first appear; each carries
 * `runs`, the number of runs it was measured in. With one run, its phases unchanged.
 */
export function medianPhases(runs: readonly (readonly PhaseResult[])[]): PhaseResult[] {
  if (runs.length === 1) return [...(runs[0] ?? [])];
  const names = [...new Set(runs.flatMap((phases) => phases.map((phase) => phase.phase)))];
  return names.map((name) => {
    const measured = runs.flatMap((phases) => phases.filter((phase) => phase.phase === name));
    return { ...medianOf(measured), runs: measured.length };
  });
}

/** One figure of a phase in every run that measured it, in run order. */
export function perRun(runs: readonly (readonly PhaseResult[])[], phase: string, figure: (phase: PhaseResult) => number | undefined): number[] {
  return runs.flatMap((phases) => phases.filter((candidate) => candidate.phase === phase).map(figure)).filter((value): value is number => value !== undefined);
}
