/**
 * The MongoDB adapter of `MessageStore`, with mongoose.
 *
 * Every state change is one `findOneAndUpdate` whose filter is the state it was decided
 * from, so a transition either happens from that state or not at all: MongoDB updates one
 * document atomically and re-evaluates the filter when concurrent writes to it conflict.
 */
import mongoose from 'mongoose';
import { DependencyUnavailableError } from '../../domain/errors.js';
import {
  DEAD_REASONS,
  DELIVERY_STATUSES,
  MESSAGE_STATUSES,
  type JsonValue,
  type Message,
  type MessagePatch,
  type MessageStatus,
  type NewMessage,
  preparedMessage,
} from '../../domain/message.js';
import { MESSAGE_EVENT_TYPES, type MessageEvent, completeEvent } from '../../domain/message-event.js';
import type { ClaimQuery, InsertResult, ListQuery, MessagePage, MessageStore, Moved, StatusTopicCount, TopicBacklog, Transition } from '../message-store.js';
import { foldBacklogGroups } from '../topic-backlog.js';
import { requireDistinctIds } from '../require-distinct-ids.js';

/** Options of the MongoDB store. */
export interface MongoStoreOptions {
  /**
   * A `mongodb://` or `mongodb+srv://` URL; its path names the database. A driver setting
   * the URL names itself (`serverSelectionTimeoutMS`, `maxPoolSize`, ...) is kept unless
   * the matching option below is given explicitly.
   */
  url: string;
  /**
   * The collection that holds the messages.
   * @defaultValue 'rms_messages'
   */
  collection?: string;
  /**
   * How long to wait for a usable server (server selection), a new connection, or a free
   * pooled connection before the call fails as unavailable.
   * @defaultValue 5000
   */
  connectTimeoutMs?: number;
  /**
   * Server-side limit (`maxTimeMS`) on one query; the client gives up on a silent socket
   * one second after it.
   * @defaultValue 10000
   */
  operationTimeoutMs?: number;
  /**
   * Most connections in the pool.
   * @defaultValue 10
   */
  poolSize?: number;
  /**
   * Finished messages (COMPLETED, CANCELLED) and history events expire this long after
   * they finished (were recorded), by TTL indexes; absent, nothing expires by itself and
   * only `pruneFinished` removes them. The server applies a TTL within about a minute.
   */
  retentionMs?: number;
}

const DEFAULTS = { collection: 'rms_messages', connectTimeoutMs: 5000, operationTimeoutMs: 10_000, poolSize: 10 } as const;

/** Names the duplicate-key error of an idempotent insert; kept equal to the PostgreSQL constraint's. */
const PRODUCER_KEY_INDEX = 'rms_messages_producer_key';

/**
 * The indexes, equivalent to the PostgreSQL ones. Created in one `createIndexes` command
 * from `init`; the schema declares none, so mongoose never builds any behind our back.
 */
const INDEXES: mongoose.mongo.IndexDescription[] = [
  {
    key: { producer: 1, producerMessageId: 1 },
    name: PRODUCER_KEY_INDEX,
    unique: true,
    // Messages without a producer key (stored as null) stay out of the index, so they
    // never collide, as NULLs do not in a PostgreSQL unique constraint.
    partialFilterExpression: { producerMessageId: { $type: 'string' } },
  },
  // The due-message loops read "PENDING (or SENDING) due before now, oldest first". Only
  // messages with something due are in it (a finished one has no next attempt), so its
  // size follows the backlog, not the history.
  { key: { status: 1, nextAttemptAt: 1 }, name: 'rms_messages_due_unfinished', partialFilterExpression: { nextAttemptAt: { $type: 'date' } } },
  // Newest-first admin listing, unfiltered and by status or topic.
  { key: { createdAt: -1, _id: -1 }, name: 'rms_messages_created' },
  { key: { status: 1, createdAt: -1, _id: -1 }, name: 'rms_messages_status_created' },
  { key: { topic: 1, createdAt: -1, _id: -1 }, name: 'rms_messages_topic_created' },
  // Operators look a message up by the producer's own key, usually without the producer.
  { key: { producerMessageId: 1 }, name: 'rms_messages_producer_message_id', partialFilterExpression: { producerMessageId: { $type: 'string' } } },
];

/** Indexes of earlier versions that this one replaces; `init` drops them. */
const REPLACED_INDEXES = ['rms_messages_due', 'rms_messages_finished'];

/** The TTL index of finished messages (and the retention sweep's index): only finished ones hold `finishedAt`. */
const FINISHED_TTL_INDEX = 'rms_messages_finished_ttl';

