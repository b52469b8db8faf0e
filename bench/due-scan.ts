/**
 * The cost of one due-message claim pass (what the check-back and redelivery loops run
 * every poll) as the table grows: 1,000 due messages among 10,000 stored, then among
 * 1,000,000. The store's partial index on (status, next_attempt_at) should make a pass
 * cost the due rows, not the table: the ratio of the two figures should be near 1.
 *
 * The rows are made with `INSERT … SELECT generate_series` into a `PostgresMessageStore`'s
 * own schema (created by its migrations, so the indexes are the real ones). The other rows
 * are what a live table mostly holds: finished messages (90 %), plus in-flight ones that
 * are not due yet (5 % PENDING and 5 % SENDING with a next attempt in the future).
 */
import pg from 'pg';
import { PostgresMessageStore } from '@rms/message-service';
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

/** The figures at one table size. */
export interface DueScanPoint {
  storedMessages: number;
  dueMessages: number;
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
}

/** The topic that marks the due rows, so they can be re-armed between passes. */
const DUE_TOPIC = 'bench.due';

/** The load phases' payload, so the rows are the size of real ones. */
const PAYLOAD_SQL = JSON.stringify(benchPayload());

/** Runs the measurement and drops its schema. */
export async function runDueScan(options: DueScanOptions): Promise<DueScanResult> {
  const url = new URL(options.databaseUrl);
  url.searchParams.set('schema', options.schema);
  const store = new PostgresMessageStore({ url: url.toString(), poolSize: 2, statementTimeoutMs: 120_000 });
  const client = new pg.Client({ connectionString: options.databaseUrl });
  await client.connect();
  const table = `"${options.schema}".rms_messages`;
  try {
    await store.init();
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
      await client.query(
        `INSERT INTO ${table} (id, producer, producer_message_id, topic, payload, status, created_at, updated_at, completed_at, next_attempt_at)
         SELECT gen_random_uuid(), 'bench', 'row-' || g, 'bench.rows', $3::json,
                CASE g % 20 WHEN 0 THEN 'PENDING' WHEN 1 THEN 'SENDING' ELSE 'COMPLETED' END,
                now() - interval '1 day' + g * interval '1 ms', now() - interval '1 day' + g * interval '1 ms',
                CASE WHEN g % 20 >= 2 THEN now() END,
                CASE WHEN g % 20 < 2 THEN now() + interval '1 hour' + (g % 3600) * interval '1 s' END
         FROM generate_series($1::int + 1, $2::int) AS g`,
        [stored, size, PAYLOAD_SQL],
      );
      stored = size;
      // What autovacuum would have done by the time a table is this size; without
      // statistics the planner guesses, and that would be measured instead of the index.
      await client.query(`VACUUM ANALYZE ${table}`);
      const loadSeconds = (nowMs() - loadStartedAt) / 1000;

      const rearm = () => client.query(`UPDATE ${table} SET next_attempt_at = now() - interval '1 minute' WHERE topic = $1`, [DUE_TOPIC]);
      const pass = async () => {
        await rearm();
        const now = new Date();
        const startedAt = nowMs();
        const claimed = await store.claimDue({ status: 'PENDING', now, leaseUntil: new Date(now.getTime() + 30_000), limit: options.due });
        const ms = nowMs() - startedAt;
        if (claimed.length !== options.due) throw new Error(`claimDue claimed ${claimed.length} messages, expected ${options.due}`);
        return ms;
      };
      await pass(); // warm the cache and the connection; not counted
      const passesMs: number[] = [];
      for (let i = 0; i < options.passes; i++) passesMs.push(await pass());

      // The statement of PostgresMessageStore.claimDue, explained inside a transaction that
      // is rolled back (EXPLAIN ANALYZE runs the UPDATE for real).
      await rearm();
      await client.query('BEGIN');
      let plan: string[];
      try {
        const explained = await client.query<{ 'QUERY PLAN': string }>(
          `EXPLAIN (ANALYZE, BUFFERS)
           WITH due AS (
             SELECT id FROM ${table}
             WHERE status = $1 AND next_attempt_at <= $2
             ORDER BY next_attempt_at
             LIMIT $4
             FOR UPDATE SKIP LOCKED
           )
           UPDATE ${table} AS m SET next_attempt_at = $3
           FROM due WHERE m.id = due.id
           RETURNING m.*`,
          ['PENDING', new Date(), new Date(Date.now() + 30_000), options.due],
        );
        plan = explained.rows.map((row) => row['QUERY PLAN']);
      } finally {
        await client.query('ROLLBACK');
      }
      const execution = plan.find((line) => line.startsWith('Execution Time'));
      const sorted = [...passesMs].sort((a, b) => a - b);
      points.push({
        storedMessages: size,
        dueMessages: options.due,
        medianMs: sorted[Math.floor(sorted.length / 2)] as number,
        passesMs,
        explainExecutionMs: Number(/([\d.]+) ms/.exec(execution ?? '')?.[1] ?? Number.NaN),
        plan,
        loadSeconds,
      });
    }
    const first = points[0] as DueScanPoint;
    const last = points.at(-1) as DueScanPoint;
    return { points, ratio: last.medianMs / first.medianMs };
  } finally {
    await store.close();
    await client.query(`DROP SCHEMA IF EXISTS "${options.schema}" CASCADE`).catch(() => undefined);
    await client.end();
  }
}
