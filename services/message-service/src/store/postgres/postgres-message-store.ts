/**
 * The PostgreSQL adapter of `MessageStore`, with `pg`.
 *
 * Every state change is one `UPDATE ... WHERE id = $1 AND status = $2 ...`, so a
 * transition either happens from the state it was decided from or not at all. It sends
 * back the whole row (`transition`) or only the id and version (`move`, for callers that
 * hold the message already); an insert sends back only the id.
 */
import { settleBatch } from '@rms/client-sdk';
import pg from 'pg';
import { ConfigurationError, DependencyUnavailableError, ValueRefusedByStoreError } from '../../domain/errors.js';
import { type Delivery, type Message, type MessagePatch, type NewMessage, preparedMessage } from '../../domain/message.js';
import type { MessageEvent, MessageEventType, EventActor } from '../../domain/message-event.js';
import type { ClaimQuery, InsertResult, ListQuery, MessagePage, MessageStore, Moved, StatusTopicCount, TopicBacklog, Transition } from '../message-store.js';
import { foldBacklogGroups } from '../topic-backlog.js';
import { requireDistinctIds } from '../require-distinct-ids.js';
import { DAY_MS, DayPartitions, distinctDays, isMissingPartitionError, isMovedRowError, type PartitionedTable } from './partitions.js';
import { MIGRATIONS, SCHEMA_NAME_PATTERN } from './schema.js';

/** Options of the PostgreSQL store. */
export interface PostgresStoreOptions {
  /** A `postgres://` URL. A `schema` query parameter selects the schema (created if missing). */
  url: string;
  /**
   * Most connections in the pool.
   * @defaultValue 10
   */
  poolSize?: number;
  /**
   * How long to wait for a connection before the call fails as unavailable.
   * @defaultValue 5000
   */
  connectTimeoutMs?: number;
  /**
   * Server-side and client-side limit on one statement.
   * @defaultValue 10000
   */
  statementTimeoutMs?: number;
}

const DEFAULTS = { poolSize: 10, connectTimeoutMs: 5000, statementTimeoutMs: 10_000 } as const;

/** Statuses whose messages live in a finished day's partition (see partitions.ts). */
const FINISHED_STATUSES: ReadonlySet<string> = new Set(['COMPLETED', 'CANCELLED']);

/** Days of partitions created ahead of today (and kept behind it) at start and at each sweep. */
const PARTITION_DAYS_AHEAD = 2;

/** Runs of a statement that met a row moved to another partition by a concurrent UPDATE. */
const MOVED_ROW_ATTEMPTS = 5;

/** Any advisory-lock key will do as long as it is fixed: this one spells "RMS". */
const MIGRATION_LOCK_KEY = 0x524d53;

/** Columns a patch may set, by `Message` field. */
const PATCH_COLUMNS: Record<keyof MessagePatch, string> = {
  confirmedAt: 'confirmed_at',
  completedAt: 'completed_at',
  cancelledAt: 'cancelled_at',
  checkAttempts: 'check_attempts',
  deliveryAttempts: 'delivery_attempts',
  nextAttemptAt: 'next_attempt_at',
  lastTransport: 'last_transport',
  lastError: 'last_error',
  deliveries: 'deliveries',
  lastPublishedAt: 'last_published_at',
};

const TIMESTAMPTZ_OID = 1184;

/**
 * Reads a `timestamptz` as PostgreSQL prints it in UTC (`2026-11-22 06:47:37.123+00`)
 * with integer slicing; anything else (another time zone, BC, infinity) goes to pg's own
 * parser. Written by hand because pg's (postgres-date, a general regular-expression
 * parser) was a tenth of RMS's CPU under load: every returned row holds six such columns.
 */
export function parseTimestamptz(text: string): Date {
  const shaped = text.length >= 22 && text.endsWith('+00') && text[4] === '-' && text[10] === ' ' && (text.length === 22 || text[19] === '.');
  if (shaped) {
    const fraction = text.length > 22 ? text.slice(20, -3) : '';
    const milliseconds = fraction === '' ? 0 : Number(`${fraction}00`.slice(0, 3));
    const year = Number(text.slice(0, 4));
    // Date.UTC reads years 0-99 as 1900-1999: those go to the general parser.
    const time = year < 100 ? Number.NaN : Date.UTC(
      year,
      Number(text.slice(5, 7)) - 1,
      Number(text.slice(8, 10)),
      Number(text.slice(11, 13)),
      Number(text.slice(14, 16)),
      Number(text.slice(17, 19)),
      milliseconds,
    );
    if (!Number.isNaN(time)) return new Date(time);
  }
  return pg.types.getTypeParser(TIMESTAMPTZ_OID, 'text')(text) as Date;
}

/** pg's parsers, with `parseTimestamptz` for `timestamptz`. */
const typeParser = ((oid: number, format?: 'text' | 'binary') =>
  oid === TIMESTAMPTZ_OID && format !== 'binary' ? parseTimestamptz : pg.types.getTypeParser(oid, format ?? 'text')) as pg.CustomTypesConfig['getTypeParser'];