/** The TTL index of history events. */
const EVENTS_TTL_INDEX = 'rms_message_events_ttl';

/** Statuses that end a message's life; `finishedAt` is set when a message enters one. */
const FINISHED_STATUSES: ReadonlySet<string> = new Set(['COMPLETED', 'CANCELLED']);

/** The history collection's one index: a message's events in order. */
const EVENT_INDEXES: mongoose.mongo.IndexDescription[] = [{ key: { messageId: 1, at: 1, _id: 1 }, name: 'rms_message_events_message' }];

/** A stored history event; `_id` (an ObjectId) orders events appended in the same millisecond. */
type EventDocument = MessageEvent;

const eventSchema = new mongoose.Schema<EventDocument>(
  {
    messageId: { type: String },
    at: { type: Date },
    type: { type: String, enum: MESSAGE_EVENT_TYPES },
    actor: { type: String },
    app: { type: String },
    group: { type: String },
    attempt: { type: Number },
    transport: { type: String },
    outcome: { type: String },
    durationMs: { type: Number },
    reason: { type: String },
    nextAttemptAt: { type: Date },
  },
  { timestamps: false, versionKey: false, bufferCommands: false, autoIndex: false, autoCreate: false },
);

/** A stored event as the port returns it: absent optional fields read as `null`, MongoDB's `_id` left out. */
function toEvent(document: EventDocument & { _id?: unknown }): MessageEvent {
  const { _id, ...event } = document;
  return completeEvent(event);
}

/**
 * A stored message: `Message` with the RMS id as `_id`. The payload is `unknown` here
 * because mongoose's schema typings recurse without end on the recursive `JsonValue`;
 * only `insert` writes it, from a `JsonValue`.
 */
type MessageDocument = Omit<Message, 'id' | 'payload'> & {
  _id: string;
  payload: unknown;
  /** When the message became COMPLETED or CANCELLED; absent (null) before. What the TTL index reads. */
  finishedAt?: Date | null;
};

const messageSchema = new mongoose.Schema<MessageDocument>(
  {
    _id: { type: String },
    producer: { type: String },
    producerMessageId: { type: String },
    topic: { type: String },
    // Mixed: any JSON value, stored as given (null, scalars and arrays included).
    payload: { type: mongoose.Schema.Types.Mixed },
    headers: { type: mongoose.Schema.Types.Mixed },
    status: { type: String, enum: MESSAGE_STATUSES },
    deadReason: { type: String, enum: [...DEAD_REASONS, null] },
    createdAt: { type: Date },
    updatedAt: { type: Date },
    confirmedAt: { type: Date },
    completedAt: { type: Date },
    cancelledAt: { type: Date },
    checkAttempts: { type: Number },
    deliveryAttempts: { type: Number },
    nextAttemptAt: { type: Date },
    lastTransport: { type: String },
    lastError: { type: String },
    deliverAt: { type: Date },
    // Each group's delivery, written whole under `version` (see `Transition.version`).
    deliveries: [
      {
        _id: false,
        group: { type: String },
        status: { type: String, enum: DELIVERY_STATUSES },
        attempts: { type: Number },
        nextAttemptAt: { type: Date },
        lastTransport: { type: String },
        lastError: { type: String },
        ackedAt: { type: Date },
      },
    ],
    version: { type: Number },
    lastPublishedAt: { type: Date },
    traceparent: { type: String },
    tracestate: { type: String },
    finishedAt: { type: Date },
  },
  {
    // Without this an empty `{}` payload or headers would be dropped on save and read
    // back as missing.
    minimize: false,
    // The state machine decides every timestamp; the store only persists them.
    timestamps: false,
    // Concurrency control is the conditional filter of `transition` (and RMS's own
    // `version`, bumped by every write), not mongoose's version key.
    versionKey: false,
    id: false,
    // Fail at once while disconnected instead of queueing calls until a reconnect.
    bufferCommands: false,
    // `init` creates the indexes, explicitly and once.
    autoIndex: false,
    autoCreate: false,
  },
);

