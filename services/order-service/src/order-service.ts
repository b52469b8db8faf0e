/**
 * The order service: an upstream business service that uses RMS through the SDK.
 *
 * `POST /orders {sku, qty}` pays the order in its own table and sends "reduce stock" with
 * `producer.send`: prepare → pay (local transaction) → confirm, or cancel if paying fails.
 * `POST /rms/check` answers RMS's check-backs from the same table: an order paid under the
 * message's key is COMMIT; no such order after the grace period is ROLLBACK.
 *
 * For the demo it can also misbehave on request (`simulate`): decline the payment (the local
 * transaction fails, the message is cancelled), or "crash" after paying and before
 * confirming (the confirm is never sent, exactly as if the process had died there; the
 * check-back must then find the order and confirm the message).
 */
import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type CheckVerdict, type RmsProducer, checkHandler, createProducer } from '@rms/client-sdk';
import express from 'express';
import { OrderStore } from './order-store.js';

/** The topic inventory listens on. */
export const REDUCE_STOCK_TOPIC = 'stock.reduce';

/** What `POST /orders` may be asked to simulate. */
export type Simulation = 'none' | 'fail-before-commit' | 'crash-after-commit';

/** Configuration of the order service. */
export interface OrderServiceOptions {
  /** HTTP port; 0 picks one. */
  port: number;
  /** The order database (`postgres://…`) and schema. */
  databaseUrl: string;
  schema: string;
  /** RMS's URL and this app's token and check-back secret, as registered in RMS_APPS. */
  rmsUrl: string;
  rmsToken: string;
  checkSecret: string;
  /** The topic to send "reduce stock" on. @defaultValue REDUCE_STOCK_TOPIC */
  topic?: string;
  /**
   * A message with no paid order is only rolled back once it is this old, so a check-back
   * that overtakes a slow payment is answered UNKNOWN (ask again), not ROLLBACK.
   * @defaultValue 2000
   */
  rollbackGraceMs?: number;
}

/** Thrown by the local transaction when the payment is declined. */
export class PaymentDeclinedError extends Error {
  constructor(orderId: string) {
    super(`payment for order ${orderId} was declined`);
    this.name = 'PaymentDeclinedError';
  }
}

/** A running order service. */
export class OrderService {
  private constructor(
    private readonly http: Server,
    readonly store: OrderStore,
    readonly producer: RmsProducer,
  ) {}

  /** The port it listens on. */
  get port(): number {
    return (this.http.address() as AddressInfo).port;
  }

  /** Creates the table and starts listening. */
  static async start(options: OrderServiceOptions): Promise<OrderService> {
    const store = new OrderStore(options.databaseUrl, options.schema);
    await store.init();
    const producer = createProducer({ url: options.rmsUrl, token: options.rmsToken });
    const graceMs = options.rollbackGraceMs ?? 2000;
    const topic = options.topic ?? REDUCE_STOCK_TOPIC;
    const app = express();

    const resolve = async (messageId: string, _topic: string, query: { createdAt: string }): Promise<CheckVerdict> => {
      if (await store.findByMessageId(messageId)) return 'COMMIT';
      return Date.now() - Date.parse(query.createdAt) > graceMs ? 'ROLLBACK' : 'UNKNOWN';
    };
    // Mounted before any body parser: the signature covers the raw body.
    app.post('/rms/check', checkHandler(resolve, { secret: options.checkSecret }));

    app.post('/orders', express.json(), async (request, response) => {
      const { sku, qty, simulate = 'none' } = (request.body ?? {}) as { sku?: unknown; qty?: unknown; simulate?: Simulation };
      if (typeof sku !== 'string' || !Number.isInteger(qty) || (qty as number) <= 0) {
        response.status(400).json({ error: { code: 'INVALID_REQUEST', message: 'sku (string) and qty (positive integer) are required' } });
        return;
      }
      const orderId = randomUUID();
      const messageId = `order-${orderId}`;
      const payload = { orderId, sku, qty };
      try {
        if (simulate === 'crash-after-commit') {
          await producer.prepare(topic, payload, { messageId });
          await store.pay({ id: orderId, sku, qty: qty as number, messageId });
          // The process "dies" here: no confirm. RMS's check-back will find the paid order.
          response.status(201).json({ orderId, status: 'PAID', confirmed: false });
          return;
        }
        const { confirmed } = await producer.send(
          topic,
          payload,
          async () => {
            if (simulate === 'fail-before-commit') throw new PaymentDeclinedError(orderId);
            await store.pay({ id: orderId, sku, qty: qty as number, messageId });
          },
          { messageId },
        );
        response.status(201).json({ orderId, status: 'PAID', confirmed });
      } catch (error) {
        if (error instanceof PaymentDeclinedError) {
          response.status(402).json({ error: { code: 'PAYMENT_DECLINED', message: error.message }, orderId });
          return;
        }
        response.status(503).json({ error: { code: 'UNAVAILABLE', message: (error as Error).message }, orderId });
      }
    });

    app.get('/orders/totals', async (_request, response) => {
      response.json(await store.totals());
    });

    const http = await new Promise<Server>((resolveListen) => {
      const server = app.listen(options.port, () => resolveListen(server));
    });
    return new OrderService(http, store, producer);
  }

  /** Stops listening, closes the producer's connections to RMS and the database pool. */
  async stop(): Promise<void> {
    this.http.closeAllConnections();
    await new Promise<void>((resolve) => this.http.close(() => resolve()));
    await this.producer.close();
    await this.store.close();
  }
}
