/**
 * Records the events of messages' histories without putting a store write on the path of
 * the request or loop that caused them: events are queued and written together on the
 * next turn of the event loop, one statement per batch.
 *
 * History is an account of what happened, not the message's state: if the store refuses a
 * batch of events (an outage), they are logged and dropped, and the message itself is
 * unaffected. Events queued when a process dies are lost; `close` writes what is queued.
 */
import type { Logger } from 'pino';
import { type MessageEvent, type NewMessageEvent, completeEvent } from '../domain/message-event.js';
import type { MessageStore } from '../store/message-store.js';

/** Options of the history recorder. */
export interface HistoryRecorderOptions {
  store: MessageStore;
  logger: Logger;
  /** Most events in one store write. @defaultValue 500 */
  maxBatch?: number;
}

/** Most events a history read returns. */
export const MAX_HISTORY_EVENTS = 1000;

/** Queues history events and writes them in batches. */
export class HistoryRecorder {
  private readonly store: MessageStore;
  private readonly logger: Logger;
  private readonly maxBatch: number;
  private queued: MessageEvent[] = [];
  private flushScheduled = false;
  /** The writes so far, chained so that events reach the store in the order recorded. */
  private writing: Promise<void> = Promise.resolve();

  constructor(options: HistoryRecorderOptions) {
    this.store = options.store;
    this.logger = options.logger;
    this.maxBatch = options.maxBatch ?? 500;
  }

  /** Queues `event` for the message's history. Never throws, never waits. */
  record(event: NewMessageEvent): void {
    this.queued.push(completeEvent(event));
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => void this.flush());
  }

  /** Writes every queued event; resolves when they (and all earlier ones) are written or dropped. */
  flush(): Promise<void> {
    this.flushScheduled = false;
    const batch = this.queued;
    this.queued = [];
    if (batch.length > 0) this.writing = this.writing.then(() => this.write(batch));
    return this.writing;
  }

  /** The history of a message, oldest first, including the events this process has still queued. */
  async history(messageId: string, limit = MAX_HISTORY_EVENTS): Promise<MessageEvent[]> {
    await this.flush();
    return this.store.history(messageId, limit);
  }

  private async write(batch: MessageEvent[]): Promise<void> {
    for (let start = 0; start < batch.length; start += this.maxBatch) {
      const chunk = batch.slice(start, start + this.maxBatch);
      try {
        await this.store.appendEvents(chunk);
      } catch (error) {
        this.logger.warn({ err: error, dropped: chunk.length }, 'message history events could not be written; dropped');
      }
    }
  }
}
