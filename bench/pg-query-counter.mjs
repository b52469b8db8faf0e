/**
 * A preload for an RMS child of `bench/store-writes.ts` (`NODE_OPTIONS=--import=...`):
 * counts the statements RMS sends to PostgreSQL (every `Client#query`, pooled or not), so
 * statements per message can be measured without `pg_stat_statements`. On SIGUSR2 it
 * writes the count, as JSON, to the file named by `RMS_QUERY_COUNT_FILE`.
 */
import { writeFileSync } from 'node:fs';
import process from 'node:process';
import pg from 'pg';

let statements = 0;
const query = pg.Client.prototype.query;
pg.Client.prototype.query = function countedQuery(...args) {
  statements += 1;
  return query.apply(this, args);
};
process.on('SIGUSR2', () => {
  const file = process.env['RMS_QUERY_COUNT_FILE'];
  if (file) writeFileSync(file, JSON.stringify({ statements }));
});
