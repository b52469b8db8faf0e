/**
 * The per-message HTTP path, as a client that is not the TypeScript SDK uses it (the
 * OpenAPI users: Java, Go, Python, curl): one `POST /v1/messages` then one
 * `POST /v1/messages/:id/confirm` per message, over an `undici` pool of keep-alive
 * connections, with an SDK consumer acking in batches; and the `GET /healthz` baseline on
 * the same server, so that RMS's own work per request can be told from HTTP's.
 *
 * Both phases report RMS's CPU time per request (and per message) read from
 * /proc/<pid>/stat over the measured window: unlike a throughput, that figure stays
 * meaningful on a box shared with other work.
 *
 * `bench/run.ts` can call {@link runHealthzBaseline} and {@link runPerMessageHttpFlow}
 * against an RMS it started; run alone (`node --conditions=rms-source --import tsx
 * bench/http-flow.ts`) this module starts RMS itself (see {@link main}'s settings).
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { subscribe, groupQueueName } from '@rms/client-sdk';
import { Pool } from 'undici';
import { cleanUp } from './environment.js';
import { nowMs } from './latency.js';
import { ProcessSampler, type ProcessUsage } from './proc-usage.js';
import { RmsProcess } from './rms-process.js';
import { benchPayload } from './workload.js';

/** The RMS under load: its base URL and its pid (for its CPU and memory). */
export interface RmsTarget {
  url: string;
  pid: number;
}

/** What both HTTP phases share. */
export interface HttpLoadOptions {
  rms: RmsTarget;
  /** Keep-alive connections of the client's pool, each with one request at a time. @defaultValue 64 */
  connections?: number;
  /** Load before the measured window (JIT, pools, caches). */
  warmupMs: number;
  /** The measured window. */
  durationMs: number;
}

/** The `GET /healthz` baseline. */
export interface HealthzBaselineResult {
  requests: number;
  seconds: number;
  requestsPerSecond: number;
  /** RMS CPU (user + system) per request, ms. */
  rmsCpuMsPerRequest: number;
  /** This process's CPU per request (the client), ms. */
  clientCpuMsPerRequest: number;
  rms: ProcessUsage;
  /** Requests that failed or answered other than 200. */
  errors: number;
  connections: number;
}

/** Options of {@link runPerMessageHttpFlow}. */
export interface PerMessageHttpFlowOptions extends HttpLoadOptions {
  producerToken: string;
  consumerToken: string;
  amqpUrl: string;
  /** The topic; the consumer reads it in `group`. */
  topic: string;
  /** The consumer group of the acking consumer. @defaultValue `bench` */
  group?: string;
  payload: unknown;
  /** The consumer's prefetch and handler concurrency. @defaultValue 512 */
  consumerConcurrency?: number;
  /** Longest wait for the consumer to ack everything confirmed in the window. @defaultValue 60000 */
  drainTimeoutMs?: number;
  /**
   * Open loop: start this many messages per second, whatever RMS answers (at most
   * `connections` under way; a message due while all are busy waits in the client). For
   * latency at a given rate, for comparing CPU per message at equal rates (batching in the
   * store and in acks depends on the rate), and for overload (a rate above capacity, with
   * more connections than RMS admits requests). Without it, each connection sends its next
   * message as soon as its last confirm is answered.
   */
  ratePerSecond?: number;
}

/** The per-message flow's figures. */
export interface PerMessageHttpFlowResult {
  /** Messages prepared, confirmed and acked in the window. */
  messages: number;
  /** From the start of the load to the last ack, seconds. */
  seconds: number;
  messagesPerSecond: number;
  /** Prepare and confirm requests per second of load (two per message). */
  producerRequestsPerSecond: number;
  /** RMS CPU per message (its prepare, its confirm, its publish and its share of an ack batch), ms. */
  rmsCpuMsPerMessage: number;
  /** This process's CPU per message (undici producers and the SDK consumer), ms. */
  clientCpuMsPerMessage: number;
  rms: ProcessUsage;
  /** Prepare → confirm answered, ms. */
  latencyMs: { p50: number; p99: number };
  /** Requests that failed or answered other than 2xx (a message whose prepare failed is not confirmed). */
  errors: number;
  /** 503 answers among the errors (admission control refusing). */
  refused: number;
  ackRequests: number;
  connections: number;
  /** The open loop's rate, when one was set. */
  ratePerSecond?: number;
}

