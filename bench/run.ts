/**
 * `npm run bench`: RMS against raw RabbitMQ, measured side by side in one run on this box.
 *
 * Phases, each bounded in time and on topics and schemas of the run's own:
 * 1. **raw**: amqplib alone (persistent, publisher confirms, manual acks);
 * 2. **reliable**: SDK producers (prepare → confirm) → RMS → RabbitMQ → SDK consumer (ack to RMS);
 * 3. **degraded**: the same with the degrade flag forced on in ZooKeeper, so RMS publishes
 *    to the Redis lists and the consumer pops them;
 * 4. **steady-1000**: the reliable flow at a steady 1,000 messages/s, for latency; and
 *    **steady-<n>** at half the reliable phase's rate, the latency when nothing queues;
 * 5. **profiled**: the reliable flow again with RMS under `--cpu-prof`, to say what
 *    dominates its CPU (a separate run, so the profiler's overhead stays out of phase 2);
 * 6. **due-scan**: one claim pass with 1,000 due messages among 10,000 and 1,000,000;
 * 7. **delayed-scan**: the redelivery loop's claim pass with 1,000 due among 10,000, then
 *    with 100,000 delayed messages (waiting for their `deliverAt`) stored besides.
 *
 * RMS runs as a child process (its CPU and memory are its own); producers and consumer run
 * here. Prints a table and writes docs/bench/results.json, throughput.svg and summary.md.
 *
 * Settings (environment): BENCH_POSTGRES_URL (or TEST_POSTGRES_URL), RABBITMQ_URL,
 * REDIS_URL, ZK_CONNECT; BENCH_LOAD_MS, BENCH_WARMUP_MS, BENCH_PRODUCERS,
 * BENCH_CONSUMER_CONCURRENCY, BENCH_GROUPS (consumer groups on the topic, 1 or more; each
 * message is delivered to, handled by and acked by every group), BENCH_PHASES (comma-separated subset of
 * raw,reliable,degraded,steady,profiled,due-scan,delayed-scan), BENCH_DUE_SIZES (e.g.
 * 10000,1000000), BENCH_DELAYED (100000).
 */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, release, totalmem, type } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ZooKeeperDegradeSwitch, fallbackStreamName, groupQueueName } from '@rms/client-sdk';
import { summarizeCpuProfile } from './cpu-profile.js';
import { runDelayedScan, runDueScan } from './due-scan.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { cleanUp, installedVersion, serverVersions, type RunLeftovers } from './environment.js';
import { nowMs } from './latency.js';
import { cpuBreakdown, cpuSnapshot } from './proc-usage.js';
import { runRawPhase } from './raw-amqp.js';
import { formatTable, renderChart, renderSummary, type BenchResults, type TargetCheck } from './report.js';
import { RmsProcess } from './rms-process.js';
import { runRmsPhase, type Load } from './rms-flow.js';
import { benchPayload, type PhaseResult } from './workload.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const OUTPUT_DIR = join(REPO, 'docs', 'bench');

function numberSetting(name: string, fallback: number): number {
  const value = process.env[name];
  if (value === undefined || value === '') return fallback;
  const parsed = Number(value);
  if (!Number.isFinite(parsed) || parsed <= 0) throw new Error(`${name} must be a positive number, got "${value}"`);
  return parsed;
}

/** Entries each Redis worker of the degraded phase pops at once. */
const REDIS_POP_BATCH = 16;

const ALL_PHASES = ['raw', 'reliable', 'degraded', 'steady', 'profiled', 'due-scan', 'delayed-scan'] as const;
type PhaseName = (typeof ALL_PHASES)[number];

