/**
 * Chooses the store adapter from `STORE_URL`'s scheme.
 */
import { ConfigurationError } from '../domain/errors.js';
import type { MessageStore } from './message-store.js';
import { MongoMessageStore } from './mongo/mongo-message-store.js';
import { PostgresMessageStore } from './postgres/postgres-message-store.js';

/** `postgres://…` → PostgreSQL, `mongodb://…` → MongoDB. */
export function createMessageStore(url: string): MessageStore {
  if (/^postgres(ql)?:\/\//.test(url)) return new PostgresMessageStore({ url });
  if (/^mongodb(\+srv)?:\/\//.test(url)) return new MongoMessageStore({ url });
  throw new ConfigurationError(`STORE_URL: unsupported scheme in ${url.replace(/\/\/[^@]*@/, '//***@')}`);
}
