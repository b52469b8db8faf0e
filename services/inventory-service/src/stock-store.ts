/**
 * The inventory service's own database: stock levels, and the ids of the messages already
 * applied. Recording the message id in the same transaction as the stock change is the
 * strongest dedupe there is: a duplicate delivery can never be applied twice, whatever
 * happened to acks, Redis or the process in between.
 */
import pg from 'pg';

/** What applying a "reduce stock" message did. */
export type ApplyOutcome = 'applied' | 'duplicate';

/** Stock levels and applied message ids. */
export class StockStore {
  private readonly pool: pg.Pool;

  /**
   * @param url a `postgres://` URL.
   * @param schema the schema for the tables (created if missing).
   */
  constructor(
    url: string,
    private readonly schema: string,
  ) {
    if (!/^[a-z_][a-z0-9_]*$/.test(schema)) throw new Error(`stock store: bad schema name ${schema}`);
    this.pool = new pg.Pool({ connectionString: url, max: 10, connectionTimeoutMillis: 5000, statement_timeout: 10_000 });
    this.pool.on('error', () => undefined);
  }

  /** Creates the schema and tables if missing. */
  async init(): Promise<void> {
    const s = `"${this.schema}"`;
    await this.pool.query(`CREATE SCHEMA IF NOT EXISTS ${s}`);
    await this.pool.query(`CREATE TABLE IF NOT EXISTS ${s}.stock (sku text PRIMARY KEY, qty integer NOT NULL)`);
    await this.pool.query(
      `CREATE TABLE IF NOT EXISTS ${s}.applied_messages (
         consumer_group text NOT NULL, message_id text NOT NULL, sku text NOT NULL, qty integer NOT NULL,
         applied_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (consumer_group, message_id))`,
    );
  }

  /** Sets the stock of `sku`. */
  async setStock(sku: string, qty: number): Promise<void> {
    await this.pool.query(
      `INSERT INTO "${this.schema}".stock (sku, qty) VALUES ($1, $2) ON CONFLICT (sku) DO UPDATE SET qty = EXCLUDED.qty`,
      [sku, qty],
    );
  }

  /** Reduces the stock of `sku` by `qty` once per (group, message id), in one transaction. */
  async reduce(group: string, messageId: string, sku: string, qty: number): Promise<ApplyOutcome> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      const claimed = await client.query(
        `INSERT INTO "${this.schema}".applied_messages (consumer_group, message_id, sku, qty) VALUES ($1, $2, $3, $4)
         ON CONFLICT DO NOTHING`,
        [group, messageId, sku, qty],
      );
      if (claimed.rowCount === 0) {
        await client.query('ROLLBACK');
        return 'duplicate';
      }
      await client.query(`UPDATE "${this.schema}".stock SET qty = qty - $2 WHERE sku = $1`, [sku, qty]);
      await client.query('COMMIT');
      return 'applied';
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  }

  /** The stock of `sku`. */
  async stockOf(sku: string): Promise<number | null> {
    const { rows } = await this.pool.query<{ qty: number }>(`SELECT qty FROM "${this.schema}".stock WHERE sku = $1`, [sku]);
    return rows[0]?.qty ?? null;
  }

  /** How many messages were applied and their total quantity. */
  async appliedTotals(): Promise<{ messages: number; qty: number }> {
    const { rows } = await this.pool.query<{ messages: string; qty: string | null }>(
      `SELECT count(*) AS messages, sum(qty) AS qty FROM "${this.schema}".applied_messages`,
    );
    return { messages: Number(rows[0]?.messages ?? 0), qty: Number(rows[0]?.qty ?? 0) };
  }

  /** The ids of every applied message (tests compare them with RMS's records). */
  async appliedMessageIds(): Promise<string[]> {
    const { rows } = await this.pool.query<{ message_id: string }>(`SELECT message_id FROM "${this.schema}".applied_messages`);
    return rows.map((row) => row.message_id);
  }

  /** Drops the schema (demo and test clean-up). */
  async drop(): Promise<void> {
    await this.pool.query(`DROP SCHEMA IF EXISTS "${this.schema}" CASCADE`);
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
