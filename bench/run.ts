/**
 * `npm run bench`: RMS against raw RabbitMQ, measured side by side in one run on this box.
 *
 * Phases, each bounded in time and on topics and schemas of the run's own. The flow
 * phases (1 to 6) run `BENCH_RUNS` times (or `--runs N`), and the figures reported are the
 * median of each over the runs, ratios formed within each run:
 * 1. **raw**: amqplib alone (persistent, publisher confirms, manual acks);
 * 2. **reliable**: SDK producers (prepare → confirm) → RMS → RabbitMQ → SDK consumer (ack to RMS);
 * 3. **degraded**: the same with the degrade flag forced on in ZooKeeper, so RMS publishes
 *    to the Redis lists and the consumer pops them;
 * 4. **per-message**: `GET /healthz` back to back over an `undici` pool of 64 connections,
 *    then on the same RMS and pool a plain HTTP prepare and confirm per message (the SDK
 *    consumer acks in batches): the path of every client that is not the SDK;
 * 5. **three-groups**: the reliable flow with three consumer groups on the topic;
 * 6. **two-rms**: the reliable flow against two RMS processes on one store, the producers
 *    and consumers spread over both;
 * 7. **steady-1000**: the reliable flow at a steady 1,000 messages/s, for latency; and
 *    **steady-<n>** at half the reliable phase's rate, the latency when nothing queues;
 * 8. **overload**: the per-message flow offered twice the per-message phase's rate for 15 s,
 *    open loop: RMS's peak RSS, the admitted requests' latency, the 503s;
 * 9. **profiled**: the reliable flow again with RMS under `--cpu-prof`, to say what
 *    dominates its CPU (a separate run, so the profiler's overhead stays out of phase 2);
 * 10. **due-scan**: one claim pass with 1,000 due messages among 10,000 and 1,000,000;
 * 11. **delayed-scan**: the redelivery loop's claim pass with 1,000 due among 10,000, then
 *    with 100,000 delayed messages (waiting for their `deliverAt`) stored besides.
 *
 * RMS runs as a child process (its CPU and memory are its own); producers and consumer run
 * here. Every load phase reports CPU per delivered message by process and WAL work per
 * message. Prints a table and writes docs/bench/results.json, throughput.svg and summary.md.
 *
 * Settings (environment): BENCH_POSTGRES_URL (or TEST_POSTGRES_URL), RABBITMQ_URL,
 * REDIS_URL, ZK_CONNECT; BENCH_LOAD_MS, BENCH_WARMUP_MS, BENCH_PRODUCERS,
 * BENCH_CONSUMER_CONCURRENCY, BENCH_GROUPS (consumer groups on the topic outside the
 * three-groups phase, 1 or more; each message is delivered to, handled by and acked by
 * every group), BENCH_PHASES (comma-separated subset of
 * raw,reliable,degraded,per-message,three-groups,two-rms,steady,overload,profiled,due-scan,delayed-scan),
 * BENCH_RUNS (1), BENCH_HTTP_CONNECTIONS (64), BENCH_HEALTHZ_MS (10000), BENCH_OVERLOAD_MS
 * (15000), BENCH_OVERLOAD_RATE (twice the per-message rate), BENCH_OVERLOAD_CONNECTIONS
 * (1000), BENCH_OVERLOAD_P99_MS (1000), BENCH_DUE_SIZES (e.g. 10000,1000000), BENCH_DELAYED (100000).
 */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, release, totalmem, type } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Pool } from 'undici';
import { ZooKeeperDegradeSwitch, fallbackStreamName, groupQueueName } from '@rms/client-sdk';
import { summarizeCpuProfile } from './cpu-profile.js';
import { runDelayedScan, runDueScan } from './due-scan.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { cleanUp, installedVersion, serverVersions, type RunLeftovers } from './environment.js';
import { nowMs } from './latency.js';
import { efficiencyOf, withRatios } from './efficiency.js';
import { perMessagePool, RequestLedger, runHealthzBaseline } from './per-message-flow.js';
import { cpuBreakdown, cpuSnapshot } from './proc-usage.js';
import { runRawPhase } from './raw-amqp.js';
import { formatTable, renderChart, renderSummary, type BenchResults } from './report.js';
import { RmsProcess } from './rms-process.js';
import { runRmsPhase, type Load, type ProducerClient } from './rms-flow.js';
import { medianPhases, runsSetting } from './runs.js';
import { evaluateTargets } from './targets.js';
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