/**
 * Runs one batch statement for `inputs` (see `settleBatch`: a statement is atomic, so when
 * it fails nothing of it was written and each input may be run alone). When the store is
 * unavailable every input is rejected with that error instead of thrown: other statements
 * of the same call may have succeeded, and their outcomes must be kept.
 */
async function settleStatement<Input, Output>(
  inputs: readonly Input[],
  statement: () => Promise<PromiseSettledResult<Output>[]>,
  one: (input: Input) => Promise<Output>,
): Promise<PromiseSettledResult<Output>[]> {
  try {
    return await settleBatch(inputs, statement, one, (error) => error instanceof DependencyUnavailableError);
  } catch (error) {
    return inputs.map(() => ({ status: 'rejected', reason: error }));
  }
}

/** The SQL type of each patch column, for reading it out of a JSON record set. */
const PATCH_COLUMN_TYPES: Record<keyof MessagePatch, string> = {
  confirmedAt: 'timestamptz',
  completedAt: 'timestamptz',
  cancelledAt: 'timestamptz',
  checkAttempts: 'integer',
  deliveryAttempts: 'integer',
  nextAttemptAt: 'timestamptz',
  lastTransport: 'text',
  lastError: 'text',
  deliveries: 'jsonb',
  lastPublishedAt: 'timestamptz',
};

/**
 * Times cross into batch statements as epoch milliseconds: `JSON.stringify` turns a number
 * into text five times faster than a `Date` (whose `toJSON` dominated the cost of building
 * a batch), and integer arithmetic makes it back into the same instant exactly.
 */
function fromEpochMs(expression: string): string {
  return `(timestamptz 'epoch' + ${expression} * interval '1 millisecond')`;
}

/** A patch value as it travels in a batch's JSON: dates as epoch milliseconds. */
function asJsonValue(value: unknown): unknown {
  return value instanceof Date ? value.getTime() : value;
}

/** The fields a transition sets (those not `undefined`), in a fixed order. */
function patchFields(change: Transition): (keyof MessagePatch)[] {
  return (Object.keys(PATCH_COLUMNS) as (keyof MessagePatch)[]).filter((field) => change.set[field] !== undefined);
}

/** Transitions with the same shape can share one statement. */
function shapeOf(change: Transition): string {
  return [
    change.from.status,
    change.from.deadReason,
    change.to,
    change.deadReason,
    patchFields(change).join('+'),
    change.fence ? 'fenced' : '',
    change.producer === undefined ? '' : 'owned',
    change.version === undefined ? '' : 'versioned',
  ].join('|');
}

/**
 * The condition that confines an UPDATE to the partitions a message in `status` can be in:
 * the active one for unfinished statuses, which PostgreSQL then reads alone.
 */
function partitionOf(status: string): string {
  return FINISHED_STATUSES.has(status) ? "finished_at < 'infinity'" : "finished_at = 'infinity'";
}

function producerKey(producer: string, producerMessageId: string | null): string {
  return `${producer}\u0000${producerMessageId ?? ''}`;
}

interface MessageRow {
  id: string;
  producer: string;
  producer_message_id: string | null;
  topic: string;
  payload: Message['payload'];
  headers: Message['headers'];
  status: Message['status'];
  dead_reason: Message['deadReason'];
  created_at: Date;
  updated_at: Date;
  confirmed_at: Date | null;
  completed_at: Date | null;
  cancelled_at: Date | null;
  check_attempts: number;
  delivery_attempts: number;
  next_attempt_at: Date | null;
  last_transport: Message['lastTransport'];
  last_error: string | null;
  last_published_at: Date | null;
  traceparent: string | null;
  tracestate: string | null;
  deliver_at: Date | null;
  deliveries: StoredDelivery[];
  version: number;
}

/** The columns of `Moved`, in an UPDATE whose table is aliased `m` (the record set has an `id` and a `version` too). */
const MOVED_COLUMNS = 'm.id, m.version';

/** A delivery as its JSON holds it: times as ISO text. */
type StoredDelivery = Omit<Delivery, 'nextAttemptAt' | 'ackedAt'> & { nextAttemptAt: string | null; ackedAt: string | null };

const dateOrNull = (text: string | null): Date | null => (text === null ? null : new Date(text));

/** Parameters are sent as text; a jsonb one as its JSON (pg would turn an array into a PostgreSQL array). */
function asParameter(field: keyof MessagePatch, value: unknown): unknown {
  return field === 'deliveries' ? JSON.stringify(value) : value;
}

function toMessage(row: MessageRow): Message {
  return {
    id: row.id,
    producer: row.producer,
    producerMessageId: row.producer_message_id,
    topic: row.topic,
    payload: row.payload,
    headers: row.headers,
    status: row.status,
    deadReason: row.dead_reason,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    confirmedAt: row.confirmed_at,
    completedAt: row.completed_at,
    cancelledAt: row.cancelled_at,
    checkAttempts: row.check_attempts,
    deliveryAttempts: row.delivery_attempts,
    nextAttemptAt: row.next_attempt_at,
    lastTransport: row.last_transport,
    lastError: row.last_error,
    deliverAt: row.deliver_at,
    deliveries: row.deliveries.map((delivery) => ({ ...delivery, nextAttemptAt: dateOrNull(delivery.nextAttemptAt), ackedAt: dateOrNull(delivery.ackedAt) })),
    version: row.version,
    lastPublishedAt: row.last_published_at,
    traceparent: row.traceparent,
    tracestate: row.tracestate,
  };
}