function toMessage(document: MessageDocument): Message {
  return {
    id: document._id,
    producer: document.producer,
    producerMessageId: document.producerMessageId ?? null,
    topic: document.topic,
    // A stored JSON null is a payload like any other; only a missing field falls back.
    payload: document.payload === undefined ? null : (document.payload as JsonValue),
    headers: document.headers ?? {},
    status: document.status,
    deadReason: document.deadReason ?? null,
    createdAt: document.createdAt,
    updatedAt: document.updatedAt,
    confirmedAt: document.confirmedAt ?? null,
    completedAt: document.completedAt ?? null,
    cancelledAt: document.cancelledAt ?? null,
    checkAttempts: document.checkAttempts ?? 0,
    deliveryAttempts: document.deliveryAttempts ?? 0,
    nextAttemptAt: document.nextAttemptAt ?? null,
    lastTransport: document.lastTransport ?? null,
    lastError: document.lastError ?? null,
    deliverAt: document.deliverAt ?? null,
    deliveries: (document.deliveries ?? []).map((delivery) => ({
      group: delivery.group,
      status: delivery.status,
      attempts: delivery.attempts ?? 0,
      nextAttemptAt: delivery.nextAttemptAt ?? null,
      lastTransport: delivery.lastTransport ?? null,
      lastError: delivery.lastError ?? null,
      ackedAt: delivery.ackedAt ?? null,
    })),
    version: document.version ?? 0,
    lastPublishedAt: document.lastPublishedAt ?? null,
    traceparent: document.traceparent ?? null,
    tracestate: document.tracestate ?? null,
  };
}

/**
 * Server error codes that mean "no usable primary right now" (shutting down, stepped
 * down, unreachable) or "too slow to answer" (`maxTimeMS` expired), not "your request is
 * wrong". The driver's own retryable set, plus the time limits.
 */
const UNAVAILABLE_CODES = new Set<number>([
  6, // HostUnreachable
  7, // HostNotFound
  50, // MaxTimeMSExpired
  64, // WriteConcernFailed (timeout waiting for replication)
  89, // NetworkTimeout
  91, // ShutdownInProgress
  134, // ReadConcernMajorityNotAvailableYet
  189, // PrimarySteppedDown
  262, // ExceededTimeLimit
  9001, // SocketException
  10058, // LegacyNotPrimary
  10107, // NotWritablePrimary
  11600, // InterruptedAtShutdown
  11602, // InterruptedDueToReplStateChange
  13435, // NotPrimaryNoSecondaryOk
  13436, // NotPrimaryOrSecondary
]);

/** Labels the driver puts on errors that a retry against a recovered server would fix. */
const UNAVAILABLE_LABELS = ['RetryableWriteError', 'ResetPool', 'PoolRequestedRetry', 'SystemOverloadedError'];

/** Driver errors not exported as classes, recognised by name. */
const UNAVAILABLE_NAMES = new Set(['MongoWaitQueueTimeoutError', 'MongoPoolClosedError']);

/** What mongoose says when it is asked to run a command with no connection to run it on. */
const MONGOOSE_DISCONNECTED =
  /before initial connection is complete|Connection was force closed|closed and destroyed|buffering timed out/;

function isUnavailable(error: unknown): boolean {
  const { mongo } = mongoose;
  if (
    // Refused, reset or silent sockets; MongoNetworkTimeoutError and a cleared pool are subclasses.
    error instanceof mongo.MongoNetworkError ||
    error instanceof mongo.MongoServerSelectionError ||
    error instanceof mongo.MongoNotConnectedError ||
    error instanceof mongo.MongoTopologyClosedError ||
    error instanceof mongo.MongoClientClosedError ||
    error instanceof mongo.MongoServerClosedError ||
    error instanceof mongo.MongoOperationTimeoutError ||
    error instanceof mongoose.Error.MongooseServerSelectionError
  ) {
    return true;
  }
  if (error instanceof mongo.MongoError) {
    if (UNAVAILABLE_LABELS.some((label) => error.hasErrorLabel(label))) return true;
    if (typeof error.code === 'number' && UNAVAILABLE_CODES.has(error.code)) return true;
  }
  if (error instanceof Error) {
    if (UNAVAILABLE_NAMES.has(error.name)) return true;
    if (error instanceof mongoose.Error && MONGOOSE_DISCONNECTED.test(error.message)) return true;
  }
  return false;
}

/**
 * Turns driver failures that mean "the database is unreachable" (no server selectable,
 * refused or reset connections, socket and `maxTimeMS` timeouts, shutdowns and primary
 * step-downs, a closed client) into `DependencyUnavailableError`; anything else (a bug,
 * a duplicate key, a bad query) is returned as it is, for the caller to rethrow.
 */
export function classifyMongoError(error: unknown): unknown {
  if (error instanceof DependencyUnavailableError) return error;
  if (!isUnavailable(error)) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new DependencyUnavailableError('store', `MongoDB is unavailable: ${message}`, { cause: error });
}