const DEFAULT_CONNECTIONS = 64;

function poolFor(options: HttpLoadOptions): Pool {
  return new Pool(options.rms.url, { connections: options.connections ?? DEFAULT_CONNECTIONS, pipelining: 1, keepAliveTimeout: 30_000 });
}

/** Runs `worker` on `connections` loops until `ms` has passed. */
async function loadFor(ms: number, connections: number, worker: () => Promise<void>): Promise<void> {
  const deadline = nowMs() + ms;
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (nowMs() < deadline) await worker();
    }),
  );
}

/** Starts `worker` `ratePerSecond` times a second for `ms`, at most `maxInFlight` at once; resolves when all are done. */
async function loadAtRate(ms: number, ratePerSecond: number, maxInFlight: number, worker: () => Promise<void>): Promise<void> {
  const startedAt = nowMs();
  const running = new Set<Promise<void>>();
  let started = 0;
  while (nowMs() - startedAt < ms) {
    // Catch up with the schedule on every tick (timers are coarse), never past maxInFlight.
    const due = Math.floor(((nowMs() - startedAt) * ratePerSecond) / 1000);
    while (started < due && running.size < maxInFlight) {
      started += 1;
      const one: Promise<void> = worker().finally(() => running.delete(one));
      running.add(one);
    }
    await sleep(1);
  }
  await Promise.all(running);
}

/** `p` (0–1) of an ascending list. */
function quantile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] as number;
}

/** `GET /healthz` on `connections` keep-alive connections, back to back. */
export async function runHealthzBaseline(options: HttpLoadOptions): Promise<HealthzBaselineResult> {
  const connections = options.connections ?? DEFAULT_CONNECTIONS;
  const pool = poolFor(options);
  let requests = 0;
  let errors = 0;
  const one = async () => {
    try {
      const answer = await pool.request({ method: 'GET', path: '/healthz' });
      await answer.body.dump();
      if (answer.statusCode === 200) requests += 1;
      else errors += 1;
    } catch {
      errors += 1;
    }
  };
  try {
    await loadFor(options.warmupMs, connections, one);
    requests = 0;
    errors = 0;
    const sampler = new ProcessSampler(options.rms.pid);
    const clientBefore = process.cpuUsage();
    sampler.start();
    const startedAt = nowMs();
    await loadFor(options.durationMs, connections, one);
    const seconds = (nowMs() - startedAt) / 1000;
    const rms = sampler.stop();
    const client = process.cpuUsage(clientBefore);
    return {
      requests,
      seconds,
      requestsPerSecond: requests / seconds,
      rmsCpuMsPerRequest: (rms.cpuSeconds * 1000) / Math.max(1, requests),
      clientCpuMsPerRequest: (client.user + client.system) / 1000 / Math.max(1, requests),
      rms,
      errors,
      connections,
    };
  } finally {
    await pool.close();
  }
}

/**
 * Prepare then confirm per message on `connections` keep-alive connections (each
 * connection's loop sends its next message once its confirm is answered), with an SDK
 * consumer handling and acking every delivery (batched acks, as `subscribe` does).
 */