const ALL_PHASES = ['raw', 'reliable', 'degraded', 'per-message', 'three-groups', 'two-rms', 'steady', 'overload', 'profiled', 'due-scan', 'delayed-scan'] as const;
type PhaseName = (typeof ALL_PHASES)[number];

/** `BENCH_PHASES`, checked: a misspelt phase would otherwise be skipped without a word. */
function phasesSetting(value: string | undefined): Set<PhaseName> {
  const names = (value ?? ALL_PHASES.join(',')).split(',').map((phase) => phase.trim()).filter((phase) => phase !== '');
  const unknown = names.filter((phase) => !(ALL_PHASES as readonly string[]).includes(phase));
  if (unknown.length > 0) throw new Error(`BENCH_PHASES: unknown phase(s) ${unknown.join(', ')}; known: ${ALL_PHASES.join(', ')}`);
  return new Set(names as PhaseName[]);
}

/** The consumer groups `bench`, `group-2`, … `group-<count>`: the figures are those of `bench`. */
function groupNames(count: number): string[] {
  return Array.from({ length: count }, (_, index) => (index === 0 ? 'bench' : `group-${index + 1}`));
}

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
  /** Consumer groups subscribed to the bench topic (outside the three-groups phase): `bench`, then `group-2`, …; the figures are those of `bench`. */
  groups: groupNames(numberSetting('BENCH_GROUPS', 1)),
  phases: phasesSetting(process.env['BENCH_PHASES']),
  /** Times the flow phases run; the figures reported are the medians. */
  runs: runsSetting(process.argv.slice(2), process.env['BENCH_RUNS']),
  /** Keep-alive connections of the per-message flow's undici pool (and its producers). */
  httpConnections: numberSetting('BENCH_HTTP_CONNECTIONS', 64),
  /** The `GET /healthz` baseline of the per-message phase. */
  healthzMs: numberSetting('BENCH_HEALTHZ_MS', 10_000),
  overloadMs: numberSetting('BENCH_OVERLOAD_MS', 15_000),
  /** The overload's offered rate; else twice the per-message phase's rate (2,000 if it did not run). */
  overloadRate: process.env['BENCH_OVERLOAD_RATE'] ? numberSetting('BENCH_OVERLOAD_RATE', 2000) : undefined,
  /** Connections of the overload's client, and messages unanswered at most: enough that RMS, not the client, holds the queue. */
  overloadConnections: numberSetting('BENCH_OVERLOAD_CONNECTIONS', 1000),
  /** Largest p99 of admitted requests under overload the targets call bounded. */
  overloadP99Ms: numberSetting('BENCH_OVERLOAD_P99_MS', 1000),
};

/** Short, lowercase, unique enough: it names topics, schemas and the ZooKeeper root. */
const runId = `${Date.now().toString(36)}${Math.floor(Math.random() * 36 ** 3).toString(36).padStart(3, '0')}`;
const zkRoot = `/rms-bench/${runId}`;
const urls = { postgres: settings.postgresUrl, amqp: settings.amqpUrl, redis: settings.redisUrl, zk: settings.zkConnect };
const tokens = { producer: `bench-producer-token-${runId}`, consumer: `bench-consumer-token-${runId}` };
const leftovers: RunLeftovers = { queues: [], schemas: [], redisTopics: [], zkNodes: [`${zkRoot}/degrade`, zkRoot, '/rms-bench'] };
const logDir = join('/tmp', `rms-bench-${runId}`);
const profileDir = join('/tmp', 'rms-prof', runId);
/** The RMS processes running now, killed on a failure or Ctrl-C. */
const currentRms = new Set<RmsProcess>();

function log(message: string): void {
  process.stderr.write(`[bench ${((nowMs() - benchStartedAt) / 1000).toFixed(1).padStart(5)} s] ${message}\n`);
}
const benchStartedAt = nowMs();

