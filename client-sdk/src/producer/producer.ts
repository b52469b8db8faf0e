/**
 * The producer side of the reliable-message pattern (design section 1): prepare a message,
 * run the local transaction, then confirm or cancel. `send` does the three steps in order
 * and handles each way they can fail; the check-back handler (`check-handler.ts`) covers
 * the cases `send` cannot, such as the process dying half way.
 */
import { activeTraceContext } from '../tracing/spans.js';
import { randomUUID } from 'node:crypto';
import { MicroBatcher, settleBatch } from '../batching/micro-batcher.js';
import { RmsConflictError, RmsUnavailableError, errorFromAnswer } from '../errors.js';
import {
  type BatchItemAnswer,
  type MessageReceipt,
  type PreparedMessage,
  type PrepareRequest,
  RmsHttpClient,
  type RmsHttpClientOptions,
  type RmsMessage,
} from '../http/rms-http-client.js';
import { type SdkLogger, silentLogger } from '../logger.js';

/**
 * How a producer batches: prepares (and confirms) made while others are on their way
 * are sent together as one `POST /v1/messages/batch` (`POST /v1/confirms`). A call made
 * alone still goes out at once as a single request; only concurrent calls share one.
 */
export interface ProducerBatchingOptions {
  /**
   * Most messages in one batch request (RMS takes at most 1000). Under load every call
   * waiting while a batch is in flight goes in the next one; a cap of 100 split 256
   * waiting calls into three requests and cost the client a third more CPU per message
   * (docs/benchmarks.md, "The SDK's HTTP client").
   * @defaultValue 1000
   */
  maxBatch?: number;
  /** Longest a call waits for others; 0 means only calls of the same event-loop turn share a request. @defaultValue 0 */
  delayMs?: number;
  /** Most payload bytes (as JSON) in one batch; a larger message goes alone. @defaultValue 1048576 */
  maxBatchBytes?: number;
  /**
   * Most batch requests of one kind in flight; calls made meanwhile join the next. One
   * keeps a lone call immediate while letting batches grow under load (measured: p99
   * confirm → handler 13–16 ms at a steady 1,000/s, against 30 ms with four).
   * @defaultValue 1
   */
  maxInFlight?: number;
}

/** How to reach RMS as a producer, and where to log. */
export interface ProducerOptions extends RmsHttpClientOptions {
  /** Receives the warnings `send` does not throw (a failed confirm, a failed cancel). @defaultValue silentLogger */
  logger?: SdkLogger;
  /** Batching of concurrent prepares and confirms; `false` sends one request per call. @defaultValue the defaults of {@link ProducerBatchingOptions} */
  batching?: ProducerBatchingOptions | false;
}

/** RMS's limit on messages per batch request. */
const MAX_BATCH = 1000;

/** RMS names a batch element's fields by their place in the batch (`messages[3].topic`). */
const BATCH_POSITION = /^messages\[\d+\]\.?/;

/**
 * An element's error body as the single call would have answered it: the caller never
 * built the batch, so `messages[3].topic` becomes `topic`.
 */
function withoutBatchPosition(body: unknown): unknown {
  const error = (body as { error?: Record<string, unknown> } | null)?.error;
  if (error === undefined || error === null) return body;
  const strip = (value: unknown) => (typeof value === 'string' ? value.replace(BATCH_POSITION, '') : value);
  return { error: { ...error, message: strip(error['message']), ...(typeof error['field'] === 'string' && { field: strip(error['field']) }) } };
}

/**
 * RMS unavailable (503, network, timeout, after the client's own retries): the batch fails
 * as a whole. Any other refusal of a whole batch (too large for a proxy, say) is resent
 * call by call, so each call gets its own answer.
 */
const isUnavailable = (error: unknown): boolean => error instanceof RmsUnavailableError;

/** A batch answer element as the single call would have settled. */
function settledFrom<T>(answer: BatchItemAnswer): PromiseSettledResult<T> {
  if (answer.status >= 200 && answer.status < 300) return { status: 'fulfilled', value: answer.body as T };
  return { status: 'rejected', reason: errorFromAnswer(answer.status, withoutBatchPosition(answer.body)) };
}

/** Options of one prepared message. */
export interface PrepareOptions {
  /**
   * The producer's idempotency key: preparing again with the same key returns the same
   * message instead of a second one. Use a key of your own (an order id, an outbox row id)
   * when your resolver looks messages up by it.
   * @defaultValue a random UUID, generated once per call so the client's retries reuse it
   */
  messageId?: string;
  /** String headers delivered with the message. @defaultValue none */
  headers?: Record<string, string>;
  /**
   * Deliver no earlier than this time (a delayed message: "cancel this order in 30
   * minutes"). RMS keeps it after confirm and publishes it then. Not with `delayMs`.
   * @defaultValue none: delivered on confirm
   */
  deliverAt?: Date;
  /**
   * Deliver no earlier than this many milliseconds after prepare; RMS refuses more than
   * its `RMS_MAX_DELAY_MS` (30 days by default). Not with `deliverAt`.
   * @defaultValue none: delivered on confirm
   */
  delayMs?: number;
}

