/**
 * Client CPU per message: how much CPU the SDK's own process spends per message, against an
 * RMS child process on this machine. Throughput figures are meaningless on a shared box;
 * CPU time of the client process (`process.cpuUsage()`) per message is not, so that is what
 * this measures (RMS's CPU, from /proc, is printed alongside for context only).
 *
 * Modes, run in order against one RMS (each after a warm-up of its own):
 *
 * - `http`: the per-message HTTP path through {@link RmsHttpClient}: `prepare` then
 *   `confirm`, `BENCH_CLIENT_CONCURRENCY` (64) loops;
 * - `sdk`: the SDK flow, `producer.send` with its default batching, `BENCH_SDK_PRODUCERS` (256) loops;
 * - `consume`: `subscribe` handling every message the two modes above published and
 *   acking it to RMS (batched), prefetch `BENCH_CONSUMER_CONCURRENCY` (512).
 *
 * `BENCH_CLIENT_MESSAGES` (4000) messages in `http`, `BENCH_SDK_MESSAGES` (20000) in `sdk`
 * (batches of up to 100 make each one cheap, so more are needed for a stable figure),
 * `BENCH_CLIENT_WARMUP` (500) before each producing mode; `BENCH_CLIENT_MODES` picks a subset (`http,sdk,consume`).
 *
 * ```sh
 * node --conditions=rms-source --import tsx bench/client-cpu.ts
 * # a CPU profile of the client side:
 * node --cpu-prof --cpu-prof-dir=/tmp/client-prof --conditions=rms-source --import tsx bench/client-cpu.ts
 * ```
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RmsHttpClient, createProducer, groupQueueName, subscribe } from '@rms/client-sdk';
import { cleanUp, type RunLeftovers } from './environment.js';
import { cpuSecondsOf } from './proc-usage.js';
import { RmsProcess } from './rms-process.js';
import { benchPayload } from './workload.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const env = process.env;
const settings = {
  postgresUrl: env['BENCH_POSTGRES_URL'] ?? env['TEST_POSTGRES_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test',
  amqpUrl: env['RABBITMQ_URL'] ?? 'amqp://guest:guest@127.0.0.1:5672',
  redisUrl: env['REDIS_URL'] ?? 'redis://127.0.0.1:6379',
  zkConnect: env['ZK_CONNECT'] ?? '127.0.0.1:2181',
  messages: Number(env['BENCH_CLIENT_MESSAGES'] ?? 4000),
  sdkMessages: Number(env['BENCH_SDK_MESSAGES'] ?? 20000),
  warmup: Number(env['BENCH_CLIENT_WARMUP'] ?? 500),
  concurrency: Number(env['BENCH_CLIENT_CONCURRENCY'] ?? 64),
  producers: Number(env['BENCH_SDK_PRODUCERS'] ?? 256),
  /** The producer's `batching.maxBatch` (the SDK's default when unset). */
  maxBatch: env['BENCH_SDK_MAX_BATCH'] === undefined ? undefined : Number(env['BENCH_SDK_MAX_BATCH']),
  /** The consumer's `ackBatchSize` (the SDK's default when unset). */
  ackBatchSize: env['BENCH_ACK_BATCH_SIZE'] === undefined ? undefined : Number(env['BENCH_ACK_BATCH_SIZE']),
  consumerConcurrency: Number(env['BENCH_CONSUMER_CONCURRENCY'] ?? 512),
  modes: (env['BENCH_CLIENT_MODES'] ?? 'http,sdk,consume').split(','),
};

const runId = `${Date.now().toString(36)}${Math.floor(Math.random() * 36 ** 3).toString(36)}`;
const schema = `clientcpu_${runId}`;
const topic = `bench.${runId}.clientcpu`;
const group = 'clientcpu';
const zkRoot = `/rms-bench/${runId}`;
const tokens = { producer: `bench-producer-token-${runId}`, consumer: `bench-consumer-token-${runId}` };
const leftovers: RunLeftovers = { queues: [groupQueueName(topic, group)], schemas: [schema], redisTopics: [], zkNodes: [`${zkRoot}/degrade`, zkRoot, '/rms-bench'] };

/** One mode's figures. */
interface Figures {
  mode: string;
  messages: number;
  seconds: number;
  /** Client CPU (user + system) per message, ms. */
  clientMsPerMessage: number;
  clientUserMsPerMessage: number;
  clientSystemMsPerMessage: number;
  /** RMS's CPU per message, ms (context only). */
  rmsMsPerMessage: number;
  /** The measured window on the monotonic clock, µs: pass it to `summarizeCpuProfile` to read a `--cpu-prof` profile of this mode alone. */
  windowUs: [number, number];
}

/** Microseconds of the monotonic clock, the clock of V8's CPU profiles. */
function monotonicUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

/** Runs `work` and reports this process's CPU and RMS's over it, per message. */
async function measure(mode: string, messages: number, rmsPid: number, work: () => Promise<void>): Promise<Figures> {
  const rmsBefore = cpuSecondsOf(rmsPid) ?? 0;
  const startedUs = monotonicUs();
  const before = process.cpuUsage();
  await work();
  const used = process.cpuUsage(before);
  const endedUs = monotonicUs();
  const seconds = (endedUs - startedUs) / 1e6;
  const rmsSeconds = (cpuSecondsOf(rmsPid) ?? 0) - rmsBefore;
  const per = (us: number) => Number((us / 1000 / messages).toFixed(4));
  return {
    mode,
    messages,
    seconds: Number(seconds.toFixed(2)),
    clientMsPerMessage: per(used.user + used.system),
    clientUserMsPerMessage: per(used.user),
    clientSystemMsPerMessage: per(used.system),
    rmsMsPerMessage: Number(((rmsSeconds * 1000) / messages).toFixed(4)),
    windowUs: [startedUs, endedUs],
  };
}

