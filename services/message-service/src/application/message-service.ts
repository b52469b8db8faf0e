/**
 * The use cases behind the HTTP API: prepare, confirm, cancel, ack, nack, heartbeat, get,
 * list, history and resend. Every change a call makes is recorded in the message's history.
 *
 * Each state-changing call reads the message, asks the state machine what the command
 * does, and writes the decision with a conditional transition. If another call changed
 * the message in between, the write matches nothing and the call decides again from the
 * fresh state, so exactly one of any set of racing commands moves the message and the
 * others see the result (an idempotent repeat or a 409).
 */
import { isDeepStrictEqual } from 'node:util';
import { v7 as uuidv7 } from 'uuid';
import type { AppRegistration, Role } from '../config/app-registry.js';
import { NotFoundError, RmsError, StateConflictError } from '../domain/errors.js';
import type { JsonValue, Message, MessageHeaders, MessagePatch, MessageState, MessageStatus } from '../domain/message.js';
import type { MessageEvent, NewMessageEvent } from '../domain/message-event.js';
import { type DeliverySchedule, afterConsumerFailure } from '../domain/schedule.js';
import { type Actor, type Command, decide } from '../domain/state-machine.js';
import { applyAssuming, applyCommand } from './apply-command.js';
import type { Dispatcher } from './dispatcher.js';
import type { HistoryRecorder } from './history-recorder.js';
import type { ListCursor, ListQuery, MessagePage, MessageStore } from '../store/message-store.js';

/** The authenticated app making a call. */
export type Caller = Pick<AppRegistration, 'app' | 'roles'>;

/** What a producer sends to prepare a message. */
export interface PrepareInput {
  topic: string;
  payload: JsonValue;
  /** The producer's idempotency key. */
  messageId?: string;
  headers?: MessageHeaders;
}

/** One entry of a batch ack's answer. */
export type AckResult =
  | { id: string; status: MessageStatus }
  | { id: string; error: { code: string; message: string; status?: MessageStatus } };

/** A consumer's report that it failed to handle a message. */
export interface NackInput {
  /** Why, in the consumer's words (cut to 1000 characters in the history). */
  reason: string;
  /** Deliver again this long from now rather than at once. */
  retryAfterMs?: number;
  /** The delivery round that failed (the `x-rms-attempt` the consumer got): counted even if RMS has not recorded it yet. */
  attempt?: number;
}

/** One entry of a batch nack's answer: as a batch ack's. */
export type NackResult = AckResult;

/** Which messages a search or a bulk resend is about; every field narrows it. */
export type MessageFilter = Omit<ListQuery, 'limit' | 'after'>;

/** What a bulk resend did, or with `dryRun`, would do. */
export interface BulkResendResult {
  /** DEAD messages matching the filter (up to the limit looked at). */
  matched: number;
  /** How many of them can be resent (delivery exhausted; check-exhausted ones need a confirm or cancel). */
  resendable: number;
  /** The ids resent; empty on a dry run. */
  resent: string[];
  dryRun: boolean;
}

/** The delivery schedule of the design, used when the service is given none. */
const DESIGN_DELIVERY_SCHEDULE: DeliverySchedule = {
  ackTimeoutMs: 240_000,
  retryImmediate: 3,
  retryFirstDelayMs: 240_000,
  retryIntervalMs: 60_000,
  retryMax: 50,
};

/** Settings of the message service. */
export interface MessageServiceOptions {
  store: MessageStore;
  /** First check-back this long after prepare. */
  checkDelayMs: number;
  /** The time; tests may pin it. @defaultValue () => new Date() */
  now?: () => Date;
  /** New message ids. @defaultValue UUID v7 (time-ordered, so recent rows share index pages) */
  newId?: () => string;
  /** Publishes messages that enter SENDING; without one they wait for the redelivery loop. */
  dispatcher?: Dispatcher;
  /**
   * The delivery schedule of a topic: its ack timeout is what a heartbeat extends by, its
   * round limit what a nack counts against.
   * @defaultValue the design's: 240 s ack timeout, 50 rounds
   */
  scheduleFor?: (topic: string) => DeliverySchedule;
  /** Records what happens to messages. @defaultValue nothing is recorded */
  history?: HistoryRecorder;
  /** Told of a message a consumer's failure report made DEAD, to count and alert it. @defaultValue nothing */
  onDead?: (message: Message, consumerApp: string) => void;
  /**
   * A message entering SENDING is due this long later unless its dispatch reports first:
   * if this instance dies before publishing, another instance's redelivery loop takes over.
   * @defaultValue 30000
   */
  dispatchLeaseMs?: number;
}

/** Where a confirm usually finds a message, and an ack. */
const PENDING: MessageState = { status: 'PENDING', deadReason: null };
const SENDING: MessageState = { status: 'SENDING', deadReason: null };