/** A row of `rms_message_events`. */
interface EventRow {
  message_id: string;
  at: Date;
  type: MessageEventType;
  actor: EventActor;
  app: string | null;
  consumer_group: string | null;
  attempt: number | null;
  transport: MessageEvent['transport'];
  outcome: string | null;
  duration_ms: number | null;
  reason: string | null;
  next_attempt_at: Date | null;
}

function toEvent(row: EventRow): MessageEvent {
  return {
    messageId: row.message_id,
    at: row.at,
    type: row.type,
    actor: row.actor,
    app: row.app,
    group: row.consumer_group,
    attempt: row.attempt,
    transport: row.transport,
    outcome: row.outcome,
    durationMs: row.duration_ms,
    reason: row.reason,
    nextAttemptAt: row.next_attempt_at,
  };
}

/**
 * SQLSTATEs that mean "the database cannot serve this now", not "your query is wrong":
 * connection exceptions (08), insufficient resources (53), operator intervention (57:
 * shutdowns, and 57014, a statement cancelled by `statement_timeout`).
 */
const UNAVAILABLE_SQLSTATE = /^(08|53|57)/;

/** SQLSTATE class 22, "data exception": a value the statement carried cannot be stored (a jsonb string with `\u0000`, say). */
const DATA_EXCEPTION_SQLSTATE = /^22/;

/**
 * Turns driver failures that mean "the database is unreachable" (refused or reset
 * connections, pool or statement timeouts, shutdowns) into `DependencyUnavailableError`,
 * data exceptions (a value it cannot hold) into `ValueRefusedByStoreError`; anything else
 * (a bug) is rethrown as it is.
 */
export function classifyPostgresError(error: unknown): unknown {
  if (error instanceof DependencyUnavailableError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  const isSqlState = typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code);
  if (isSqlState && DATA_EXCEPTION_SQLSTATE.test(code)) {
    return new ValueRefusedByStoreError(error instanceof Error ? error.message : String(error), { cause: error });
  }
  if (isSqlState && !UNAVAILABLE_SQLSTATE.test(code)) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new DependencyUnavailableError('store', `PostgreSQL is unavailable: ${message}`, { cause: error });
}

function parseUrl(url: string): { connectionString: string; schema: string } {
  const parsed = new URL(url);
  const schema = parsed.searchParams.get('schema') ?? 'public';
  if (!SCHEMA_NAME_PATTERN.test(schema)) {
    throw new ConfigurationError(`STORE_URL: schema "${schema}" must match [a-z_][a-z0-9_]* (at most 63 characters)`);
  }
  parsed.searchParams.delete('schema');
  return { connectionString: parsed.toString(), schema };
}

/** `MessageStore` on PostgreSQL. */
export class PostgresMessageStore implements MessageStore {
  readonly kind = 'postgres';
  private readonly pool: pg.Pool;
  private readonly table: string;
  /** The partition of unfinished messages: what every hot-path write and due scan reads. */
  private readonly activeTable: string;
  private readonly eventsTable: string;
  private readonly keptEventsTable: string;
  private readonly schema: string;
  private readonly partitions: DayPartitions;

  constructor(options: PostgresStoreOptions) {
    const { connectionString, schema } = parseUrl(options.url);
    const statementTimeoutMs = options.statementTimeoutMs ?? DEFAULTS.statementTimeoutMs;
    this.schema = schema;
    this.table = `"${schema}".rms_messages`;
    this.activeTable = `"${schema}".rms_messages_active`;
    this.eventsTable = `"${schema}".rms_message_events`;
    this.keptEventsTable = `"${schema}".rms_message_events_kept`;
    this.partitions = new DayPartitions(schema, (sql, values) => this.query(sql, values));
    this.pool = new pg.Pool({
      connectionString,
      max: options.poolSize ?? DEFAULTS.poolSize,
      connectionTimeoutMillis: options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
      statement_timeout: statementTimeoutMs,
      // The client-side limit catches a server that stops answering altogether.
      query_timeout: statementTimeoutMs + 1000,
      idleTimeoutMillis: 30_000,
      keepAlive: true,
      application_name: 'rms',
      // Times come back in UTC, the shape `parseTimestamptz` reads fastest.
      options: '-c TimeZone=UTC',
      types: { getTypeParser: typeParser },
    });
    // An idle client whose connection drops emits 'error' on the pool; without a
    // listener that would crash the process. The next query reconnects.
    this.pool.on('error', () => undefined);
  }

