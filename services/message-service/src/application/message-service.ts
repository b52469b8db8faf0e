/**
 * The use cases behind the HTTP API: prepare, confirm, cancel, ack, nack, heartbeat, get,
 * list, history and resend. Every change a call makes is recorded in the message's history.
 *
 * Producers write only the topics the registry allows them; a confirmed message gets one
 * delivery per consumer group subscribed to its topic, and a consumer acks (heartbeats)
 * its own group's delivery.
 *
 * Each state-changing call reads the message, asks the state machine what the command
 * does, and writes the decision with a conditional transition. If another call changed
 * the message in between, the write matches nothing and the call decides again from the
 * fresh state, so exactly one of any set of racing commands moves the message and the
 * others see the result (an idempotent repeat or a 409).
 */
import { isDeepStrictEqual } from 'node:util';
import { v7 as uuidv7 } from 'uuid';
import type { AppRegistration, AppRegistry, Role } from '../config/app-registry.js';
import { ForbiddenError, InvalidRequestError, NotFoundError, RmsError, StateConflictError } from '../domain/errors.js';
import { DEFAULT_GROUP, type DeliveryStatus, type JsonValue, type Message, type MessageHeaders, type MessageStatus } from '../domain/message.js';
import type { MessageEvent, NewMessageEvent } from '../domain/message-event.js';
import { type DeliverySchedule, afterConsumerFailure } from '../domain/schedule.js';
import { type Actor, type Command, type DeliveryCommand, deliveriesOf } from '../domain/state-machine.js';
import { type AppliedToDeliveries, applyCommand, applyToDeliveries } from './apply-command.js';
import type { Dispatcher } from './dispatcher.js';
import type { TraceContext } from '@rms/client-sdk';
import { type DeliveryMetrics, secondsBetween } from '../observability/delivery-metrics.js';
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
  /** Deliver no earlier than this time (a delayed message). */
  deliverAt?: Date;
  /** Deliver no earlier than this long after prepare (a delayed message); not with `deliverAt`. */
  delayMs?: number;
  /** The W3C trace context to store with the message (and carry into check-backs and deliveries). */
  trace?: TraceContext;
}

/** What the service asks of the app registry: topic permissions and subscriptions. */
export type Subscriptions = Pick<AppRegistry, 'groupsFor' | 'mayProduce' | 'groupsOf'>;

/** Every producer may write every topic, and every topic has the default group alone. */
const OPEN_SUBSCRIPTIONS: Subscriptions = { groupsFor: () => [DEFAULT_GROUP], mayProduce: () => true, groupsOf: () => undefined };

/** One entry of a batch ack's answer. */
export type AckResult =
  /** `status` is the message's; `group` and `delivery` the acking group's delivery. */
  | { id: string; status: MessageStatus; group: string; delivery: DeliveryStatus }
  | { id: string; error: { code: string; message: string; status?: MessageStatus } };