/** What `send` returns. */
export interface SendResult<T> {
  /**
   * The message as prepared, with the status the confirm answered (`SENDING`) when
   * `confirmed` is true, otherwise as prepared (status `PENDING`). `send` asks RMS for the
   * confirm's receipt only (`Prefer: return=minimal`), so the other fields are the
   * prepare's: `updatedAt`, `confirmedAt` and `deliveries` are as they were before the
   * confirm. `get(message.id)` reads the message as it is now.
   */
  message: PreparedMessage;
  /** What the local transaction returned. */
  result: T;
  /**
   * Whether RMS acknowledged the confirm. `false` means the local transaction committed
   * but the confirm did not get through; RMS will check back and the resolver must then
   * answer `COMMIT`. It is not an error to handle, only a delay.
   */
  confirmed: boolean;
}

/** Creates a producer for one app. */
export function createProducer(options: ProducerOptions): RmsProducer {
  return new RmsProducer(options);
}

/**
 * A producer app's client of RMS. `prepare`, `confirm`, `cancel` and `get` are the raw
 * calls (each retried on 503, network errors and timeouts, then thrown as typed errors);
 * `send` runs the whole prepare → local transaction → confirm sequence.
 */
export class RmsProducer {
  private readonly client: RmsHttpClient;
  private readonly logger: SdkLogger;
  private readonly prepares: MicroBatcher<PrepareRequest, PreparedMessage> | undefined;
  private readonly confirms: MicroBatcher<string, RmsMessage> | undefined;
  /** `send`'s confirms: it needs the status, not the payload echoed back (`Prefer: return=minimal`). */
  private readonly confirmReceipts: MicroBatcher<string, MessageReceipt> | undefined;

  constructor(options: ProducerOptions) {
    this.client = new RmsHttpClient(options);
    this.logger = options.logger ?? silentLogger;
    if (options.batching !== false) {
      const batching = options.batching ?? {};
      const limits = {
        maxBatch: Math.min(batching.maxBatch ?? MAX_BATCH, MAX_BATCH),
        maxInFlight: batching.maxInFlight ?? 1,
        delayMs: batching.delayMs ?? 0,
      };
      const client = this.client;
      this.prepares = new MicroBatcher({
        ...limits,
        sizeOf: (request) => Buffer.byteLength(JSON.stringify(request.payload ?? null)),
        maxBatchSize: batching.maxBatchBytes ?? 1_048_576,
        run: (requests) => settleBatch(requests, async (all) => (await client.prepareMany(all)).map(settledFrom<PreparedMessage>), (one) => client.prepare(one.topic, one.payload, one), isUnavailable),
      });
      this.confirms = new MicroBatcher({
        ...limits,
        keyOf: (id) => id,
        run: (ids) => settleBatch(ids, async (all) => (await client.confirmMany(all)).map(settledFrom<RmsMessage>), (one) => client.confirm(one), isUnavailable),
      });
      this.confirmReceipts = new MicroBatcher({
        ...limits,
        keyOf: (id) => id,
        run: (ids) =>
          settleBatch(ids, async (all) => (await client.confirmMany(all, { receipt: true })).map(settledFrom<MessageReceipt>), (one) => client.confirmReceipt(one), isUnavailable),
      });
    }
  }

  /**
   * Stores the message as `PENDING`: nobody sees it until it is confirmed. Idempotent on
   * `messageId`. When an OpenTelemetry SDK is registered, the active span's trace context
   * goes with the message to RMS, its check-backs and the consumer.
   */
  prepare(topic: string, payload: unknown, options: PrepareOptions = {}): Promise<PreparedMessage> {
    // The trace context is taken now, in the caller's context: a batched prepare is sent later, from another.
    const trace = activeTraceContext();
    const request: PrepareRequest = {
      topic,
      payload,
      messageId: options.messageId ?? randomUUID(),
      ...(options.headers && { headers: options.headers }),
      ...(options.deliverAt !== undefined && { deliverAt: options.deliverAt }),
      ...(options.delayMs !== undefined && { delayMs: options.delayMs }),
      ...(trace && { trace }),
    };
    return this.prepares ? this.prepares.submit(request) : this.client.prepare(topic, payload, request);
  }

  /** Hands the message to RMS for delivery (status `SENDING`). Confirming again succeeds again. */
  confirm(id: string): Promise<RmsMessage> {
    return this.confirms ? this.confirms.submit(id) : this.client.confirm(id);
  }

  /** Drops a `PENDING` message for good (status `CANCELLED`). Cancelling again succeeds again. */
  cancel(id: string): Promise<RmsMessage> {
    return this.client.cancel(id);
  }

  /** Reads one of this app's messages. */
  get(id: string): Promise<RmsMessage> {
    return this.client.get(id);
  }

