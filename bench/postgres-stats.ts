/**
 * PostgreSQL's own counters around a phase, to express the store's work per message:
 * transactions committed, rows inserted and updated, WAL records, WAL writes and WAL syncs
 * (flushes to disk: each commit with `synchronous_commit = on` waits for one, unless a group
 * commit shares it). `pg_stat_wal` has `wal_write` and `wal_sync` on PostgreSQL 14 to 17;
 * PostgreSQL 18 moved them to `pg_stat_io`, and there they read as `NaN`.
 *
 * The counters are database-wide, so anything else using the database at the same time
 * shows up too; and backends report them at most about once a second, so a reading is
 * taken a little after the load stops.
 */
import pg from 'pg';

/** The counters read. */
export type PostgresCounters = Record<'commits' | 'rowsInserted' | 'rowsUpdated' | 'rowsFetched' | 'walRecords' | 'walWrites' | 'walSyncs' | 'walBytes', number>;

/** Reads the counters of the URL's database. */
export async function readPostgresCounters(url: string): Promise<PostgresCounters> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const database = await client.query<{ xact_commit: string; tup_inserted: string; tup_updated: string; tup_fetched: string }>(
      'SELECT xact_commit, tup_inserted, tup_updated, tup_fetched FROM pg_stat_database WHERE datname = current_database()',
    );
    // `*`: the columns differ between versions (wal_write and wal_sync are gone in 18).
    const wal = await client.query<{ wal_records: string; wal_write?: string; wal_sync?: string; wal_bytes: string }>('SELECT * FROM pg_stat_wal');
    const row = database.rows[0];
    const walRow = wal.rows[0];
    return {
      commits: Number(row?.xact_commit ?? Number.NaN),
      rowsInserted: Number(row?.tup_inserted ?? Number.NaN),
      rowsUpdated: Number(row?.tup_updated ?? Number.NaN),
      rowsFetched: Number(row?.tup_fetched ?? Number.NaN),
      walRecords: Number(walRow?.wal_records ?? Number.NaN),
      walWrites: Number(walRow?.wal_write ?? Number.NaN),
      walSyncs: Number(walRow?.wal_sync ?? Number.NaN),
      walBytes: Number(walRow?.wal_bytes ?? Number.NaN),
    };
  } finally {
    await client.end();
  }
}

/** `(after - before) / messages` for every counter, to three decimals (WAL syncs per message are small). */
export function perMessage(before: PostgresCounters, after: PostgresCounters, messages: number): PostgresCounters {
  const result = {} as PostgresCounters;
  for (const key of Object.keys(before) as (keyof PostgresCounters)[]) {
    result[key] = Math.round(((after[key] - before[key]) / Math.max(1, messages)) * 1000) / 1000;
  }
  return result;
}
