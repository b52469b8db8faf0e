/**
 * Chooses the store adapter from `STORE_URL`'s scheme. Each adapter is loaded only when
 * chosen: a PostgreSQL deployment never loads mongoose (tens of MB of heap), and the other
 * way round.
 */
import { ConfigurationError } from '../domain/errors.js';
import type { MessageStore } from './message-store.js';

/** `postgres://…` → PostgreSQL, `mongodb://…` → MongoDB. */
export async function createMessageStore(url: string): Promise<MessageStore> {
  if (/^postgres(ql)?:\/\//.test(url)) {
    const { PostgresMessageStore } = await import('./postgres/postgres-message-store.js');
    return new PostgresMessageStore({ url });
  }
  if (/^mongodb(\+srv)?:\/\//.test(url)) {
    const { MongoMessageStore } = await import('./mongo/mongo-message-store.js');
    return new MongoMessageStore({ url });
  }
  throw new ConfigurationError(`STORE_URL: unsupported scheme in ${url.replace(/\/\/[^@]*@/, '//***@')}`);
}
