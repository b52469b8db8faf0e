/**
 * The numbers an operator looks at first: messages by status and topic, and the messages
 * that have waited longest. Both are whole-table questions, so the answer is cached for a
 * few seconds and concurrent askers share one query: a dashboard left open, or several,
 * cost the store one scan per interval.
 */
import type { Message, MessageStatus } from '../domain/message.js';
import { MESSAGE_STATUSES } from '../domain/message.js';
import type { MessageStore, StatusTopicCount } from '../store/message-store.js';

/** One reading of the stats. */
export interface MessageStatsSnapshot {
  /** When it was read from the store. */
  at: Date;
  /** Messages per (status, topic) pair that has any. */
  counts: StatusTopicCount[];
  /** Messages per status, all topics. */
  totals: Record<MessageStatus, number>;
  /** The PENDING or SENDING messages created longest ago, oldest first. */
  oldestWaiting: Message[];
}

/** Options of the stats reader. */
export interface MessageStatsOptions {
  store: MessageStore;
  /** How long a reading is served before the store is asked again. @defaultValue 5000 */
  cacheMs?: number;
  /** How many of the oldest waiting messages to list. @defaultValue 10 */
  oldestLimit?: number;
  /** @defaultValue () => new Date() */
  now?: () => Date;
}

/** Cached counts of messages by status and topic, and the oldest waiting ones. */
export class MessageStats {
  private readonly store: MessageStore;
  private readonly cacheMs: number;
  private readonly oldestLimit: number;
  private readonly now: () => Date;
  private latest: MessageStatsSnapshot | undefined;
  private reading: Promise<MessageStatsSnapshot> | undefined;

  constructor(options: MessageStatsOptions) {
    this.store = options.store;
    this.cacheMs = options.cacheMs ?? 5000;
    this.oldestLimit = options.oldestLimit ?? 10;
    this.now = options.now ?? (() => new Date());
  }

  /** The latest reading, at most `cacheMs` old (`fresh` forces a new one). */
  async snapshot(fresh = false): Promise<MessageStatsSnapshot> {
    if (!fresh && this.latest && this.now().getTime() - this.latest.at.getTime() < this.cacheMs) return this.latest;
    this.reading ??= this.read().finally(() => {
      this.reading = undefined;
    });
    return this.reading;
  }

  private async read(): Promise<MessageStatsSnapshot> {
    const at = this.now();
    const [counts, oldestWaiting] = await Promise.all([this.store.countByStatusAndTopic(), this.store.oldestWaiting(this.oldestLimit)]);
    const totals = Object.fromEntries(MESSAGE_STATUSES.map((status) => [status, 0])) as Record<MessageStatus, number>;
    for (const { status, count } of counts) totals[status] += count;
    this.latest = { at, counts, totals, oldestWaiting };
    return this.latest;
  }
}