/** Runs `count` tasks with `loops` of them at a time. */
async function inLoops(count: number, loops: number, task: () => Promise<void>): Promise<void> {
  let started = 0;
  await Promise.all(
    Array.from({ length: Math.min(loops, count) }, async () => {
      while (started < count) {
        started += 1;
        await task();
      }
    }),
  );
}

async function main(): Promise<void> {
  const storeUrl = new URL(settings.postgresUrl);
  storeUrl.searchParams.set('schema', schema);
  const logDir = join('/tmp', `rms-client-cpu-${runId}`);
  mkdirSync(logDir, { recursive: true });
  const rms = await RmsProcess.start({
    cwd: REPO,
    logFile: join(logDir, 'rms.log'),
    env: {
      STORE_URL: storeUrl.toString(),
      RABBITMQ_URL: settings.amqpUrl,
      REDIS_URL: settings.redisUrl,
      ZK_CONNECT: settings.zkConnect,
      RMS_ZK_ROOT: zkRoot,
      RMS_APPS: JSON.stringify([
        { app: 'bench-producer', token: tokens.producer, roles: ['producer'], checkUrl: 'http://127.0.0.1:9/rms/check', secret: `bench-check-secret-${runId}` },
        { app: 'bench-consumer', token: tokens.consumer, roles: ['consumer'], subscriptions: [{ topic: 'bench.*', group }] },
      ]),
      RMS_ACK_TIMEOUT_MS: '60000',
      RMS_CHECK_DELAY_MS: '60000',
      RMS_RETRY_FIRST_DELAY_MS: '60000',
      RMS_SHUTDOWN_GRACE_MS: '3000',
    },
  });
  const results: Figures[] = [];
  let published = 0;
  try {
    const payload = benchPayload();
    if (settings.modes.includes('http')) {
      const client = new RmsHttpClient({ url: rms.url, token: tokens.producer });
      const pair = async () => {
        const message = await client.prepare(topic, payload);
        await client.confirm(message.id);
      };
      await inLoops(settings.warmup, settings.concurrency, pair);
      results.push(await measure('http', settings.messages, rms.pid, () => inLoops(settings.messages, settings.concurrency, pair)));
      published += settings.warmup + settings.messages;
      await client.close();
    }
    if (settings.modes.includes('sdk')) {
      const producer = createProducer({ url: rms.url, token: tokens.producer, ...(settings.maxBatch !== undefined && { batching: { maxBatch: settings.maxBatch } }) });
      const send = async () => {
        const sent = await producer.send(topic, payload, async () => undefined);
        if (!sent.confirmed) throw new Error('a confirm failed');
      };
      await inLoops(settings.warmup, settings.producers, send);
      results.push(await measure('sdk', settings.sdkMessages, rms.pid, () => inLoops(settings.sdkMessages, settings.producers, send)));
      published += settings.warmup + settings.sdkMessages;
      await producer.close();
    }
    if (settings.modes.includes('consume') && published > 0) {
      let handled = 0;
      let done: () => void = () => undefined;
      const all = new Promise<void>((resolve) => (done = resolve));
      let acked = 0;
      let ackRequests = 0;
      results.push(
        await measure('consume', published, rms.pid, async () => {
          const subscription = await subscribe(
            { topic, group },
            async () => {
              handled += 1;
            },
            { rms: { url: rms.url, token: tokens.consumer }, amqpUrl: settings.amqpUrl, concurrency: settings.consumerConcurrency, heartbeatIntervalMs: 0, ...(settings.ackBatchSize !== undefined && { ackBatchSize: settings.ackBatchSize }), logger: { warn: () => undefined, error: () => undefined, info: () => undefined } },
          );
          const poll = setInterval(() => {
            acked = subscription.stats().acked;
            if (acked >= published) done();
          }, 20);
          await all;
          clearInterval(poll);
          await subscription.close();
          ackRequests = subscription.stats().ackRequests;
        }),
      );
      if (handled < published) process.stderr.write(`consume: handled ${handled} of ${published}\n`);
      process.stderr.write(`consume: ${(published / Math.max(1, ackRequests)).toFixed(1)} acks per POST /v1/acks\n`);
    }
  } finally {
    await rms.stop();
    const problems = await cleanUp({ postgres: settings.postgresUrl, amqp: settings.amqpUrl, redis: settings.redisUrl, zk: settings.zkConnect }, leftovers);
    for (const problem of problems) process.stderr.write(`clean-up: ${problem}\n`);
  }
  process.stdout.write(`${JSON.stringify({ runId, settings: { ...settings, postgresUrl: undefined }, results })}\n`);
  for (const figures of results) {
    process.stderr.write(
      `${figures.mode.padEnd(8)} ${String(figures.messages).padStart(6)} msgs  client ${figures.clientMsPerMessage.toFixed(3)} ms/msg (user ${figures.clientUserMsPerMessage.toFixed(3)}, sys ${figures.clientSystemMsPerMessage.toFixed(3)})  RMS ${figures.rmsMsPerMessage.toFixed(3)} ms/msg  ${figures.seconds} s\n`,
    );
  }
}

await main();
