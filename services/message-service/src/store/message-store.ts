/**
 * The `MessageStore` port: how the core persists messages. Adapters (PostgreSQL, MongoDB)
 * implement it; the core never imports a driver.
 *
 * Every state change is one conditional write (`transition`): it succeeds only if the
 * message is still in the state the caller decided from, so racing commands cannot both
 * win and no read-modify-write window exists.
 */
import type {
  DeadReason,
  Message,
  MessagePatch,
  MessageState,
  MessageStatus,
  NewMessage,
} from '../domain/message.js';
import type { MessageEvent } from '../domain/message-event.js';

export type { MessagePatch } from '../domain/message.js';

/** A conditional state change: applied only while the message is still in `from`. */
export interface Transition {
  id: string;
  /** The state the decision was made from; the write's condition. */
  from: MessageState;
  /** The new status. */
  to: MessageStatus;
  /** The new dead reason (`null` unless `to` is `DEAD`). */
  deadReason: DeadReason | null;
  /** When the change happens; stored as `updatedAt`. Every write also bumps `version`. */
  at: Date;
  /** Other fields to set. */
  set: MessagePatch;
  /**
   * Also require `nextAttemptAt` to still be this value. A claimed message carries its
   * lease's end there; a worker whose lease expired and was taken over by another
   * instance then writes nothing (a fencing token).
   */
  fence?: { nextAttemptAt: Date | null };
  /**
   * Also require the message to belong to this producer: lets a producer's command be
   * written without reading the message first (a message of another app matches nothing).
   */
  producer?: string;
  /**
   * Also require `version` to still be this value: a change computed from the whole
   * message as read (its deliveries) applies only if nothing else wrote it since.
   */
  version?: number;
}

/**
 * What `move` answers: that the message moved, and the `version` the write gave it. The
 * caller holds the message as it read it; when the write was conditional on that read's
 * `version`, the row is now exactly `movedMessage(read, change, moved)`, so it is not
 * sent back and parsed (a row is some twenty columns, two of them JSON).
 */
export interface Moved {
  id: string;
  /** The message's version after the write. */
  version: number;
}

/**
 * The message as a write left it: `read` with the change applied, for a write conditional
 * on `read`'s version (`change.version`), which nothing else can have changed in between.
 */
export function movedMessage(read: Message, change: Transition, moved: Moved): Message {
  const set = Object.fromEntries(Object.entries(change.set).filter(([, value]) => value !== undefined)) as MessagePatch;
  return { ...read, ...set, status: change.to, deadReason: change.deadReason, updatedAt: change.at, version: moved.version };
}

/** What `claimDue` claims. */
export interface ClaimQuery {
  /**
   * `PENDING` for check-backs; `SENDING` for deliveries, which also claims `DEAD` messages
   * whose other groups' deliveries are still due (a DEAD message is due only then).
   */
  status: 'PENDING' | 'SENDING';
  /** Messages due at or before this time. */
  now: Date;
  /** The lease: claimed messages are not due again before this time. */
  leaseUntil: Date;
  /** At most this many. */
  limit: number;
}

/** The outcome of `insert`. */
export interface InsertResult {
  /** The stored message: the new one, or the one already stored under the same producer key. */
  message: Message;
  /** `false` when a message with the same (producer, producerMessageId) already existed. */
  created: boolean;
}

/** A position in the newest-first listing: strictly after this (createdAt, id). */
export interface ListCursor {
  createdAt: Date;
  id: string;
}

/** Filters and paging for `list`. */
export interface ListQuery {
  status?: MessageStatus;
  topic?: string;
  /** The producer app. */
  producer?: string;
  /** The producer's own key (`messageId` on the wire). */
  producerMessageId?: string;
  /** Created at or after this time. */
  createdFrom?: Date;
  /** Created before this time. */
  createdBefore?: Date;
  /** Page size, at least 1. */
  limit: number;
  /** Continue after this position. */
  after?: ListCursor;
}

/** One page of `list`, newest first. */
export interface MessagePage {
  messages: Message[];
  /** Where the next page starts; `null` on the last page. */
  next: ListCursor | null;
}

/** The messages still waiting on one topic: what the backlog gauges and alerts read. */
export interface TopicBacklog {
  topic: string;
  /** PENDING messages (prepared, not yet confirmed or cancelled). */
  pending: number;
  /** SENDING messages (confirmed, not yet acked). */
  sending: number;
  /** DEAD messages (waiting for a person). */
  dead: number;
  /** When the oldest PENDING message was prepared; `null` when none is PENDING. */
  oldestPendingCreatedAt: Date | null;
  /** When the oldest SENDING message was confirmed; `null` when none is SENDING. */
  oldestSendingConfirmedAt: Date | null;
}

/** How many messages are in one status of one topic. */
export interface StatusTopicCount {
  status: MessageStatus;
  topic: string;
  count: number;
}

