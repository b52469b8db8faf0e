/**
 * The RMS phases: producers in the bench process run prepare → (empty local transaction)
 * → confirm against one or more RMS child processes, RMS publishes, and an SDK consumer in
 * the bench process handles each delivery and acks it to RMS (batched, as `subscribe`
 * does). The producers are the SDK's (batched) or the plain HTTP client's (one request
 * pair per message, `per-message-flow.ts`). Two load shapes: `saturate` (N producers back
 * to back, as fast as RMS answers) and `steady` (an open-loop schedule of so many sends per
 * second, for latency and overload).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { createProducer, type DegradeSwitch, type SdkLogger, subscribe } from '@rms/client-sdk';
import type { Pool } from 'undici';
import { ConfirmToHandlerClock, nowMs } from './latency.js';
import { OverloadProbe } from './overload-breakdown.js';
import { PerMessageHttpSender, type RequestLedger } from './per-message-flow.js';
import { perMessage, readPostgresCounters } from './postgres-stats.js';
import { combineUsage, cpuBreakdown, cpuSnapshot, ProcessSampler } from './proc-usage.js';
import type { MessageSender, PhaseResult } from './workload.js';

/** How producers load RMS. */
export type Load =
  /** `producers` loops, each sending the next message as soon as its confirm returns. */
  | { kind: 'saturate'; producers: number }
  /** Sends started on a fixed schedule of `ratePerSecond`, at most `maxInFlight` unanswered. */
  | { kind: 'steady'; ratePerSecond: number; maxInFlight: number };

/** Which client the producers use. */
export type ProducerClient =
  /** The SDK's producer (batching concurrent sends), one per RMS process. */
  | { kind: 'sdk' }
  /**
   * The plain HTTP client, a request pair per message: `pools[i]` (a `perMessagePool`) to
   * RMS process `i`, owned and closed by the caller, so the same client can measure
   * `GET /healthz` first.
   */
  | { kind: 'per-message'; pools: readonly Pool[]; ledger: RequestLedger };