/** A conditional write can lose to a concurrent one only a few times: each loss means the message moved on. */
const MAX_DECISION_ROUNDS = 8;

function hasRole(caller: Caller, role: Role): boolean {
  return caller.roles.includes(role);
}

/** The use cases of RMS's message API. */
export class MessageService {
  private readonly store: MessageStore;
  private readonly checkDelayMs: number;
  private readonly now: () => Date;
  private readonly newId: () => string;
  private readonly dispatcher: Dispatcher | undefined;
  private readonly dispatchLeaseMs: number;
  private readonly scheduleFor: (topic: string) => DeliverySchedule;
  private readonly history: HistoryRecorder | undefined;
  private readonly onDead: (message: Message, consumerApp: string) => void;

  constructor(options: MessageServiceOptions) {
    this.store = options.store;
    this.checkDelayMs = options.checkDelayMs;
    this.now = options.now ?? (() => new Date());
    this.newId = options.newId ?? uuidv7;
    this.dispatcher = options.dispatcher;
    this.dispatchLeaseMs = options.dispatchLeaseMs ?? 30_000;
    this.scheduleFor = options.scheduleFor ?? (() => DESIGN_DELIVERY_SCHEDULE);
    this.history = options.history;
    this.onDead = options.onDead ?? (() => undefined);
  }

  /**
   * Stores a new `PENDING` message. With a `messageId` already used by this producer,
   * returns the stored message (`created: false`) if the content is the same, and
   * refuses with `MESSAGE_ID_REUSED` if it is not.
   */
  async prepare(caller: Caller, input: PrepareInput): Promise<{ message: Message; created: boolean }> {
    const createdAt = this.now();
    const result = await this.store.insert({
      id: this.newId(),
      producer: caller.app,
      producerMessageId: input.messageId ?? null,
      topic: input.topic,
      payload: input.payload,
      headers: input.headers ?? {},
      createdAt,
      nextAttemptAt: new Date(createdAt.getTime() + this.checkDelayMs),
    });
    if (result.created) {
      this.record({ messageId: result.message.id, at: createdAt, type: 'prepared', actor: 'producer', app: caller.app });
    } else {
      const stored = result.message;
      const same =
        stored.topic === input.topic &&
        isDeepStrictEqual(stored.payload, input.payload) &&
        isDeepStrictEqual(stored.headers, input.headers ?? {});
      if (!same) {
        throw new StateConflictError(
          `messageId ${input.messageId} was already used by ${caller.app} for a different message (id ${stored.id})`,
          stored.status,
          'MESSAGE_ID_REUSED',
        );
      }
    }
    return result;
  }

  /**
   * Prepares many messages: each as `prepare` would, settled one by one, in the order
   * given (one refused message does not refuse the others). With a coalescing store the
   * inserts share one statement.
   */
  prepareMany(caller: Caller, inputs: readonly PrepareInput[]): Promise<PromiseSettledResult<{ message: Message; created: boolean }>[]> {
    return Promise.allSettled(inputs.map((input) => this.prepare(caller, input)));
  }

  /** Confirms many messages: each as `confirm` would, settled one by one, in the order given. */
  confirmMany(caller: Caller, ids: readonly string[]): Promise<PromiseSettledResult<Message>[]> {
    return Promise.allSettled(ids.map((id) => this.confirm(caller, id)));
  }

  /** The producer's local transaction committed: the message becomes `SENDING`. */
  confirm(caller: Caller, id: string): Promise<Message> {
    const actor = this.settlingActor(caller);
    return this.apply(id, { type: 'confirm', actor }, {
      authorize: (message) => this.requireVisibleTo(caller, message),
      likely: { state: PENDING, ...(!hasRole(caller, 'admin') && { producer: caller.app }) },
      event: () => ({ type: 'confirmed', actor, app: caller.app }),
    });
  }

  /** The producer's local transaction rolled back: the message becomes `CANCELLED` and is never delivered. */
  cancel(caller: Caller, id: string): Promise<Message> {
    const actor = this.settlingActor(caller);
    return this.apply(id, { type: 'cancel', actor }, {
      authorize: (message) => this.requireVisibleTo(caller, message),
      event: () => ({ type: 'cancelled', actor, app: caller.app }),
    });
  }

  /** A consumer processed the message: it becomes `COMPLETED`. */
  ack(caller: Caller, id: string): Promise<Message> {
    return this.apply(id, { type: 'ack' }, {
      likely: { state: SENDING },
      event: (message) => ({ type: 'acked', actor: 'consumer', app: caller.app, attempt: message.deliveryAttempts }),
    });
  }

  /** Acks many messages; one failure does not fail the others. */
  ackMany(caller: Caller, ids: readonly string[]): Promise<AckResult[]> {
    return this.settleEach(ids, (id) => this.ack(caller, id));
  }

