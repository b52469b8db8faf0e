/**
 * Time-range partitions of the PostgreSQL store (migration 7).
 *
 * `rms_messages` is partitioned by `finished_at`: unfinished messages (PENDING, SENDING,
 * DEAD) hold `'infinity'` and live in one small partition, `rms_messages_active`, whose
 * size follows the backlog; a message that becomes COMPLETED or CANCELLED moves, in the
 * same UPDATE, into the partition of the UTC day it finished on. `rms_message_events` is
 * partitioned by the day of each event. Retention then drops whole days (a catalog change
 * that takes milliseconds whatever the day held) instead of deleting rows one by one, which
 * at thousands of messages a second leaves more dead tuples than vacuum can keep up with.
 *
 * Day partitions are created ahead of time (at start and at each retention sweep), and on
 * demand by a write that finds its day missing (a clock jump, a sweep that has not run).
 * There is no DEFAULT partition: with one, PostgreSQL can neither detach a partition
 * concurrently nor create one without scanning the default.
 */
import type pg from 'pg';

/** One UTC day: the range [start, end) of a day partition. */
export interface DayRange {
  /** `YYYYMMDD`, the suffix of the partition's name. */
  key: string;
  start: Date;
  end: Date;
}

/** One day in milliseconds. */
export const DAY_MS = 24 * 3600 * 1000;

/** The UTC day holding `at`. */
export function dayOf(at: Date): DayRange {
  const start = new Date(Math.floor(at.getTime() / DAY_MS) * DAY_MS);
  const key = start.toISOString().slice(0, 10).replaceAll('-', '');
  return { key, start, end: new Date(start.getTime() + DAY_MS) };
}

/** The days from the one holding `from` to the one holding `to`, both included. */
export function daysBetween(from: Date, to: Date): DayRange[] {
  const days: DayRange[] = [];
  for (let day = dayOf(from); day.start.getTime() <= to.getTime(); day = dayOf(day.end)) days.push(day);
  return days;
}

/**
 * The distinct days holding `dates`. Day numbers first: the dates of one batch almost
 * always share one day, and `dayOf` formats a key.
 */
export function distinctDays(dates: readonly Date[]): DayRange[] {
  const numbers = new Set(dates.map((date) => Math.floor(date.getTime() / DAY_MS)));
  return [...numbers].map((number) => dayOf(new Date(number * DAY_MS)));
}

/** The two partitioned tables and the prefix of their day partitions. */
export const PARTITIONED_TABLES = {
  messages: { table: 'rms_messages', dayPrefix: 'rms_messages_finished_' },
  events: { table: 'rms_message_events', dayPrefix: 'rms_message_events_' },
} as const;

/** Which partitioned table. */
export type PartitionedTable = keyof typeof PARTITIONED_TABLES;

/** The name of `table`'s partition for `day`. */
export function partitionName(table: PartitionedTable, day: DayRange): string {
  return `${PARTITIONED_TABLES[table].dayPrefix}${day.key}`;
}

/** Reads a day partition's name back into its day, or `null` for any other name (the active partition, say). */
export function dayOfPartition(table: PartitionedTable, name: string): DayRange | null {
  const prefix = PARTITIONED_TABLES[table].dayPrefix;
  if (!name.startsWith(prefix)) return null;
  const key = name.slice(prefix.length);
  if (!/^\d{8}$/.test(key)) return null;
  const start = new Date(`${key.slice(0, 4)}-${key.slice(4, 6)}-${key.slice(6, 8)}T00:00:00Z`);
  if (Number.isNaN(start.getTime())) return null;
  return dayOf(start);
}

/**
 * Whether `error` is PostgreSQL refusing a row because no partition accepts it (SQLSTATE
 * 23514 with "no partition of relation"): the write's day has no partition yet.
 */
export function isMissingPartitionError(error: unknown): boolean {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  return code === '23514' && typeof message === 'string' && message.includes('no partition of relation');
}

/**
 * Whether `error` is READ COMMITTED's answer to a row that a concurrent UPDATE moved to
 * another partition (SQLSTATE 40001, "tuple to be locked/updated was already moved"): the
 * statement did nothing, and run again it reads the row where it now is.
 */
export function isMovedRowError(error: unknown): boolean {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  return code === '40001' && typeof message === 'string' && message.includes('moved to another partition');
}

/** Runs one statement; the store's pool, with its error classification. */
export type RunStatement = <Row extends pg.QueryResultRow>(sql: string, values?: unknown[]) => Promise<pg.QueryResult<Row>>;

/** What dropping expired partitions removed. */
export interface DroppedPartitions {
  /** Finished messages in the dropped partitions (PostgreSQL's estimate for analysed tables). */
  messages: number;
  /** Names of the dropped partitions, messages' and events'. */
  partitions: string[];
}

/** Creates, lists and drops the day partitions of one schema. */
export class DayPartitions {
  /** Days whose partitions are known to exist, per table: spares a catalog round trip per write. */
  private readonly known = { messages: new Set<string>(), events: new Set<string>() };

  constructor(
    private readonly schema: string,
    private readonly run: RunStatement,
  ) {}