  async init(): Promise<void> {
    const client = await this.connect();
    try {
      await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
      try {
        await client.query(`CREATE SCHEMA IF NOT EXISTS "${this.schema}"`);
        await client.query(
          `CREATE TABLE IF NOT EXISTS "${this.schema}".rms_schema_migrations (
             version integer PRIMARY KEY, description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
        );
        const { rows } = await client.query<{ version: number }>(
          `SELECT version FROM "${this.schema}".rms_schema_migrations`,
        );
        const applied = new Set(rows.map((row) => row.version));
        for (const migration of MIGRATIONS) {
          if (applied.has(migration.version)) continue;
          await client.query('BEGIN');
          try {
            await client.query(migration.sql.replaceAll('$schema', `"${this.schema}"`));
            await client.query(
              `INSERT INTO "${this.schema}".rms_schema_migrations (version, description) VALUES ($1, $2)`,
              [migration.version, migration.description],
            );
            await client.query('COMMIT');
          } catch (error) {
            await client.query('ROLLBACK');
            throw error;
          }
        }
      } finally {
        await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]);
      }
    } catch (error) {
      throw classifyPostgresError(error);
    } finally {
      client.release();
    }
    await this.ensureCurrentPartitions(new Date());
  }

  /** Creates the day partitions around `now` (yesterday to a few days ahead), so writes rarely find their day missing. */
  private async ensureCurrentPartitions(now: Date): Promise<void> {
    await this.partitions.ensureDays(new Date(now.getTime() - DAY_MS), new Date(now.getTime() + PARTITION_DAYS_AHEAD * DAY_MS));
  }

  /**
   * Creates the day partitions (messages' and history's) for every day from `from` to `to`:
   * for loading finished messages straight into the table (a benchmark, an import).
   */
  async createDayPartitions(from: Date, to: Date): Promise<void> {
    await this.partitions.ensureDays(from, to);
  }

  /**
   * Runs `write` once the partitions of `table` for `dates` exist; if it still finds one
   * missing (another instance's retention dropped it, or it was never made), creates it and
   * runs `write` again. A statement refused for a missing partition wrote nothing.
   */
  private async withPartitions<T>(table: PartitionedTable, dates: readonly Date[], write: () => Promise<T>): Promise<T> {
    const days = distinctDays(dates);
    for (const day of days) await this.partitions.ensure(table, day);
    try {
      return await write();
    } catch (error) {
      if (!isMissingPartitionError(error)) throw error;
      for (const day of days) {
        this.partitions.forget(table, day);
        await this.partitions.ensure(table, day);
      }
      return write();
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }

  async ping(): Promise<void> {
    await this.query('SELECT 1');
  }

  async insert(message: NewMessage): Promise<InsertResult> {
    // A new message goes straight into the active partition, whose unique index makes a
    // racing insert of the same producer key wait and then do nothing. A finished message
    // with that key lives in a day partition, outside that index: the NOT EXISTS finds it
    // (one statement's snapshot sees a message in exactly one partition, moving or not).
    const inserted = await this.query<{ id: string }>(
      `INSERT INTO ${this.activeTable}
         (id, producer, producer_message_id, topic, payload, headers, status, created_at, updated_at, next_attempt_at, deliver_at, traceparent, tracestate)
       SELECT $1::uuid, $2::text, $3::text, $4::text, $5::json, $6::jsonb, 'PENDING', $7::timestamptz, $7::timestamptz, $8::timestamptz,
              $9::timestamptz, $10::text, $11::text
       WHERE NOT EXISTS (SELECT 1 FROM ${this.table} f WHERE f.producer = $2 AND f.producer_message_id = $3 AND f.finished_at < 'infinity')
       ON CONFLICT (producer, producer_message_id) DO NOTHING
       RETURNING id`,
      [
        message.id,
        message.producer,
        message.producerMessageId,
        message.topic,
        JSON.stringify(message.payload),
        JSON.stringify(message.headers),
        message.createdAt,
        message.nextAttemptAt,
        message.deliverAt ?? null,
        message.traceparent ?? null,
        message.tracestate ?? null,
      ],
    );
    // Created: the row is what was sent (`preparedMessage`), so it is not read back.
    if (inserted.rows[0]) return { message: preparedMessage(message), created: true };
    // ON CONFLICT waits for a racing insert of the same key to commit, so the row is there now.
    const existing = await this.query<MessageRow>(
      `SELECT * FROM ${this.table} WHERE producer = $1 AND producer_message_id = $2 ORDER BY finished_at DESC LIMIT 1`,
      [message.producer, message.producerMessageId],
    );
    const existingRow = existing.rows[0];
    if (!existingRow) throw new Error(`insert of ${message.id} conflicted but no message holds its producer key`);
    return { message: toMessage(existingRow), created: false };
  }

  async insertMany(messages: readonly NewMessage[]): Promise<PromiseSettledResult<InsertResult>[]> {
    return settleStatement(messages, () => this.insertStatement(messages), (message) => this.insert(message));
  }

  /** The batch insert: one INSERT for all, then one read for those whose key was taken. */
  private async insertStatement(messages: readonly NewMessage[]): Promise<PromiseSettledResult<InsertResult>[]> {
    // One statement for the batch: the rows travel as one JSON array, inserted in the order
    // given, so the first of two same-key messages wins. A JSON null payload comes out of
    // the record set as SQL NULL, hence the COALESCE back to the JSON value null. Times
    // travel as epoch milliseconds (see `fromEpochMs`).
    const rows = messages.map((message, ord) => ({
      ord,
      id: message.id,
      producer: message.producer,
      producer_message_id: message.producerMessageId,
      topic: message.topic,
      payload: message.payload,
      headers: message.headers,
      created_at: message.createdAt.getTime(),
      next_attempt_at: message.nextAttemptAt.getTime(),
      deliver_at: message.deliverAt?.getTime() ?? null,
      traceparent: message.traceparent ?? null,
      tracestate: message.tracestate ?? null,
    }));
    const inserted = await this.query<{ id: string }>(
      `INSERT INTO ${this.activeTable}
         (id, producer, producer_message_id, topic, payload, headers, status, created_at, updated_at, next_attempt_at, deliver_at, traceparent, tracestate)
       SELECT v.id, v.producer, v.producer_message_id, v.topic, COALESCE(v.payload, 'null'::json), v.headers, 'PENDING',
              ${fromEpochMs('v.created_at')}, ${fromEpochMs('v.created_at')}, ${fromEpochMs('v.next_attempt_at')}, ${fromEpochMs('v.deliver_at')},
              v.traceparent, v.tracestate
       FROM json_to_recordset($1::json) AS v(ord int, id uuid, producer text, producer_message_id text, topic text,
                                             payload json, headers jsonb, created_at bigint, next_attempt_at bigint, deliver_at bigint,
                                             traceparent text, tracestate text)
       WHERE NOT EXISTS (SELECT 1 FROM ${this.table} f
                         WHERE f.producer = v.producer AND f.producer_message_id = v.producer_message_id AND f.finished_at < 'infinity')
       ORDER BY v.ord
       ON CONFLICT (producer, producer_message_id) DO NOTHING
       RETURNING id`,
      [JSON.stringify(rows)],
    );
    const created = new Set(inserted.rows.map((row) => row.id));
    const conflicted = messages.filter((message) => !created.has(message.id));
    const existing = new Map<string, Message>();
    let lookupError: unknown;
    if (conflicted.length > 0) {
      // As in `insert`: ON CONFLICT waited for racing inserts to commit, so the rows are there.
      // The INSERT has committed: if this read fails, only the conflicted messages fail.
      try {
        const found = await this.query<MessageRow>(
          `SELECT * FROM ${this.table}
           WHERE (producer, producer_message_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))
           ORDER BY finished_at`,
          [conflicted.map((message) => message.producer), conflicted.map((message) => message.producerMessageId)],
        );
        // Ordered by finished_at, so an unfinished message ('infinity') wins over a finished one.
        for (const row of found.rows) existing.set(producerKey(row.producer, row.producer_message_id), toMessage(row));
      } catch (error) {
        lookupError = error;
      }
    }
    return messages.map((message): PromiseSettledResult<InsertResult> => {
      if (created.has(message.id)) return { status: 'fulfilled', value: { message: preparedMessage(message), created: true } };
      if (lookupError !== undefined) return { status: 'rejected', reason: lookupError };
      const stored = existing.get(producerKey(message.producer, message.producerMessageId));
      if (!stored) return { status: 'rejected', reason: new Error(`insert of ${message.id} conflicted but no message holds its producer key`) };
      return { status: 'fulfilled', value: { message: stored, created: false } };
    });
  }

  async findByIds(ids: readonly string[]): Promise<(Message | null)[]> {
    if (ids.length === 0) return [];
    // The messages RMS reads on its hot path (to ack, nack, redeliver) are unfinished: look
    // in the active partition first, and through every day only for the ids not found there
    // (a message that finished between the two reads is found by the second).
    const { rows } = await this.query<MessageRow>(`SELECT * FROM ${this.activeTable} WHERE id = ANY($1::uuid[])`, [ids]);
    const byId = new Map(rows.map((row) => [row.id, toMessage(row)]));
    const missing = ids.filter((id) => !byId.has(id));
    if (missing.length > 0) {
      const finished = await this.query<MessageRow>(`SELECT * FROM ${this.table} WHERE id = ANY($1::uuid[])`, [missing]);
      for (const row of finished.rows) byId.set(row.id, toMessage(row));
    }
    return ids.map((id) => byId.get(id) ?? null);
  }

  async transitionMany(changes: readonly Transition[]): Promise<PromiseSettledResult<Message | null>[]> {
    return this.updateMany(
      changes,
      async (group) => (await this.updateShape<MessageRow>(group, 'm.*')).map(toMessage),
      (change) => this.transition(change),
    );
  }

  async moveMany(changes: readonly Transition[]): Promise<PromiseSettledResult<Moved | null>[]> {
    return this.updateMany(changes, (group) => this.updateShape<Moved>(group, MOVED_COLUMNS), (change) => this.move(change));
  }

  /**
   * Changes of the same shape (condition, target, fields set, fenced or not) share one
   * UPDATE ... FROM json_to_recordset: one statement per shape instead of one per message.
   * Each statement is atomic, so its changes are settled together (or, if it fails for a
   * reason of its own, one by one with `one`).
   */
  private async updateMany<Output extends { id: string }>(
    changes: readonly Transition[],
    shape: (group: Transition[]) => Promise<Output[]>,
    one: (change: Transition) => Promise<Output | null>,
  ): Promise<PromiseSettledResult<Output | null>[]> {
    requireDistinctIds(changes);
    const shapes = new Map<string, Transition[]>();
    for (const change of changes) {
      const key = shapeOf(change);
      const group = shapes.get(key);
      if (group) group.push(change);
      else shapes.set(key, [change]);
    }
    const outcomes = new Map<string, PromiseSettledResult<Output | null>>();
    await Promise.all(
      [...shapes.values()].map(async (group) => {
        const settled = await settleStatement(
          group,
          async () => {
            const moved = new Map((await shape(group)).map((output) => [output.id, output]));
            return group.map((change): PromiseSettledResult<Output | null> => ({ status: 'fulfilled', value: moved.get(change.id) ?? null }));
          },
          one,
        );
        group.forEach((change, index) => outcomes.set(change.id, settled[index] as PromiseSettledResult<Output | null>));
      }),
    );
    return changes.map((change) => outcomes.get(change.id) as PromiseSettledResult<Output | null>);
  }

  /** One UPDATE for changes that share their condition, target and set of fields, answering the `returning` columns of the rows it moved. */
  private async updateShape<Row extends pg.QueryResultRow>(group: Transition[], returning: string): Promise<Row[]> {
    const [first] = group as [Transition, ...Transition[]];
    const fields = patchFields(first);
    const fenced = first.fence !== undefined;
    const owned = first.producer !== undefined;
    const versioned = first.version !== undefined;
    const rows = group.map((change) => {
      const row: Record<string, unknown> = { id: change.id, at: change.at.getTime(), from_status: change.from.status, from_dead_reason: change.from.deadReason };
      for (const field of fields) row[PATCH_COLUMNS[field]] = asJsonValue(change.set[field]);
      if (fenced) row['fence'] = asJsonValue(change.fence?.nextAttemptAt ?? null);
      if (owned) row['producer'] = change.producer;
      if (versioned) row['version'] = change.version;
      return row;
    });
    const recordType = (field: keyof MessagePatch) => (PATCH_COLUMN_TYPES[field] === 'timestamptz' ? 'bigint' : PATCH_COLUMN_TYPES[field]);
    const columns = ['id uuid', 'at bigint', 'from_status text', 'from_dead_reason text', ...fields.map((field) => `${PATCH_COLUMNS[field]} ${recordType(field)}`)];
    if (fenced) columns.push('fence bigint');
    if (owned) columns.push('producer text');
    if (versioned) columns.push('version integer');
    const valueOf = (field: keyof MessagePatch) =>
      PATCH_COLUMN_TYPES[field] === 'timestamptz' ? fromEpochMs(`v.${PATCH_COLUMNS[field]}`) : `v.${PATCH_COLUMNS[field]}`;
    const assignments = [
      'status = $2',
      'dead_reason = $3',
      `updated_at = ${fromEpochMs('v.at')}`,
      'version = m.version + 1',
      `finished_at = ${FINISHED_STATUSES.has(first.to) ? fromEpochMs('v.at') : "'infinity'"}`,
      ...fields.map((field) => `${PATCH_COLUMNS[field]} = ${valueOf(field)}`),
    ];
    // The rows are found by primary key only (`id = ANY`); the expected state is compared
    // per row from the record set. Written as constants, the state would let the planner
    // pick the status indexes and read every SENDING row to update a hundred of them,
    // which it does whenever its statistics lag behind a fast-growing table.
    const { rows: updated } = await this.partitionedUpdate<Row>(
      first,
      group.map((change) => change.at),
      `UPDATE ${this.updateTarget(first)} AS m SET ${assignments.join(', ')}
       FROM json_to_recordset($1::json) AS v(${columns.join(', ')})
       WHERE m.id = ANY($4::uuid[]) AND m.id = v.id AND ${partitionOf(first.from.status)}
         AND m.status = v.from_status AND m.dead_reason IS NOT DISTINCT FROM v.from_dead_reason
         ${fenced ? `AND m.next_attempt_at IS NOT DISTINCT FROM ${fromEpochMs('v.fence')}` : ''}
         ${owned ? 'AND m.producer = v.producer' : ''}
         ${versioned ? 'AND m.version = v.version' : ''}
       RETURNING ${returning}`,
      [JSON.stringify(rows), first.to, first.deadReason, group.map((change) => change.id)],
    );
    return updated;
  }

  async findById(id: string): Promise<Message | null> {
    const [message] = await this.findByIds([id]);
    return message ?? null;
  }

  /**
   * The table an UPDATE names: the active partition itself when the message stays
   * unfinished (most writes: confirms, rounds, claims), which spares PostgreSQL planning
   * over every day; the partitioned table when the row may move between partitions.
   */
  private updateTarget(change: Pick<Transition, 'from' | 'to'>): string {
    return FINISHED_STATUSES.has(change.from.status) || FINISHED_STATUSES.has(change.to) ? this.table : this.activeTable;
  }

  async transition(change: Transition): Promise<Message | null> {
    const [row] = await this.updateOne<MessageRow>(change, '*');
    return row ? toMessage(row) : null;
  }

  async move(change: Transition): Promise<Moved | null> {
    const [row] = await this.updateOne<Moved>(change, 'id, version');
    return row ?? null;
  }

  /** The UPDATE of one change, answering the `returning` columns of the row if it moved. */
  private async updateOne<Row extends pg.QueryResultRow>(change: Transition, returning: string): Promise<Row[]> {
    const values: unknown[] = [change.id, change.from.status, change.from.deadReason, change.to, change.deadReason, change.at];
    const assignments = ['status = $4', 'dead_reason = $5', 'updated_at = $6', 'version = version + 1', `finished_at = ${FINISHED_STATUSES.has(change.to) ? '$6' : "'infinity'"}`];
    for (const [field, value] of Object.entries(change.set) as [keyof MessagePatch, unknown][]) {
      if (value === undefined) continue;
      values.push(asParameter(field, value));
      assignments.push(`${PATCH_COLUMNS[field]} = $${values.length}`);
    }
    let conditions = '';
    if (change.fence) {
      values.push(change.fence.nextAttemptAt);
      conditions += ` AND next_attempt_at IS NOT DISTINCT FROM $${values.length}`;
    }
    if (change.producer !== undefined) {
      values.push(change.producer);
      conditions += ` AND producer = $${values.length}`;
    }
    if (change.version !== undefined) {
      values.push(change.version);
      conditions += ` AND version = $${values.length}`;
    }
    const { rows } = await this.partitionedUpdate<Row>(
      change,
      [change.at],
      `UPDATE ${this.updateTarget(change)} SET ${assignments.join(', ')}
       WHERE id = $1 AND ${partitionOf(change.from.status)} AND status = $2 AND dead_reason IS NOT DISTINCT FROM $3${conditions}
       RETURNING ${returning}`,
      values,
    );
    return rows;
  }

  async claimDue(query: ClaimQuery): Promise<Message[]> {
    // SKIP LOCKED: a row another instance is claiming right now is left to it, not waited for.
    const { rows } = await this.queryAgainIfMoved<MessageRow>(
      `WITH due AS (
         SELECT id FROM ${this.activeTable}
         WHERE status = ANY($1::text[]) AND next_attempt_at <= $2
         ORDER BY next_attempt_at
         LIMIT $4
         FOR UPDATE SKIP LOCKED
       )
       UPDATE ${this.activeTable} AS m SET next_attempt_at = $3, version = m.version + 1
       FROM due WHERE m.id = due.id
       RETURNING m.*`,
      [query.status === 'SENDING' ? ['SENDING', 'DEAD'] : ['PENDING'], query.now, query.leaseUntil, query.limit],
    );
    return rows.map(toMessage);
  }

  /**
   * Drops every finished day's partition that ends by `before`, messages' and events'
   * (events of unfinished messages are kept aside first), and creates the coming days'
   * partitions. Whole days only: a message finished on a day that ends after `before` stays
   * until a later sweep. `limit` bounds row deletes, and this adapter deletes no rows.
   */
  async pruneFinished(before: Date, _limit: number): Promise<number> {
    await this.ensureCurrentPartitions(new Date());
    const dropped = await this.partitions.dropExpired(before);
    return dropped.messages;
  }

  async appendEvents(events: readonly MessageEvent[]): Promise<void> {
    if (events.length === 0) return;
    const column = <T>(pick: (event: MessageEvent) => T): T[] => events.map(pick);
    await this.withPartitions('events', column((e) => e.at), () => this.query(
      `INSERT INTO ${this.eventsTable}
         (message_id, at, type, actor, app, consumer_group, attempt, transport, outcome, duration_ms, reason, next_attempt_at)
       SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::integer[],
                            $8::text[], $9::text[], $10::integer[], $11::text[], $12::timestamptz[])`,
      [
        column((e) => e.messageId),
        column((e) => e.at),
        column((e) => e.type),
        column((e) => e.actor),
        column((e) => e.app),
        column((e) => e.group),
        column((e) => e.attempt),
        column((e) => e.transport),
        column((e) => e.outcome),
        column((e) => (e.durationMs === null ? null : Math.round(e.durationMs))),
        column((e) => e.reason),
        column((e) => e.nextAttemptAt),
      ],
    ));
  }

  async history(messageId: string, limit: number): Promise<MessageEvent[]> {
    const { rows } = await this.query<EventRow>(
      `SELECT * FROM ${this.eventsTable} WHERE message_id = $1
       UNION ALL
       SELECT * FROM ${this.keptEventsTable} WHERE message_id = $1
       ORDER BY at, seq LIMIT $2`,
      [messageId, limit],
    );
    return rows.map(toEvent);
  }

  async countByStatusAndTopic(): Promise<StatusTopicCount[]> {
    const { rows } = await this.query<{ status: Message['status']; topic: string; count: string }>(
      `SELECT status, topic, count(*) AS count FROM ${this.table} GROUP BY status, topic ORDER BY topic, status`,
    );
    return rows.map((row) => ({ status: row.status, topic: row.topic, count: Number(row.count) }));
  }

  async oldestWaiting(limit: number): Promise<Message[]> {
    const { rows } = await this.query<MessageRow>(
      // The subquery fence (OFFSET 0) makes PostgreSQL read the waiting messages through the
      // partial due index (a waiting message always has something due) and sort them, rather than walk the creation-time index from the
      // oldest end through every finished message still retained (150 ms at a million rows).
      `SELECT * FROM (SELECT * FROM ${this.activeTable} WHERE status IN ('PENDING', 'SENDING') AND next_attempt_at IS NOT NULL OFFSET 0) AS waiting
       ORDER BY created_at, id LIMIT $1`,
      [limit],
    );
    return rows.map(toMessage);
  }

  async backlogByTopic(): Promise<TopicBacklog[]> {
    // Two arms so that each is answered from its partial index (rms_messages_due for the
    // in-flight statuses, rms_messages_dead_created for DEAD) instead of a table scan.
    // PENDING and SENDING messages always have a next attempt; the condition only lets the
    // planner match rms_messages_due's predicate.
    const { rows } = await this.query<{ topic: string; status: 'PENDING' | 'SENDING' | 'DEAD'; count: number; oldest_created: Date | null; oldest_confirmed: Date | null }>(
      `SELECT topic, status, count(*)::int AS count, min(created_at) AS oldest_created, min(confirmed_at) AS oldest_confirmed
         FROM ${this.activeTable} WHERE status IN ('PENDING', 'SENDING') AND next_attempt_at IS NOT NULL GROUP BY topic, status
       UNION ALL
       SELECT topic, status, count(*)::int, NULL, NULL
         FROM ${this.activeTable} WHERE status = 'DEAD' GROUP BY topic, status`,
    );
    return foldBacklogGroups(
      rows.map((row) => ({ topic: row.topic, status: row.status, count: row.count, oldestCreatedAt: row.oldest_created, oldestConfirmedAt: row.oldest_confirmed })),
    );
  }

  async list(query: ListQuery): Promise<MessagePage> {
    const conditions: string[] = [];
    const values: unknown[] = [];
    if (query.status) {
      values.push(query.status);
      conditions.push(`status = $${values.length}`);
    }
    if (query.topic) {
      values.push(query.topic);
      conditions.push(`topic = $${values.length}`);
    }
    if (query.producer) {
      values.push(query.producer);
      conditions.push(`producer = $${values.length}`);
    }
    if (query.producerMessageId) {
      values.push(query.producerMessageId);
      conditions.push(`producer_message_id = $${values.length}`);
    }
    if (query.createdFrom) {
      values.push(query.createdFrom);
      conditions.push(`created_at >= $${values.length}`);
    }
    if (query.createdBefore) {
      values.push(query.createdBefore);
      conditions.push(`created_at < $${values.length}`);
    }
    if (query.after) {
      values.push(query.after.createdAt, query.after.id);
      conditions.push(`(created_at, id) < ($${values.length - 1}, $${values.length})`);
    }
    values.push(query.limit + 1);
    const where = conditions.length > 0 ? `WHERE ${conditions.join(' AND ')}` : '';
    const { rows } = await this.query<MessageRow>(
      `SELECT * FROM ${this.table} ${where} ORDER BY created_at DESC, id DESC LIMIT $${values.length}`,
      values,
    );
    const messages = rows.slice(0, query.limit).map(toMessage);
    const last = messages.at(-1);
    const next = rows.length > query.limit && last ? { createdAt: last.createdAt, id: last.id } : null;
    return { messages, next };
  }

  /**
   * Runs an UPDATE of messages that may move some into a finished day's partition (which
   * is created if needed), again if a concurrent move got in its way (`queryAgainIfMoved`).
   */
  private async partitionedUpdate<Row extends pg.QueryResultRow>(
    change: Pick<Transition, 'to'>,
    dates: readonly Date[],
    sql: string,
    values: unknown[],
  ): Promise<pg.QueryResult<Row>> {
    const run = () => this.queryAgainIfMoved<Row>(sql, values);
    return FINISHED_STATUSES.has(change.to) ? this.withPartitions('messages', dates, run) : run();
  }

  /**
   * Runs a statement that locks or updates messages, again when a concurrent UPDATE moved
   * one of its rows to another partition under it: READ COMMITTED then refuses the whole
   * statement (it wrote nothing), and run again it reads each row where it now is.
   */
  private async queryAgainIfMoved<Row extends pg.QueryResultRow>(sql: string, values: unknown[]): Promise<pg.QueryResult<Row>> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.query<Row>(sql, values);
      } catch (error) {
        if (!isMovedRowError(error) || attempt >= MOVED_ROW_ATTEMPTS) throw error;
      }
    }
  }

  private async connect(): Promise<pg.PoolClient> {
    try {
      return await this.pool.connect();
    } catch (error) {
      throw classifyPostgresError(error);
    }
  }

  private async query<Row extends pg.QueryResultRow>(sql: string, values: unknown[] = []): Promise<pg.QueryResult<Row>> {
    try {
      return await this.pool.query<Row>(sql, values);
    } catch (error) {
      throw classifyPostgresError(error);
    }
  }
}