export async function runPerMessageHttpFlow(options: PerMessageHttpFlowOptions): Promise<PerMessageHttpFlowResult> {
  const connections = options.connections ?? DEFAULT_CONNECTIONS;
  const pool = poolFor(options);
  const group = options.group ?? 'bench';
  const headers = { authorization: `Bearer ${options.producerToken}`, 'content-type': 'application/json' };
  let confirmed = 0;
  let errors = 0;
  let refused = 0;
  let latencies: number[] = [];
  const fail = (status?: number) => {
    errors += 1;
    if (status === 503) refused += 1;
  };
  const sendOne = async () => {
    try {
      const startedAt = nowMs();
      const prepared = await pool.request({
        method: 'POST',
        path: '/v1/messages',
        headers,
        body: JSON.stringify({ topic: options.topic, payload: options.payload }),
      });
      if (prepared.statusCode !== 201) {
        await prepared.body.dump();
        fail(prepared.statusCode);
        return;
      }
      const { id } = (await prepared.body.json()) as { id: string };
      const confirmation = await pool.request({ method: 'POST', path: `/v1/messages/${id}/confirm`, headers: { authorization: headers.authorization } });
      await confirmation.body.dump();
      if (confirmation.statusCode !== 200) {
        fail(confirmation.statusCode);
        return;
      }
      confirmed += 1;
      latencies.push(nowMs() - startedAt);
    } catch {
      fail();
    }
  };
  const subscription = await subscribe(
    { topic: options.topic, group },
    async () => undefined,
    { rms: { url: options.rms.url, token: options.consumerToken }, amqpUrl: options.amqpUrl, concurrency: options.consumerConcurrency ?? 512 },
  );
  const acked = () => subscription.stats().acked;
  const waitAcked = async (target: number) => {
    const deadline = Date.now() + (options.drainTimeoutMs ?? 60_000);
    while (acked() < target && Date.now() < deadline) await sleep(5);
    return nowMs();
  };
  const load = (ms: number) =>
    options.ratePerSecond === undefined ? loadFor(ms, connections, sendOne) : loadAtRate(ms, options.ratePerSecond, connections, sendOne);
  try {
    await load(options.warmupMs);
    await waitAcked(confirmed);
    const ackedBefore = acked();
    const ackRequestsBefore = subscription.stats().ackRequests;
    confirmed = 0;
    errors = 0;
    refused = 0;
    latencies = [];
    const sampler = new ProcessSampler(options.rms.pid);
    const clientBefore = process.cpuUsage();
    sampler.start();
    const startedAt = nowMs();
    await load(options.durationMs);
    const loadSeconds = (nowMs() - startedAt) / 1000;
    const endedAt = await waitAcked(ackedBefore + confirmed);
    const seconds = (endedAt - startedAt) / 1000;
    const rms = sampler.stop();
    const client = process.cpuUsage(clientBefore);
    const messages = acked() - ackedBefore;
    latencies.sort((a, b) => a - b);
    return {
      messages,
      seconds,
      messagesPerSecond: messages / seconds,
      producerRequestsPerSecond: (2 * confirmed) / loadSeconds,
      rmsCpuMsPerMessage: (rms.cpuSeconds * 1000) / Math.max(1, messages),
      clientCpuMsPerMessage: (client.user + client.system) / 1000 / Math.max(1, messages),
      rms,
      latencyMs: { p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99) },
      errors,
      refused,
      ackRequests: subscription.stats().ackRequests - ackRequestsBefore,
      connections,
      ...(options.ratePerSecond !== undefined && { ratePerSecond: options.ratePerSecond }),
    };
  } finally {
    await subscription.close();
    await pool.close();
  }
}

function numberSetting(name: string, fallback: number): number {
  const value = process.env[name];
  if (value === undefined || value === '') return fallback;
  const parsed = Number(value);
  if (!Number.isFinite(parsed) || parsed <= 0) throw new Error(`${name} must be a positive number, got "${value}"`);
  return parsed;
}

/**
 * Standalone run: starts RMS (from the sources, as `bench/run.ts` does) on a schema of its
 * own, runs the `/healthz` baseline and the per-message flow, prints their figures as
 * JSON, and removes the schema and queue. Settings: BENCH_POSTGRES_URL (or
 * TEST_POSTGRES_URL), RABBITMQ_URL, REDIS_URL, ZK_CONNECT, BENCH_HTTP_MS (measured window
 * per phase, 10000), BENCH_WARMUP_MS (2000), BENCH_HTTP_CONNECTIONS (64),
 * BENCH_HTTP_RATE (the per-message flow at this open-loop rate instead of saturating), BENCH_IDLE_MS (3000, RMS's CPU at rest is measured first), BENCH_CPU_PROFILE_DIR (RMS runs under `--cpu-prof`, writing there), and any RMS_* setting,
 * passed to RMS.
 */
