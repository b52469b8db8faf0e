/**
 * PostgreSQL for tests: each test file gets a schema of its own in the shared `test`
 * database, dropped afterwards, so files can run side by side without seeing each other.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** The server the tests use. @defaultValue postgres://postgres@127.0.0.1:5432/test */
export const TEST_POSTGRES_URL = process.env['TEST_POSTGRES_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';

/** A fresh schema name, and a store URL that selects it. */
export function freshSchemaUrl(base: string = TEST_POSTGRES_URL): { url: string; schema: string } {
  const schema = `rms_test_${process.pid}_${randomBytes(4).toString('hex')}`;
  const url = new URL(base);
  url.searchParams.set('schema', schema);
  return { url: url.toString(), schema };
}

/** Drops a schema made by `freshSchemaUrl`. */
export async function dropSchema(schema: string, base: string = TEST_POSTGRES_URL): Promise<void> {
  const client = new pg.Client({ connectionString: base });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await client.end();
  }
}
