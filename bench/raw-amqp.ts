/**
 * The raw baseline: what amqplib alone does on this box with the same durability as RMS's
 * path to the broker. Persistent messages on a durable queue, publisher confirms with a
 * window of confirms in flight, one consumer with manual acks and a prefetch window; the
 * producer and the consumer on their own connections, both in the bench process (as the
 * SDK producers and consumer are in the RMS phases).
 */
import amqp, { type ConsumeMessage } from 'amqplib';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConfirmToHandlerClock, nowMs } from './latency.js';
import { cpuBreakdown, cpuSnapshot } from './proc-usage.js';
import type { PhaseResult } from './workload.js';

/** How the raw phase runs. */
export interface RawPhaseOptions {
  amqpUrl: string;
  /** A queue of the run's own, deleted afterwards. */
  queue: string;
  /** The message body. */
  body: Buffer;
  /** Load before measuring (JIT, connection warm-up); not counted. */
  warmupMs: number;
  /** Measured load. */
  durationMs: number;
  /** Publisher confirms in flight at most. */
  confirmWindow: number;
  /** The consumer's prefetch. */
  prefetch: number;
  /** Longest wait for the consumer to catch up after the load. */
  drainTimeoutMs: number;
}

/** Runs the raw amqplib phase and deletes its queue. */
export async function runRawPhase(options: RawPhaseOptions): Promise<PhaseResult> {
  const clock = new ConfirmToHandlerClock();
  const publisherConnection = await amqp.connect(options.amqpUrl);
  const consumerConnection = await amqp.connect(options.amqpUrl);
  try {
    const publisher = await publisherConnection.createConfirmChannel();
    await publisher.assertQueue(options.queue, { durable: true });
    const consumer = await consumerConnection.createChannel();
    await consumer.prefetch(options.prefetch);
    let consumed = 0;
    await consumer.consume(
      options.queue,
      (message: ConsumeMessage | null) => {
        if (message === null) return;
        clock.handled(String(message.properties.messageId));
        consumer.ack(message);
        consumed += 1;
      },
      { noAck: false },
    );

    let sequence = 0;
    /** Publishes for `ms` keeping `confirmWindow` confirms in flight; resolves when all are answered. */
    const load = (ms: number) =>
      new Promise<{ confirmed: number; nacked: number }>((resolve) => {
        const deadline = nowMs() + ms;
        let inFlight = 0;
        let confirmed = 0;
        let nacked = 0;
        let waitingForDrain = false;
        const pump = () => {
          while (!waitingForDrain && inFlight < options.confirmWindow && nowMs() < deadline) {
            const id = `raw-${sequence++}`;
            inFlight += 1;
            clock.confirmCalled(id);
            const written = publisher.publish('', options.queue, options.body, { persistent: true, messageId: id, contentType: 'application/json' }, (error) => {
              inFlight -= 1;
              if (error) nacked += 1;
              else {
                confirmed += 1;
                clock.confirmed(id);
              }
              if (inFlight === 0 && nowMs() >= deadline) resolve({ confirmed, nacked });
              else pump();
            });
            if (!written) {
              // The socket's buffer is full: wait for it to drain rather than queue without bound.
              waitingForDrain = true;
              publisher.once('drain', () => {
                waitingForDrain = false;
                pump();
              });
            }
          }
        };
        pump();
      });
    const waitConsumed = async (target: number) => {
      const deadline = Date.now() + options.drainTimeoutMs;
      while (consumed < target && Date.now() < deadline) await sleep(5);
      return nowMs();
    };

    const warm = await load(options.warmupMs);
    await waitConsumed(warm.confirmed);
    clock.reset();
    consumed = 0;

    const named = { bench: process.pid };
    const cpuBefore = cpuSnapshot();
    const benchBefore = process.cpuUsage();
    const startedAt = nowMs();
    const { confirmed, nacked } = await load(options.durationMs);
    const loadSeconds = (nowMs() - startedAt) / 1000;
    const endedAt = await waitConsumed(confirmed);
    const seconds = (endedAt - startedAt) / 1000;
    const benchUsage = process.cpuUsage(benchBefore);
    const cpu = cpuBreakdown(cpuBefore, cpuSnapshot(), named, seconds);
    await consumer.close();
    await publisher.deleteQueue(options.queue);
    await publisher.close();
    return {
      phase: 'raw',
      description: 'amqplib alone: persistent messages, publisher confirms, manual acks',
      messages: consumed,
      seconds,
      messagesPerSecond: consumed / seconds,
      confirmedPerSecond: confirmed / loadSeconds,
      latency: clock.summary(),
      benchCpuPercent: (benchUsage.user + benchUsage.system) / 1e4 / seconds,
      cpu,
      errors: nacked,
      unconfirmed: 0,
      duplicates: clock.duplicates,
      transports: { rabbitmq: consumed },
      settings: { warmupMs: options.warmupMs, durationMs: options.durationMs, confirmWindow: options.confirmWindow, prefetch: options.prefetch, payloadBytes: options.body.length },
    };
  } finally {
    await publisherConnection.close().catch(() => undefined);
    await consumerConnection.close().catch(() => undefined);
  }
}