const settings = {
  postgresUrl: process.env['BENCH_POSTGRES_URL'] ?? process.env['TEST_POSTGRES_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test',
  amqpUrl: process.env['RABBITMQ_URL'] ?? 'amqp://guest:guest@127.0.0.1:5672',
  redisUrl: process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379',
  zkConnect: process.env['ZK_CONNECT'] ?? '127.0.0.1:2181',
  /** Measured load of the raw, reliable and degraded phases. */
  loadMs: numberSetting('BENCH_LOAD_MS', 20_000),
  /** The steady 1,000/s latency run. */
  steadyMs: numberSetting('BENCH_STEADY_MS', 15_000),
  /** The profiled run. */
  profileMs: numberSetting('BENCH_PROFILE_MS', 10_000),
  warmupMs: numberSetting('BENCH_WARMUP_MS', 2_000),
  producers: numberSetting('BENCH_PRODUCERS', 256),
  consumerConcurrency: numberSetting('BENCH_CONSUMER_CONCURRENCY', 512),
  rawConfirmWindow: numberSetting('BENCH_RAW_WINDOW', 256),
  rawPrefetch: numberSetting('BENCH_RAW_PREFETCH', 256),
  steadyRate: 1000,
  dueSizes: (process.env['BENCH_DUE_SIZES'] ?? '10000,1000000').split(',').map(Number),
  /** Delayed messages stored for the delayed-scan. */
  delayed: numberSetting('BENCH_DELAYED', 100_000),
  /** Consumer groups subscribed to the bench topic: `bench`, then `group-2`, …; the figures are those of `bench`. */
  groups: Array.from({ length: numberSetting('BENCH_GROUPS', 1) }, (_, index) => (index === 0 ? 'bench' : `group-${index + 1}`)),
  phases: new Set<PhaseName>(
    (process.env['BENCH_PHASES'] ?? ALL_PHASES.join(','))
      .split(',')
      .map((phase) => phase.trim())
      .filter((phase): phase is PhaseName => (ALL_PHASES as readonly string[]).includes(phase)),
  ),
};

/** Short, lowercase, unique enough: it names topics, schemas and the ZooKeeper root. */
const runId = `${Date.now().toString(36)}${Math.floor(Math.random() * 36 ** 3).toString(36).padStart(3, '0')}`;
const zkRoot = `/rms-bench/${runId}`;
const urls = { postgres: settings.postgresUrl, amqp: settings.amqpUrl, redis: settings.redisUrl, zk: settings.zkConnect };
const tokens = { producer: `bench-producer-token-${runId}`, consumer: `bench-consumer-token-${runId}` };
const leftovers: RunLeftovers = { queues: [], schemas: [], redisTopics: [], zkNodes: [`${zkRoot}/degrade`, zkRoot, '/rms-bench'] };
const logDir = join('/tmp', `rms-bench-${runId}`);
const profileDir = join('/tmp', 'rms-prof', runId);
let currentRms: RmsProcess | undefined;

function log(message: string): void {
  process.stderr.write(`[bench ${((nowMs() - benchStartedAt) / 1000).toFixed(1).padStart(5)} s] ${message}\n`);
}
const benchStartedAt = nowMs();

/** The environment of one RMS child: its own schema, the run's ZooKeeper root, schedules that stay out of the way. */
function rmsEnv(schema: string): Record<string, string> {
  const storeUrl = new URL(settings.postgresUrl);
  storeUrl.searchParams.set('schema', schema);
  return {
    STORE_URL: storeUrl.toString(),
    RABBITMQ_URL: settings.amqpUrl,
    REDIS_URL: settings.redisUrl,
    ZK_CONNECT: settings.zkConnect,
    RMS_ZK_ROOT: zkRoot,
    LOG_LEVEL: 'warn',
    RMS_APPS: JSON.stringify([
      // RMS requires a check URL of every producer; with the first check-back a minute
      // away it is never called during a phase.
      { app: 'bench-producer', token: tokens.producer, roles: ['producer'], checkUrl: 'http://127.0.0.1:9/rms/check', secret: `bench-check-secret-${runId}` },
      { app: 'bench-consumer', token: tokens.consumer, roles: ['consumer'], subscriptions: settings.groups.map((group) => ({ topic: 'bench.*', group })) },
    ]),
    // No check-back or redelivery inside a phase: every message should go through once.
    RMS_ACK_TIMEOUT_MS: '60000',
    RMS_CHECK_DELAY_MS: '60000',
    RMS_RETRY_FIRST_DELAY_MS: '60000',
    RMS_SHUTDOWN_GRACE_MS: '3000',
  };
}

/** Starts RMS on a schema of its own, runs one SDK phase against it, stops it. */
async function rmsPhase(
  phase: string,
  description: string,
  load: Load,
  durationMs: number,
  extra: { fallback?: { degradeSwitch: ZooKeeperDegradeSwitch; workers: number; popBatch: number }; cpuProfile?: boolean } = {},
): Promise<PhaseResult & { windowUs: [number, number] }> {
  const schema = `bench_${runId}_${phase.replace(/[^a-z0-9]/g, '_')}`;
  const topic = `bench.${runId}.${phase}`;
  leftovers.schemas.push(schema);
  for (const group of settings.groups) {
    leftovers.queues.push(groupQueueName(topic, group));
    leftovers.redisTopics.push(fallbackStreamName(topic, group));
  }
  const startedAt = nowMs();
  const rms = await RmsProcess.start({
    cwd: REPO,
    env: rmsEnv(schema),
    logFile: join(logDir, `rms-${phase}.log`),
    ...(extra.cpuProfile && { cpuProfileDir: profileDir }),
  });
  currentRms = rms;
  log(`${phase}: RMS pid ${rms.pid} ready in ${((nowMs() - startedAt) / 1000).toFixed(1)} s; loading for ${durationMs / 1000} s`);
  try {
    const result = await runRmsPhase({
      phase,
      description,
      rms: { url: rms.url, pid: rms.pid },
      producerToken: tokens.producer,
      consumerToken: tokens.consumer,
      amqpUrl: settings.amqpUrl,
      topic,
      payload: benchPayload(),
      load,
      warmupMs: settings.warmupMs,
      durationMs,
      consumerConcurrency: settings.consumerConcurrency,
      groups: settings.groups,
      ...(extra.fallback && { fallback: { ...extra.fallback, redisUrl: settings.redisUrl } }),
      drainTimeoutMs: 60_000,
      postgresUrl: settings.postgresUrl,
    });
    for (const line of result.sdkLog) log(`${phase}: SDK ${line}`);
    const { sdkLog: _sdkLog, ...figures } = result;
    return figures;
  } finally {
    const code = await rms.stop();
    currentRms = undefined;
    if (code !== 0) log(`${phase}: RMS exited with code ${code}; log tail:\n${rms.logTail(10)}`);
  }
}

function targets(results: BenchResults): TargetCheck[] {
  const by = (name: string) => results.phases.find((phase) => phase.phase === name);
  const raw = by('raw');
  const reliable = by('reliable');
  const degraded = by('degraded');
  const steady = by('steady-1000');
  const checks: TargetCheck[] = [];
  if (reliable) {
    const ratio = raw ? reliable.messagesPerSecond / raw.messagesPerSecond : Number.NaN;
    checks.push({
      target: 'reliable flow ≥ 5,000 msgs/s and ≥ 0.25 × raw',
      measured: `${Math.round(reliable.messagesPerSecond)} msgs/s, ${ratio.toFixed(3)} × raw (${raw ? Math.round(raw.messagesPerSecond) : '?'} msgs/s)`,
      met: reliable.messagesPerSecond >= 5000 && ratio >= 0.25,
    });
  }
  if (steady) {
    checks.push({
      target: 'p99 confirm → handler < 25 ms at a steady 1,000 msgs/s',
      measured: `p99 ${steady.latency.p99.toFixed(1)} ms at ${Math.round(steady.messagesPerSecond)} msgs/s achieved`,
      met: steady.latency.p99 < 25 && steady.messagesPerSecond >= 0.95 * settings.steadyRate,
    });
  }
  if (reliable && degraded) {
    checks.push({
      target: 'degraded ≥ normal',
      measured: `${Math.round(degraded.messagesPerSecond)} vs ${Math.round(reliable.messagesPerSecond)} msgs/s (${(degraded.messagesPerSecond / reliable.messagesPerSecond).toFixed(2)} ×)`,
      met: degraded.messagesPerSecond >= reliable.messagesPerSecond,
    });
  }
  if (results.dueScan && results.dueScan.points.length > 1) {
    const points = results.dueScan.points;
    checks.push({
      target: `due-scan at ${points.at(-1)?.storedMessages.toLocaleString('en-US')} within 1.5 × the ${points[0]?.storedMessages.toLocaleString('en-US')} figure`,
      measured: `${points.map((point) => `${point.medianMs.toFixed(1)} ms`).join(' vs ')}, ratio ${results.dueScan.ratio.toFixed(2)}`,
      met: results.dueScan.ratio <= 1.5,
    });
    const [smallest, largest] = [points[0], points.at(-1)];
    if (smallest?.operations && largest?.operations) {
      const ratios = (['prepare', 'confirm', 'ack'] as const).map((operation) => ({
        operation,
        ratio: (largest.operations?.[operation].p50 ?? Number.NaN) / (smallest.operations?.[operation].p50 ?? Number.NaN),
      }));
      checks.push({
        target: `prepare / confirm / ack p50 at ${largest.storedMessages.toLocaleString('en-US')} within 1.5 × the ${smallest.storedMessages.toLocaleString('en-US')} figures`,
        measured: ratios.map(({ operation, ratio }) => `${operation} ${ratio.toFixed(2)} ×`).join(', '),
        met: ratios.every(({ ratio }) => ratio <= 1.5),
      });
    }
  }
  if (results.dueScan?.retention) {
    const { messages, ms } = results.dueScan.retention;
    checks.push({
      target: 'retention drops a finished day’s partition in under 1 s',
      measured: `${ms.toFixed(0)} ms for a day of ${messages.toLocaleString('en-US')} messages`,
      met: ms < 1000,
    });
  }
  if (results.delayedScan && results.delayedScan.points.length > 1) {
    const [without, withDelayed] = results.delayedScan.points;
    checks.push({
      target: `redelivery claim pass with ${((withDelayed?.storedMessages ?? 0) - (without?.storedMessages ?? 0)).toLocaleString('en-US')} delayed messages stored within 2 × the figure without`,
      measured: `${withDelayed?.medianMs.toFixed(1)} vs ${without?.medianMs.toFixed(1)} ms, ratio ${results.delayedScan.ratio.toFixed(2)}`,
      met: results.delayedScan.ratio <= 2,
    });
  }
  const measuredRss = results.phases.filter((phase) => phase.rms && phase.phase !== 'profiled');
  if (measuredRss.length > 0) {
    const peak = Math.max(...measuredRss.map((phase) => phase.rms?.peakRssMb ?? 0));
    checks.push({
      target: 'RMS peak RSS < 250 MB',
      measured: `${peak.toFixed(0)} MB (largest of ${measuredRss.map((phase) => phase.phase).join(', ')})`,
      met: peak < 250,
    });
  }
  return checks;
}

async function main(): Promise<void> {
  mkdirSync(logDir, { recursive: true });
  mkdirSync(OUTPUT_DIR, { recursive: true });
  log(`run ${runId}: phases ${[...settings.phases].join(', ')}; RMS logs in ${logDir}`);
  const { versions: serverVersionsFound, postgresSettings } = await serverVersions(urls);
  const versions: Record<string, string> = {
    node: process.version,
    ...Object.fromEntries(['amqplib', 'ioredis', 'pg', 'express', 'node-zookeeper-client', 'tsx', 'typescript'].map((name) => [name, installedVersion(REPO, name)])),
    ...serverVersionsFound,
  };
  // Everything here shares two cores: a test run or anything else busy skews every figure.
  const idleBefore = cpuSnapshot();
  await sleep(2000);
  const busyBeforeRunPercent = cpuBreakdown(idleBefore, cpuSnapshot(), { bench: process.pid }, 2).machineBusyPercent;
  if (busyBeforeRunPercent > 15) log(`warning: the machine is ${busyBeforeRunPercent.toFixed(0)} % busy before the run; the figures will be low`);
  const phases: PhaseResult[] = [];
  const results: BenchResults = {
    runId,
    date: new Date().toISOString(),
    durationSeconds: 0,
    machine: { cores: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', memoryGb: Math.round(totalmem() / 2 ** 30), os: `${type()} ${release()}`, busyBeforeRunPercent },
    versions,
    postgresSettings,
    phases,
    targets: [],
  };
  const saturate: Load = { kind: 'saturate', producers: settings.producers };

  if (settings.phases.has('raw')) {
    const queue = `bench.${runId}.raw`;
    leftovers.queues.push(queue);
    log(`raw: amqplib, ${settings.loadMs / 1000} s`);
    phases.push(
      await runRawPhase({
        amqpUrl: settings.amqpUrl,
        queue,
        body: Buffer.from(JSON.stringify(benchPayload())),
        warmupMs: settings.warmupMs,
        durationMs: settings.loadMs,
        confirmWindow: settings.rawConfirmWindow,
        prefetch: settings.rawPrefetch,
        drainTimeoutMs: 60_000,
      }),
    );
  }
  if (settings.phases.has('reliable')) {
    phases.push(await rmsPhase('reliable', 'SDK prepare → confirm, RMS publishes to RabbitMQ, SDK consumer acks to RMS', saturate, settings.loadMs));
  }
  if (settings.phases.has('degraded')) {
    // Forced on before RMS starts, so RMS reads it at start-up; the consumer watches it too.
    const degradeSwitch = new ZooKeeperDegradeSwitch({ connect: settings.zkConnect, root: zkRoot });
    await degradeSwitch.start();
    try {
      await degradeSwitch.setMode('on', 'npm run bench: degraded phase', `bench:${runId}`);
      phases.push(
        await rmsPhase('degraded', 'the reliable flow with the degrade flag forced on: RMS publishes to the Redis lists, the consumer pops them', saturate, settings.loadMs, {
          // As many entries in hand as the RabbitMQ consumer's prefetch: workers × popBatch.
          fallback: { degradeSwitch, workers: Math.max(1, Math.round(settings.consumerConcurrency / REDIS_POP_BATCH)), popBatch: REDIS_POP_BATCH },
        }),
      );
      await degradeSwitch.setMode('auto', 'npm run bench: degraded phase over', `bench:${runId}`);
    } finally {
      await degradeSwitch.close();
    }
  }
  if (settings.phases.has('steady')) {
    phases.push(
      await rmsPhase('steady-1000', `the reliable flow at a steady ${settings.steadyRate} msgs/s`, { kind: 'steady', ratePerSecond: settings.steadyRate, maxInFlight: 1000 }, settings.steadyMs),
    );
  }
  const reliable = phases.find((phase) => phase.phase === 'reliable');
  if (settings.phases.has('steady') && reliable) {
    // 1,000/s may be past what the box sustains; latency at half the measured capacity
    // shows what the path itself costs when nothing queues.
    const rate = Math.max(10, Math.round(reliable.messagesPerSecond / 20) * 10);
    phases.push(
      await rmsPhase(`steady-${rate}`, `the reliable flow at a steady ${rate} msgs/s (half the reliable phase's rate)`, { kind: 'steady', ratePerSecond: rate, maxInFlight: 1000 }, settings.steadyMs),
    );
  }
  if (settings.phases.has('profiled')) {
    rmSync(profileDir, { recursive: true, force: true });
    const profiled = await rmsPhase('profiled', 'the reliable flow with RMS under --cpu-prof (overhead included; not a target figure)', saturate, settings.profileMs, { cpuProfile: true });
    phases.push(profiled);
    // One file per thread: CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile. Thread 0 is
    // the main thread, where RMS runs; the other is tsx's module-loader thread.
    const mainThread = readdirSync(profileDir).find((file) => /\.\d+\.0\.\d+\.cpuprofile$/.test(file));
    if (mainThread) {
      results.profile = summarizeCpuProfile(join(profileDir, mainThread), profiled.windowUs);
      if (profiled.rms) results.profile.processCpuMs = Math.round(profiled.rms.cpuSeconds * 1000);
      log(`profiled: ${join(profileDir, mainThread)} (${results.profile.busyMs} ms busy in the load window)`);
    } else log('profiled: RMS wrote no main-thread .cpuprofile');
  }
  if (settings.phases.has('due-scan')) {
    const schema = `bench_${runId}_due_scan`;
    leftovers.schemas.push(schema);
    log(`due-scan: ${settings.dueSizes.join(', ')} stored messages, 1,000 due`);
    results.dueScan = await runDueScan({ databaseUrl: settings.postgresUrl, schema, sizes: settings.dueSizes, due: 1000, passes: 5 });
  }
  if (settings.phases.has('delayed-scan')) {
    const schema = `bench_${runId}_delayed_scan`;
    leftovers.schemas.push(schema);
    log(`delayed-scan: 1,000 due among 10,000, then with ${settings.delayed.toLocaleString('en-US')} delayed messages stored`);
    results.delayedScan = await runDelayedScan({ databaseUrl: settings.postgresUrl, schema, base: 10_000, delayed: settings.delayed, due: 1000, passes: 5 });
  }

  results.targets = targets(results);
  results.durationSeconds = (nowMs() - benchStartedAt) / 1000;
  // Remove the per-phase clock windows: they mean nothing outside this run.
  results.phases = phases.map((phase) => {
    const { windowUs: _windowUs, ...rest } = phase as PhaseResult & { windowUs?: unknown };
    return rest;
  });
  writeFileSync(join(OUTPUT_DIR, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(join(OUTPUT_DIR, 'throughput.svg'), renderChart(results));
  writeFileSync(join(OUTPUT_DIR, 'summary.md'), renderSummary(results));
  process.stdout.write(`\n${formatTable(results)}\n`);
  if (results.profile) {
    const { busyMs, processCpuMs } = results.profile;
    process.stdout.write(`\nRMS CPU profile of the profiled run: ${busyMs} ms of non-idle samples, ${processCpuMs ?? '?'} ms of CPU (/proc) in the load window.\n`);
    process.stdout.write('Self time by layer (% of non-idle samples):\n');
    for (const row of results.profile.byLayer) process.stdout.write(`  ${row.percent.toFixed(1).padStart(5)} %  ${row.name}\n`);
    process.stdout.write('Self time by package (% of non-idle samples):\n');
    for (const row of results.profile.byPackage.slice(0, 10)) process.stdout.write(`  ${row.percent.toFixed(1).padStart(5)} %  ${row.name}\n`);
    process.stdout.write('Top functions by self time:\n');
    for (const row of results.profile.topFunctions.slice(0, 10)) process.stdout.write(`  ${row.percent.toFixed(1).padStart(5)} %  ${row.name}\n`);
  }
  const largest = results.dueScan?.points.at(-1);
  if (largest) {
    process.stdout.write(`\nclaimDue plan at ${largest.storedMessages.toLocaleString('en-US')} stored (first lines; all of it in docs/bench/summary.md):\n`);
    for (const line of largest.plan.slice(0, 10)) process.stdout.write(`  ${line}\n`);
  }
  process.stdout.write(`\nWrote docs/bench/results.json, throughput.svg, summary.md. The run took ${results.durationSeconds.toFixed(0)} s.\n`);
}

let cleaning: Promise<void> | undefined;
async function cleanUpOnce(): Promise<void> {
  cleaning ??= (async () => {
    await currentRms?.kill();
    const problems = await cleanUp(urls, leftovers);
    for (const problem of problems) log(`clean-up: ${problem}`);
  })();
  return cleaning;
}

process.once('SIGINT', () => {
  log('interrupted; cleaning up');
  void cleanUpOnce().finally(() => process.exit(130));
});

try {
  await main();
  await cleanUpOnce();
  process.exit(0);
} catch (error) {
  log(`failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  await cleanUpOnce();
  process.exit(1);
}
