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
  /** When the change happens; stored as `updatedAt`. */
  at: Date;
  /** Other fields to set. */
  set: MessagePatch;
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
  /** The message with this id, or `null`. */
  findById(id: string): Promise<Message | null>;
  /** Applies the change if the message is still in `change.from`; returns the updated message, or `null` if it was not. */
  transition(change: Transition): Promise<Message | null>;
  /** Messages newest first (by `createdAt`, then `id`), filtered and paged. */
  list(query: ListQuery): Promise<MessagePage>;
}