/** A duplicate key on the producer key, as opposed to on `_id` (a bug: ids are unique by construction). */
function isProducerKeyConflict(error: unknown): boolean {
  if (!(error instanceof mongoose.mongo.MongoServerError) || error.code !== 11000) return false;
  const keyPattern: unknown = error['keyPattern'];
  if (keyPattern && typeof keyPattern === 'object') return 'producerMessageId' in keyPattern;
  // Servers that do not report the key pattern still name the index in the message.
  return error.message.includes(PRODUCER_KEY_INDEX);
}

/** Codes of a `createIndexes` that lost a race with another instance's identical one. */
const INDEX_RACE_CODES = new Set<number>([
  48, // NamespaceExists: both implicitly created the collection
  276, // IndexBuildAlreadyInProgress
]);

/** Lower-cased names of the query parameters of a MongoDB URL (the driver reads them case-insensitively). */
function settingsNamedIn(url: string): Set<string> {
  const query = url.split('?')[1] ?? '';
  return new Set([...new URLSearchParams(query).keys()].map((name) => name.toLowerCase()));
}

function connectOptionsFor(options: MongoStoreOptions): mongoose.ConnectOptions {
  const inUrl = settingsNamedIn(options.url);
  const connectOptions: mongoose.ConnectOptions = {
    bufferCommands: false,
    autoIndex: false,
    autoCreate: false,
    appName: 'rms',
  };
  // An option given here wins, then the URL's own setting, then our default: the driver
  // would otherwise let our defaults silently override what the URL asks for.
  const settle = (name: keyof mongoose.ConnectOptions & string, given: number | undefined, fallback: number) => {
    if (given !== undefined) Object.assign(connectOptions, { [name]: given });
    else if (!inUrl.has(name.toLowerCase())) Object.assign(connectOptions, { [name]: fallback });
  };
  const connectTimeoutMs = options.connectTimeoutMs;
  const operationTimeoutMs = options.operationTimeoutMs;
  settle('serverSelectionTimeoutMS', connectTimeoutMs, DEFAULTS.connectTimeoutMs);
  settle('connectTimeoutMS', connectTimeoutMs, DEFAULTS.connectTimeoutMs);
  // The driver's default is to wait for a pooled connection forever.
  settle('waitQueueTimeoutMS', connectTimeoutMs, DEFAULTS.connectTimeoutMs);
  // The client-side limit catches a server that stops answering altogether; a second
  // later than `maxTimeMS`, so a merely slow query fails with the server's clean error.
  settle(
    'socketTimeoutMS',
    operationTimeoutMs === undefined ? undefined : operationTimeoutMs + 1000,
    DEFAULTS.operationTimeoutMs + 1000,
  );
  settle('maxPoolSize', options.poolSize, DEFAULTS.poolSize);
  return connectOptions;
}

/** `MessageStore` on MongoDB. */
export class MongoMessageStore implements MessageStore {
  readonly kind = 'mongodb';
  private readonly url: string;
  private readonly connectOptions: mongoose.ConnectOptions;
  private readonly operationTimeoutMs: number;
  private readonly retentionMs: number | undefined;
  private readonly connection: mongoose.Connection;
  private readonly model: mongoose.Model<MessageDocument>;
  private readonly events: mongoose.Model<EventDocument>;
  /** The connection attempt under way, shared by concurrent callers; cleared when it fails so the next call retries. */
  private opening: Promise<void> | undefined;
  /** The index creation under way, shared by concurrent `init` calls. */
  private indexing: Promise<void> | undefined;
  private closed = false;