/** The environment of one RMS child: its own schema, the run's ZooKeeper root, schedules that stay out of the way. */
function rmsEnv(schema: string, groups: readonly string[]): Record<string, string> {
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
      { app: 'bench-consumer', token: tokens.consumer, roles: ['consumer'], subscriptions: groups.map((group) => ({ topic: 'bench.*', group })) },
    ]),
    // No check-back or redelivery inside a phase: every message should go through once.
    RMS_ACK_TIMEOUT_MS: '60000',
    RMS_CHECK_DELAY_MS: '60000',
    RMS_RETRY_FIRST_DELAY_MS: '60000',
    RMS_SHUTDOWN_GRACE_MS: '3000',
  };
}

/** What sets one RMS phase apart. */
interface RmsPhaseExtra {
  fallback?: { degradeSwitch: ZooKeeperDegradeSwitch; workers: number; popBatch: number };
  cpuProfile?: boolean;
  /** The consumer groups on the topic. @defaultValue settings.groups */
  groups?: readonly string[];
  /** RMS processes on the phase's store, started one after the other. @defaultValue 1 */
  processes?: number;
  /**
   * Producers on the plain HTTP client (a request pair per message) instead of the SDK: an
   * undici pool of `connections` per RMS process; with `healthz`, that same pool first
   * measures `GET /healthz` on the first process.
   */
  perMessage?: { connections: number; healthz: boolean };
  /** Which run of the flow phases (names the schema and topic apart). @defaultValue 1 */
  run?: number;
}

/** Starts RMS on a schema of its own (one or more processes), runs one phase against it, stops it. */
async function rmsPhase(phase: string, description: string, load: Load, durationMs: number, extra: RmsPhaseExtra = {}): Promise<PhaseResult & { windowUs: [number, number] }> {
  const key = `${phase}${(extra.run ?? 1) > 1 ? `-run${extra.run}` : ''}`;
  const schema = `bench_${runId}_${key.replace(/[^a-z0-9]/g, '_')}`;
  const topic = `bench.${runId}.${key}`;
  const groups = extra.groups ?? settings.groups;
  leftovers.schemas.push(schema);
  for (const group of groups) {
    leftovers.queues.push(groupQueueName(topic, group));
    leftovers.redisTopics.push(fallbackStreamName(topic, group));
  }
  const started: RmsProcess[] = [];
  const pools: Pool[] = [];
  try {
    for (let index = 0; index < (extra.processes ?? 1); index++) {
      const startedAt = nowMs();
      // One after the other: the first creates the schema (migrations), the others find it.
      const rms = await RmsProcess.start({
        cwd: REPO,
        env: rmsEnv(schema, groups),
        logFile: join(logDir, `rms-${key}${index > 0 ? `-${index + 1}` : ''}.log`),
        ...(extra.cpuProfile && { cpuProfileDir: profileDir }),
      });
      started.push(rms);
      currentRms.add(rms);
      log(`${key}: RMS pid ${rms.pid} ready in ${((nowMs() - startedAt) / 1000).toFixed(1)} s`);
    }
    const first = started[0] as RmsProcess;
    let healthz: PhaseResult['healthz'];
    let client: ProducerClient | undefined;
    if (extra.perMessage) {
      const { connections } = extra.perMessage;
      pools.push(...started.map((rms) => perMessagePool(rms.url, connections)));
      client = { kind: 'per-message', pools, ledger: new RequestLedger() };
      if (extra.perMessage.healthz) {
        log(`${key}: GET /healthz over ${connections} connections for ${settings.healthzMs / 1000} s`);
        healthz = await runHealthzBaseline({ pool: pools[0] as Pool, pid: first.pid, connections, warmupMs: settings.warmupMs, durationMs: settings.healthzMs });
      }
    }
    log(`${key}: loading for ${durationMs / 1000} s`);
    const result = await runRmsPhase({
      phase,
      description,
      rms: started.map((rms) => ({ url: rms.url, pid: rms.pid })),
      ...(client && { client }),
      producerToken: tokens.producer,
      consumerToken: tokens.consumer,
      amqpUrl: settings.amqpUrl,
      topic,
      payload: benchPayload(),
      load,
      warmupMs: settings.warmupMs,
      durationMs,
      consumerConcurrency: settings.consumerConcurrency,
      groups,
      ...(extra.fallback && { fallback: { ...extra.fallback, redisUrl: settings.redisUrl } }),
      drainTimeoutMs: 60_000,
      postgresUrl: settings.postgresUrl,
      breakdown: phase === 'overload',
    });
    for (const line of result.sdkLog) log(`${key}: SDK ${line}`);
    const { sdkLog: _sdkLog, ...figures } = result;
    log(`${key}: ${Math.round(figures.messagesPerSecond)} msgs/s`);
    if (figures.breakdown) log(`${key}: where the time went: ${JSON.stringify(figures.breakdown)}`);
    return { ...figures, ...(healthz && { healthz }) };
  } finally {
    for (const pool of pools) await pool.close();
    for (const rms of started) {
      const code = await rms.stop();
      currentRms.delete(rms);
      if (code !== 0) log(`${key}: RMS pid ${rms.pid} exited with code ${code}; log tail:\n${rms.logTail(10)}`);
    }
  }
}

