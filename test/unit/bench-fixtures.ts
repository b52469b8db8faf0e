/**
 * Phase results for the bench's unit tests: a plausible phase whose figures each test
 * overrides where it matters.
 */
import type { PhaseResult } from '../../bench/workload.js';

const latency = { count: 100, p50: 5, p95: 10, p99: 20, max: 30, handledBeforeConfirm: 0, fromConfirmCall: { count: 100, p50: 6, p95: 11, p99: 21, max: 31 } };

/** A saturated RMS phase of 1,000 messages over 2 s with everything else at plausible values; `overrides` win. */
export function phase(name: string, overrides: Partial<PhaseResult> = {}): PhaseResult {
  return {
    phase: name,
    description: `${name} phase`,
    messages: 1000,
    seconds: 2,
    messagesPerSecond: 500,
    confirmedPerSecond: 500,
    latency,
    rms: { cpuPercent: 10, cpuSeconds: 0.2, systemPercent: 1, peakRssMb: 150, rssMb: 140 },
    benchCpuPercent: 5,
    cpu: { machineBusyPercent: 50, stealPercent: 0, byProgram: { rms: 10, bench: 5, postgresql: 50, rabbitmq: 25, redis: 0 }, unaccountedPercent: 10, contended: false },
    errors: 0,
    unconfirmed: 0,
    duplicates: 0,
    settings: name === 'raw' || name.startsWith('steady') || name === 'overload' ? {} : { producers: 256 },
    ...overrides,
  };
}
