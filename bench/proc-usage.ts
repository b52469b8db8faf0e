/**
 * CPU and memory of processes, read from Linux's /proc: a process's own CPU ticks
 * (`utime + stime` in /proc/<pid>/stat), its resident set (`VmRSS`) and the peak of that
 * over its life (`VmHWM`) from /proc/<pid>/status; and, to see where a saturated 2-core box
 * spends its time, CPU ticks summed per program (PostgreSQL, RabbitMQ, Redis, ...).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

/** Clock ticks per second of /proc's CPU counters (`getconf CLK_TCK`, 100 on Linux). */
const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** `utime` and `stime` of a process (user and kernel CPU), in seconds; `undefined` when it is gone. */
export function cpuTimesOf(pid: number): { user: number; system: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses; the rest follows the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { user: Number(fields[11]) / CLOCK_TICKS, system: Number(fields[12]) / CLOCK_TICKS };
  } catch {
    return undefined;
  }
}

/** `utime + stime` of a process, in seconds; `undefined` when it is gone. */
export function cpuSecondsOf(pid: number): number | undefined {
  const times = cpuTimesOf(pid);
  return times && times.user + times.system;
}

/** `VmRSS` and `VmHWM` of a process, in MB; `undefined` when it is gone. */
export function memoryOf(pid: number): { rssMb: number; peakRssMb: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN);
    return { rssMb: kb('VmRSS') / 1024, peakRssMb: kb('VmHWM') / 1024 };
  } catch {
    return undefined;
  }
}

/** What one process used over a window. */
export interface ProcessUsage {
  /** CPU time over wall time, in percent of one core (200 % is both cores of this box). */
  cpuPercent: number;
  /** CPU seconds used in the window. */
  cpuSeconds: number;
  /** The part of `cpuPercent` spent in the kernel (system calls: socket reads and writes). */
  systemPercent: number;
  /** Largest resident set over the process's life so far (`VmHWM`), MB. */
  peakRssMb: number;
  /** Resident set at the end of the window, MB. */
  rssMb: number;
}

/**
 * Samples one process every `intervalMs` between {@link ProcessSampler.start} and
 * {@link ProcessSampler.stop}: CPU from the counters at both ends, and the peak resident
 * set both from the kernel's own high-water mark and from the samples (whichever is larger).
 */
export class ProcessSampler {
  #timer: NodeJS.Timeout | undefined;
  #startedAt = 0;
  #startCpu = { user: 0, system: 0 };
  #peakSeen = 0;

  constructor(
    readonly pid: number,
    private readonly intervalMs = 250,
  ) {}

  start(): void {
    this.#startedAt = performance.now();
    this.#startCpu = cpuTimesOf(this.pid) ?? { user: 0, system: 0 };
    this.#sample();
    this.#timer = setInterval(() => this.#sample(), this.intervalMs);
  }

  stop(): ProcessUsage {
    clearInterval(this.#timer);
    this.#sample();
    const wallSeconds = (performance.now() - this.#startedAt) / 1000;
    const end = cpuTimesOf(this.pid) ?? this.#startCpu;
    const system = end.system - this.#startCpu.system;
    const cpuSeconds = end.user - this.#startCpu.user + system;
    const memory = memoryOf(this.pid);
    return {
      cpuPercent: (100 * cpuSeconds) / wallSeconds,
      cpuSeconds,
      systemPercent: (100 * system) / wallSeconds,
      peakRssMb: Math.max(this.#peakSeen, memory?.peakRssMb ?? 0),
      rssMb: memory?.rssMb ?? Number.NaN,
    };
  }

  #sample(): void {
    const memory = memoryOf(this.pid);
    if (memory) this.#peakSeen = Math.max(this.#peakSeen, memory.rssMb, memory.peakRssMb);
  }
}

/** Which program a process belongs to, by its command name (`/proc/<pid>/comm`). */
function programOf(comm: string): string {
  if (comm === 'postgres' || comm.startsWith('postgres')) return 'postgresql';
  if (comm === 'beam.smp' || comm.startsWith('erl_') || comm === 'epmd' || comm === 'inet_gethost') return 'rabbitmq';
  if (comm.startsWith('redis-server')) return 'redis';
  if (comm === 'java') return 'zookeeper (java)';
  // Any other node process: a test run or another service sharing the box.
  if (comm === 'node' || comm === 'npm' || comm.startsWith('npm ')) return 'other node';
  return 'other';
}

/** Every process's CPU counter, and the machine's total busy and idle time, at one instant. */
export interface CpuSnapshot {
  byPid: Map<number, number>;
  machineBusy: number;
  machineTotal: number;
  /** Time the hypervisor gave this VM's CPUs to someone else. */
  machineSteal: number;
}

/** Reads every process's CPU counter and the machine's counters from /proc/stat. */
export function cpuSnapshot(): CpuSnapshot {
  const byPid = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cpu = cpuSecondsOf(Number(entry));
    if (cpu !== undefined) byPid.set(Number(entry), cpu);
  }
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const ticks = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is already in user).
  const total = ticks.slice(0, 8).reduce((sum, value) => sum + value, 0);
  const idle = (ticks[3] ?? 0) + (ticks[4] ?? 0);
  return { byPid, machineBusy: (total - idle) / CLOCK_TICKS, machineTotal: total / CLOCK_TICKS, machineSteal: (ticks[7] ?? 0) / CLOCK_TICKS };
}