async function main(): Promise<void> {
  const runId = randomUUID().slice(0, 8);
  const urls = {
    postgres: process.env['BENCH_POSTGRES_URL'] ?? process.env['TEST_POSTGRES_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test',
    amqp: process.env['RABBITMQ_URL'] ?? 'amqp://guest:guest@127.0.0.1:5672',
    redis: process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379',
    zk: process.env['ZK_CONNECT'] ?? '127.0.0.1:2181',
  };
  const schema = `bench_http_${runId}`;
  const topic = `bench.http.${runId}`;
  const tokens = { producer: `bench-producer-token-${runId}`, consumer: `bench-consumer-token-${runId}` };
  const storeUrl = new URL(urls.postgres);
  storeUrl.searchParams.set('schema', schema);
  const rmsSettings = Object.fromEntries(Object.entries(process.env).filter((entry): entry is [string, string] => entry[0].startsWith('RMS_') && entry[1] !== undefined));
  const rms = await RmsProcess.start({
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    logFile: join('/tmp', `rms-http-flow-${runId}.log`),
    ...(process.env['BENCH_CPU_PROFILE_DIR'] && { cpuProfileDir: process.env['BENCH_CPU_PROFILE_DIR'] }),
    env: {
      STORE_URL: storeUrl.toString(),
      RABBITMQ_URL: urls.amqp,
      REDIS_URL: urls.redis,
      ZK_CONNECT: urls.zk,
      RMS_ZK_ROOT: `/rms-bench/${runId}`,
      RMS_APPS: JSON.stringify([
        { app: 'bench-producer', token: tokens.producer, roles: ['producer'], checkUrl: 'http://127.0.0.1:9/rms/check', secret: `bench-check-secret-${runId}` },
        { app: 'bench-consumer', token: tokens.consumer, roles: ['consumer'], subscriptions: [{ topic: 'bench.*', group: 'bench' }] },
      ]),
      RMS_ACK_TIMEOUT_MS: '60000',
      RMS_CHECK_DELAY_MS: '60000',
      RMS_RETRY_FIRST_DELAY_MS: '60000',
      RMS_SHUTDOWN_GRACE_MS: '3000',
      ...rmsSettings,
    },
  });
  const load = {
    rms: { url: rms.url, pid: rms.pid },
    connections: numberSetting('BENCH_HTTP_CONNECTIONS', DEFAULT_CONNECTIONS),
    warmupMs: numberSetting('BENCH_WARMUP_MS', 2000),
    durationMs: numberSetting('BENCH_HTTP_MS', 10_000),
  };
  try {
    // What RMS burns with no request at all (its loops' polls, metrics): on a busy box the
    // figures per request are also given net of it.
    const idle = new ProcessSampler(rms.pid);
    idle.start();
    await sleep(numberSetting('BENCH_IDLE_MS', 3000));
    const idleCpuMsPerSecond = (idle.stop().cpuSeconds * 1000) / (numberSetting('BENCH_IDLE_MS', 3000) / 1000);
    const healthz = await runHealthzBaseline(load);
    const perMessage = await runPerMessageHttpFlow({
      ...load,
      producerToken: tokens.producer,
      consumerToken: tokens.consumer,
      amqpUrl: urls.amqp,
      topic,
      payload: benchPayload(),
      ...(process.env['BENCH_HTTP_RATE'] && { ratePerSecond: numberSetting('BENCH_HTTP_RATE', 1) }),
    });
    process.stdout.write(
      `${JSON.stringify(
        {
          healthz,
          perMessage,
          ratioToHealthz: perMessage.messagesPerSecond / healthz.requestsPerSecond,
          rmsCpuMsPerRequest: { healthz: healthz.rmsCpuMsPerRequest, perMessageFlow: perMessage.rmsCpuMsPerMessage / 2 },
          idleCpuMsPerSecond,
          netOfIdle: {
            healthzCpuMsPerRequest: (healthz.rms.cpuSeconds * 1000 - idleCpuMsPerSecond * healthz.seconds) / Math.max(1, healthz.requests),
            perMessageCpuMs: (perMessage.rms.cpuSeconds * 1000 - idleCpuMsPerSecond * perMessage.seconds) / Math.max(1, perMessage.messages),
          },
        },
        null,
        2,
      )}\n`,
    );
  } finally {
    await rms.stop();
    const problems = await cleanUp(urls, { queues: [groupQueueName(topic, 'bench')], schemas: [schema], redisTopics: [], zkNodes: [`/rms-bench/${runId}/degrade`, `/rms-bench/${runId}`] });
    for (const problem of problems) process.stderr.write(`clean-up: ${problem}\n`);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  });
}