/** A phase with its CPU and WAL per message, and without its clock window (meaningless outside this run). */
function finished(phase: PhaseResult & { windowUs?: unknown }): PhaseResult {
  const { windowUs: _windowUs, ...rest } = phase;
  return { ...rest, efficiency: efficiencyOf(rest) };
}

/** Runs the selected flow phases once; `run` numbers the run. */
async function flowPhases(run: number): Promise<PhaseResult[]> {
  const phases: PhaseResult[] = [];
  const saturate: Load = { kind: 'saturate', producers: settings.producers };
  const prefix = settings.runs > 1 ? `run ${run}/${settings.runs}: ` : '';
  if (settings.phases.has('raw')) {
    const queue = `bench.${runId}.raw${run > 1 ? `-run${run}` : ''}`;
    leftovers.queues.push(queue);
    log(`${prefix}raw: amqplib, ${settings.loadMs / 1000} s`);
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
    log(`${prefix}reliable`);
    phases.push(await rmsPhase('reliable', 'SDK prepare → confirm, RMS publishes to RabbitMQ, SDK consumer acks to RMS', saturate, settings.loadMs, { run }));
  }
  if (settings.phases.has('degraded')) {
    log(`${prefix}degraded`);
    // Forced on before RMS starts, so RMS reads it at start-up; the consumer watches it too.
    const degradeSwitch = new ZooKeeperDegradeSwitch({ connect: settings.zkConnect, root: zkRoot });
    await degradeSwitch.start();
    try {
      await degradeSwitch.setMode('on', 'npm run bench: degraded phase', `bench:${runId}`);
      phases.push(
        await rmsPhase('degraded', 'the reliable flow with the degrade flag forced on: RMS publishes to the Redis lists, the consumer pops them', saturate, settings.loadMs, {
          // As many entries in hand as the RabbitMQ consumer's prefetch: workers × popBatch.
          fallback: { degradeSwitch, workers: Math.max(1, Math.round(settings.consumerConcurrency / REDIS_POP_BATCH)), popBatch: REDIS_POP_BATCH },
          run,
        }),
      );
      await degradeSwitch.setMode('auto', 'npm run bench: degraded phase over', `bench:${runId}`);
    } finally {
      await degradeSwitch.close();
    }
  }
  if (settings.phases.has('per-message')) {
    log(`${prefix}per-message`);
    phases.push(
      await rmsPhase(
        'per-message',
        `plain HTTP over an undici pool of ${settings.httpConnections} connections: POST /v1/messages then POST /v1/messages/:id/confirm per message; the SDK consumer acks in batches`,
        { kind: 'saturate', producers: settings.httpConnections },
        settings.loadMs,
        { perMessage: { connections: settings.httpConnections, healthz: true }, run },
      ),
    );
  }
  if (settings.phases.has('three-groups')) {
    log(`${prefix}three-groups`);
    phases.push(
      await rmsPhase('three-groups', 'the reliable flow with three consumer groups on the topic: every message delivered to, handled and acked by each', saturate, settings.loadMs, {
        groups: groupNames(3),
        run,
      }),
    );
  }
  if (settings.phases.has('two-rms')) {
    log(`${prefix}two-rms`);
    phases.push(
      await rmsPhase('two-rms', 'the reliable flow against two RMS processes on one store: producers and consumers spread over both', saturate, settings.loadMs, {
        processes: 2,
        run,
      }),
    );
  }
  return withRatios(phases.map(finished));
}