/** Foreign CPU use, in percent of one core, above which a phase is flagged as contended. */
const CONTENDED_PERCENT = 15;

/** Where the machine's CPU went between two snapshots, in percent of one core per program. */
export interface CpuBreakdown {
  /** Busy share of the whole machine, 0–100 %. */
  machineBusyPercent: number;
  /** Share of the machine's time stolen by the hypervisor, 0–100 % (a noisy neighbour slows every figure). */
  stealPercent: number;
  /** Percent of one core per program, over the window. */
  byProgram: Record<string, number>;
  /**
   * Busy time no listed process accounts for (processes that exited within the window,
   * kernel threads' interrupts), percent of one core. Large values mean something else ran.
   */
  unaccountedPercent: number;
  /**
   * Whether something besides the measured system took a noticeable share of the box (other
   * node processes, or busy time no listed process accounts for, above 15 % of a core):
   * the phase's figures are then low, and the run should be repeated on a quiet machine.
   */
  contended: boolean;
}

/**
 * The difference of two snapshots over `wallSeconds`, grouped by program; `named` pids
 * (RMS, the bench itself) get their own group, several pids under one name (two RMS
 * processes) adding up. A process started within the window counts with all its CPU; one
 * that exited within it is lost (it shows as unaccounted).
 */
export function cpuBreakdown(before: CpuSnapshot, after: CpuSnapshot, named: Record<string, number | readonly number[]>, wallSeconds: number): CpuBreakdown {
  const nameOfPid = new Map(Object.entries(named).flatMap(([name, pids]) => (typeof pids === 'number' ? [pids] : pids).map((pid) => [pid, name] as const)));
  const byProgram: Record<string, number> = {};
  for (const [pid, cpuAfter] of after.byPid) {
    const cpuBefore = before.byPid.get(pid) ?? 0;
    let program = nameOfPid.get(pid);
    if (program === undefined) {
      try {
        program = programOf(readFileSync(`/proc/${pid}/comm`, 'utf8').trim());
      } catch {
        continue;
      }
    }
    byProgram[program] = (byProgram[program] ?? 0) + (100 * (cpuAfter - cpuBefore)) / wallSeconds;
  }
  const total = after.machineTotal - before.machineTotal;
  const busy = after.machineBusy - before.machineBusy;
  const listed = Object.values(byProgram).reduce((sum, value) => sum + value, 0);
  const unaccounted = (100 * busy) / wallSeconds - listed;
  return {
    machineBusyPercent: total > 0 ? (100 * busy) / total : Number.NaN,
    stealPercent: total > 0 ? (100 * (after.machineSteal - before.machineSteal)) / total : Number.NaN,
    byProgram: Object.fromEntries(Object.entries(byProgram).map(([name, value]) => [name, Math.round(value * 10) / 10])),
    unaccountedPercent: Math.round(unaccounted * 10) / 10,
    contended: (byProgram['other node'] ?? 0) + Math.max(0, unaccounted) > CONTENDED_PERCENT,
  };
}

/**
 * Several processes' usage over the same window as one: CPU added up, the largest peak and
 * the resident sets added up (what the processes hold together).
 */
export function combineUsage(usages: readonly ProcessUsage[]): ProcessUsage {
  const sum = (pick: (usage: ProcessUsage) => number) => usages.reduce((total, usage) => total + pick(usage), 0);
  return {
    cpuPercent: sum((usage) => usage.cpuPercent),
    cpuSeconds: sum((usage) => usage.cpuSeconds),
    systemPercent: sum((usage) => usage.systemPercent),
    peakRssMb: Math.max(0, ...usages.map((usage) => usage.peakRssMb)),
    rssMb: sum((usage) => usage.rssMb),
  };
}
