/**
 * Chooses the store adapter from `STORE_URL`'s scheme. Each adapter is loaded only when
 * chosen: a PostgreSQL deployment never loads mongoose (tens of MB of heap), and the other
 * way round.
 */
import { ConfigurationError } from '../domain/errors.js';
import type { MessageStore } from './message-store.js';

/** Settings every adapter may use. */
export interface MessageStoreSettings {
  /** How long finished messages are kept (MongoDB's TTL indexes; PostgreSQL drops days in the retention sweep). */
  retentionMs?: number;
}

/** `postgres://…` → PostgreSQL, `mongodb://…` → MongoDB. */
export async function createMessageStore(url: string, settings: MessageStoreSettings = {}): Promise<MessageStore> {
  if (/^postgres(ql)?:\/\//.test(url)) {
    const { PostgresMessageStore } = await import('./postgres/postgres-message-store.js');
    return new PostgresMessageStore({ url });
  }
  if (/^mongodb(\+srv)?:\/\//.test(url)) {
    const { MongoMessageStore } = await import('./mongo/mongo-message-store.js');
    return new MongoMessageStore({ url, ...(settings.retentionMs !== undefined && settings.retentionMs > 0 && { retentionMs: settings.retentionMs }) });
  }
  throw new ConfigurationError(`STORE_URL: unsupported scheme in ${url.replace(/\/\/[^@]*@/, '//***@')}`);
}
