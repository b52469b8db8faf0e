/**
 * The cost of one due-message claim pass (what the check-back and redelivery loops run
 * every poll) as the table grows: 1,000 due messages among 10,000 stored, then among
 * 1,000,000. The store's partial index on (status, next_attempt_at) should make a pass
 * cost the due rows, not the table: the ratio of the two figures should be near 1.
 *
 * The rows are made with `INSERT … SELECT generate_series` into a `PostgresMessageStore`'s
 * own schema (created by its migrations, so the partitions and indexes are the real ones).
 * The other rows are what a live table mostly holds: finished messages (finished over the
 * last 7 days, so in 7 or 8 day partitions), plus a backlog of in-flight ones that are not
 * due yet (1,000 PENDING or SENDING with a next attempt in the future), the same at every
 * size. At the largest size the oldest day's partition is then dropped by the retention
 * call, timed.
 */
import pg from 'pg';
import { type JsonValue, MessageService, PostgresMessageStore } from '@rms/message-service';
import { nowMs } from './latency.js';
import { benchPayload } from './workload.js';

/** How the due-scan measurement runs. */
export interface DueScanOptions {
  /** A `postgres://` URL without a schema parameter. */
  databaseUrl: string;
  /** The schema of the run's own, dropped afterwards. */
  schema: string;
  /** Table sizes to measure at, ascending. */
  sizes: readonly number[];
  /** Due messages (PENDING, next attempt in the past). */
  due: number;
  /** Timed passes per size (the median is reported). */
  passes: number;
}

/** Latency percentiles of one single-message operation, ms. */
export interface OperationLatency {
  p50: number;
  p99: number;
}

/** The retention call that dropped the oldest finished day at the largest size. */
export interface RetentionDrop {
  /** Messages the dropped day held (PostgreSQL's estimate after ANALYZE). */
  messages: number;
  /** Wall time of `pruneFinished`, ms. */
  ms: number;
}

/** The figures at one table size. */
export interface DueScanPoint {
  storedMessages: number;
  dueMessages: number;
  /**
   * Prepare, confirm and ack of one message at a time through the use cases on this table
   * (store round trips included, no HTTP): what a growing table costs each call.
   */
  operations?: { prepare: OperationLatency; confirm: OperationLatency; ack: OperationLatency };
  /** Median wall time of `claimDue` (statement, transfer and row mapping), ms. */
  medianMs: number;
  /** Every timed pass, ms. */
  passesMs: number[];
  /** PostgreSQL's own execution time of the statement, from EXPLAIN ANALYZE, ms. */
  explainExecutionMs: number;
  /** The plan, from `EXPLAIN (ANALYZE, BUFFERS)`. */
  plan: string[];
  /** How long making the rows took, s. */
  loadSeconds: number;
}

/** The due-scan result. */
export interface DueScanResult {
  points: DueScanPoint[];
  /** Median at the largest size over the median at the smallest. */
  ratio: number;
  /** The oldest finished day dropped at the largest size (due-scan only). */
  retention?: RetentionDrop;
}

/** The topic that marks the due rows, so they can be re-armed between passes. */
const DUE_TOPIC = 'bench.due';

/** The load phases' payload, so the rows are the size of real ones. */
const PAYLOAD_SQL = JSON.stringify(benchPayload());

/** What a scan works on: a store on the run's own schema (migrated), a plain client, and the table. */
interface ScanSchema {
  store: PostgresMessageStore;
  client: pg.Client;
  /** The partitioned messages table. */
  table: string;
  /** Its partition of unfinished messages, which the claim reads. */
  activeTable: string;
}

/** Days over which the generated finished messages finished. */
const FINISHED_DAYS = 7;

/** Runs `work` on a fresh schema of the run's own, and drops the schema afterwards. */
async function withScanSchema<T>(databaseUrl: string, schema: string, work: (scan: ScanSchema) => Promise<T>): Promise<T> {
  const url = new URL(databaseUrl);
  url.searchParams.set('schema', schema);
  const store = new PostgresMessageStore({ url: url.toString(), poolSize: 2, statementTimeoutMs: 120_000 });
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await store.init();
    await store.createDayPartitions(new Date(Date.now() - (FINISHED_DAYS + 1) * 24 * 3600 * 1000), new Date());
    return await work({ store, client, table: `"${schema}".rms_messages`, activeTable: `"${schema}".rms_messages_active` });
  } finally {
    await store.close();
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => undefined);
    await client.end();
  }
}

