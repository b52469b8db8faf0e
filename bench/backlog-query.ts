/**
 * `npm run bench:backlog`: the cost of the backlog query behind the `rms_messages` and
 * `rms_oldest_*_age_seconds` gauges (`MessageStore.backlogByTopic`) at 1,000,000 stored
 * messages: 97 % finished (COMPLETED, CANCELLED), 1 % PENDING, 1 % SENDING, 1 % DEAD,
 * spread over 20 topics. Prints the median of the timed passes and PostgreSQL's plan.
 *
 * Settings (environment): BENCH_POSTGRES_URL (or TEST_POSTGRES_URL), BENCH_BACKLOG_ROWS.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { PostgresMessageStore } from '@rms/message-service';

const databaseUrl = process.env['BENCH_POSTGRES_URL'] ?? process.env['TEST_POSTGRES_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const rows = Number(process.env['BENCH_BACKLOG_ROWS'] ?? 1_000_000);
const schema = `rms_bench_backlog_${randomBytes(4).toString('hex')}`;
const url = new URL(databaseUrl);
url.searchParams.set('schema', schema);
const store = new PostgresMessageStore({ url: url.toString(), poolSize: 2, statementTimeoutMs: 600_000 });
const client = new pg.Client({ connectionString: databaseUrl });
await client.connect();
const table = `"${schema}".rms_messages`;
try {
  await store.init();
  const loadStartedAt = performance.now();
  // g % 100: 0 PENDING, 1 SENDING, 2 DEAD, 3..49 COMPLETED, 50..99 CANCELLED.
  await client.query(
    `INSERT INTO ${table} (id, producer, producer_message_id, topic, payload, status, dead_reason, created_at, updated_at, confirmed_at, next_attempt_at)
     SELECT gen_random_uuid(), 'bench', 'm-' || g, 'topic.' || ((g / 100) % 20), '{"order":1}'::json,
            CASE g % 100 WHEN 0 THEN 'PENDING' WHEN 1 THEN 'SENDING' WHEN 2 THEN 'DEAD' ELSE CASE WHEN g % 100 < 50 THEN 'COMPLETED' ELSE 'CANCELLED' END END,
            CASE g % 100 WHEN 2 THEN 'DELIVERY_EXHAUSTED' END,
            now() - g * interval '1 ms', now() - g * interval '1 ms', now() - g * interval '1 ms',
            CASE WHEN g % 100 < 2 THEN now() + interval '1 minute' END
     FROM generate_series(1, $1::int) AS g`,
    [rows],
  );
  await client.query(`VACUUM ANALYZE ${table}`);
  const loadSeconds = (performance.now() - loadStartedAt) / 1000;
  const passes: number[] = [];
  let topics = 0;
  for (let pass = 0; pass < 11; pass++) {
    const startedAt = performance.now();
    topics = (await store.backlogByTopic()).length;
    passes.push(performance.now() - startedAt);
  }
  passes.sort((a, b) => a - b);
  const median = passes[Math.floor(passes.length / 2)] ?? Number.NaN;
  const { rows: plan } = await client.query<{ 'QUERY PLAN': string }>(
    `EXPLAIN (ANALYZE, BUFFERS)
     SELECT topic, status, count(*)::int AS count, min(created_at), min(confirmed_at)
       FROM ${table} WHERE status IN ('PENDING', 'SENDING') AND next_attempt_at IS NOT NULL GROUP BY topic, status
     UNION ALL
     SELECT topic, status, count(*)::int, NULL, NULL FROM ${table} WHERE status = 'DEAD' GROUP BY topic, status`,
  );
  console.log(`stored messages: ${rows}; waiting (PENDING+SENDING+DEAD): ${Math.floor(rows * 0.03)}; topics: ${topics}; load ${loadSeconds.toFixed(1)} s`);
  console.log(`backlogByTopic: median ${median.toFixed(1)} ms over ${passes.length} passes (min ${passes[0]?.toFixed(1)}, max ${passes.at(-1)?.toFixed(1)})`);
  for (const line of plan) console.log(`  ${line['QUERY PLAN']}`);
} finally {
  await store.close();
  await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await client.end();
}
