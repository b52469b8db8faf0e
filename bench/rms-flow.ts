/**
 * The RMS phases: SDK producers in the bench process run prepare → (empty local
 * transaction) → confirm against an RMS child process, RMS publishes, and an SDK consumer
 * in the bench process handles each delivery and acks it to RMS (batched, as `subscribe`
 * does). Two load shapes: `saturate` (N producers back to back, as fast as RMS answers)
 * and `steady` (an open-loop schedule of so many sends per second, for latency).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { createProducer, type DegradeSwitch, type SdkLogger, subscribe } from '@rms/client-sdk';
import { ConfirmToHandlerClock, nowMs } from './latency.js';
import { perMessage, readPostgresCounters } from './postgres-stats.js';
import { cpuBreakdown, cpuSnapshot, ProcessSampler } from './proc-usage.js';
import type { PhaseResult } from './workload.js';

/** How producers load RMS. */
export type Load =
  /** `producers` loops, each sending the next message as soon as its confirm returns. */
  | { kind: 'saturate'; producers: number }
  /** Sends started on a fixed schedule of `ratePerSecond`, at most `maxInFlight` unanswered. */
  | { kind: 'steady'; ratePerSecond: number; maxInFlight: number };

/** One RMS phase. */
export interface RmsPhaseOptions {
  phase: string;
  description: string;
  /** RMS's base URL and its pid (for CPU and memory). */
  rms: { url: string; pid: number };
  producerToken: string;
  consumerToken: string;
  amqpUrl: string;
  topic: string;
  payload: unknown;
  load: Load;
  warmupMs: number;
  durationMs: number;
  /** The consumer's prefetch and handler concurrency. */
  consumerConcurrency: number;
  /**
   * The consumer groups subscribed to the topic, one `subscribe` each: every message is
   * handled and acked by each. The figures (throughput, latency) are the first group's; the
   * phase waits until every group has acked everything.
   */
  groups: readonly string[];
  /** Degraded mode: the consumer also pops the Redis lists while the flag is on. */
  fallback?: { degradeSwitch: DegradeSwitch; redisUrl: string; workers: number; popBatch: number };
  /** Longest wait for the consumer to catch up after the load. */
  drainTimeoutMs: number;
  /** RMS's database, for PostgreSQL's counters per message. */
  postgresUrl: string;
}

/** A little more than the interval at which PostgreSQL backends report their counters. */
const STATS_SETTLE_MS = 1200;

/** Microseconds of the monotonic clock, the clock of V8's CPU profiles. */
function monotonicUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

/** An SDK logger that counts warnings and errors and keeps the first few, for the report. */
function countingLogger(): SdkLogger & { warnings: number; errors: number; samples: string[] } {
  const logger = {
    warnings: 0,
    errors: 0,
    samples: [] as string[],
    info: () => undefined,
    warn: (context: object, message?: string) => {
      logger.warnings += 1;
      if (logger.samples.length < 5) logger.samples.push(`warn: ${message ?? ''} ${describeContext(context)}`);
    },
    error: (context: object, message?: string) => {
      logger.errors += 1;
      if (logger.samples.length < 5) logger.samples.push(`error: ${message ?? ''} ${describeContext(context)}`);
    },
  };
  return logger;
}

function describeContext(context: object): string {
  const error = (context as { err?: unknown }).err;
  return error instanceof Error ? `(${error.message})` : '';
}