  constructor(options: MongoStoreOptions) {
    const collection = options.collection ?? DEFAULTS.collection;
    if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,119}$/.test(collection) || collection.startsWith('system.')) {
      throw new Error(`MongoDB collection "${collection}" must match [A-Za-z0-9_][A-Za-z0-9_.-]* and not start with "system."`);
    }
    this.url = options.url;
    this.connectOptions = connectOptionsFor(options);
    this.operationTimeoutMs = options.operationTimeoutMs ?? DEFAULTS.operationTimeoutMs;
    this.retentionMs = options.retentionMs;
    // A connection of our own, not mongoose's global one: its options, models and
    // lifetime belong to this store alone. It is opened lazily (see `connect`), so the
    // constructor does no I/O and a store whose first connection failed can still
    // connect later, as a pg pool does.
    this.connection = mongoose.createConnection();
    // A dropped connection emits 'error'; without a listener that would crash the
    // process. The driver reconnects by itself and each call reports its own failure.
    this.connection.on('error', () => undefined);
    this.model = this.connection.model<MessageDocument>('RmsMessage', messageSchema, collection);
    this.events = this.connection.model<EventDocument>('RmsMessageEvent', eventSchema, `${collection}_events`);
  }

  async init(): Promise<void> {
    await this.run(async () => {
      // `createIndexes`, not `syncIndexes`: creating an index that already exists with the
      // same options is a no-op, so instances starting together (or running different
      // versions during a rolling deploy) cannot harm each other, whereas `syncIndexes`
      // lists and then drops every index it does not know, racing with the others.
      this.indexing ??= this.migrate().then(() => this.createIndexes()).finally(() => {
        this.indexing = undefined;
      });
      await this.indexing;
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    // `destroy` rather than `close`: it also drops the connection from mongoose's list,
    // and a destroyed connection can never be reopened by a late call.
    await this.connection.destroy();
  }

  async ping(): Promise<void> {
    await this.run(async () => {
      const db = this.connection.db;
      if (!db) throw new DependencyUnavailableError('store', 'MongoDB is unavailable: not connected');
      // A hard bound for readiness probes, covering server selection too.
      const controller = new AbortController();
      const timer = setTimeout(() => {
        controller.abort(
          new DependencyUnavailableError('store', `MongoDB is unavailable: no ping answer within ${this.operationTimeoutMs} ms`),
        );
      }, this.operationTimeoutMs);
      try {
        await db.command({ ping: 1 }, { signal: controller.signal });
      } finally {
        clearTimeout(timer);
      }
    });
  }

  async insert(message: NewMessage): Promise<InsertResult> {
    return this.run(async () => {
      // The message as the domain says an insert leaves it, with the RMS id as `_id`.
      const { id, ...prepared } = preparedMessage(message);
      const document: MessageDocument = { _id: id, ...prepared };
      try {
        const created = await this.model.insertOne(document);
        // `toObject` is a copy of what was written, so the caller never shares the stored payload.
        return { message: toMessage(created.toObject()), created: true };
      } catch (error) {
        if (message.producerMessageId === null || !isProducerKeyConflict(error)) throw error;
      }
      // The duplicate-key error comes from the write of the message already holding the
      // key, so it is there to read now.
      const existing = await this.model
        .findOne({
          producer: message.producer,
          // `$type` repeats the index's partial filter so the planner may use that index.
          producerMessageId: { $eq: message.producerMessageId, $type: 'string' },
        })
        .maxTimeMS(this.operationTimeoutMs)
        .lean<MessageDocument>()
        .exec();
      if (!existing) throw new Error(`insert of ${message.id} conflicted but no message holds its producer key`);
      return { message: toMessage(existing), created: false };
    });
  }

  /**
   * Stores the messages one after another, in the order given, each exactly as `insert`
   * does: a later message of the batch with the producer key of an earlier one finds it
   * (`created: false`), as a racing insert would. MongoDB is not the benchmarked store;
   * correctness first: one round trip per message, and no reliance on how an unordered
   * `insertMany` reports the duplicates it skipped.
   */
  async insertMany(messages: readonly NewMessage[]): Promise<PromiseSettledResult<InsertResult>[]> {
    const results: PromiseSettledResult<InsertResult>[] = [];
    for (const message of messages) {
      try {
        results.push({ status: 'fulfilled', value: await this.insert(message) });
      } catch (error) {
        results.push({ status: 'rejected', reason: error });
      }
    }
    return results;
  }

  async findById(id: string): Promise<Message | null> {
    return this.run(async () => {
      const document = await this.model
        .findOne({ _id: id })
        .maxTimeMS(this.operationTimeoutMs)
        .lean<MessageDocument>()
        .exec();
      return document ? toMessage(document) : null;
    });
  }

  /**
   * Reads the messages in one `find`, then answers in the order given: `null` for an id
   * with no message, and the same message again for an id given twice.
   */
  async findByIds(ids: readonly string[]): Promise<(Message | null)[]> {
    if (ids.length === 0) return [];
    return this.run(async () => {
      const documents = await this.model
        .find({ _id: { $in: [...new Set(ids)] } })
        .maxTimeMS(this.operationTimeoutMs)
        .lean<MessageDocument[]>()
        .exec();
      const byId = new Map(documents.map((document) => [document._id, toMessage(document)]));
      return ids.map((id) => byId.get(id) ?? null);
    });
  }

  async transition(change: Transition): Promise<Message | null> {
    return this.run(async () => {
      const document = await this.update(change).lean<MessageDocument>().exec();
      return document ? toMessage(document) : null;
    });
  }

  async move(change: Transition): Promise<Moved | null> {
    return this.run(async () => {
      // Only the id and version come back, not the document.
      const document = await this.update(change).select({ _id: 1, version: 1 }).lean<Pick<MessageDocument, '_id' | 'version'>>().exec();
      return document ? { id: document._id, version: document.version } : null;
    });
  }

  /** The conditional `findOneAndUpdate` of one change, answering the document as it left it. */
  private update(change: Transition) {
    const set: Partial<MessageDocument> = {
      status: change.to,
      deadReason: change.deadReason,
      updatedAt: change.at,
      finishedAt: FINISHED_STATUSES.has(change.to) ? change.at : null,
    };
    for (const [field, value] of Object.entries(change.set) as [keyof MessagePatch, MessagePatch[keyof MessagePatch]][]) {
      if (value === undefined) continue;
      Object.assign(set, { [field]: value });
    }
    return this.model.findOneAndUpdate(
      // `deadReason: null` also matches a missing field; every document stores it.
      {
        _id: change.id,
        status: change.from.status,
        deadReason: change.from.deadReason,
        ...(change.fence && { nextAttemptAt: change.fence.nextAttemptAt }),
        ...(change.producer !== undefined && { producer: change.producer }),
        ...(change.version !== undefined && { version: change.version }),
      },
      { $set: set, $inc: { version: 1 } },
      { returnDocument: 'after', maxTimeMS: this.operationTimeoutMs },
    );
  }

  /**
   * Applies each change with `transition`, concurrently: every one is its own atomic
   * conditional `findOneAndUpdate`, so each answers exactly as `transition` would. MongoDB
   * is not the benchmarked store; correctness first.
   * @throws RangeError when an id appears twice, before anything is written.
   */
  async transitionMany(changes: readonly Transition[]): Promise<PromiseSettledResult<Message | null>[]> {
    requireDistinctIds(changes);
    return Promise.allSettled(changes.map((change) => this.transition(change)));
  }

  /** `move` for each change, concurrently, as `transitionMany`. */
  async moveMany(changes: readonly Transition[]): Promise<PromiseSettledResult<Moved | null>[]> {
    requireDistinctIds(changes);
    return Promise.allSettled(changes.map((change) => this.move(change)));
  }

  async claimDue(query: ClaimQuery): Promise<Message[]> {
    return this.run(async () => {
      // MongoDB has no multi-document "update ... returning" with a limit, so claim one at a
      // time; each findOneAndUpdate is atomic, so concurrent claimers never share a message.
      const claimed: Message[] = [];
      while (claimed.length < query.limit) {
        const document = await this.model
          .findOneAndUpdate(
            // `$type` repeats the due index's partial filter so the planner may use it.
            { status: { $in: query.status === 'SENDING' ? ['SENDING', 'DEAD'] : ['PENDING'] }, nextAttemptAt: { $lte: query.now, $type: 'date' } },
            { $set: { nextAttemptAt: query.leaseUntil }, $inc: { version: 1 } },
            { sort: { nextAttemptAt: 1 }, returnDocument: 'after', maxTimeMS: this.operationTimeoutMs },
          )
          .lean<MessageDocument>()
          .exec();
        if (!document) break;
        claimed.push(toMessage(document));
      }
      return claimed;
    });
  }

  async pruneFinished(before: Date, limit: number): Promise<number> {
    return this.run(async () => {
      const finished: MessageStatus[] = ['COMPLETED', 'CANCELLED'];
      // `$type` repeats the finished TTL index's partial filter so the planner may use it.
      const filter = { status: { $in: finished }, finishedAt: { $lt: before, $type: 'date' as const } };
      const ids = await this.model
        .find(filter, { _id: 1 })
        .limit(limit)
        .maxTimeMS(this.operationTimeoutMs)
        .lean<{ _id: string }[]>()
        .exec();
      if (ids.length === 0) return 0;
      const result = await this.model
        .deleteMany({ ...filter, _id: { $in: ids.map((document) => document._id) } })
        .maxTimeMS(this.operationTimeoutMs)
        .exec();
      // Not atomic with the messages: a sweep that dies here leaves events of deleted
      // messages, which no read reaches (histories are read by message id).
      await this.events
        .deleteMany({ messageId: { $in: ids.map((document) => document._id) } })
        .maxTimeMS(this.operationTimeoutMs)
        .exec();
      return result.deletedCount;
    });
  }

  async backlogByTopic(): Promise<TopicBacklog[]> {
    return this.run(async () => {
      const waiting: MessageStatus[] = ['PENDING', 'SENDING', 'DEAD'];
      // The $match on status alone is answered from rms_messages_status_created.
      const groups = await this.model
        .aggregate<{ _id: { topic: string; status: MessageStatus }; count: number; oldestCreatedAt: Date | null; oldestConfirmedAt: Date | null }>([
          { $match: { status: { $in: waiting } } },
          {
            $group: {
              _id: { topic: '$topic', status: '$status' },
              count: { $sum: 1 },
              oldestCreatedAt: { $min: '$createdAt' },
              oldestConfirmedAt: { $min: '$confirmedAt' },
            },
          },
        ])
        .option({ maxTimeMS: this.operationTimeoutMs })
        .exec();
      return foldBacklogGroups(
        groups.map((group) => ({
          topic: group._id.topic,
          status: group._id.status,
          count: group.count,
          oldestCreatedAt: group.oldestCreatedAt ?? null,
          oldestConfirmedAt: group.oldestConfirmedAt ?? null,
        })),
      );
    });
  }

  async list(query: ListQuery): Promise<MessagePage> {
    return this.run(async () => {
      const filter: mongoose.QueryFilter<MessageDocument> = {};
      if (query.status) filter.status = query.status;
      if (query.topic) filter.topic = query.topic;
      if (query.producer) filter.producer = query.producer;
      if (query.producerMessageId) filter.producerMessageId = query.producerMessageId;
      const createdAt: { $gte?: Date; $lt?: Date; $lte?: Date } = {};
      if (query.createdFrom) createdAt.$gte = query.createdFrom;
      if (query.createdBefore) createdAt.$lt = query.createdBefore;
      if (query.after) {
        const { id } = query.after;
        // (createdAt, _id) < (c, id), written so that the `createdAt <= c` bound limits the
        // index scan and the `$or` only sorts out the few messages created at exactly `c`.
        createdAt.$lte = query.after.createdAt;
        filter.$or = [{ createdAt: { $lt: query.after.createdAt } }, { _id: { $lt: id } }];
      }
      if (Object.keys(createdAt).length > 0) filter.createdAt = createdAt;
      const documents = await this.model
        .find(filter)
        .sort({ createdAt: -1, _id: -1 })
        .limit(query.limit + 1)
        .maxTimeMS(this.operationTimeoutMs)
        .lean<MessageDocument[]>()
        .exec();
      const messages = documents.slice(0, query.limit).map(toMessage);
      const last = messages.at(-1);
      const next = documents.length > query.limit && last ? { createdAt: last.createdAt, id: last.id } : null;
      return { messages, next };
    });
  }

  async appendEvents(events: readonly MessageEvent[]): Promise<void> {
    if (events.length === 0) return;
    await this.run(async () => {
      await this.events.collection.insertMany(events.map((event) => ({ ...event })), { ordered: false });
    });
  }

  async history(messageId: string, limit: number): Promise<MessageEvent[]> {
    return this.run(async () => {
      const documents = await this.events
        .find({ messageId })
        .sort({ at: 1, _id: 1 })
        .limit(limit)
        .maxTimeMS(this.operationTimeoutMs)
        .lean<EventDocument[]>()
        .exec();
      return documents.map(toEvent);
    });
  }

  async countByStatusAndTopic(): Promise<StatusTopicCount[]> {
    return this.run(async () => {
      const groups = await this.model
        .aggregate<{ _id: { status: MessageStatus; topic: string }; count: number }>([
          { $group: { _id: { status: '$status', topic: '$topic' }, count: { $sum: 1 } } },
          { $sort: { '_id.topic': 1, '_id.status': 1 } },
        ])
        .option({ maxTimeMS: this.operationTimeoutMs })
        .exec();
      return groups.map((group) => ({ status: group._id.status, topic: group._id.topic, count: group.count }));
    });
  }

  async oldestWaiting(limit: number): Promise<Message[]> {
    return this.run(async () => {
      const waiting: MessageStatus[] = ['PENDING', 'SENDING'];
      const documents = await this.model
        .find({ status: { $in: waiting } })
        .sort({ createdAt: 1, _id: 1 })
        .limit(limit)
        .maxTimeMS(this.operationTimeoutMs)
        .lean<MessageDocument[]>()
        .exec();
      return documents.map(toMessage);
    });
  }

  /** Opens the connection unless it is open; concurrent callers share one attempt. */
  private async connect(): Promise<void> {
    if (this.closed) throw new DependencyUnavailableError('store', 'MongoDB is unavailable: the store is closed');
    if (this.connection.db) return;
    this.opening ??= this.connection.openUri(this.url, { ...this.connectOptions }).then(
      () => undefined,
      (error: unknown) => {
        this.opening = undefined;
        throw error;
      },
    );
    await this.opening;
  }

  /**
   * Migrates documents written before consumer groups in place: they get `version` 0 (the
   * condition of versioned writes must match them), no deliveries (read as one delivery of
   * the default group, see `deliveriesOf`) and no `deliverAt`. Idempotent: the filter
   * matches only documents not yet migrated, so instances starting together do it once.
   */
  private async migrate(): Promise<void> {
    await this.model.collection.updateMany(
      { version: { $exists: false } },
      { $set: { version: 0, deliveries: [], deliverAt: null } },
      { maxTimeMS: this.operationTimeoutMs * 30 },
    );
    // Finished messages of earlier versions get their `finishedAt` (their last change), so
    // the TTL index and the sweep see them.
    await this.model.collection.updateMany(
      { status: { $in: [...FINISHED_STATUSES] }, finishedAt: { $exists: false } },
      [{ $set: { finishedAt: '$updatedAt' } }],
      { maxTimeMS: this.operationTimeoutMs * 30 },
    );
  }

  /**
   * The TTL indexes, sized by `retentionMs` (without it, a plain index on `finishedAt` for
   * the sweep). A TTL that an earlier start created with another period is changed in
   * place with `collMod`, which is what MongoDB offers for it (creating it again conflicts).
   */
  private ttlIndexes(): { collection: mongoose.mongo.Collection; index: mongoose.mongo.IndexDescription }[] {
    const expire = this.retentionMs === undefined ? {} : { expireAfterSeconds: Math.max(0, Math.round(this.retentionMs / 1000)) };
    const finished = {
      collection: this.model.collection as unknown as mongoose.mongo.Collection,
      index: { key: { finishedAt: 1 }, name: FINISHED_TTL_INDEX, partialFilterExpression: { finishedAt: { $type: 'date' } }, ...expire },
    };
    if (this.retentionMs === undefined) return [finished];
    return [finished, { collection: this.events.collection as unknown as mongoose.mongo.Collection, index: { key: { at: 1 }, name: EVENTS_TTL_INDEX, ...expire } }];
  }

  /** Creates a TTL index, or changes its period when it exists with another one. */
  private async createTtlIndex(collection: mongoose.mongo.Collection, index: mongoose.mongo.IndexDescription): Promise<void> {
    try {
      await collection.createIndexes([index]);
    } catch (error) {
      // 85 IndexOptionsConflict: the same keys with another expireAfterSeconds.
      if ((error as { code?: unknown }).code !== 85 || index.expireAfterSeconds === undefined) throw error;
      await collection.db.command({ collMod: collection.collectionName, index: { name: index.name, expireAfterSeconds: index.expireAfterSeconds } });
    }
  }

  /** Drops the indexes this version replaced, if an earlier version made them. */
  private async dropReplacedIndexes(): Promise<void> {
    const existing = new Set((await this.model.collection.indexes()).map((index) => index.name));
    for (const name of REPLACED_INDEXES) {
      if (!existing.has(name)) continue;
      try {
        await this.model.collection.dropIndex(name);
      } catch (error) {
        // 27 IndexNotFound: another instance dropped it first.
        if ((error as { code?: unknown }).code !== 27) throw error;
      }
    }
  }

  private async createIndexes(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.model.collection.createIndexes(INDEXES);
        await this.events.collection.createIndexes(EVENT_INDEXES);
        for (const { collection, index } of this.ttlIndexes()) await this.createTtlIndex(collection, index);
        await this.dropReplacedIndexes();
        return;
      } catch (error) {
        const code = (error as { code?: unknown } | null)?.code;
        if (attempt >= 3 || typeof code !== 'number' || !INDEX_RACE_CODES.has(code)) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100 * attempt));
      }
    }
  }

  /** Runs one store operation on an open connection, reporting an unreachable database as `DependencyUnavailableError`. */
  private async run<T>(operation: () => Promise<T>): Promise<T> {
    try {
      await this.connect();
      return await operation();
    } catch (error) {
      throw classifyMongoError(error);
    }
  }
}