/**
 * Rows among which the in-flight backlog is generated: the first 10,000 background rows
 * are 10 % in flight (5 % PENDING, 5 % SENDING, not due yet), every later one finished.
 * A larger table therefore holds more history, not more backlog: what the measurement
 * compares (a due index whose size followed the table would show here).
 */
const BACKLOG_ROWS = 10_000;

/**
 * Adds rows `from`..`to` of what a live table mostly holds: finished messages, and among
 * the first `BACKLOG_ROWS` in-flight ones not due yet (next attempt within the hour).
 */
async function insertBackgroundRows(client: pg.Client, table: string, from: number, to: number): Promise<void> {
  await client.query(
    `INSERT INTO ${table} (id, producer, producer_message_id, topic, payload, status, created_at, updated_at, completed_at, next_attempt_at, finished_at)
     SELECT gen_random_uuid(), 'bench', 'row-' || g, 'bench.rows', $3::json,
            CASE WHEN NOT waiting THEN 'COMPLETED' WHEN g % 20 = 0 THEN 'PENDING' ELSE 'SENDING' END,
            at, at, CASE WHEN NOT waiting THEN at END,
            CASE WHEN waiting THEN now() + interval '1 hour' + (g % 3600) * interval '1 s' END,
            CASE WHEN NOT waiting THEN at ELSE 'infinity' END
     FROM generate_series($1::int, $2::int) AS g,
          LATERAL (SELECT now() - ((g::bigint * 7919) % ($4::int * 86400)) * interval '1 s' AS at, g <= $5 AND g % 20 < 2 AS waiting) AS t`,
    [from, to, PAYLOAD_SQL, FINISHED_DAYS, BACKLOG_ROWS],
  );
  // What autovacuum would have done by the time a table is this size; without
  // statistics the planner guesses, and that would be measured instead of the index.
  await client.query(`VACUUM ANALYZE ${table}`);
}

/** Runs the measurement and drops its schema. */
export async function runDueScan(options: DueScanOptions): Promise<DueScanResult> {
  return withScanSchema(options.databaseUrl, options.schema, async ({ store, client, table, activeTable }) => {
    const points: DueScanPoint[] = [];
    let stored = 0;
    for (const size of options.sizes) {
      const loadStartedAt = nowMs();
      if (stored === 0) {
        await client.query(
          `INSERT INTO ${table} (id, producer, producer_message_id, topic, payload, status, created_at, updated_at, next_attempt_at)
           SELECT gen_random_uuid(), 'bench', 'due-' || g, $2, $3::json, 'PENDING',
                  now() - interval '10 minutes', now() - interval '10 minutes', now() - interval '1 minute' + g * interval '1 ms'
           FROM generate_series(1, $1::int) AS g`,
          [options.due, DUE_TOPIC, PAYLOAD_SQL],
        );
        stored = options.due;
      }
      await insertBackgroundRows(client, table, stored + 1, size);
      stored = size;
      const loadSeconds = (nowMs() - loadStartedAt) / 1000;

      const claims = await measureClaims(store, client, table, activeTable, 'PENDING', options.due, options.passes);
      points.push({ ...claims, operations: await measureOperations(store, OPERATION_SAMPLES), storedMessages: size, loadSeconds });
    }
    const first = points[0] as DueScanPoint;
    const last = points.at(-1) as DueScanPoint;
    return { points, ratio: last.medianMs / first.medianMs, retention: await dropOldestDay(store) };
  });
}

/** Times the retention call that drops the oldest day of generated finished messages (and nothing newer). */
async function dropOldestDay(store: PostgresMessageStore): Promise<RetentionDrop> {
  const day = 24 * 3600 * 1000;
  const oldestDayEnd = Math.ceil((Date.now() - FINISHED_DAYS * day) / day) * day;
  const startedAt = nowMs();
  const messages = await store.pruneFinished(new Date(oldestDayEnd), 1000);
  return { messages, ms: nowMs() - startedAt };
}

