/**
 * What a message costs, so that a deployment can be sized from the bench: CPU per
 * delivered message of RMS, PostgreSQL, RabbitMQ, Redis and the clients, WAL work per
 * message, and the ratios between phases of one run (SDK flow over raw amqplib,
 * per-message flow over `GET /healthz`). Pure: it reads a phase's figures, measures nothing.
 */
import type { Efficiency, PhaseResult } from './workload.js';

/** Milliseconds of CPU per message from a share of one core (percent) held over `seconds`. */
function msPerMessage(percentOfCore: number | undefined, seconds: number, messages: number): number {
  if (percentOfCore === undefined || messages <= 0) return Number.NaN;
  return (percentOfCore / 100) * seconds * 1000 / messages;
}

/**
 * CPU and WAL per delivered message of a load phase. RMS's figure comes from its own
 * counters (every RMS process of the phase), the client's from the bench process's, the
 * others from the per-program split of the machine's CPU over the same window; `NaN` where
 * the phase had no such process (no RMS in the raw phase).
 */
export function efficiencyOf(phase: Pick<PhaseResult, 'messages' | 'seconds' | 'rms' | 'benchCpuPercent' | 'cpu' | 'postgresPerMessage'>): Efficiency {
  const { messages, seconds } = phase;
  const rmsCpuMs = phase.rms && messages > 0 ? (phase.rms.cpuSeconds * 1000) / messages : Number.NaN;
  const byProgram = phase.cpu.byProgram;
  const totalPercent = Object.values(byProgram).reduce((sum, value) => sum + value, 0) + Math.max(0, phase.cpu.unaccountedPercent);
  return {
    rmsCpuMs,
    messagesPerRmsCore: rmsCpuMs > 0 ? 1000 / rmsCpuMs : Number.NaN,
    postgresCpuMs: msPerMessage(byProgram['postgresql'] ?? 0, seconds, messages),
    rabbitmqCpuMs: msPerMessage(byProgram['rabbitmq'] ?? 0, seconds, messages),
    redisCpuMs: msPerMessage(byProgram['redis'] ?? 0, seconds, messages),
    clientCpuMs: msPerMessage(phase.benchCpuPercent, seconds, messages),
    totalCpuMs: msPerMessage(totalPercent, seconds, messages),
    walSyncs: phase.postgresPerMessage?.walSyncs ?? Number.NaN,
    walWrites: phase.postgresPerMessage?.walWrites ?? Number.NaN,
  };
}

/** Phases whose rate is compared with raw amqplib: saturated flows (a steady or overload phase's rate is its schedule's). */
function comparableWithRaw(phase: PhaseResult): boolean {
  return phase.phase !== 'raw' && phase.settings['producers'] !== undefined;
}

/**
 * The phases of one run with their ratios set from that same run: each saturated flow's
 * msgs/s over the run's raw msgs/s, and the per-message flow's msgs/s over its own
 * `/healthz` baseline. A ratio is never formed across runs (the box's state moves more
 * between runs than within one).
 */
export function withRatios(phases: readonly PhaseResult[]): PhaseResult[] {
  const raw = phases.find((phase) => phase.phase === 'raw');
  return phases.map((phase) => {
    const ratios = {
      ...(raw && comparableWithRaw(phase) && raw.messagesPerSecond > 0 && { toRaw: phase.messagesPerSecond / raw.messagesPerSecond }),
      ...(phase.healthz && phase.healthz.requestsPerSecond > 0 && { toHealthz: phase.messagesPerSecond / phase.healthz.requestsPerSecond }),
    };
    return Object.keys(ratios).length > 0 ? { ...phase, ratios } : phase;
  });
}
