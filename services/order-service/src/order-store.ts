/**
 * The order service's own database: one `orders` table in its own PostgreSQL schema.
 * Paying an order is the "local transaction" RMS makes reliable.
 */
import pg from 'pg';

/** A paid order. */
export interface Order {
  id: string;
  sku: string;
  qty: number;
  /** The RMS producer key of the "reduce stock" message sent with it. */
  messageId: string;
  paidAt: Date;
}

/** The orders table. */
export class OrderStore {
  private readonly pool: pg.Pool;
  private readonly table: string;

  /**
   * @param url a `postgres://` URL.
   * @param schema the schema to keep the table in (created if missing).
   */
  constructor(
    url: string,
    private readonly schema: string,
  ) {
    if (!/^[a-z_][a-z0-9_]*$/.test(schema)) throw new Error(`order store: bad schema name ${schema}`);
    this.pool = new pg.Pool({ connectionString: url, max: 10, connectionTimeoutMillis: 5000, statement_timeout: 10_000 });
    this.pool.on('error', () => undefined);
    this.table = `"${schema}".orders`;
  }

  /** Creates the schema and table if missing. */
  async init(): Promise<void> {
    await this.pool.query(`CREATE SCHEMA IF NOT EXISTS "${this.schema}"`);
    await this.pool.query(
      `CREATE TABLE IF NOT EXISTS ${this.table} (
         id text PRIMARY KEY, sku text NOT NULL, qty integer NOT NULL CHECK (qty > 0),
         message_id text NOT NULL UNIQUE, paid_at timestamptz NOT NULL)`,
    );
  }

  /** Records the order as paid: the local transaction. */
  async pay(order: Omit<Order, 'paidAt'>): Promise<void> {
    await this.pool.query(`INSERT INTO ${this.table} (id, sku, qty, message_id, paid_at) VALUES ($1, $2, $3, $4, now())`, [
      order.id,
      order.sku,
      order.qty,
      order.messageId,
    ]);
  }

  /** The order paid under this RMS producer key, if any. */
  async findByMessageId(messageId: string): Promise<Order | null> {
    const { rows } = await this.pool.query<{ id: string; sku: string; qty: number; message_id: string; paid_at: Date }>(
      `SELECT * FROM ${this.table} WHERE message_id = $1`,
      [messageId],
    );
    const row = rows[0];
    return row ? { id: row.id, sku: row.sku, qty: row.qty, messageId: row.message_id, paidAt: row.paid_at } : null;
  }

  /** Paid orders and their total quantity. */
  async totals(): Promise<{ orders: number; qty: number }> {
    const { rows } = await this.pool.query<{ orders: string; qty: string | null }>(`SELECT count(*) AS orders, sum(qty) AS qty FROM ${this.table}`);
    return { orders: Number(rows[0]?.orders ?? 0), qty: Number(rows[0]?.qty ?? 0) };
  }

  /** Drops the schema (demo and test clean-up). */
  async drop(): Promise<void> {
    await this.pool.query(`DROP SCHEMA IF EXISTS "${this.schema}" CASCADE`);
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
