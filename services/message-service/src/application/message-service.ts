/**
 * The use cases behind the HTTP API: prepare, confirm, cancel, ack, get, list, resend.
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
import type { Actor, Command } from '../domain/state-machine.js';
import { applyAssuming, applyCommand } from './apply-command.js';
import type { Dispatcher } from './dispatcher.js';
import type { ListCursor, MessagePage, MessageStore } from '../store/message-store.js';

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
  /** The ack deadline of a topic's deliveries (heartbeats extend by it). @defaultValue () => 240000 */
  ackTimeoutFor?: (topic: string) => number;
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
  private readonly ackTimeoutFor: (topic: string) => number;

  constructor(options: MessageServiceOptions) {
    this.store = options.store;
    this.checkDelayMs = options.checkDelayMs;
    this.now = options.now ?? (() => new Date());
    this.newId = options.newId ?? uuidv7;
    this.dispatcher = options.dispatcher;
    this.dispatchLeaseMs = options.dispatchLeaseMs ?? 30_000;
    this.ackTimeoutFor = options.ackTimeoutFor ?? (() => 240_000);
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
    if (!result.created) {
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
    return this.apply(id, { type: 'confirm', actor: this.settlingActor(caller) }, (message) => this.requireVisibleTo(caller, message), undefined, {
      state: PENDING,
      ...(!hasRole(caller, 'admin') && { producer: caller.app }),
    });
  }

  /** The producer's local transaction rolled back: the message becomes `CANCELLED` and is never delivered. */
  cancel(caller: Caller, id: string): Promise<Message> {
    return this.apply(id, { type: 'cancel', actor: this.settlingActor(caller) }, (message) => this.requireVisibleTo(caller, message));
  }

  /** A consumer processed the message: it becomes `COMPLETED`. */
  ack(_caller: Caller, id: string): Promise<Message> {
    return this.apply(id, { type: 'ack' }, () => undefined, undefined, { state: SENDING });
  }

  /** Acks many messages; one failure does not fail the others. */
  async ackMany(caller: Caller, ids: readonly string[]): Promise<AckResult[]> {
    return Promise.all(
      ids.map(async (id): Promise<AckResult> => {
        try {
          return { id, status: (await this.ack(caller, id)).status };
        } catch (error) {
          if (!(error instanceof RmsError) || error.code === 'DEPENDENCY_UNAVAILABLE') throw error;
          const status = error instanceof StateConflictError ? { status: error.status } : {};
          return { id, error: { code: error.code, message: error.message, ...status } };
        }
      }),
    );
  }

  /** An admin asks for a `DEAD` message to be delivered again, attempts reset. */
  resend(_caller: Caller, id: string): Promise<Message> {
    return this.apply(id, { type: 'resend' }, () => undefined);
  }

  /**
   * A consumer still handling the message pushes its ack deadline to `extendMs` from now
   * (default: the topic's ack timeout), so a slow handler is not redelivered under itself.
   */
  heartbeat(_caller: Caller, id: string, extendMs?: number): Promise<Message> {
    return this.apply(id, { type: 'heartbeat' }, () => undefined, (message, now) => ({
      nextAttemptAt: new Date(now.getTime() + (extendMs ?? this.ackTimeoutFor(message.topic))),
    }));
  }

  /**
   * Resends the DEAD (delivery exhausted) messages of a topic, oldest pages last, at most
   * `limit` of them; returns the ids resent. Messages that moved meanwhile are skipped.
   */
  async resendTopic(caller: Caller, topic: string, limit: number): Promise<string[]> {
    const resent: string[] = [];
    let after: ListCursor | undefined;
    while (resent.length < limit) {
      const page = await this.store.list({ status: 'DEAD', topic, limit: Math.min(100, limit - resent.length), ...(after && { after }) });
      for (const message of page.messages) {
        if (message.deadReason !== 'DELIVERY_EXHAUSTED') continue;
        try {
          await this.resend(caller, message.id);
          resent.push(message.id);
        } catch (error) {
          if (!(error instanceof StateConflictError)) throw error;
        }
      }
      if (!page.next) break;
      after = page.next;
    }
    return resent;
  }

  /** The message, if the caller owns it or is an admin; `NotFoundError` otherwise. */
  async get(caller: Caller, id: string): Promise<Message> {
    const message = await this.store.findById(id);
    if (!message) throw new NotFoundError(id);
    this.requireVisibleTo(caller, message);
    return message;
  }

  /** Messages newest first, filtered and cursor-paged (admins). */
  list(query: { status?: MessageStatus; topic?: string; limit: number; after?: ListCursor }): Promise<MessagePage> {
    return this.store.list(query);
  }

  private settlingActor(caller: Caller): Actor {
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
    authorize: (message: Message) => void,
    extra?: (message: Message, now: Date) => MessagePatch,
    likely?: { state: MessageState; producer?: string },
  ): Promise<Message> {
    if (likely) {
      const now = this.now();
      const applied = await applyAssuming(this.store, id, likely.state, command, {
        at: now,
        dispatchDueAt: new Date(now.getTime() + this.dispatchLeaseMs),
        ...(likely.producer !== undefined && { producer: likely.producer }),
      });
      if (applied.kind === 'moved') {
        if (applied.decision.dispatch) this.dispatcher?.dispatchSoon(applied.message);
        return applied.message;
      }
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
          if (applied.decision.dispatch) this.dispatcher?.dispatchSoon(applied.message);
          return applied.message;
        case 'lost':
          message = await this.store.findById(id);
      }
    }
    throw new StateConflictError(`message ${id} kept changing under concurrent calls; retry`, message?.status ?? 'PENDING');
  }
}
