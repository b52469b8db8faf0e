/**
 * The loyalty service's own database: the points awarded, one row per (group, message id).
 * The row's primary key is the dedupe: a duplicate delivery can never award twice.
 */
import pg from 'pg';

/** What awarding points for a message did. */
export type AwardOutcome = 'awarded' | 'duplicate';

/** Points awarded per paid order. */
export class PointsStore {
  private readonly pool: pg.Pool;

  /**
   * @param url a `postgres://` URL.
   * @param schema the schema for the table (created if missing).
   */
  constructor(
    url: string,
    private readonly schema: string,
  ) {
    if (!/^[a-z_][a-z0-9_]*$/.test(schema)) throw new Error(`points store: bad schema name ${schema}`);
    this.pool = new pg.Pool({ connectionString: url, max: 10, connectionTimeoutMillis: 5000, statement_timeout: 10_000 });
    this.pool.on('error', () => undefined);
  }

  /** Creates the schema and table if missing. */
  async init(): Promise<void> {
    await this.pool.query(`CREATE SCHEMA IF NOT EXISTS "${this.schema}"`);
    await this.pool.query(
      `CREATE TABLE IF NOT EXISTS "${this.schema}".awarded_points (
         consumer_group text NOT NULL, message_id text NOT NULL, order_id text NOT NULL, points integer NOT NULL,
         awarded_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (consumer_group, message_id))`,
    );
  }

  /** Awards `points` for the order of `messageId`, once per (group, message id): one statement, so it is atomic by itself. */
  async award(group: string, messageId: string, orderId: string, points: number): Promise<AwardOutcome> {
    const { rowCount } = await this.pool.query(
      `INSERT INTO "${this.schema}".awarded_points (consumer_group, message_id, order_id, points) VALUES ($1, $2, $3, $4)
       ON CONFLICT DO NOTHING`,
      [group, messageId, orderId, points],
    );
    return rowCount === 0 ? 'duplicate' : 'awarded';
  }

  /** How many messages were awarded points, and the points in total. */
  async awardedTotals(): Promise<{ messages: number; points: number }> {
    const { rows } = await this.pool.query<{ messages: string; points: string | null }>(
      `SELECT count(*) AS messages, sum(points) AS points FROM "${this.schema}".awarded_points`,
    );
    return { messages: Number(rows[0]?.messages ?? 0), points: Number(rows[0]?.points ?? 0) };
  }

  /** Drops the schema (demo and test clean-up). */
  async drop(): Promise<void> {
    await this.pool.query(`DROP SCHEMA IF EXISTS "${this.schema}" CASCADE`);
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