/** Messages prepared, confirmed and acked one at a time at each table size. */
const OPERATION_SAMPLES = 300;

function percentiles(samples: number[]): OperationLatency {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
  return { p50: at(0.5), p99: at(0.99) };
}

/** Times `samples` prepares, confirms and acks, one message at a time, through `MessageService`. */
async function measureOperations(store: PostgresMessageStore, samples: number): Promise<NonNullable<DueScanPoint['operations']>> {
  const service = new MessageService({ store, checkDelayMs: 3_600_000 });
  const caller = { app: 'bench', roles: ['producer', 'consumer', 'admin'] as ('producer' | 'consumer' | 'admin')[] };
  const timings = { prepare: [] as number[], confirm: [] as number[], ack: [] as number[] };
  const run = Date.now().toString(36);
  for (let i = 0; i < samples; i++) {
    let startedAt = nowMs();
    const { message } = await service.prepare(caller, { topic: 'bench.ops', payload: benchPayload() as JsonValue, messageId: `ops-${run}-${i}` });
    timings.prepare.push(nowMs() - startedAt);
    startedAt = nowMs();
    await service.confirm(caller, message.id);
    timings.confirm.push(nowMs() - startedAt);
    startedAt = nowMs();
    await service.ack(caller, message.id);
    timings.ack.push(nowMs() - startedAt);
  }
  return { prepare: percentiles(timings.prepare), confirm: percentiles(timings.confirm), ack: percentiles(timings.ack) };
}

/**
 * Times `claimDue` of `status` with `due` messages of `DUE_TOPIC` due (re-armed before each
 * pass), and explains its statement (inside a rolled-back transaction: EXPLAIN ANALYZE
 * runs the UPDATE for real).
 */
async function measureClaims(
  store: PostgresMessageStore,
  client: pg.Client,
  table: string,
  activeTable: string,
  status: 'PENDING' | 'SENDING',
  due: number,
  passes: number,
): Promise<Omit<DueScanPoint, 'storedMessages' | 'loadSeconds' | 'operations'>> {
  const rearm = () => client.query(`UPDATE ${table} SET next_attempt_at = now() - interval '1 minute' WHERE topic = $1`, [DUE_TOPIC]);
  const pass = async () => {
    await rearm();
    const now = new Date();
    const startedAt = nowMs();
    const claimed = await store.claimDue({ status, now, leaseUntil: new Date(now.getTime() + 30_000), limit: due });
    const ms = nowMs() - startedAt;
    if (claimed.length !== due) throw new Error(`claimDue claimed ${claimed.length} messages, expected ${due}`);
    return ms;
  };
  await pass(); // warm the cache and the connection; not counted
  const passesMs: number[] = [];
  for (let i = 0; i < passes; i++) passesMs.push(await pass());

  // The statement of PostgresMessageStore.claimDue.
  await rearm();
  await client.query('BEGIN');
  let plan: string[];
  try {
    const explained = await client.query<{ 'QUERY PLAN': string }>(
      `EXPLAIN (ANALYZE, BUFFERS)
       WITH due AS (
         SELECT id FROM ${activeTable}
         WHERE status = ANY($1::text[]) AND next_attempt_at <= $2
         ORDER BY next_attempt_at
         LIMIT $4
         FOR UPDATE SKIP LOCKED
       )
       UPDATE ${activeTable} AS m SET next_attempt_at = $3, version = m.version + 1
       FROM due WHERE m.id = due.id
       RETURNING m.*`,
      [status === 'SENDING' ? ['SENDING', 'DEAD'] : ['PENDING'], new Date(), new Date(Date.now() + 30_000), due],
    );
    plan = explained.rows.map((row) => row['QUERY PLAN']);
  } finally {
    await client.query('ROLLBACK');
  }
  const execution = plan.find((line) => line.startsWith('Execution Time'));
  const sorted = [...passesMs].sort((a, b) => a - b);
  return {
    dueMessages: due,
    medianMs: sorted[Math.floor(sorted.length / 2)] as number,
    passesMs,
    explainExecutionMs: Number(/([\d.]+) ms/.exec(execution ?? '')?.[1] ?? Number.NaN),
    plan,
  };
}

