/**
 * A `MessageStore` decorator that bounds how long and how many: every call gets a
 * deadline, and the calls waiting on the store at once are capped.
 *
 * Without it a stalled database (packets dropped, not refused) held every request until
 * the driver's own timeouts fired, up to ~20 s, and each waiting request kept its body and
 * socket in memory. With it:
 * - a call not answered within `deadlineMs` fails with `DependencyUnavailableError`
 *   (HTTP 503 with `Retry-After`). The wrapped call goes on until the driver ends it: a
 *   write may still land, which is safe because every API call is idempotent (a retried
 *   prepare finds its key, a retried confirm or ack finds the message already moved);
 * - a call made while `maxPending` calls are still unsettled (counted until the wrapped
 *   store settles them, not until their deadline) fails at once, so an outage cannot grow
 *   a queue in front of the store.
 *
 * Batch methods count one per element. `init` and `close` are not bounded: start-up has a
 * retry budget of its own, and shutdown waits for the store to close.
 */
import { DependencyUnavailableError } from '../domain/errors.js';
import type { Message, NewMessage } from '../domain/message.js';
import type { MessageEvent } from '../domain/message-event.js';
import type { ClaimQuery, InsertResult, ListQuery, MessagePage, MessageStore, Moved, StatusTopicCount, TopicBacklog, Transition } from './message-store.js';

/** The bounds of a `BoundedMessageStore`. */
export interface StoreBounds {
  /** A call not answered in this long fails with 503. @defaultValue 5000 (`RMS_STORE_DEADLINE_MS`) */
  deadlineMs: number;
  /** Most store calls unsettled at once; past it calls fail at once. @defaultValue 10000 (`RMS_STORE_MAX_PENDING`) */
  maxPending: number;
}

/** Wraps a store so that no call waits longer than the deadline and no queue grows past the bound. */
export class BoundedMessageStore implements MessageStore {
  readonly kind: string;
  #pending = 0;

  constructor(
    private readonly store: MessageStore,
    private readonly bounds: StoreBounds,
  ) {
    this.kind = store.kind;
  }

  /** Store calls made and not yet settled by the wrapped store. */
  get pending(): number {
    return this.#pending;
  }

  init(): Promise<void> {
    return this.store.init();
  }

  close(): Promise<void> {
    return this.store.close();
  }

  ping(): Promise<void> {
    return this.#bounded(1, () => this.store.ping());
  }

  insert(message: NewMessage): Promise<InsertResult> {
    return this.#bounded(1, () => this.store.insert(message));
  }

  insertMany(messages: readonly NewMessage[]): Promise<PromiseSettledResult<InsertResult>[]> {
    return this.#bounded(messages.length, () => this.store.insertMany(messages));
  }

  findById(id: string): Promise<Message | null> {
    return this.#bounded(1, () => this.store.findById(id));
  }

  findByIds(ids: readonly string[]): Promise<(Message | null)[]> {
    return this.#bounded(ids.length, () => this.store.findByIds(ids));
  }

  transition(change: Transition): Promise<Message | null> {
    return this.#bounded(1, () => this.store.transition(change));
  }

  transitionMany(changes: readonly Transition[]): Promise<PromiseSettledResult<Message | null>[]> {
    return this.#bounded(changes.length, () => this.store.transitionMany(changes));
  }

  move(change: Transition): Promise<Moved | null> {
    return this.#bounded(1, () => this.store.move(change));
  }

  moveMany(changes: readonly Transition[]): Promise<PromiseSettledResult<Moved | null>[]> {
    return this.#bounded(changes.length, () => this.store.moveMany(changes));
  }

  list(query: ListQuery): Promise<MessagePage> {
    return this.#bounded(1, () => this.store.list(query));
  }

  claimDue(query: ClaimQuery): Promise<Message[]> {
    return this.#bounded(1, () => this.store.claimDue(query));
  }

  pruneFinished(before: Date, limit: number): Promise<number> {
    return this.#bounded(1, () => this.store.pruneFinished(before, limit));
  }

  backlogByTopic(): Promise<TopicBacklog[]> {
    return this.#bounded(1, () => this.store.backlogByTopic());
  }

  appendEvents(events: readonly MessageEvent[]): Promise<void> {
    return this.#bounded(1, () => this.store.appendEvents(events));
  }

  history(messageId: string, limit: number): Promise<MessageEvent[]> {
    return this.#bounded(1, () => this.store.history(messageId, limit));
  }

  countByStatusAndTopic(): Promise<StatusTopicCount[]> {
    return this.#bounded(1, () => this.store.countByStatusAndTopic());
  }

  oldestWaiting(limit: number): Promise<Message[]> {
    return this.#bounded(1, () => this.store.oldestWaiting(limit));
  }

  /** Runs `call` if there is room, and settles with it or with a 503 at the deadline, whichever is first. */
  #bounded<T>(weight: number, call: () => Promise<T>): Promise<T> {
    const { deadlineMs, maxPending } = this.bounds;
    if (this.#pending + weight > maxPending && this.#pending > 0) {
      return Promise.reject(
        new DependencyUnavailableError('store', `the store has ${this.#pending} calls waiting (at most ${maxPending}); try again later`),
      );
    }
    this.#pending += weight;
    const running = Promise.resolve()
      .then(call)
      .finally(() => {
        this.#pending -= weight;
      });
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new DependencyUnavailableError('store', `the store did not answer within ${deadlineMs} ms`)), deadlineMs);
    });
    // The wrapped call's own failure after the deadline has nobody left to hear it.
    running.catch(() => undefined);
    return Promise.race([running, deadline]).finally(() => clearTimeout(timer));
  }
}