async function main(): Promise<void> {
  mkdirSync(logDir, { recursive: true });
  mkdirSync(OUTPUT_DIR, { recursive: true });
  log(`run ${runId}: phases ${[...settings.phases].join(', ')}${settings.runs > 1 ? `; flow phases ${settings.runs} times` : ''}; RMS logs in ${logDir}`);
  const { versions: serverVersionsFound, postgresSettings } = await serverVersions(urls);
  const versions: Record<string, string> = {
    node: process.version,
    ...Object.fromEntries(['amqplib', 'ioredis', 'pg', 'express', 'node-zookeeper-client', 'undici', 'tsx', 'typescript'].map((name) => [name, installedVersion(REPO, name)])),
    ...serverVersionsFound,
  };
  // Everything here shares two cores: a test run or anything else busy skews every figure.
  const idleBefore = cpuSnapshot();
  await sleep(2000);
  const busyBeforeRunPercent = cpuBreakdown(idleBefore, cpuSnapshot(), { bench: process.pid }, 2).machineBusyPercent;
  if (busyBeforeRunPercent > 15) log(`warning: the machine is ${busyBeforeRunPercent.toFixed(0)} % busy before the run; the figures will be low`);
  const results: BenchResults = {
    runId,
    date: new Date().toISOString(),
    durationSeconds: 0,
    machine: { cores: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', memoryGb: Math.round(totalmem() / 2 ** 30), os: `${type()} ${release()}`, busyBeforeRunPercent },
    versions,
    postgresSettings,
    phases: [],
    targets: [],
  };
  const saturate: Load = { kind: 'saturate', producers: settings.producers };

  const runs: PhaseResult[][] = [];
  for (let run = 1; run <= settings.runs; run++) runs.push(await flowPhases(run));
  const phases: PhaseResult[] = medianPhases(runs);
  if (settings.runs > 1) results.runs = runs;
  if (settings.phases.has('steady')) {
    phases.push(
      finished(
        await rmsPhase('steady-1000', `the reliable flow at a steady ${settings.steadyRate} msgs/s`, { kind: 'steady', ratePerSecond: settings.steadyRate, maxInFlight: 1000 }, settings.steadyMs),
      ),
    );
  }
  const reliable = phases.find((phase) => phase.phase === 'reliable');
  if (settings.phases.has('steady') && reliable) {
    // 1,000/s may be past what the box sustains; latency at half the measured capacity
    // shows what the path itself costs when nothing queues.
    const rate = Math.max(10, Math.round(reliable.messagesPerSecond / 20) * 10);
    phases.push(
      finished(
        await rmsPhase(`steady-${rate}`, `the reliable flow at a steady ${rate} msgs/s (half the reliable phase's rate)`, { kind: 'steady', ratePerSecond: rate, maxInFlight: 1000 }, settings.steadyMs),
      ),
    );
  }
  if (settings.phases.has('overload')) {
    const perMessage = phases.find((phase) => phase.phase === 'per-message');
    const rate = settings.overloadRate ?? (perMessage ? Math.max(10, Math.round((2 * perMessage.messagesPerSecond) / 10) * 10) : 2000);
    log(`overload: the per-message flow offered ${rate} msgs/s for ${settings.overloadMs / 1000} s, at most ${settings.overloadConnections} unanswered`);
    const overload = await rmsPhase(
      'overload',
      `the per-message flow offered ${rate} msgs/s (twice the per-message phase's rate), open loop, at most ${settings.overloadConnections} messages unanswered over as many connections`,
      { kind: 'steady', ratePerSecond: rate, maxInFlight: settings.overloadConnections },
      settings.overloadMs,
      { perMessage: { connections: settings.overloadConnections, healthz: false } },
    );
    phases.push({ ...finished(overload), offeredPerSecond: rate });
  }
  if (settings.phases.has('profiled')) {
    rmSync(profileDir, { recursive: true, force: true });
    const profiled = await rmsPhase('profiled', 'the reliable flow with RMS under --cpu-prof (overhead included; not a target figure)', saturate, settings.profileMs, { cpuProfile: true });
    phases.push(finished(profiled));
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

  results.phases = phases;
  results.targets = evaluateTargets(results, { steadyRate: settings.steadyRate, overloadP99Ms: settings.overloadP99Ms });
  results.durationSeconds = (nowMs() - benchStartedAt) / 1000;
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
    for (const rms of currentRms) await rms.kill();
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