/** How the delayed-scan measurement runs. */
export interface DelayedScanOptions {
  /** A `postgres://` URL without a schema parameter. */
  databaseUrl: string;
  /** The schema of the run's own, dropped afterwards. */
  schema: string;
  /** Messages stored besides the due and the delayed ones (mostly finished, as in `runDueScan`). */
  base: number;
  /** Delayed messages added for the second measurement: confirmed, waiting for a `deliverAt` up to 30 days ahead. */
  delayed: number;
  /** Due deliveries (SENDING, due in the past). */
  due: number;
  /** Timed passes per point (the median is reported). */
  passes: number;
}

/**
 * The redelivery loop's claim pass (`SENDING`, which also serves delayed messages) with
 * `due` messages due among `base` stored, then again after `delayed` delayed messages were
 * added: waiting messages should cost nothing, so the ratio should be near 1.
 */
export async function runDelayedScan(options: DelayedScanOptions): Promise<DueScanResult> {
  return withScanSchema(options.databaseUrl, options.schema, async ({ store, client, table, activeTable }) => {
    const points: DueScanPoint[] = [];
    let loadStartedAt = nowMs();
    await client.query(
      `INSERT INTO ${table} (id, producer, producer_message_id, topic, payload, status, created_at, updated_at, confirmed_at, next_attempt_at, deliveries)
       SELECT gen_random_uuid(), 'bench', 'due-' || g, $2, $3::json, 'SENDING',
              now() - interval '10 minutes', now() - interval '10 minutes', now() - interval '10 minutes', now() - interval '1 minute' + g * interval '1 ms',
              jsonb_build_array(jsonb_build_object('group', 'default', 'status', 'SENDING', 'attempts', 1, 'nextAttemptAt', now() - interval '1 minute',
                                                   'lastTransport', 'rabbitmq', 'lastError', null, 'ackedAt', null))
       FROM generate_series(1, $1::int) AS g`,
      [options.due, DUE_TOPIC, PAYLOAD_SQL],
    );
    await insertBackgroundRows(client, table, 1, options.base);
    const stored = options.due + options.base;
    points.push({ ...(await measureClaims(store, client, table, activeTable, 'SENDING', options.due, options.passes)), storedMessages: stored, loadSeconds: (nowMs() - loadStartedAt) / 1000 });

    loadStartedAt = nowMs();
    // Delayed messages as confirm leaves them: SENDING, due (and to be delivered) at their
    // deliverAt, spread over the next 30 days.
    await client.query(
      `INSERT INTO ${table} (id, producer, producer_message_id, topic, payload, status, created_at, updated_at, confirmed_at, deliver_at, next_attempt_at, deliveries)
       SELECT gen_random_uuid(), 'bench', 'delayed-' || g, 'bench.delayed', $2::json, 'SENDING', now(), now(), now(), at, at,
              jsonb_build_array(jsonb_build_object('group', 'default', 'status', 'SENDING', 'attempts', 0, 'nextAttemptAt', at,
                                                   'lastTransport', null, 'lastError', null, 'ackedAt', null))
       FROM generate_series(1, $1::int) AS g, LATERAL (SELECT now() + interval '1 minute' + (g % 2592000) * interval '1 s' AS at) AS t`,
      [options.delayed, PAYLOAD_SQL],
    );
    await client.query(`VACUUM ANALYZE ${table}`);
    points.push({
      ...(await measureClaims(store, client, table, activeTable, 'SENDING', options.due, options.passes)),
      storedMessages: stored + options.delayed,
      loadSeconds: (nowMs() - loadStartedAt) / 1000,
    });
    const [without, withDelayed] = points as [DueScanPoint, DueScanPoint];
    return { points, ratio: withDelayed.medianMs / without.medianMs };
  });
}