/** A consumer's report that it failed to handle a message. */
export interface NackInput {
  /** Why, in the consumer's words (at most 1000 characters). */
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
  /** The ack deadline of a topic's group's deliveries (heartbeats extend by it). @defaultValue () => 240000 */
  ackTimeoutFor?: (topic: string, group: string) => number;
  /** Topic permissions and consumer groups. @defaultValue any producer writes any topic; one default group per topic */
  subscriptions?: Subscriptions;
  /** The delivery schedule of a topic's group: its round limit is what a nack counts against. @defaultValue the design's (50 rounds) */
  scheduleFor?: (topic: string, group: string) => DeliverySchedule;
  /** Records what happens to messages. @defaultValue nothing is recorded */
  history?: HistoryRecorder;
  /** Told of a message whose delivery to `groups` a consumer's failure report made DEAD, to count and alert it. @defaultValue nothing */
  onDead?: (message: Message, groups: string[], consumerApp: string) => void;
  /** The latest a delayed message may go, from its prepare. @defaultValue 30 days */
  maxDelayMs?: number;
  /**
   * A message entering SENDING is due this long later unless its dispatch reports first:
   * if this instance dies before publishing, another instance's redelivery loop takes over.
   * @defaultValue 30000
   */
  dispatchLeaseMs?: number;
  /** Where acks and the publish → ack latency are counted. @defaultValue not counted */
  metrics?: DeliveryMetrics;
}

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
  private readonly ackTimeoutFor: (topic: string, group: string) => number;
  private readonly subscriptions: Subscriptions;
  private readonly maxDelayMs: number;
  private readonly metrics: DeliveryMetrics | undefined;
  private readonly scheduleFor: (topic: string, group: string) => DeliverySchedule;
  private readonly history: HistoryRecorder | undefined;
  private readonly onDead: (message: Message, groups: string[], consumerApp: string) => void;

  constructor(options: MessageServiceOptions) {
    this.store = options.store;
    this.checkDelayMs = options.checkDelayMs;
    this.now = options.now ?? (() => new Date());
    this.newId = options.newId ?? uuidv7;
    this.dispatcher = options.dispatcher;
    this.dispatchLeaseMs = options.dispatchLeaseMs ?? 30_000;
    this.ackTimeoutFor = options.ackTimeoutFor ?? (() => 240_000);
    this.subscriptions = options.subscriptions ?? OPEN_SUBSCRIPTIONS;
    this.maxDelayMs = options.maxDelayMs ?? 30 * 24 * 3600 * 1000;
    this.metrics = options.metrics;
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
    if (!this.subscriptions.mayProduce(caller.app, input.topic)) {
      throw new ForbiddenError(`app ${caller.app} may not write topic ${input.topic}: it is not among the topics the app registry allows it`);
    }
    const createdAt = this.now();
    const deliverAt = this.deliverAtOf(input, createdAt);
    const result = await this.store.insert({
      id: this.newId(),
      producer: caller.app,
      producerMessageId: input.messageId ?? null,
      topic: input.topic,
      payload: input.payload,
      headers: input.headers ?? {},
      createdAt,
      deliverAt,
      nextAttemptAt: new Date(createdAt.getTime() + this.checkDelayMs),
      traceparent: input.trace?.traceparent ?? null,
      tracestate: input.trace?.tracestate ?? null,
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

  /**
   * The producer's local transaction committed: the message becomes `SENDING`, with one
   * delivery per consumer group subscribed to its topic now (groups subscribed later do
   * not get it). A delayed message waits until its `deliverAt`.
   */
  confirm(caller: Caller, id: string): Promise<Message> {
    const actor = this.settlingActor(caller);
    return this.apply(id, { type: 'confirm', actor }, (message) => this.requireVisibleTo(caller, message), { type: 'confirmed', actor, app: caller.app });
  }

  /** The producer's local transaction rolled back: the message becomes `CANCELLED` and is never delivered. */
  cancel(caller: Caller, id: string): Promise<Message> {
    const actor = this.settlingActor(caller);
    return this.apply(id, { type: 'cancel', actor }, (message) => this.requireVisibleTo(caller, message), { type: 'cancelled', actor, app: caller.app });
  }

  /**
   * A consumer processed the message: its group's delivery is acked, and the message
   * becomes `COMPLETED` once every group's is. `group` defaults to the caller's group for
   * the topic (see `consumerGroup`).
   */
  async ack(caller: Caller, id: string, group?: string): Promise<Message> {
    return (await this.applyToGroup(caller, id, group, () => ({ type: 'ack' }))).message;
  }

  /**
   * A consumer failed to handle the message (`reason`): its group's round counts as
   * spent, the next one is due at once (or after `retryAfterMs`), or with no rounds left
   * the group's delivery becomes DEAD now. `lastError` and the history carry the reason.
   * A failure reported after the group acked it (another consumer of the group) or after
   * its delivery went DEAD changes nothing but is still recorded.
   */
  async nack(caller: Caller, id: string, input: NackInput, group?: string): Promise<Message> {
    const lastError = `consumer ${caller.app}: ${input.reason}`;
    let nextAttemptAt: Date | null = null;
    let rounds: number | null = null;
    let failedAt = this.now();
    const failed = await this.applyToGroup(caller, id, group, (message, own, now): DeliveryCommand => {
      failedAt = now;
      const delivery = deliveriesOf(message, DEFAULT_GROUP).find((candidate) => candidate.group === own);
      const recorded = delivery?.attempts ?? message.deliveryAttempts;
      const next = afterConsumerFailure(this.scheduleFor(message.topic, own), recorded, input.attempt, input.retryAfterMs, now);
      rounds = next.rounds;
      nextAttemptAt = next.kind === 'retry' ? next.at : null;
      return { type: 'nack', attempts: next.rounds, retryAt: nextAttemptAt, lastError };
    });
    this.record({
      messageId: id,
      at: failedAt,
      type: 'consumer-failure',
      actor: 'consumer',
      app: caller.app,
      ...(failed.message.deliveries.length > 0 && { group: failed.group }),
      attempt: rounds,
      reason: input.reason,
      nextAttemptAt: failed.moved ? nextAttemptAt : null,
    });
    this.metrics?.nacks.inc({ topic: failed.message.topic });
    if (failed.moved && failed.deadGroups.length > 0) this.onDead(failed.message, failed.deadGroups, caller.app);
    return failed.message;
  }

  /** Reports many failed handlings (of one group); one refusal does not fail the others. */
  nackMany(caller: Caller, items: readonly ({ id: string } & NackInput)[], group?: string): Promise<NackResult[]> {
    return Promise.all(
      items.map(async ({ id, ...input }): Promise<NackResult> => {
        try {
          const message = await this.nack(caller, id, input, group);
          const own = deliveriesOf(message, DEFAULT_GROUP);
          const delivery = own.find((candidate) => candidate.group === (group ?? own[0]?.group));
          return { id, status: message.status, group: delivery?.group ?? DEFAULT_GROUP, delivery: delivery?.status ?? 'SENDING' };
        } catch (error) {
          if (!(error instanceof RmsError) || error.code === 'DEPENDENCY_UNAVAILABLE') throw error;
          const status = error instanceof StateConflictError ? { status: error.status } : {};
          return { id, error: { code: error.code, message: error.message, ...status } };
        }
      }),
    );
  }

  /** Acks many messages (of one group); one failure does not fail the others. */
  async ackMany(caller: Caller, ids: readonly string[], group?: string): Promise<AckResult[]> {
    return Promise.all(
      ids.map(async (id): Promise<AckResult> => {
        try {
          const acked = await this.applyToGroup(caller, id, group, () => ({ type: 'ack' }));
          const delivery = deliveriesOf(acked.message, DEFAULT_GROUP).find((candidate) => candidate.group === acked.group);
          return { id, status: acked.message.status, group: acked.group, delivery: delivery?.status ?? 'SENDING' };
        } catch (error) {
          if (!(error instanceof RmsError) || error.code === 'DEPENDENCY_UNAVAILABLE') throw error;
          const status = error instanceof StateConflictError ? { status: error.status } : {};
          return { id, error: { code: error.code, message: error.message, ...status } };
        }
      }),
    );
  }

  /**
   * An admin asks for a `DEAD` delivery to go out again, rounds reset: `group`'s, or every
   * DEAD delivery of the message when no group is named.
   */
  async resend(caller: Caller, id: string, group?: string): Promise<Message> {
    const message = await this.store.findById(id);
    if (!message) throw new NotFoundError(id);
    const now = this.now();
    const command: DeliveryCommand = { type: 'resend', dueAt: new Date(now.getTime() + this.dispatchLeaseMs) };
    const groups = (read: Message) => {
      if (group !== undefined) return [group];
      const dead = deliveriesOf(read, DEFAULT_GROUP).filter((delivery) => delivery.status === 'DEAD');
      if (dead.length > 0) return dead.map((delivery) => delivery.group);
      // Nothing dead: the state machine says what a resend means here (SENDING: nothing to
      // do; COMPLETED, or never confirmed: refused).
      return [deliveriesOf(read, DEFAULT_GROUP)[0]?.group ?? DEFAULT_GROUP];
    };
    let resentGroups: string[] = [];
    const applied = await applyToDeliveries(
      this.store,
      message,
      (read) => {
        resentGroups = groups(read);
        return resentGroups.map((name) => ({ group: name, command }));
      },
      { at: now, defaultGroup: DEFAULT_GROUP },
    );
    const resent = this.settled(id, applied, true);
    if (applied.kind === 'moved') {
      // The history keeps the earlier rounds; this says who started the new ones.
      for (const name of resentGroups) {
        this.record({ messageId: id, at: now, type: 'resent', actor: 'admin', app: caller.app, ...(resent.deliveries.length > 0 && { group: name }), attempt: message.deliveryAttempts });
      }
    }
    return resent;
  }

  /**
   * A consumer still handling the message pushes its group's ack deadline to `extendMs`
   * from now (default: the topic's group's ack timeout), so a slow handler is not
   * redelivered under itself.
   */
  async heartbeat(caller: Caller, id: string, extendMs?: number, group?: string): Promise<Message> {
    const beat = await this.applyToGroup(caller, id, group, (message, own, now) => ({
      type: 'heartbeat',
      until: new Date(now.getTime() + (extendMs ?? this.ackTimeoutFor(message.topic, own))),
    }));
    if (beat.moved) {
      const delivery = deliveriesOf(beat.message, DEFAULT_GROUP).find((candidate) => candidate.group === beat.group);
      this.record({
        messageId: id,
        at: beat.message.updatedAt,
        type: 'heartbeat',
        actor: 'consumer',
        app: caller.app,
        ...(beat.message.deliveries.length > 0 && { group: beat.group }),
        attempt: delivery?.attempts ?? beat.message.deliveryAttempts,
        nextAttemptAt: delivery?.nextAttemptAt ?? beat.message.nextAttemptAt,
      });
    }
    return beat.message;
  }

  /**
   * The consumer group in which `caller` settles a delivery of `message`. An app that
   * declares subscriptions settles only its own groups' deliveries of topics it reads
   * (403 otherwise); `group` may name one when it reads the topic in several. An app that
   * declares none may settle any group's delivery, the only one when `group` is omitted.
   * @throws ForbiddenError naming the topic or group the caller does not read.
   * @throws InvalidRequestError when the group is ambiguous.
   */
  private consumerGroup(caller: Caller, message: Message, group: string | undefined): string {
    const own = this.subscriptions.groupsOf(caller.app, message.topic);
    if (own === undefined) {
      if (group !== undefined) return group;
      const groups = deliveriesOf(message, DEFAULT_GROUP).map((delivery) => delivery.group);
      if (groups.length <= 1) return groups[0] ?? DEFAULT_GROUP;
      throw new InvalidRequestError(`message ${message.id} has deliveries for groups ${groups.join(', ')}: name yours in "group"`, { field: 'group' });
    }
    if (own.length === 0) throw new ForbiddenError(`app ${caller.app} does not subscribe to topic ${message.topic}`);
    if (group !== undefined) {
      if (!own.includes(group)) throw new ForbiddenError(`app ${caller.app} does not read topic ${message.topic} in group ${group}`);
      return group;
    }
    if (own.length === 1) return own[0] as string;
    throw new InvalidRequestError(`app ${caller.app} reads topic ${message.topic} in groups ${own.join(', ')}: name one in "group"`, { field: 'group' });
  }

  /** Reads the message, resolves the caller's group, and applies a command to that group's delivery. */
  private async applyToGroup(
    caller: Caller,
    id: string,
    group: string | undefined,
    command: (message: Message, group: string, now: Date) => DeliveryCommand,
  ): Promise<{ message: Message; group: string; moved: boolean; deadGroups: string[] }> {
    const message = await this.store.findById(id);
    if (!message) throw new NotFoundError(id);
    const own = this.consumerGroup(caller, message, group);
    const now = this.now();
    let type: DeliveryCommand['type'] | undefined;
    const applied = await applyToDeliveries(
      this.store,
      message,
      (read) => {
        const decided = command(read, own, now);
        type = decided.type;
        return [{ group: own, command: decided }];
      },
      { at: now, defaultGroup: DEFAULT_GROUP },
    );
    const settled = this.settled(id, applied, false);
    const moved = applied.kind === 'moved';
    if (moved && type === 'ack') {
      this.countAck(applied.message, own, now);
      const delivery = deliveriesOf(settled, DEFAULT_GROUP).find((candidate) => candidate.group === own);
      this.record({ messageId: id, at: now, type: 'acked', actor: 'consumer', app: caller.app, ...(settled.deliveries.length > 0 && { group: own }), attempt: delivery?.attempts ?? settled.deliveryAttempts });
    }
    return { message: settled, group: own, moved, deadGroups: applied.kind === 'moved' ? applied.deadGroups : [] };
  }

  /** Counts an ack, and the time from the message's last publish to it. */
  private countAck(message: Message, group: string, at: Date): void {
    if (!this.metrics) return;
    this.metrics.acks.inc({ topic: message.topic });
    const delivery = deliveriesOf(message, DEFAULT_GROUP).find((candidate) => candidate.group === group);
    if (message.lastPublishedAt) {
      this.metrics.publishToAck.observe({ transport: delivery?.lastTransport ?? message.lastTransport ?? 'unknown' }, secondsBetween(message.lastPublishedAt, at));
    }
  }

  /** The answer to a delivery command: the message, or the error its outcome means. */
  private settled(id: string, applied: AppliedToDeliveries, dispatch: boolean): Message {
    switch (applied.kind) {
      case 'moved':
        if (dispatch) this.dispatcher?.dispatchSoon(applied.message);
        return applied.message;
      case 'unchanged':
        return applied.message;
      case 'refused':
        throw new StateConflictError(applied.reason, applied.message.status);
      case 'lost':
        throw new StateConflictError(`message ${id} kept changing under concurrent calls; retry`, 'SENDING');
    }
  }

  /**
   * When a delayed message may go: `deliverAt`, or `delayMs` after prepare; `null` for at
   * once. Refuses a time further than the configured maximum.
   * @throws InvalidRequestError naming the field.
   */
  private deliverAtOf(input: PrepareInput, createdAt: Date): Date | null {
    if (input.deliverAt !== undefined && input.delayMs !== undefined) {
      throw new InvalidRequestError('give deliverAt or delayMs, not both', { field: 'deliverAt' });
    }
    const at = input.deliverAt ?? (input.delayMs !== undefined ? new Date(createdAt.getTime() + input.delayMs) : null);
    if (at === null) return null;
    const field = input.deliverAt !== undefined ? 'deliverAt' : 'delayMs';
    if (at.getTime() - createdAt.getTime() > this.maxDelayMs) {
      throw new InvalidRequestError(`${field}: at most ${this.maxDelayMs} ms ahead (RMS_MAX_DELAY_MS)`, { field });
    }
    return at;
  }

  /**
   * Resends the DEAD (delivery exhausted) messages of a topic, newest first, looking at
   * most at `limit` DEAD messages; returns the ids resent (every DEAD delivery of each;
   * its other groups' are left as they are). Messages that moved meanwhile are skipped.
   */
  async resendTopic(caller: Caller, topic: string, limit: number): Promise<string[]> {
    return (await this.resendMatching(caller, { topic }, { limit, dryRun: false })).resent;
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

  /** Reads the message, decides, writes conditionally (recording `event` when it moved); decides again if the write lost. */
  private async apply(id: string, command: Command, authorize: (message: Message) => void, event: Omit<NewMessageEvent, 'messageId' | 'at'>): Promise<Message> {
    let message = await this.store.findById(id);
    for (let round = 0; round < MAX_DECISION_ROUNDS; round++) {
      if (!message) throw new NotFoundError(id);
      authorize(message);
      const now = this.now();
      const groups = this.subscriptions.groupsFor(message.topic);
      const firstRound = this.dispatcher?.firstRound(message.topic, groups, now);
      const applied = await applyCommand(this.store, message, command, {
        at: now,
        dispatchDueAt: new Date(now.getTime() + this.dispatchLeaseMs),
        groups,
        ...(firstRound && { firstRound }),
      });
      switch (applied.kind) {
        case 'unchanged':
          return applied.message;
        case 'refused':
          throw new StateConflictError(applied.reason, applied.message.status);
        case 'moved':
          this.record({ ...event, messageId: id, at: applied.message.updatedAt });
          if (applied.decision.dispatch) this.dispatcher?.dispatchConfirmed(applied.message);
          return applied.message;
        case 'lost':
          message = await this.store.findById(id);
      }
    }
    throw new StateConflictError(`message ${id} kept changing under concurrent calls; retry`, message?.status ?? 'PENDING');
  }
}