  /** Reports many failed handlings; one refusal does not fail the others. */
  nackMany(caller: Caller, items: readonly ({ id: string } & NackInput)[]): Promise<NackResult[]> {
    return this.settleEach(items.map((item) => item.id), (_id, index) => {
      const { id, ...input } = items[index] as { id: string } & NackInput;
      return this.nack(caller, id, input);
    });
  }

  /** Runs `call` for each id; an RMS refusal becomes that id's error entry, an outage fails the whole. */
  private async settleEach(ids: readonly string[], call: (id: string, index: number) => Promise<Message>): Promise<AckResult[]> {
    return Promise.all(
      ids.map(async (id, index): Promise<AckResult> => {
        try {
          return { id, status: (await call(id, index)).status };
        } catch (error) {
          if (!(error instanceof RmsError) || error.code === 'DEPENDENCY_UNAVAILABLE') throw error;
          const status = error instanceof StateConflictError ? { status: error.status } : {};
          return { id, error: { code: error.code, message: error.message, ...status } };
        }
      }),
    );
  }

  /**
   * An admin asks for a `DEAD` message to be delivered again: the round count starts over,
   * and the history keeps the earlier rounds and says who resent it.
   */
  resend(caller: Caller, id: string): Promise<Message> {
    return this.apply(id, { type: 'resend' }, {
      event: (before) => ({ type: 'resent', actor: 'admin', app: caller.app, attempt: before.deliveryAttempts }),
    });
  }

  /**
   * A consumer failed to handle the message (`reason`): the round counts as spent, the
   * next one is due at once (or after `retryAfterMs`), or with no rounds left the message
   * becomes DEAD now. `lastError` and the history carry the reason. A failure reported
   * after the message was acked (by another consumer) or went DEAD changes nothing but is
   * still recorded.
   */
  async nack(caller: Caller, id: string, input: NackInput): Promise<Message> {
    const lastError = `consumer ${caller.app}: ${input.reason}`;
    let message = await this.store.findById(id);
    for (let round = 0; round < MAX_DECISION_ROUNDS; round++) {
      if (!message) throw new NotFoundError(id);
      const now = this.now();
      let rounds = input.attempt ?? message.deliveryAttempts;
      const failure = (at: Date | null): NewMessageEvent => ({
        messageId: id,
        at: now,
        type: 'consumer-failure',
        actor: 'consumer',
        app: caller.app,
        attempt: rounds,
        reason: input.reason,
        nextAttemptAt: at,
      });
      const decision = decide(message, { type: 'nack' });
      if (decision.outcome === 'refused') throw new StateConflictError(decision.reason, message.status);
      if (decision.outcome === 'unchanged') {
        this.record(failure(null));
        return message;
      }
      const next = afterConsumerFailure(this.scheduleFor(message.topic), message.deliveryAttempts, input.attempt, input.retryAfterMs, now);
      rounds = next.rounds;
      const set = { lastError, deliveryAttempts: next.rounds };
      const applied =
        next.kind === 'exhausted'
          ? await applyCommand(this.store, message, { type: 'delivery-exhausted' }, { at: now, set })
          : await applyCommand(this.store, message, { type: 'nack' }, { at: now, set: { ...set, nextAttemptAt: next.at } });
      if (applied.kind === 'moved') {
        this.record(failure(applied.message.nextAttemptAt));
        if (next.kind === 'exhausted') this.onDead(applied.message, caller.app);
        return applied.message;
      }
      if (applied.kind !== 'lost') return applied.message;
      message = await this.store.findById(id);
    }
    throw new StateConflictError(`message ${id} kept changing under concurrent calls; retry`, message?.status ?? 'SENDING');
  }

  /**
   * A consumer still handling the message pushes its ack deadline to `extendMs` from now
   * (default: the topic's ack timeout), so a slow handler is not redelivered under itself.
   */
  heartbeat(caller: Caller, id: string, extendMs?: number): Promise<Message> {
    return this.apply(id, { type: 'heartbeat' }, {
      extra: (message, now) => ({ nextAttemptAt: new Date(now.getTime() + (extendMs ?? this.scheduleFor(message.topic).ackTimeoutMs)) }),
      event: (_before, after) => ({ type: 'heartbeat', actor: 'consumer', app: caller.app, attempt: after.deliveryAttempts, nextAttemptAt: after.nextAttemptAt }),
    });
  }

  /**
   * Resends the DEAD (delivery exhausted) messages of a topic, newest first, looking at
   * most at `limit` DEAD messages; returns the ids resent. Messages that moved meanwhile
   * are skipped.
   */
  async resendTopic(caller: Caller, topic: string, limit: number): Promise<string[]> {
    return (await this.resendMatching(caller, { topic }, { limit, dryRun: false })).resent;
  }

