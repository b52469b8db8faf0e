/**
 * What one message costs the store and RMS: N messages through prepare → confirm →
 * publish → ack over HTTP (one RMS child, its own schema), and per message:
 * - statements RMS sent to PostgreSQL (counted inside RMS by `pg-query-counter.mjs`; each
 *   is its own transaction, so this is also RMS's commits),
 * - rows inserted, updated and deleted in `rms_messages` and `rms_message_events` (with
 *   their partitions), from `pg_stat_user_tables` of the run's own schema (other users of
 *   the database do not show),
 * - RMS's CPU (`utime + stime` of the child).
 *
 * Throughput is not reported: on a shared 2-core box it measures the neighbours.
 *
 * Usage: `node --conditions=rms-source --import tsx bench/store-writes.ts [N]` (N: 2000).
 * Settings: BENCH_POSTGRES_URL (or TEST_POSTGRES_URL), RABBITMQ_URL, REDIS_URL, ZK_CONNECT,
 * BENCH_CONCURRENCY (16 producers in flight).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import amqp from 'amqplib';
import pg from 'pg';
import { cleanUp } from './environment.js';
import { cpuSecondsOf } from './proc-usage.js';
import { RmsProcess } from './rms-process.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const postgresUrl = process.env['BENCH_POSTGRES_URL'] ?? process.env['TEST_POSTGRES_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const amqpUrl = process.env['RABBITMQ_URL'] ?? 'amqp://guest:guest@127.0.0.1:5672';
const redisUrl = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const zkConnect = process.env['ZK_CONNECT'] ?? '127.0.0.1:2181';
const total = Number(process.argv[2] ?? 2000);
const warmup = Math.min(300, Math.ceil(total / 5));
const concurrency = Number(process.env['BENCH_CONCURRENCY'] ?? 16);
const runId = randomBytes(3).toString('hex');
const schema = `bench_writes_${runId}`;
const zkRoot = `/rms-bench-writes-${runId}`;
const topic = `bench.writes.${runId}`;
const tokens = { producer: `bench-producer-${runId}-0123456789`, consumer: `bench-consumer-${runId}-0123456789` };
const countFile = join(tmpdir(), `rms-query-count-${runId}.json`);
/** Long enough for idle PostgreSQL backends to flush their statistics (PGSTAT_IDLE_INTERVAL is 10 s). */
const SETTLE_MS = 11_000;

type TableCounters = Record<'inserted' | 'updated' | 'deleted' | 'hotUpdated', number>;

/**
 * Row counters of the run's schema, summed per table with its partitions (an UPDATE that
 * moves a row to another partition counts as a delete and an insert there).
 */
async function tableCounters(): Promise<Record<string, TableCounters>> {
  const client = new pg.Client({ connectionString: postgresUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ family: string; inserted: string; updated: string; deleted: string; hot_updated: string }>(
      `SELECT CASE WHEN relname LIKE 'rms_message_events%' THEN 'rms_message_events' WHEN relname LIKE 'rms_messages%' THEN 'rms_messages' ELSE relname END AS family,
              sum(n_tup_ins) AS inserted, sum(n_tup_upd) AS updated, sum(n_tup_del) AS deleted, sum(n_tup_hot_upd) AS hot_updated
         FROM pg_stat_user_tables WHERE schemaname = $1 GROUP BY 1`,
      [schema],
    );
    return Object.fromEntries(
      rows.map((row) => [row.family, { inserted: Number(row.inserted), updated: Number(row.updated), deleted: Number(row.deleted), hotUpdated: Number(row.hot_updated) }]),
    );
  } finally {
    await client.end();
  }
}

async function statementsSoFar(rms: RmsProcess): Promise<number> {
  rmSync(countFile, { force: true });
  process.kill(rms.pid, 'SIGUSR2');
  for (let i = 0; i < 50; i++) {
    try {
      return (JSON.parse(readFileSync(countFile, 'utf8')) as { statements: number }).statements;
    } catch {
      await sleep(20);
    }
  }
  throw new Error('RMS did not report its statement count');
}

async function call(base: string, token: string, method: string, path: string, body?: unknown): Promise<{ id: string }> {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  const answer = (await response.json()) as { id: string };
  if (response.status >= 300) throw new Error(`${method} ${path}: ${response.status} ${JSON.stringify(answer)}`);
  return answer;
}