/** Runs one RMS phase against an RMS process that is already up. */
export async function runRmsPhase(options: RmsPhaseOptions): Promise<PhaseResult & { sdkLog: string[]; windowUs: [number, number] }> {
  const clock = new ConfirmToHandlerClock();
  const transports: Record<string, number> = {};
  const logger = countingLogger();
  const [measuredGroup = 'bench', ...otherGroups] = options.groups;
  const consumerOptions = {
    rms: { url: options.rms.url, token: options.consumerToken },
    amqpUrl: options.amqpUrl,
    concurrency: options.consumerConcurrency,
    logger,
    ...(options.fallback && {
      fallback: {
        degradeSwitch: options.fallback.degradeSwitch,
        redis: options.fallback.redisUrl,
        workers: options.fallback.workers,
        popBatch: options.fallback.popBatch,
      },
    }),
  };
  const others = await Promise.all(otherGroups.map((group) => subscribe({ topic: options.topic, group }, async () => undefined, consumerOptions)));
  const subscription = await subscribe(
    { topic: options.topic, group: measuredGroup },
    async (delivery) => {
      clock.handled(delivery.id);
      transports[delivery.transport] = (transports[delivery.transport] ?? 0) + 1;
    },
    consumerOptions,
  );
  const producer = createProducer({ url: options.rms.url, token: options.producerToken, logger });
  let errors = 0;
  let unconfirmed = 0;
  let confirmed = 0;
  const sendOne = async () => {
    try {
      // The local transaction is empty; its end is the moment send() calls confirm.
      const sent = await producer.send(options.topic, options.payload, async (prepared) => clock.confirmCalled(prepared.id));
      if (sent.confirmed) {
        confirmed += 1;
        clock.confirmed(sent.message.id);
      } else unconfirmed += 1;
    } catch {
      errors += 1;
    }
  };
  const load = async (ms: number) => {
    const deadline = nowMs() + ms;
    if (options.load.kind === 'saturate') {
      await Promise.all(
        Array.from({ length: options.load.producers }, async () => {
          while (nowMs() < deadline) await sendOne();
        }),
      );
      return;
    }
    const { ratePerSecond, maxInFlight } = options.load;
    const startedAt = nowMs();
    const running = new Set<Promise<void>>();
    let started = 0;
    while (nowMs() < deadline) {
      // Catch up to the schedule on every tick (timers are coarse), never past maxInFlight.
      const due = Math.floor(((nowMs() - startedAt) * ratePerSecond) / 1000);
      while (started < due && running.size < maxInFlight) {
        started += 1;
        const sending: Promise<void> = sendOne().finally(() => running.delete(sending));
        running.add(sending);
      }
      await sleep(1);
    }
    await Promise.all(running);
  };
  const acked = () => subscription.stats().acked;
  const othersAcked = () => others.map((other) => other.stats().acked);
  /** Waits until the measured group has acked `target` messages, then the other groups `otherTargets`. */
  const waitAcked = async (target: number, otherTargets: readonly number[] = others.map(() => target)) => {
    const deadline = Date.now() + options.drainTimeoutMs;
    while (acked() < target && Date.now() < deadline) await sleep(5);
    const measuredAt = nowMs();
    while (othersAcked().some((count, index) => count < (otherTargets[index] ?? 0)) && Date.now() < deadline) await sleep(5);
    return measuredAt;
  };

  try {
    await load(options.warmupMs);
    await waitAcked(confirmed);
    clock.reset();
    const ackedBefore = acked();
    const othersAckedBefore = othersAcked();
    const ackRequestsBefore = subscription.stats().ackRequests;
    confirmed = 0;
    unconfirmed = 0;
    errors = 0;
    for (const key of Object.keys(transports)) delete transports[key];
    // Backends report their counters about once a second: let the warm-up's arrive first.
    await sleep(STATS_SETTLE_MS);
    const postgresBefore = await readPostgresCounters(options.postgresUrl);

    const named = { rms: options.rms.pid, bench: process.pid };
    const sampler = new ProcessSampler(options.rms.pid);
    const cpuBefore = cpuSnapshot();
    const benchBefore = process.cpuUsage();
    sampler.start();
    const startedAt = nowMs();
    const startedUs = monotonicUs();
    await load(options.durationMs);
    const loadSeconds = (nowMs() - startedAt) / 1000;
    const endedAt = await waitAcked(ackedBefore + confirmed, othersAckedBefore.map((before) => before + confirmed));
    const endedUs = monotonicUs();
    const seconds = (endedAt - startedAt) / 1000;
    const rms = sampler.stop();
    const benchUsage = process.cpuUsage(benchBefore);
    const cpu = cpuBreakdown(cpuBefore, cpuSnapshot(), named, seconds);
    const messages = acked() - ackedBefore;
    const ackRequests = subscription.stats().ackRequests - ackRequestsBefore;
    await sleep(STATS_SETTLE_MS);
    const postgresPerMessage = perMessage(postgresBefore, await readPostgresCounters(options.postgresUrl), messages);
    return {
      phase: options.phase,
      description: options.description,
      messages,
      seconds,
      messagesPerSecond: messages / seconds,
      confirmedPerSecond: confirmed / loadSeconds,
      latency: clock.summary(),
      rms,
      benchCpuPercent: (benchUsage.user + benchUsage.system) / 1e4 / seconds,
      cpu,
      errors,
      unconfirmed,
      duplicates: clock.duplicates,
      postgresPerMessage,
      transports: { ...transports },
      settings: {
        warmupMs: options.warmupMs,
        durationMs: options.durationMs,
        ...(options.load.kind === 'saturate'
          ? { producers: options.load.producers }
          : { ratePerSecond: options.load.ratePerSecond, maxInFlight: options.load.maxInFlight }),
        consumerConcurrency: options.consumerConcurrency,
        ...(options.fallback && { redisWorkers: options.fallback.workers, redisPopBatch: options.fallback.popBatch }),
        ackRequests,
        acksPerRequest: Math.round((messages / Math.max(1, ackRequests)) * 10) / 10,
        groups: options.groups.length,
        otherGroupsAcked: othersAcked().map((count, index) => count - (othersAckedBefore[index] ?? 0)).join(' '),
        sdkWarnings: logger.warnings,
        sdkErrors: logger.errors,
      },
      sdkLog: logger.samples,
      windowUs: [startedUs, endedUs],
    };
  } finally {
    await producer.close();
    await subscription.close();
    for (const other of others) await other.close();
  }
}