  /** The message, if the caller owns it or is an admin; `NotFoundError` otherwise. */
  async get(caller: Caller, id: string): Promise<Message> {
    const message = await this.store.findById(id);
    if (!message) throw new NotFoundError(id);
    this.requireVisibleTo(caller, message);
    return message;
  }

  /** Messages newest first, filtered and cursor-paged (admins). */
  list(query: ListQuery): Promise<MessagePage> {
    return this.store.list(query);
  }

  /** The history of a message, oldest first, if the caller owns it or is an admin. */
  async historyOf(caller: Caller, id: string): Promise<{ message: Message; events: MessageEvent[] }> {
    const message = await this.get(caller, id);
    return { message, events: this.history ? await this.history.history(id) : [] };
  }

  /**
   * Resends the DEAD messages matching `filter`, newest first, looking at most at `limit`
   * of them; with `dryRun`, only counts what it would resend. Messages that moved
   * meanwhile are skipped.
   */
  async resendMatching(caller: Caller, filter: MessageFilter, options: { limit: number; dryRun: boolean }): Promise<BulkResendResult> {
    const result: BulkResendResult = { matched: 0, resendable: 0, resent: [], dryRun: options.dryRun };
    let after: ListCursor | undefined;
    while (result.matched < options.limit) {
      const page = await this.store.list({ ...filter, status: 'DEAD', limit: Math.min(100, options.limit - result.matched), ...(after && { after }) });
      for (const message of page.messages) {
        result.matched++;
        if (message.deadReason !== 'DELIVERY_EXHAUSTED') continue;
        result.resendable++;
        if (options.dryRun) continue;
        try {
          await this.resend(caller, message.id);
          result.resent.push(message.id);
        } catch (error) {
          if (!(error instanceof StateConflictError)) throw error;
        }
      }
      if (!page.next) break;
      after = page.next;
    }
    return result;
  }

  private record(event: NewMessageEvent): void {
    this.history?.record(event);
  }

  private settlingActor(caller: Caller): Extract<Actor, 'producer' | 'admin'> {
    return hasRole(caller, 'admin') ? 'admin' : 'producer';
  }

  /**
   * A message belongs to its producer and the admins; to anyone else it does not exist
   * (404 like an unknown id, so ids cannot be probed for existence).
   */
  private requireVisibleTo(caller: Caller, message: Message): void {
    if (message.producer !== caller.app && !hasRole(caller, 'admin')) {
      throw new NotFoundError(message.id);
    }
  }

  /**
   * Reads the message, decides, writes conditionally; decides again if the write lost.
   * With `likely`, first writes the decision from that state without reading (see
   * `applyAssuming`): the common case costs one statement, and any other case falls
   * through to the read.
   */
  private async apply(
    id: string,
    command: Command,
    how: {
      /** Refuses a caller who may not see the message. */
      authorize?: (message: Message) => void;
      /** More fields to write. */
      extra?: (message: Message, now: Date) => MessagePatch;
      /** Try this state first, without reading. */
      likely?: { state: MessageState; producer?: string };
      /** The history event of a move, given the message before it (or, when it was not read, after it) and after it. */
      event?: (before: Message, after: Message) => Omit<NewMessageEvent, 'messageId' | 'at'>;
    } = {},
  ): Promise<Message> {
    const { authorize = () => undefined, extra, likely } = how;
    const moved = (before: Message | null, after: Message, dispatch: boolean): Message => {
      if (how.event) this.record({ ...how.event(before ?? after, after), messageId: id, at: after.updatedAt });
      if (dispatch) this.dispatcher?.dispatchSoon(after);
      return after;
    };
    if (likely) {
      const now = this.now();
      const applied = await applyAssuming(this.store, id, likely.state, command, {
        at: now,
        dispatchDueAt: new Date(now.getTime() + this.dispatchLeaseMs),
        ...(likely.producer !== undefined && { producer: likely.producer }),
      });
      if (applied.kind === 'moved') return moved(null, applied.message, applied.decision.dispatch);
    }
    let message = await this.store.findById(id);
    for (let round = 0; round < MAX_DECISION_ROUNDS; round++) {
      if (!message) throw new NotFoundError(id);
      authorize(message);
      const now = this.now();
      const applied = await applyCommand(this.store, message, command, {
        at: now,
        dispatchDueAt: new Date(now.getTime() + this.dispatchLeaseMs),
        ...(extra && { set: extra(message, now) }),
      });
      switch (applied.kind) {
        case 'unchanged':
          return applied.message;
        case 'refused':
          throw new StateConflictError(applied.reason, applied.message.status);
        case 'moved':
          return moved(message, applied.message, applied.decision.dispatch);
        case 'lost':
          message = await this.store.findById(id);
      }
    }
    throw new StateConflictError(`message ${id} kept changing under concurrent calls; retry`, message?.status ?? 'PENDING');
  }
}
