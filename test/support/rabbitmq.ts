/**
 * RabbitMQ for tests: a direct amqplib connection that reads what RMS published to
 * `rms.<topic>` (as a consumer would) and deletes test queues afterwards.
 */
import type { TestContext } from 'node:test';
import amqp, { type Channel, type ChannelModel, type Message } from 'amqplib';
import { type FaultProxy, proxyInFrontOf } from './fault-proxy.js';

/** The broker the tests use. @defaultValue amqp://guest:guest@127.0.0.1:5672 */
export const TEST_RABBITMQ_URL = process.env['TEST_RABBITMQ_URL'] ?? 'amqp://guest:guest@127.0.0.1:5672';

/**
 * A fault proxy in front of the test broker, closed when the test ends, and the AMQP URL
 * that goes through it (a broker "node" whose network the test controls).
 */
export function brokerBehindProxy(t: TestContext): Promise<{ proxy: FaultProxy; url: string }> {
  return proxyInFrontOf(t, TEST_RABBITMQ_URL, 5672);
}

/** One delivery as a consumer sees it. */
export interface SeenDelivery {
  id: string;
  attempt: number;
  headers: Record<string, unknown>;
  payload: unknown;
  persistent: boolean;
  contentType: string | undefined;
}

function toSeen(message: Message): SeenDelivery {
  const headers = (message.properties.headers ?? {}) as Record<string, unknown>;
  return {
    id: String(message.properties.messageId),
    attempt: Number(headers['x-rms-attempt']),
    headers,
    payload: JSON.parse(message.content.toString('utf8')),
    persistent: message.properties.deliveryMode === 2,
    contentType: message.properties.contentType,
  };
}

/** A test-side consumer of RMS's queues. */
export class QueueWatcher {
  private constructor(
    private readonly connection: ChannelModel,
    private readonly channel: Channel,
  ) {}

  static async open(url: string = TEST_RABBITMQ_URL): Promise<QueueWatcher> {
    const connection = await amqp.connect(url);
    connection.on('error', () => undefined);
    const channel = await connection.createChannel();
    channel.on('error', () => undefined);
    return new QueueWatcher(connection, channel);
  }

  /**
   * Consumes `rms.<topic>` (declaring it, so consuming can start before RMS publishes),
   * acking each delivery to the broker and handing it to `onDelivery`.
   */
  async consume(topic: string, onDelivery: (delivery: SeenDelivery) => void | Promise<void>): Promise<void> {
    const queue = `rms.${topic}`;
    await this.channel.assertQueue(queue, { durable: true });
    await this.channel.consume(queue, (message) => {
      if (!message) return;
      void Promise.resolve(onDelivery(toSeen(message))).finally(() => this.channel.ack(message));
    });
  }

  /** Takes whatever is in `rms.<topic>` right now, without waiting. */
  async drain(topic: string): Promise<SeenDelivery[]> {
    const queue = `rms.${topic}`;
    await this.channel.assertQueue(queue, { durable: true });
    const seen: SeenDelivery[] = [];
    for (;;) {
      const message = await this.channel.get(queue, { noAck: true });
      if (!message) return seen;
      seen.push(toSeen(message));
    }
  }

  /** Deletes the queues of `topics`. */
  async deleteQueues(topics: string[]): Promise<void> {
    for (const topic of topics) await this.channel.deleteQueue(`rms.${topic}`);
  }

  async close(): Promise<void> {
    await this.connection.close().catch(() => undefined);
  }
}