  /**
   * Closes the producer's connections to RMS once the calls made before are answered
   * (those still waiting for a batch included); later calls fail with an `RmsError` of
   * code `CLIENT_CLOSED`. Idempotent.
   * Not closing is harmless at exit: idle connections do not keep the process alive.
   */
  async close(): Promise<void> {
    // Calls waiting in a batcher behind the batch in flight are calls in flight too.
    await Promise.all([this.prepares?.idle(), this.confirms?.idle(), this.confirmReceipts?.idle()]);
    await this.client.close();
  }

  /**
   * prepare → `localTransaction(message)` → confirm; cancel (best effort) and rethrow when
   * the transaction throws. What happens when a step fails:
   *
   * 1. **prepare fails** (after the client's retries): `send` throws the typed error
   *    (`RmsUnavailableError`, `RmsValidationError`, ...). The local transaction never ran,
   *    so there is nothing to undo. If the prepare did reach RMS and only its answer was
   *    lost, the message stays `PENDING`; the check-back asks about it and the resolver
   *    answers `ROLLBACK`, since nothing committed.
   * 2. **the local transaction throws**: `send` cancels the message, then rethrows the
   *    transaction's own error (the very object it threw). A cancel that fails is logged
   *    (warn when RMS was unreachable, error otherwise), never thrown: the message stays
   *    `PENDING` and the check-back gets `ROLLBACK` from the resolver, because nothing
   *    committed.
   * 3. **the confirm fails** after the transaction committed: `send` does not cancel (the
   *    transaction's effects are real and the message must go out) and does not throw (the
   *    caller must not take a committed transaction for a failed one). It logs a warning and
   *    returns `{ confirmed: false }` with the prepared message; RMS checks back and the
   *    resolver answers `COMMIT`. One refusal is logged as an error instead: a confirm
   *    answered 409 with status `CANCELLED`, meaning a check-back got `ROLLBACK` while the
   *    transaction was still running. Keep local transactions shorter than RMS's first
   *    check-back delay (6 s by default), and have the resolver answer `UNKNOWN` rather than
   *    `ROLLBACK` while a transaction may still commit.
   * 4. **the process dies** anywhere after the prepare reached RMS: the message stays
   *    `PENDING` and the check-back resolves it from what the local transaction left behind
   *    (`COMMIT` if it committed, `ROLLBACK` if not).
   *
   * A `messageId` is always sent (the caller's, or a UUID generated here), so a prepare the
   * client retries after a lost answer finds the same message instead of making a second.
   * The resolver is asked with that `messageId`, so the local transaction should record it
   * (or `message.id`) where the resolver can find it.
   *
   * What RMS answers: the prepare answers the whole message, since the local transaction
   * is given it (the producer, the timestamps and `deliverAt` are RMS's, not the caller's
   * to guess); the confirm, and the cancel after a failed transaction, ask for receipts
   * (`Prefer: return=minimal`: id, messageId, status), so RMS does not echo the payload
   * back a second time and the SDK does not parse it.
   *
   * @param localTransaction - the producer's own database work; it receives the prepared
   *   message and must commit before it resolves.
   * @throws the prepare's typed error (case 1) or the transaction's own error (case 2).
   */
  async send<T>(
    topic: string,
    payload: unknown,
    localTransaction: (message: PreparedMessage) => Promise<T>,
    options: PrepareOptions = {},
  ): Promise<SendResult<T>> {
    const messageId = options.messageId ?? randomUUID();
    const prepared = await this.prepare(topic, payload, { ...options, messageId });

    let result: T;
    try {
      result = await localTransaction(prepared);
    } catch (transactionError) {
      await this.cancelAfterFailedTransaction(prepared, transactionError);
      throw transactionError;
    }

    try {
      const receipt = await (this.confirmReceipts ? this.confirmReceipts.submit(prepared.id) : this.client.confirmReceipt(prepared.id));
      // The same message, so the same messageId as prepared; only its status is news.
      return { message: { ...prepared, status: receipt.status }, result, confirmed: true };
    } catch (error) {
      const context = { id: prepared.id, messageId, topic, err: error };
      if (error instanceof RmsConflictError && error.currentStatus === 'CANCELLED') {
        this.logger.error(
          context,
          'RMS: the local transaction committed but the message was already cancelled (a check-back got ROLLBACK while the transaction ran); it will not be delivered',
        );
      } else {
        this.logger.warn(context, 'RMS: confirm failed after the local transaction committed; the check-back will confirm the message');
      }
      return { message: prepared, result, confirmed: false };
    }
  }

  private async cancelAfterFailedTransaction(message: RmsMessage, transactionError: unknown): Promise<void> {
    try {
      await this.client.cancelReceipt(message.id);
    } catch (error) {
      const context = { id: message.id, messageId: message.messageId, topic: message.topic, err: error, transactionError };
      if (error instanceof RmsUnavailableError) {
        this.logger.warn(context, 'RMS: cancel failed after the local transaction failed; the check-back will roll the message back');
      } else {
        this.logger.error(context, 'RMS: cancel was refused after the local transaction failed');
      }
    }
  }
}