/** Durable storage of messages. */
export interface MessageStore {
  /** The adapter's name, for logs and `/readyz`: `postgres` or `mongodb`. */
  readonly kind: string;
  /** Connects and creates or migrates the schema and indexes. Idempotent, safe to run from several instances at once. */
  init(): Promise<void>;
  /** Releases connections. */
  close(): Promise<void>;
  /** Resolves when the store answers; rejects with `DependencyUnavailableError` otherwise. */
  ping(): Promise<void>;
  /** Stores a new message, or returns the one already stored under the same (producer, producerMessageId). */
  insert(message: NewMessage): Promise<InsertResult>;
  /**
   * Stores many new messages at once: for each, in the order given, the outcome `insert`
   * would have had, settled on its own: a message the store refuses is rejected alone, and
   * a rejected element was not written (an unavailable store rejects them all). Two
   * messages of the batch with the same (producer, producerMessageId) behave like two
   * racing inserts: the first is created, the second finds it (`created: false`).
   */
  insertMany(messages: readonly NewMessage[]): Promise<PromiseSettledResult<InsertResult>[]>;
  /** The message with this id, or `null`. */
  findById(id: string): Promise<Message | null>;
  /** The messages with these ids, in the order given, `null` where there is none. */
  findByIds(ids: readonly string[]): Promise<(Message | null)[]>;
  /** Applies the change if the message is still in `change.from`; returns the updated message, or `null` if it was not. */
  transition(change: Transition): Promise<Message | null>;
  /**
   * Applies many transitions, each exactly as `transition` would (its own condition, its
   * own fields), in fewer round trips. Each outcome is settled on its own, in the order
   * given: fulfilled with what `transition` would answer, or rejected, in which case that
   * change was not written (so a caller is never told "not moved" about a change that was
   * applied). The ids must be distinct: two changes of one message in one call would race
   * within the statement.
   * @throws RangeError when an id appears twice (and writes nothing).
   */
  transitionMany(changes: readonly Transition[]): Promise<PromiseSettledResult<Message | null>[]>;
  /**
   * Applies the change exactly as `transition` does, but answers only whether the message
   * moved and its new version (`null`: it did not), not the row: for callers that hold the
   * message already (see `movedMessage`).
   */
  move(change: Transition): Promise<Moved | null>;
  /**
   * `move` for many changes, settled each on its own as `transitionMany` settles them.
   * @throws RangeError when an id appears twice (and writes nothing).
   */
  moveMany(changes: readonly Transition[]): Promise<PromiseSettledResult<Moved | null>[]>;
  /** Messages newest first (by `createdAt`, then `id`), filtered and paged. */
  list(query: ListQuery): Promise<MessagePage>;
  /**
   * Claims up to `limit` messages of `status` due by `now`, oldest due first, by moving
   * their `nextAttemptAt` to `leaseUntil` in the same atomic step: concurrent claimers
   * (other RMS instances) get disjoint sets, and a claimer that dies releases its messages
   * when the lease ends. Costs the number of due messages, not the size of the store
   * (delayed messages waiting for their `deliverAt` are not due, and cost nothing).
   */
  claimDue(query: ClaimQuery): Promise<Message[]>;
  /**
   * The backlog of every topic that has PENDING, SENDING or DEAD messages. Reads only the
   * indexes of unfinished and dead messages, so it costs the backlog, not the store size
   * (COMPLETED and CANCELLED messages, which retention prunes, are not counted).
   */
  backlogByTopic(): Promise<TopicBacklog[]>;
  /**
   * Removes COMPLETED and CANCELLED messages finished before `before`, with their history,
   * in the unit the adapter stores them by; returns how many messages it removed.
   * - PostgreSQL drops every finished day's partition that ends by `before` (whole UTC
   *   days, whatever they hold, in milliseconds; the count is PostgreSQL's estimate for a
   *   large day) and ignores `limit`: a message finished on a day that ends after `before`
   *   waits for a later call.
   * - MongoDB deletes up to `limit` of them per call (its TTL index also expires them).
   * Unfinished messages (PENDING, SENDING, DEAD) are never removed.
   */
  pruneFinished(before: Date, limit: number): Promise<number>;
  /**
   * Appends events to their messages' histories. Events of a message that does not exist
   * (any more) may be dropped; an event is never attached to another message.
   */
  appendEvents(events: readonly MessageEvent[]): Promise<void>;
  /** The history of a message, oldest first, at most `limit` events (the first ones). */
  history(messageId: string, limit: number): Promise<MessageEvent[]>;
  /** How many messages are in each (status, topic) pair that has any. */
  countByStatusAndTopic(): Promise<StatusTopicCount[]>;
  /** The `limit` PENDING or SENDING messages created longest ago, oldest first. */
  oldestWaiting(limit: number): Promise<Message[]>;
}
