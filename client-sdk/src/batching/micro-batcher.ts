/**
 * Micro-batching: calls made close together are collected and run as one batch, and each
 * caller gets its own element's outcome. The SDK's producer uses it to turn concurrent
 * prepares and confirms into batch requests; RMS uses it to turn concurrent store calls
 * into multi-row statements.
 *
 * A batch starts on the next turn of the event loop (or after `delayMs`), or at once when
 * `maxBatch` calls are waiting. With `maxInFlight`, no new batch starts while that many are
 * running: calls keep collecting meanwhile, so under load batches grow by themselves
 * (group commit) and at low load a call waits for nothing but the next turn.
 *
 * Written here rather than taken from `dataloader`: that library batches per tick too, but
 * has no limit on batches in flight, no way to keep two calls on one key out of one
 * batch, and no size budget, and all three are needed.
 */

/** How a {@link MicroBatcher} groups and runs calls. */
export interface MicroBatcherOptions<Input, Output> {
  /**
   * Runs one batch: one settled outcome per input, in the order given. A rejection fails
   * every call of the batch with that error.
   */
  run: (inputs: Input[]) => Promise<PromiseSettledResult<Output>[]>;
  /** Most calls in one batch. */
  maxBatch: number;
  /** Most batches running at once. @defaultValue Infinity */
  maxInFlight?: number;
  /** Longest a call waits for others before its batch starts; 0 means the next turn of the event loop. @defaultValue 0 */
  delayMs?: number;
  /** Calls with the same key never share a batch: the later one waits for the next. @defaultValue none (any calls may share) */
  keyOf?: (input: Input) => string;
  /** The size of a call, for `maxBatchSize`. @defaultValue () => 1 */
  sizeOf?: (input: Input) => number;
  /** Most total size in one batch; a call larger than this runs alone. @defaultValue Infinity */
  maxBatchSize?: number;
}

interface Waiting<Input, Output> {
  input: Input;
  size: number;
  resolve: (output: Output) => void;
  reject: (error: unknown) => void;
}

/** Collects calls and runs them in batches. */
export class MicroBatcher<Input, Output> {
  readonly #options: MicroBatcherOptions<Input, Output>;
  readonly #maxInFlight: number;
  #queue: Waiting<Input, Output>[] = [];
  #scheduled = false;
  #inFlight = 0;
  #batches = 0;
  /** Callers of {@link MicroBatcher.idle} waiting for the queue and the batches in flight to empty. */
  #idleWaiters: (() => void)[] = [];

  constructor(options: MicroBatcherOptions<Input, Output>) {
    if (!Number.isInteger(options.maxBatch) || options.maxBatch < 1) throw new RangeError(`maxBatch must be a whole number of at least 1, got ${options.maxBatch}`);
    const maxInFlight = options.maxInFlight ?? Number.POSITIVE_INFINITY;
    if (!(maxInFlight >= 1)) throw new RangeError(`maxInFlight must be at least 1, got ${maxInFlight}`);
    this.#options = options;
    this.#maxInFlight = maxInFlight;
  }

  /** Batches started so far. */
  get batches(): number {
    return this.#batches;
  }

  /** Calls waiting for a batch. */
  get waiting(): number {
    return this.#queue.length;
  }

  /**
   * Resolves once no call is waiting and no batch is running (at once when that is so
   * now): every call submitted before has settled. Used to close what the batches send
   * through only after them.
   */
  idle(): Promise<void> {
    if (this.#queue.length === 0 && this.#inFlight === 0) return Promise.resolve();
    return new Promise<void>((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Queues one call; settles with its own outcome once its batch has run. */
  submit(input: Input): Promise<Output> {
    return new Promise<Output>((resolve, reject) => {
      this.#queue.push({ input, size: this.#options.sizeOf?.(input) ?? 1, resolve, reject });
      if (this.#queue.length >= this.#options.maxBatch) this.#start();
      else this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    const start = () => {
      this.#scheduled = false;
      this.#start();
    };
    const delayMs = this.#options.delayMs ?? 0;
    if (delayMs > 0) setTimeout(start, delayMs);
    else setImmediate(start);
  }

  /** Starts as many batches as the in-flight limit allows. */
  #start(): void {
    while (this.#queue.length > 0 && this.#inFlight < this.#maxInFlight) {
      const batch = this.#take();
      this.#inFlight += 1;
      this.#batches += 1;
      void this.#runBatch(batch).finally(() => {
        this.#inFlight -= 1;
        if (this.#queue.length > 0) this.#schedule();
        else if (this.#inFlight === 0 && this.#idleWaiters.length > 0) {
          const waiters = this.#idleWaiters;
          this.#idleWaiters = [];
          for (const resolve of waiters) resolve();
        }
      });
    }
  }

  /** Takes the next batch off the queue: in order, skipping calls whose key is already in it. */
  #take(): Waiting<Input, Output>[] {
    const { maxBatch, keyOf } = this.#options;
    const maxSize = this.#options.maxBatchSize ?? Number.POSITIVE_INFINITY;
    const batch: Waiting<Input, Output>[] = [];
    const left: Waiting<Input, Output>[] = [];
    const keys = new Set<string>();
    let size = 0;
    let index = 0;
    for (; index < this.#queue.length && batch.length < maxBatch; index++) {
      const waiting = this.#queue[index] as Waiting<Input, Output>;
      const key = keyOf?.(waiting.input);
      const fits = (batch.length === 0 || size + waiting.size <= maxSize) && (key === undefined || !keys.has(key));
      if (!fits) {
        left.push(waiting);
        continue;
      }
      batch.push(waiting);
      size += waiting.size;
      if (key !== undefined) keys.add(key);
    }
    this.#queue = index < this.#queue.length ? left.concat(this.#queue.slice(index)) : left;
    return batch;
  }

  async #runBatch(batch: Waiting<Input, Output>[]): Promise<void> {
    let outcomes: PromiseSettledResult<Output>[];
    try {
      outcomes = await this.#options.run(batch.map((waiting) => waiting.input));
    } catch (error) {
      for (const waiting of batch) waiting.reject(error);
      return;
    }
    batch.forEach((waiting, index) => {
      const outcome = outcomes[index];
      if (outcome === undefined) waiting.reject(new Error(`batch of ${batch.length} answered only ${outcomes.length} outcomes`));
      else if (outcome.status === 'fulfilled') waiting.resolve(outcome.value);
      else waiting.reject(outcome.reason);
    });
  }
}

/**
 * Runs `inputs` as one batch with `many`, each input settled on its own. If the batch as a
 * whole fails for a reason of its own (one input the other side refuses, say), each input
 * is run alone with `one`, so only the bad one fails; if it fails because the other side is
 * unavailable (`isOutage`), that error is thrown and nothing is tried again here. A lone
 * input goes straight to `one`. `many` must have written nothing when it throws: the
 * retries run every input again.
 */
export async function settleBatch<Input, Output>(
  inputs: readonly Input[],
  many: (inputs: Input[]) => Promise<PromiseSettledResult<Output>[]>,
  one: (input: Input) => Promise<Output>,
  isOutage: (error: unknown) => boolean,
): Promise<PromiseSettledResult<Output>[]> {
  if (inputs.length <= 1) return Promise.allSettled(inputs.map(one));
  try {
    return await many([...inputs]);
  } catch (error) {
    if (isOutage(error)) throw error;
    return Promise.allSettled(inputs.map(one));
  }
}