  /** Creates `table`'s partition for `day` if it does not exist (safe to race with other instances). */
  async ensure(table: PartitionedTable, day: DayRange): Promise<void> {
    if (this.known[table].has(day.key)) return;
    const parent = `"${this.schema}".${PARTITIONED_TABLES[table].table}`;
    try {
      await this.run(
        `CREATE TABLE IF NOT EXISTS "${this.schema}".${partitionName(table, day)} PARTITION OF ${parent}
         FOR VALUES FROM ('${day.start.toISOString()}') TO ('${day.end.toISOString()}')`,
      );
    } catch (error) {
      // Two instances creating the same partition: the loser's IF NOT EXISTS can still meet
      // the winner's uncommitted catalog row (unique_violation on pg_type) — it exists now.
      if ((error as { code?: unknown }).code !== '23505' && (error as { code?: unknown }).code !== '42P07') throw error;
    }
    this.known[table].add(day.key);
  }

  /** Forgets that `table`'s partition for `day` exists: the next `ensure` asks PostgreSQL again. */
  forget(table: PartitionedTable, day: DayRange): void {
    this.known[table].delete(day.key);
  }

  /** Creates both tables' partitions for every day from `from` to `to`. */
  async ensureDays(from: Date, to: Date): Promise<void> {
    for (const day of daysBetween(from, to)) {
      await this.ensure('messages', day);
      await this.ensure('events', day);
    }
  }

  /** The day partitions of `table` that exist, oldest first. */
  async list(table: PartitionedTable): Promise<{ name: string; day: DayRange }[]> {
    const { rows } = await this.run<{ name: string }>(
      `SELECT c.relname AS name FROM pg_inherits i
         JOIN pg_class c ON c.oid = i.inhrelid
         JOIN pg_class p ON p.oid = i.inhparent
         JOIN pg_namespace n ON n.oid = p.relnamespace
       WHERE n.nspname = $1 AND p.relname = $2`,
      [this.schema, PARTITIONED_TABLES[table].table],
    );
    return rows
      .map((row) => ({ name: row.name, day: dayOfPartition(table, row.name) }))
      .filter((entry): entry is { name: string; day: DayRange } => entry.day !== null)
      .sort((a, b) => a.day.start.getTime() - b.day.start.getTime());
  }

  /**
   * Drops every day partition that ends at or before `before`. A messages' partition holds
   * only finished messages, so dropping it loses nothing in flight. An events' partition may
   * hold events of messages still unfinished (a DEAD message waiting for a person): those
   * events are copied into `rms_message_events_kept` first, so their history survives.
   */
  async dropExpired(before: Date): Promise<DroppedPartitions> {
    const dropped: DroppedPartitions = { messages: 0, partitions: [] };
    let messageDaysDropped = 0;
    for (const { name, day } of await this.list('messages')) {
      if (day.end.getTime() > before.getTime()) continue;
      dropped.messages += await this.rowCount(name);
      await this.drop('messages', name, day);
      dropped.partitions.push(name);
      messageDaysDropped += 1;
    }
    for (const { name, day } of await this.list('events')) {
      if (day.end.getTime() > before.getTime()) continue;
      // One index probe per unfinished message: costs the backlog, not the day's events.
      await this.run(
        `INSERT INTO "${this.schema}".rms_message_events_kept
           SELECT e.* FROM "${this.schema}".rms_messages_active m
           JOIN "${this.schema}".${name} e ON e.message_id = m.id`,
      );
      await this.drop('events', name, day);
      dropped.partitions.push(name);
    }
    // Kept events whose message is gone: a message leaves only with a dropped day.
    if (messageDaysDropped === 0) return dropped;
    await this.run(
      `DELETE FROM "${this.schema}".rms_message_events_kept k
       WHERE NOT EXISTS (SELECT 1 FROM "${this.schema}".rms_messages m WHERE m.id = k.message_id)`,
    );
    return dropped;
  }

  /** Rows of a partition: the planner's estimate once the table was analysed (a day can hold millions), else counted. */
  private async rowCount(name: string): Promise<number> {
    const { rows } = await this.run<{ estimate: number }>(
      `SELECT c.reltuples::float8 AS estimate FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = $1 AND c.relname = $2`,
      [this.schema, name],
    );
    const estimate = rows[0]?.estimate ?? -1;
    if (estimate >= 0) return Math.round(estimate);
    const counted = await this.run<{ count: string }>(`SELECT count(*) AS count FROM "${this.schema}".${name}`);
    return Number(counted.rows[0]?.count ?? 0);
  }

  /**
   * Detaches the partition without blocking readers and writers of the parent (`DETACH
   * ... CONCURRENTLY` waits for the queries that may see it instead of locking them out),
   * then drops it. A detach interrupted half-way is finished (`FINALIZE`) on the next try.
   */
  private async drop(table: PartitionedTable, name: string, day: DayRange): Promise<void> {
    const parent = `"${this.schema}".${PARTITIONED_TABLES[table].table}`;
    const qualified = `"${this.schema}".${name}`;
    try {
      await this.run(`ALTER TABLE ${parent} DETACH PARTITION ${qualified} CONCURRENTLY`);
    } catch (error) {
      // 55000: a concurrent detach of this partition is pending (an earlier sweep died).
      if ((error as { code?: unknown }).code !== '55000') throw error;
      await this.run(`ALTER TABLE ${parent} DETACH PARTITION ${qualified} FINALIZE`);
    }
    await this.run(`DROP TABLE IF EXISTS ${qualified}`);
    this.known[table].delete(day.key);
  }
}
