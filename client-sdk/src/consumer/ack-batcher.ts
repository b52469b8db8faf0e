/**
 * Batches consumer acks to RMS: acks that arrive within `batchMs` of each other (or until
 * `batchSize` of them are waiting) go out as one `POST /v1/acks`, and each caller gets its
 * own id's result. Under load this turns one HTTP call per message into one per batch,
 * at the price of at most `batchMs` of extra latency per ack.
 */
import type { AckResult, RmsHttpClient } from '../http/rms-http-client.js';
import { RmsError, RmsValidationError } from '../errors.js';
import { type SdkLogger, silentLogger } from '../logger.js';

/** What became of one ack. */
export type AckOutcome =
  /**
   * RMS holds the group's delivery as acked (now, or already before: a repeated ack
   * succeeds again); the message itself is `COMPLETED` once every group's is.
   */
  | { acked: true; id: string }
  /**
   * RMS did not ack it: `code` is RMS's error code for this id (`NOT_FOUND`, or
   * `STATE_CONFLICT` when the message is `PENDING` or `CANCELLED`), or the whole request's
   * code when the call itself failed (`NETWORK`, `TIMEOUT`, `UNAUTHORIZED`, ...).
   */
  | { acked: false; id: string; code: string; reason: string };

/** How an {@link AckBatcher} batches. */
export interface AckBatcherOptions {
  /** Sends the batches; its own retries cover 503s, network errors and timeouts. */
  client: Pick<RmsHttpClient, 'ackMany'>;
  /**
   * The consumer group whose deliveries are acked.
   * @defaultValue none: RMS takes the app's group for each message's topic
   */
  group?: string;
  /**
   * Longest an ack waits for others to join its batch.
   * @defaultValue `5`
   */
  batchMs?: number;
  /**
   * Most ids in one request; a full batch is sent at once. RMS takes at most 1000.
   * @defaultValue `100`
   */
  batchSize?: number;
  /**
   * Receives one line per failed batch request.
   * @defaultValue a logger that drops everything
   */
  logger?: SdkLogger;
}

/** RMS's limit on ids per `POST /v1/acks`. */
const MAX_BATCH = 1000;

/** Collects acks and sends them to RMS in batches. */
export class AckBatcher {
  readonly #client: Pick<RmsHttpClient, 'ackMany'>;
  #batchMs: number;
  readonly #batchSize: number;
  readonly #logger: SdkLogger;
  readonly #group: string | undefined;
  /** Waiting ids, each with every caller that asked (one id may be acked twice before it is sent). */
  #pending = new Map<string, ((outcome: AckOutcome) => void)[]>();
  #timer: NodeJS.Timeout | undefined;
  readonly #inFlight = new Set<Promise<void>>();
  #requests = 0;

  constructor(options: AckBatcherOptions) {
    const batchSize = options.batchSize ?? 100;
    const batchMs = options.batchMs ?? 5;
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`ackBatchSize must be a whole number of at least 1, got ${batchSize}`);
    if (!Number.isFinite(batchMs) || batchMs < 0) throw new RangeError(`ackBatchMs must be a number of at least 0, got ${batchMs}`);
    this.#client = options.client;
    this.#batchMs = batchMs;
    this.#batchSize = Math.min(batchSize, MAX_BATCH);
    this.#logger = options.logger ?? silentLogger;
    this.#group = options.group;
  }

  /** `POST /v1/acks` requests made so far (one per batch; the client's retries not counted). */
  get requests(): number {
    return this.#requests;
  }

  /** Acks waiting for their batch to be sent. */
  get pending(): number {
    return this.#pending.size;
  }

  /**
   * Queues an ack of message `id`. Never rejects: resolves with the outcome of this id once
   * its batch has been answered (or has failed for good).
   */
  ack(id: string): Promise<AckOutcome> {
    return new Promise<AckOutcome>((resolve) => {
      const waiting = this.#pending.get(id);
      if (waiting === undefined) this.#pending.set(id, [resolve]);
      else waiting.push(resolve);
      if (this.#pending.size >= this.#batchSize) this.#sendPending();
      else this.#timer ??= setTimeout(() => this.#sendPending(), this.#batchMs);
    });
  }

  /**
   * Stops waiting for batches to fill: sends what is waiting now, and from now on each ack
   * goes out on the next tick (acks of the same tick still share a request). Used while
   * closing, so shutdown does not wait out `batchMs`.
   */
  expedite(): void {
    this.#batchMs = 0;
    this.#sendPending();
  }

  /** Sends whatever is waiting now and resolves when every request in flight has been answered. */
  async flush(): Promise<void> {
    this.#sendPending();
    while (this.#inFlight.size > 0) await Promise.all([...this.#inFlight]);
  }

  #sendPending(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#pending.size === 0) return;
    const batch = this.#pending;
    this.#pending = new Map();
    const sending = this.#send(batch);
    this.#inFlight.add(sending);
    void sending.finally(() => this.#inFlight.delete(sending));
  }

  async #send(batch: Map<string, ((outcome: AckOutcome) => void)[]>): Promise<void> {
    const ids = [...batch.keys()];
    this.#requests += 1;
    let results: AckResult[];
    try {
      results = await this.#client.ackMany(ids, this.#group);
    } catch (error) {
      if (error instanceof RmsValidationError && batch.size > 1) {
        // One malformed id (say, from a stray publisher) must not fail its batch-mates:
        // send each on its own, so only the bad one is refused.
        this.#logger.warn({ err: error, count: ids.length }, 'RMS refused an ack batch as invalid; sending its acks one by one');
        await Promise.all([...batch].map(([id, callers]) => this.#send(new Map([[id, callers]]))));
        return;
      }
      const code = error instanceof RmsError ? error.code : 'ERROR';
      const reason = error instanceof Error ? error.message : String(error);
      this.#logger.warn({ err: error, count: ids.length }, 'acking a batch to RMS failed; RMS will redeliver those messages');
      for (const [id, callers] of batch) for (const resolve of callers) resolve({ acked: false, id, code, reason });
      return;
    }
    const byId = new Map(results.map((result) => [result.id, result]));
    for (const [id, callers] of batch) {
      const outcome = outcomeOf(id, byId.get(id));
      for (const resolve of callers) resolve(outcome);
    }
  }
}

function outcomeOf(id: string, result: AckResult | undefined): AckOutcome {
  if (result === undefined) return { acked: false, id, code: 'NO_RESULT', reason: 'RMS answered the batch without a result for this id' };
  if ('error' in result) {
    const status = result.error.status === undefined ? '' : ` (status ${result.error.status})`;
    return { acked: false, id, code: result.error.code, reason: `${result.error.message}${status}` };
  }
  // `delivery` is the acking group's; an RMS without consumer groups answers only `status`.
  if (result.delivery === 'ACKED' || result.status === 'COMPLETED') return { acked: true, id };
  return { acked: false, id, code: 'UNEXPECTED_STATUS', reason: `RMS answered the ack with status ${result.status}${result.delivery ? `, delivery ${result.delivery}` : ''}` };
}
