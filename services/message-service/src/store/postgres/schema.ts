/**
 * The PostgreSQL schema, as an ordered list of migrations. `PostgresMessageStore.init`
 * applies the ones not yet recorded, under an advisory lock so that several RMS
 * instances starting together migrate once.
 */

/** What a `?schema=` parameter of `STORE_URL` may name: an unquoted PostgreSQL identifier. */
export const SCHEMA_NAME_PATTERN = /^[a-z_][a-z0-9_]{0,62}$/;

/** One schema change; `version`s are applied in order and recorded. */
export interface Migration {
  version: number;
  description: string;
  /** SQL with `$schema` standing for the quoted schema name. */
  sql: string;
}

/** Every migration so far. Append; never edit one that has shipped. */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'messages table and its indexes',
    sql: `
      CREATE TABLE $schema.rms_messages (
        id                  uuid        PRIMARY KEY,
        producer            text        NOT NULL,
        producer_message_id text,
        topic               text        NOT NULL,
        payload             json        NOT NULL,
        headers             jsonb       NOT NULL DEFAULT '{}'::jsonb,
        status              text        NOT NULL
          CHECK (status IN ('PENDING', 'SENDING', 'COMPLETED', 'CANCELLED', 'DEAD')),
        dead_reason         text
          CHECK (dead_reason IN ('CHECK_EXHAUSTED', 'DELIVERY_EXHAUSTED')),
        created_at          timestamptz NOT NULL,
        updated_at          timestamptz NOT NULL,
        confirmed_at        timestamptz,
        completed_at        timestamptz,
        cancelled_at        timestamptz,
        check_attempts      integer     NOT NULL DEFAULT 0,
        delivery_attempts   integer     NOT NULL DEFAULT 0,
        next_attempt_at     timestamptz,
        last_transport      text,
        last_error          text,
        CONSTRAINT rms_messages_producer_key UNIQUE (producer, producer_message_id),
        CONSTRAINT rms_messages_dead_reason_only_when_dead CHECK ((status = 'DEAD') = (dead_reason IS NOT NULL))
      );
      -- The due-message loops read "PENDING (or SENDING) due before now, oldest first":
      -- a range scan of this partial index costs the number of due rows, not the table size.
      CREATE INDEX rms_messages_due ON $schema.rms_messages (status, next_attempt_at)
        WHERE status IN ('PENDING', 'SENDING');
      -- Newest-first admin listing, unfiltered and by status or topic.
      CREATE INDEX rms_messages_created ON $schema.rms_messages (created_at DESC, id DESC);
      CREATE INDEX rms_messages_status_created ON $schema.rms_messages (status, created_at DESC, id DESC);
      CREATE INDEX rms_messages_topic_created ON $schema.rms_messages (topic, created_at DESC, id DESC);
    `,
  },
  {
    version: 2,
    description: 'index for the retention sweep',
    sql: `
      -- Retention deletes finished messages oldest first; the partial index keeps that
      -- sweep off the rows still in flight.
      CREATE INDEX rms_messages_finished ON $schema.rms_messages (updated_at)
        WHERE status IN ('COMPLETED', 'CANCELLED');
    `,
  },
  {
    version: 3,
    description: 'fewer indexes on the hot path: listing by status or topic indexed for DEAD messages only',
    sql: `
      -- A message is written four times (prepare, confirm, delivery round, ack), and since
      -- each write changes an indexed column, every write adds an entry to every index.
      -- The status and topic listing indexes cost two of those per write for a query only
      -- admins run; they are replaced by partial indexes that only DEAD messages enter
      -- (what admins list and resend). Other filtered listings walk rms_messages_created
      -- newest first and stop at the page size: fast for recent and common statuses.
      DROP INDEX IF EXISTS $schema.rms_messages_status_created;
      DROP INDEX IF EXISTS $schema.rms_messages_topic_created;
      CREATE INDEX rms_messages_dead_created ON $schema.rms_messages (created_at DESC, id DESC)
        WHERE status = 'DEAD';
      CREATE INDEX rms_messages_dead_topic_created ON $schema.rms_messages (topic, created_at DESC, id DESC)
        WHERE status = 'DEAD';
    `,
  },
  {
    version: 4,
    description: 'consumer groups: one delivery per group, delayed delivery, optimistic version',
    sql: `
      -- Each group's delivery (status, rounds, deadline, last error) lives in the message
      -- row: an ack or a round rewrites the row under the version it was decided from.
      -- Rows confirmed before this migration hold no deliveries and are read as one
      -- delivery of the default group (the shared queue they were published to).
      ALTER TABLE $schema.rms_messages
        ADD COLUMN deliveries jsonb       NOT NULL DEFAULT '[]'::jsonb,
        ADD COLUMN deliver_at timestamptz,
        ADD COLUMN version    integer     NOT NULL DEFAULT 0;
      -- A DEAD message (one group exhausted) stays due while other groups' deliveries are
      -- still SENDING; only rows with something due are in the index. A delayed message
      -- waits here under its deliverAt, so the due scans never read it before then.
      DROP INDEX IF EXISTS $schema.rms_messages_due;
      CREATE INDEX rms_messages_due ON $schema.rms_messages (status, next_attempt_at)
        WHERE next_attempt_at IS NOT NULL;
    `,
  },
  {
    version: 5,
    description: 'last publish time (publish-to-ack latency) and the W3C trace context of each message',
    sql: `
      ALTER TABLE $schema.rms_messages
        ADD COLUMN IF NOT EXISTS last_published_at timestamptz,
        ADD COLUMN IF NOT EXISTS traceparent text,
        ADD COLUMN IF NOT EXISTS tracestate text;
    `,
  },
  {
    version: 6,
    description: 'message history events; finding messages by the producer key',
    sql: `
      -- One row per event of a message's life (issue 12): append-only, read per message in
      -- order. No foreign key: appends stay one cheap statement, and the retention sweep
      -- deletes a message's events in the statement that deletes the message.
      CREATE TABLE $schema.rms_message_events (
        seq             bigserial   PRIMARY KEY,
        message_id      uuid        NOT NULL,
        at              timestamptz NOT NULL,
        type            text        NOT NULL,
        actor           text        NOT NULL,
        app             text,
        consumer_group  text,
        attempt         integer,
        transport       text,
        outcome         text,
        duration_ms     integer,
        reason          text,
        next_attempt_at timestamptz
      );
      CREATE INDEX rms_message_events_message ON $schema.rms_message_events (message_id, at, seq);
      -- Operators look a message up by the producer's own key, usually without the producer:
      -- the unique (producer, producer_message_id) index cannot serve that. Messages without
      -- a key stay out of this one.
      CREATE INDEX rms_messages_producer_message_id ON $schema.rms_messages (producer_message_id)
        WHERE producer_message_id IS NOT NULL;
    `,
  },
  {
    version: 7,
    description: 'time-range partitions: unfinished messages in one small partition, finished ones and history by day',
    sql: `
      -- Messages are partitioned by finished_at (see partitions.ts): 'infinity' for PENDING,
      -- SENDING and DEAD ones, which live in rms_messages_active; the UTC day of a COMPLETED
      -- or CANCELLED one, whose UPDATE moves it into that day's partition. Retention drops
      -- whole days. The existing rows are copied across in this migration's transaction:
      -- on a large store, run it in a maintenance window (docs/deployment.md).
      CREATE TABLE $schema.rms_messages_partitioned (
        LIKE $schema.rms_messages INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
        finished_at timestamptz NOT NULL DEFAULT 'infinity'
      ) PARTITION BY RANGE (finished_at);
      -- A partitioned table's primary key must hold the partition key. Ids stay unique
      -- across partitions because RMS makes them (UUIDv7) and a move keeps the row's id.
      ALTER TABLE $schema.rms_messages_partitioned ADD CONSTRAINT rms_messages_partitioned_pkey PRIMARY KEY (id, finished_at);
      CREATE TABLE $schema.rms_messages_active PARTITION OF $schema.rms_messages_partitioned
        FOR VALUES FROM ('infinity') TO (MAXVALUE);
      DO $migrate$
      DECLARE day date;
      BEGIN
        FOR day IN SELECT DISTINCT (updated_at AT TIME ZONE 'UTC')::date FROM $schema.rms_messages
                   WHERE status IN ('COMPLETED', 'CANCELLED') LOOP
          EXECUTE format('CREATE TABLE $schema.%I PARTITION OF $schema.rms_messages_partitioned FOR VALUES FROM (%L) TO (%L)',
                         'rms_messages_finished_' || to_char(day, 'YYYYMMDD'), day::text || ' 00:00:00+00', (day + 1)::text || ' 00:00:00+00');
        END LOOP;
      END
      $migrate$;
      INSERT INTO $schema.rms_messages_partitioned
        SELECT m.*, CASE WHEN m.status IN ('COMPLETED', 'CANCELLED') THEN m.updated_at ELSE 'infinity' END FROM $schema.rms_messages m;
      DROP TABLE $schema.rms_messages;
      ALTER TABLE $schema.rms_messages_partitioned RENAME TO rms_messages;
      ALTER TABLE $schema.rms_messages RENAME CONSTRAINT rms_messages_partitioned_pkey TO rms_messages_pkey;
      -- Indexes of every partition: the newest-first listing and the producer's key.
      CREATE INDEX rms_messages_created ON $schema.rms_messages (created_at DESC, id DESC);
      CREATE INDEX rms_messages_producer_message_id ON $schema.rms_messages (producer_message_id)
        WHERE producer_message_id IS NOT NULL;
      -- Indexes of the active partition only, so finished rows never enter them: the due
      -- scans, DEAD listings, and the producer key's uniqueness among unfinished messages
      -- (a prepare also looks for the key among finished ones: see insert).
      CREATE UNIQUE INDEX rms_messages_producer_key ON $schema.rms_messages_active (producer, producer_message_id);
      CREATE INDEX rms_messages_due ON $schema.rms_messages_active (status, next_attempt_at)
        WHERE next_attempt_at IS NOT NULL;
      CREATE INDEX rms_messages_dead_created ON $schema.rms_messages_active (created_at DESC, id DESC)
        WHERE status = 'DEAD';
      CREATE INDEX rms_messages_dead_topic_created ON $schema.rms_messages_active (topic, created_at DESC, id DESC)
        WHERE status = 'DEAD';

      -- History by the day of each event; events of unfinished messages are copied into
      -- rms_message_events_kept before their day is dropped.
      CREATE TABLE $schema.rms_message_events_partitioned (
        LIKE $schema.rms_message_events INCLUDING DEFAULTS
      ) PARTITION BY RANGE (at);
      DO $migrate$
      DECLARE day date;
      BEGIN
        FOR day IN SELECT DISTINCT (at AT TIME ZONE 'UTC')::date FROM $schema.rms_message_events LOOP
          EXECUTE format('CREATE TABLE $schema.%I PARTITION OF $schema.rms_message_events_partitioned FOR VALUES FROM (%L) TO (%L)',
                         'rms_message_events_' || to_char(day, 'YYYYMMDD'), day::text || ' 00:00:00+00', (day + 1)::text || ' 00:00:00+00');
        END LOOP;
      END
      $migrate$;
      INSERT INTO $schema.rms_message_events_partitioned SELECT * FROM $schema.rms_message_events;
      -- The sequence belongs to the old table's seq column: hand it to the new one first.
      ALTER SEQUENCE $schema.rms_message_events_seq_seq OWNED BY $schema.rms_message_events_partitioned.seq;
      DROP TABLE $schema.rms_message_events;
      ALTER TABLE $schema.rms_message_events_partitioned RENAME TO rms_message_events;
      CREATE INDEX rms_message_events_message ON $schema.rms_message_events (message_id, at, seq);
      CREATE TABLE $schema.rms_message_events_kept (LIKE $schema.rms_message_events INCLUDING DEFAULTS);
      CREATE INDEX rms_message_events_kept_message ON $schema.rms_message_events_kept (message_id, at, seq);
    `,
  },
];