async function main(): Promise<void> {
  const storeUrl = new URL(postgresUrl);
  storeUrl.searchParams.set('schema', schema);
  const rms = await RmsProcess.start({
    cwd: ROOT,
    logFile: join(tmpdir(), `rms-store-writes-${runId}.log`),
    env: {
      STORE_URL: storeUrl.toString(),
      RABBITMQ_URL: amqpUrl,
      REDIS_URL: redisUrl,
      ZK_CONNECT: zkConnect,
      RMS_ZK_ROOT: zkRoot,
      NODE_OPTIONS: `--import=${join(ROOT, 'bench/pg-query-counter.mjs')}`,
      RMS_QUERY_COUNT_FILE: countFile,
      RMS_APPS: JSON.stringify([
        { app: 'bench-producer', token: tokens.producer, roles: ['producer'], checkUrl: 'http://127.0.0.1:9/rms/check', secret: `bench-check-secret-${runId}` },
        { app: 'bench-consumer', token: tokens.consumer, roles: ['consumer'] },
      ]),
      // Every message goes through once: no check-back, no redelivery during the run.
      RMS_ACK_TIMEOUT_MS: '120000',
      RMS_CHECK_DELAY_MS: '120000',
      RMS_RETRY_FIRST_DELAY_MS: '120000',
      RMS_SHUTDOWN_GRACE_MS: '3000',
    },
  });
  const connection = await amqp.connect(amqpUrl);
  const channel = await connection.createChannel();
  const queue = `rms.${topic}`;
  try {
    await channel.assertQueue(queue, { durable: true });
    await channel.prefetch(64);
    let acked = 0;
    await channel.consume(queue, (delivery) => {
      if (!delivery) return;
      const id = String(delivery.properties.messageId);
      void call(rms.url, tokens.consumer, 'POST', `/v1/messages/${id}/ack`).then(
        () => {
          acked += 1;
          channel.ack(delivery);
        },
        (error: unknown) => {
          console.error(error);
          channel.nack(delivery);
        },
      );
    });
    const send = async (count: number): Promise<void> => {
      let next = 0;
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (next < count) {
            next += 1;
            const prepared = await call(rms.url, tokens.producer, 'POST', '/v1/messages', { topic, payload: { order: next, items: ['a', 'b'] } });
            await call(rms.url, tokens.producer, 'POST', `/v1/messages/${prepared.id}/confirm`);
          }
        }),
      );
    };
    const allAcked = async (count: number): Promise<void> => {
      const deadline = Date.now() + 120_000;
      while (acked < count) {
        if (Date.now() > deadline) throw new Error(`only ${acked} of ${count} acked`);
        await sleep(20);
      }
    };

    await send(warmup);
    await allAcked(warmup);
    // The history recorder's batches land, and PostgreSQL's backends, idle now, flush their
    // table statistics (a backend that flushed less than 1 s ago waits 10 s of idleness).
    await sleep(SETTLE_MS);
    const before = { tables: await tableCounters(), statements: await statementsSoFar(rms), cpu: cpuSecondsOf(rms.pid) ?? Number.NaN };
    await send(total);
    await allAcked(warmup + total);
    await sleep(1000); // the last history batch
    const cpu = (cpuSecondsOf(rms.pid) ?? Number.NaN) - before.cpu;
    const statements = (await statementsSoFar(rms)) - before.statements;
    await sleep(SETTLE_MS);
    const after = await tableCounters();
    const per = (value: number) => Math.round((value / total) * 100) / 100;
    const tables = Object.fromEntries(
      Object.entries(after).map(([table, counters]) => {
        const earlier = before.tables[table] ?? { inserted: 0, updated: 0, deleted: 0, hotUpdated: 0 };
        const delta = (key: keyof TableCounters) => per(counters[key] - earlier[key]);
        return [table, { inserted: delta('inserted'), updated: delta('updated'), deleted: delta('deleted'), hotUpdated: delta('hotUpdated') }];
      }),
    );
    const result = {
      messages: total,
      concurrency,
      perMessage: { statements: per(statements), rmsCpuMs: Math.round((cpu / total) * 1e5) / 100, tables },
    };
    console.log(JSON.stringify(result, null, 2));
  } finally {
    await connection.close().catch(() => undefined);
    await rms.stop();
    rmSync(countFile, { force: true });
    const problems = await cleanUp(
      { postgres: postgresUrl, amqp: amqpUrl, redis: redisUrl, zk: zkConnect },
      { queues: [queue], schemas: [schema], redisTopics: [topic], zkNodes: [`${zkRoot}/degrade`, zkRoot] },
    );
    for (const problem of problems) console.error(`clean-up: ${problem}`);
  }
}

await main();
