/**
 * A `MessageStore` decorator that turns concurrent single-message calls into batch calls:
 * `insert`s made close together become one `insertMany`, `findById`s one `findByIds`,
 * `transition`s one `transitionMany`, `move`s one `moveMany`. The use cases and loops keep their one-message
 * logic (read, decide with the state machine, conditional write); under load their
 * statements share round trips and commits, which is where a message's cost went.
 *
 * Each call's answer is exactly the one the wrapped store would give it alone: the batch
 * methods promise that per element, and two transitions of one message never share a
 * batch (the later one waits for the next; a `transition` and a `move` of one message go
 * in separate statements, as two unbatched calls would). The write batches settle each call on its
 * own (one the database refuses fails alone, and a failed call was not written); a read
 * batch that fails for a reason other than an unavailable store is read again call by
 * call, so one bad call cannot fail the calls it happened to be batched with.
 */
import { MicroBatcher, settleBatch } from '@rms/client-sdk';
import { DependencyUnavailableError } from '../domain/errors.js';
import type { Message, NewMessage } from '../domain/message.js';
import type { MessageEvent } from '../domain/message-event.js';
import type { ClaimQuery, InsertResult, ListQuery, MessagePage, MessageStore, Moved, StatusTopicCount, TopicBacklog, Transition } from './message-store.js';

/** How the decorator batches. */
export interface CoalescingOptions {
  /** Most calls in one batch statement. @defaultValue 500 */
  maxBatch?: number;
  /**
   * Most batch statements of one kind (inserts, reads, transitions) running at once;
   * calls arriving meanwhile wait and join the next batch. @defaultValue 4
   */
  maxInFlight?: number;
}

/** The store cannot serve now: a batch fails as a whole rather than being retried call by call. */
/** A value as a fulfilled outcome. */
function fulfilled<T>(value: T): PromiseSettledResult<T> {
  return { status: 'fulfilled', value };
}

const isOutage = (error: unknown): boolean => error instanceof DependencyUnavailableError;

/** Wraps a store so that concurrent calls share statements. */
export class CoalescingMessageStore implements MessageStore {
  readonly kind: string;
  readonly #inserts: MicroBatcher<NewMessage, InsertResult>;
  readonly #reads: MicroBatcher<string, Message | null>;
  readonly #transitions: MicroBatcher<Transition, Message | null>;
  readonly #moves: MicroBatcher<Transition, Moved | null>;

  constructor(
    private readonly store: MessageStore,
    options: CoalescingOptions = {},
  ) {
    this.kind = store.kind;
    const limits = { maxBatch: options.maxBatch ?? 500, maxInFlight: options.maxInFlight ?? 4 };
    // Writes are settled per call by the store itself (a rejected call was not written),
    // so nothing is ever re-run here; reads have no effects and are retried call by call.
    this.#inserts = new MicroBatcher({
      ...limits,
      run: (messages) => (messages.length === 1 ? Promise.allSettled([store.insert(messages[0] as NewMessage)]) : store.insertMany(messages)),
    });
    this.#reads = new MicroBatcher({
      ...limits,
      run: (ids) => settleBatch(ids, async (all) => (await store.findByIds(all)).map(fulfilled), (one) => store.findById(one), isOutage),
    });
    this.#transitions = new MicroBatcher({
      ...limits,
      keyOf: (change) => change.id,
      run: (changes) => (changes.length === 1 ? Promise.allSettled([store.transition(changes[0] as Transition)]) : store.transitionMany(changes)),
    });
    this.#moves = new MicroBatcher({
      ...limits,
      keyOf: (change) => change.id,
      run: (changes) => (changes.length === 1 ? Promise.allSettled([store.move(changes[0] as Transition)]) : store.moveMany(changes)),
    });
  }

  /** Batch statements run so far, by kind: how well calls are being coalesced. */
  get batches(): { inserts: number; reads: number; transitions: number; moves: number } {
    return { inserts: this.#inserts.batches, reads: this.#reads.batches, transitions: this.#transitions.batches, moves: this.#moves.batches };
  }

  init(): Promise<void> {
    return this.store.init();
  }

  close(): Promise<void> {
    return this.store.close();
  }

  ping(): Promise<void> {
    return this.store.ping();
  }

  insert(message: NewMessage): Promise<InsertResult> {
    return this.#inserts.submit(message);
  }

  insertMany(messages: readonly NewMessage[]): Promise<PromiseSettledResult<InsertResult>[]> {
    return this.store.insertMany(messages);
  }

  findById(id: string): Promise<Message | null> {
    return this.#reads.submit(id);
  }

  findByIds(ids: readonly string[]): Promise<(Message | null)[]> {
    return this.store.findByIds(ids);
  }

  transition(change: Transition): Promise<Message | null> {
    return this.#transitions.submit(change);
  }

  transitionMany(changes: readonly Transition[]): Promise<PromiseSettledResult<Message | null>[]> {
    return this.store.transitionMany(changes);
  }

  move(change: Transition): Promise<Moved | null> {
    return this.#moves.submit(change);
  }

  moveMany(changes: readonly Transition[]): Promise<PromiseSettledResult<Moved | null>[]> {
    return this.store.moveMany(changes);
  }

  list(query: ListQuery): Promise<MessagePage> {
    return this.store.list(query);
  }

  claimDue(query: ClaimQuery): Promise<Message[]> {
    return this.store.claimDue(query);
  }

  pruneFinished(before: Date, limit: number): Promise<number> {
    return this.store.pruneFinished(before, limit);
  }

  backlogByTopic(): Promise<TopicBacklog[]> {
    return this.store.backlogByTopic();
  }

  appendEvents(events: readonly MessageEvent[]): Promise<void> {
    return this.store.appendEvents(events);
  }

  history(messageId: string, limit: number): Promise<MessageEvent[]> {
    return this.store.history(messageId, limit);
  }

  countByStatusAndTopic(): Promise<StatusTopicCount[]> {
    return this.store.countByStatusAndTopic();
  }

  oldestWaiting(limit: number): Promise<Message[]> {
    return this.store.oldestWaiting(limit);
  }
}