/** One RMS phase. */
export interface RmsPhaseOptions {
  phase: string;
  description: string;
  /**
   * The RMS processes, each with its base URL and its pid (for CPU and memory). With
   * several, producer `i` starts at process `i mod n` (the SDK fails over to the others), and
   * the measured group has one consumer per process, each acking to its own.
   */
  rms: readonly { url: string; pid: number }[];
  /** @defaultValue `{ kind: 'sdk' }` */
  client?: ProducerClient;
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
  /** With the plain HTTP client: measure where a request's time goes (`bench/overload-breakdown.ts`). */
  breakdown?: boolean;
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

/** `urls` starting at index `start`: the SDK tries them in this order. */
function rotated(urls: readonly string[], start: number): string[] {
  return urls.map((_, index) => urls[(start + index) % urls.length] as string);
}

/** One sender per RMS process, of the kind `client` asks for. */
function createSenders(client: ProducerClient, urls: readonly string[], token: string, logger: SdkLogger): MessageSender[] {
  return urls.map((url, index) => {
    if (client.kind === 'per-message') {
      const pool = client.pools[index];
      if (!pool) throw new TypeError(`no per-message pool for RMS process ${index + 1} (${url})`);
      return new PerMessageHttpSender({ pool, token, ledger: client.ledger });
    }
    const producer = createProducer({ url: rotated(urls, index), token, logger });
    return {
      send: async (topic, payload, confirming) => {
        const sent = await producer.send(topic, payload, async (prepared) => confirming(prepared.id));
        return { id: sent.message.id, confirmed: sent.confirmed };
      },
      close: () => producer.close(),
    };
  });
}

/** Runs one RMS phase against RMS processes that are already up. */
export async function runRmsPhase(options: RmsPhaseOptions): Promise<PhaseResult & { sdkLog: string[]; windowUs: [number, number] }> {
  const clock = new ConfirmToHandlerClock();
  const transports: Record<string, number> = {};
  const logger = countingLogger();
  const [measuredGroup = 'bench', ...otherGroups] = options.groups;
  const urls = options.rms.map((rms) => rms.url);
  const consumerOptions = (start: number) => ({
    rms: { url: rotated(urls, start), token: options.consumerToken },
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
  });
  const others = await Promise.all(otherGroups.map((group, index) => subscribe({ topic: options.topic, group }, async () => undefined, consumerOptions(index + 1))));
  const measured = await Promise.all(
    urls.map((_, index) =>
      subscribe(
        { topic: options.topic, group: measuredGroup },
        async (delivery) => {
          clock.handled(delivery.id);
          transports[delivery.transport] = (transports[delivery.transport] ?? 0) + 1;
        },
        consumerOptions(index),
      ),
    ),
  );
  const client = options.client ?? { kind: 'sdk' };
  const senders = createSenders(client, urls, options.producerToken, logger);
  let errors = 0;
  let unconfirmed = 0;
  let confirmed = 0;
  let sent = 0;
  /** Sends started in the measured window: under a steady load, below the schedule when `maxInFlight` held it back. */
  let started = 0;
  const sendOne = async (sender: MessageSender) => {
    started += 1;
    try {
      // The local transaction is empty; its end is the moment send() calls confirm.
      const answer = await sender.send(options.topic, options.payload, (id) => clock.confirmCalled(id));
      if (answer.confirmed) {
        confirmed += 1;
        clock.confirmed(answer.id);
      } else unconfirmed += 1;
    } catch {
      errors += 1;
    }
  };
  const nextSender = () => senders[sent++ % senders.length] as MessageSender;
  const load = async (ms: number) => {
    const deadline = nowMs() + ms;
    if (options.load.kind === 'saturate') {
      await Promise.all(
        Array.from({ length: options.load.producers }, async (_, index) => {
          const sender = senders[index % senders.length] as MessageSender;
          while (nowMs() < deadline) await sendOne(sender);
        }),
      );
      return;
    }
    const { ratePerSecond, maxInFlight } = options.load;
    const startedAt = nowMs();
    const running = new Set<Promise<void>>();
    let scheduled = 0;
    while (nowMs() < deadline) {
      // Catch up to the schedule on every tick (timers are coarse), never past maxInFlight.
      const due = Math.floor(((nowMs() - startedAt) * ratePerSecond) / 1000);
      while (scheduled < due && running.size < maxInFlight) {
        scheduled += 1;
        const sending: Promise<void> = sendOne(nextSender()).finally(() => running.delete(sending));
        running.add(sending);
      }
      await sleep(1);
    }
    await Promise.all(running);
  };
  const acked = () => measured.reduce((sum, subscription) => sum + subscription.stats().acked, 0);
  const ackRequestsSoFar = () => measured.reduce((sum, subscription) => sum + subscription.stats().ackRequests, 0);
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
    const ackRequestsBefore = ackRequestsSoFar();
    if (client.kind === 'per-message') client.ledger.reset();
    confirmed = 0;
    unconfirmed = 0;
    errors = 0;
    started = 0;
    for (const key of Object.keys(transports)) delete transports[key];
    // Backends report their counters about once a second: let the warm-up's arrive first.
    await sleep(STATS_SETTLE_MS);
    const postgresBefore = await readPostgresCounters(options.postgresUrl);

    const named = { rms: options.rms.map((rms) => rms.pid), bench: process.pid };
    const samplers = options.rms.map((rms) => new ProcessSampler(rms.pid));
    const cpuBefore = cpuSnapshot();
    const benchBefore = process.cpuUsage();
    for (const sampler of samplers) sampler.start();
    const startedAt = nowMs();
    const startedUs = monotonicUs();
    const firstRms = options.rms[0];
    const probe = options.breakdown && client.kind === 'per-message' && client.pools[0] && firstRms ? new OverloadProbe(firstRms.url, client.pools[0]) : undefined;
    await probe?.start();
    await load(options.durationMs);
    const breakdown = await probe?.stop();
    const loadSeconds = (nowMs() - startedAt) / 1000;
    const endedAt = await waitAcked(ackedBefore + confirmed, othersAckedBefore.map((before) => before + confirmed));
    const endedUs = monotonicUs();
    const seconds = (endedAt - startedAt) / 1000;
    const rmsProcesses = samplers.map((sampler) => sampler.stop());
    const benchUsage = process.cpuUsage(benchBefore);
    const cpu = cpuBreakdown(cpuBefore, cpuSnapshot(), named, seconds);
    const messages = acked() - ackedBefore;
    const ackRequests = ackRequestsSoFar() - ackRequestsBefore;
    const requests = client.kind === 'per-message' ? client.ledger.summary() : undefined;
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
      rms: combineUsage(rmsProcesses),
      ...(rmsProcesses.length > 1 && { rmsProcesses }),
      benchCpuPercent: (benchUsage.user + benchUsage.system) / 1e4 / seconds,
      cpu,
      errors,
      unconfirmed,
      duplicates: clock.duplicates,
      postgresPerMessage,
      transports: { ...transports },
      ...(requests && { requests }),
      ...(breakdown && { breakdown }),
      settings: {
        client: client.kind === 'sdk' ? 'sdk' : `undici, ${options.load.kind === 'saturate' ? options.load.producers : options.load.maxInFlight} requests in flight at most`,
        rmsProcesses: options.rms.length,
        warmupMs: options.warmupMs,
        durationMs: options.durationMs,
        ...(options.load.kind === 'saturate'
          ? { producers: options.load.producers }
          : { ratePerSecond: options.load.ratePerSecond, maxInFlight: options.load.maxInFlight }),
        consumerConcurrency: options.consumerConcurrency,
        ...(options.fallback && { redisWorkers: options.fallback.workers, redisPopBatch: options.fallback.popBatch }),
        sendsStartedPerSecond: Math.round(started / loadSeconds),
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
    for (const sender of senders) await sender.close();
    for (const subscription of measured) await subscription.close();
    for (const other of others) await other.close();
  }
}
