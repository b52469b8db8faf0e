import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MicroBatcher, type MicroBatcherOptions, settleBatch } from '@rms/client-sdk';

/** The next turn of the event loop: a batch scheduled with delay 0 has started by then. */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A promise settled from outside. */
function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((settle) => (resolve = settle));
  return { promise, resolve };
}

/**
 * A batcher whose `run` records each batch's inputs and answers each input `n` with
 * `n * 10`; with `gate`, every batch waits for it before answering.
 */
function recording<Input = number>(
  options: Partial<MicroBatcherOptions<Input, number>> = {},
  answer: (input: Input) => PromiseSettledResult<number> = (input) => ({ status: 'fulfilled', value: Number(input) * 10 }),
) {
  const batches: Input[][] = [];
  let running = 0;
  let mostRunning = 0;
  const gates: ReturnType<typeof deferred>[] = [];
  let gated = false;
  const batcher = new MicroBatcher<Input, number>({
    maxBatch: 1000,
    ...options,
    run: async (inputs) => {
      batches.push([...inputs]);
      running += 1;
      mostRunning = Math.max(mostRunning, running);
      try {
        if (gated) {
          const gate = deferred();
          gates.push(gate);
          await gate.promise;
        }
        return inputs.map(answer);
      } finally {
        running -= 1;
      }
    },
  });
  return {
    batcher,
    batches,
    sizes: () => batches.map((batch) => batch.length),
    mostRunning: () => mostRunning,
    /** From now on every batch waits until `release` lets it answer. */
    hold: () => void (gated = true),
    /** Lets the batches held so far answer, and stops holding new ones. */
    release: () => {
      gated = false;
      for (const gate of gates.splice(0)) gate.resolve();
    },
  };
}

describe('MicroBatcher', () => {
  test('calls of one event-loop turn share one batch, and each call settles with its own element’s outcome', async () => {
    const { batcher, batches } = recording({}, (n: number) =>
      n % 2 === 0 ? { status: 'fulfilled', value: n * 10 } : { status: 'rejected', reason: new Error(`odd ${n}`) },
    );
    const calls = [0, 1, 2, 3, 4, 5].map((n) => batcher.submit(n));
    assert.equal(batches.length, 0, 'nothing runs before the turn ends');
    const outcomes = await Promise.allSettled(calls);
    assert.deepEqual(batches, [[0, 1, 2, 3, 4, 5]]);
    assert.equal(batcher.batches, 1);
    for (const [n, outcome] of outcomes.entries()) {
      if (n % 2 === 0) assert.deepEqual(outcome, { status: 'fulfilled', value: n * 10 }, `call ${n}`);
      else {
        assert.equal(outcome.status, 'rejected', `call ${n}`);
        assert.equal((outcome.reason as Error).message, `odd ${n}`, `call ${n} gets its own element's reason`);
      }
    }
  });

  test('a rejecting run rejects every call of that batch with its error, and the next batch runs normally', async () => {
    const failure = new Error('the database is gone');
    let fail = true;
    const batcher = new MicroBatcher<number, number>({
      maxBatch: 10,
      run: async (inputs) => {
        if (fail) throw failure;
        return inputs.map((n) => ({ status: 'fulfilled', value: n }));
      },
    });
    const outcomes = await Promise.allSettled([1, 2, 3].map((n) => batcher.submit(n)));
    assert.deepEqual(outcomes, [1, 2, 3].map(() => ({ status: 'rejected', reason: failure })));
    fail = false;
    assert.deepEqual(await Promise.all([4, 5].map((n) => batcher.submit(n))), [4, 5]);
  });

  test('a run that throws synchronously rejects its batch instead of escaping', async () => {
    const failure = new Error('thrown before any promise');
    const batcher = new MicroBatcher<number, number>({
      maxBatch: 10,
      run: () => {
        throw failure;
      },
    });
    const outcomes = await Promise.allSettled([1, 2].map((n) => batcher.submit(n)));
    assert.deepEqual(outcomes, [1, 2].map(() => ({ status: 'rejected', reason: failure })));
  });

  test('maxBatch splits 250 calls into batches of 100, 100 and 50, in call order', async () => {
    const { batcher, batches, sizes } = recording({ maxBatch: 100 });
    const inputs = Array.from({ length: 250 }, (_, i) => i);
    const results = await Promise.all(inputs.map((n) => batcher.submit(n)));
    assert.deepEqual(sizes(), [100, 100, 50]);
    assert.deepEqual(batches.flat(), inputs, 'every call once, in order');
    assert.deepEqual(results, inputs.map((n) => n * 10));
  });

  test('a full batch starts at once, without waiting for the next turn', () => {
    const { batcher, sizes } = recording({ maxBatch: 3 });
    for (const n of [1, 2, 3, 4]) void batcher.submit(n);
    assert.deepEqual(sizes(), [3], 'the first three ran synchronously; the fourth waits for the turn');
    assert.equal(batcher.waiting, 1);
  });

  test('with maxInFlight 1, calls made while a batch runs wait, then go together in the next batch', async () => {
    const run = recording({ maxBatch: 100, maxInFlight: 1 });
    const { batcher } = run;
    run.hold();
    const first = [1, 2, 3].map((n) => batcher.submit(n));
    await nextTurn();
    assert.deepEqual(run.sizes(), [3]);
    // Calls of later turns while the first batch is still running.
    const second: Promise<number>[] = [];
    for (const n of [4, 5, 6, 7, 8]) {
      second.push(batcher.submit(n));
      await nextTurn();
    }
    assert.deepEqual(run.sizes(), [3], 'no second batch while one is in flight');
    assert.equal(batcher.waiting, 5);
    run.release();
    assert.deepEqual(await Promise.all(first), [10, 20, 30]);
    assert.deepEqual(await Promise.all(second), [40, 50, 60, 70, 80]);
    assert.deepEqual(run.batches, [[1, 2, 3], [4, 5, 6, 7, 8]], 'the waiting calls went together, in order');
    assert.equal(run.mostRunning(), 1);
    assert.equal(batcher.batches, 2);
    assert.equal(batcher.waiting, 0);
  });

  test('idle() resolves at once when nothing is queued, and otherwise only after the waiting calls have run too', async () => {
    const run = recording({ maxBatch: 100, maxInFlight: 1 });
    const { batcher } = run;
    await batcher.idle();
    run.hold();
    const first = batcher.submit(1);
    await nextTurn();
    const queued = batcher.submit(2); // waits for the batch in flight
    let idle = false;
    const idleDone = batcher.idle().then(() => (idle = true));
    await sleep(10);
    assert.equal(idle, false, 'not idle while a batch runs');
    run.release(); // the first batch answers; the second starts, and is held
    run.hold();
    await first;
    await sleep(10);
    assert.equal(idle, false, 'not idle while the queued call has not run');
    run.release();
    await idleDone;
    assert.deepEqual(await Promise.all([first, queued]), [10, 20]);
    assert.deepEqual(run.batches, [[1], [2]]);
    await batcher.idle();
  });

  test('with maxInFlight 1 a full queue still waits for the running batch, then drains in maxBatch-sized batches', async () => {
    const run = recording({ maxBatch: 4, maxInFlight: 1 });
    run.hold();
    const calls = Array.from({ length: 10 }, (_, i) => run.batcher.submit(i));
    await nextTurn();
    assert.deepEqual(run.sizes(), [4], 'reaching maxBatch again does not break the in-flight limit');
    run.release();
    assert.deepEqual(await Promise.all(calls), Array.from({ length: 10 }, (_, i) => i * 10));
    assert.deepEqual(run.sizes(), [4, 4, 2]);
    assert.equal(run.mostRunning(), 1);
  });

  test('maxInFlight 2 runs two batches at once, never three', async () => {
    const run = recording({ maxBatch: 2, maxInFlight: 2 });
    run.hold();
    const calls = Array.from({ length: 8 }, (_, i) => run.batcher.submit(i));
    await nextTurn();
    assert.deepEqual(run.sizes(), [2, 2]);
    run.release();
    await Promise.all(calls);
    assert.deepEqual(run.sizes(), [2, 2, 2, 2]);
    assert.equal(run.mostRunning(), 2);
  });

  test('keyOf: two calls with the same key never share a batch, and the later one still completes', async () => {
    const run = recording<string>({ keyOf: (input) => input.split(':')[0] as string }, (input) => ({ status: 'fulfilled', value: input.length }));
    const inputs = ['a:1', 'b:1', 'a:2', 'c:1', 'a:3', 'b:2'];
    const results = await Promise.all(inputs.map((input) => run.batcher.submit(input)));
    assert.deepEqual(results, inputs.map((input) => input.length), 'every call completes with its own answer');
    assert.deepEqual(run.batches, [['a:1', 'b:1', 'c:1'], ['a:2', 'b:2'], ['a:3']], 'skipped calls keep their order and fill the next batch');
    for (const batch of run.batches) {
      const keys = batch.map((input) => input.split(':')[0]);
      assert.equal(new Set(keys).size, keys.length, `no key twice in ${JSON.stringify(batch)}`);
    }
  });

  test('keyOf with maxInFlight 1: the same-key call waits for the batch holding its key to finish', async () => {
    const run = recording<string>({ maxInFlight: 1, keyOf: (input) => input }, () => ({ status: 'fulfilled', value: 1 }));
    run.hold();
    const first = run.batcher.submit('m-1');
    const second = run.batcher.submit('m-1');
    await nextTurn();
    assert.deepEqual(run.batches, [['m-1']]);
    run.release();
    assert.deepEqual(await Promise.all([first, second]), [1, 1]);
    assert.deepEqual(run.batches, [['m-1'], ['m-1']]);
  });

  test('maxBatchSize: a call larger than the budget runs alone, and the others fill batches up to the budget', async () => {
    const run = recording({ maxBatchSize: 10, sizeOf: (n: number) => n });
    const inputs = [3, 20, 4, 3, 5, 2, 11];
    const results = await Promise.all(inputs.map((n) => run.batcher.submit(n)));
    assert.deepEqual(results, inputs.map((n) => n * 10));
    assert.deepEqual(run.batches, [[3, 4, 3], [20], [5, 2], [11]]);
    for (const batch of run.batches) {
      const size = batch.reduce((sum, n) => sum + n, 0);
      assert.ok(size <= 10 || batch.length === 1, `batch ${JSON.stringify(batch)} is within the budget or alone`);
    }
  });

  test('delayMs > 0 gathers calls from different turns into one batch; without it each turn runs its own', async () => {
    // 500 ms: the three calls 10 ms apart fall in one window even when a loaded box stalls
    // between them (at 150 ms, 130 ms of slack).
    const delayed = recording({ delayMs: 500 });
    const spread = async (batcher: MicroBatcher<number, number>) => {
      const calls: Promise<number>[] = [];
      for (const n of [1, 2, 3]) {
        calls.push(batcher.submit(n));
        await sleep(10);
      }
      return Promise.all(calls);
    };
    assert.deepEqual(await spread(delayed.batcher), [10, 20, 30]);
    assert.deepEqual(delayed.batches, [[1, 2, 3]]);

    const immediate = recording({ delayMs: 0 });
    assert.deepEqual(await spread(immediate.batcher), [10, 20, 30]);
    assert.deepEqual(immediate.batches, [[1], [2], [3]]);
  });

  test('an outcome array shorter than the batch rejects the calls it leaves out', async () => {
    const batcher = new MicroBatcher<number, number>({
      maxBatch: 10,
      run: async () => [
        { status: 'fulfilled', value: 1 },
        { status: 'rejected', reason: new Error('second refused') },
      ],
    });
    const outcomes = await Promise.allSettled([1, 2, 3, 4].map((n) => batcher.submit(n)));
    assert.deepEqual(outcomes[0], { status: 'fulfilled', value: 1 });
    assert.equal(outcomes[1]?.status, 'rejected');
    assert.equal(((outcomes[1] as PromiseRejectedResult).reason as Error).message, 'second refused');
    for (const outcome of outcomes.slice(2)) {
      assert.equal(outcome.status, 'rejected');
      assert.match(((outcome as PromiseRejectedResult).reason as Error).message, /batch of 4 answered only 2 outcomes/);
    }
  });

  test('the constructor refuses a maxBatch that is not a whole number ≥ 1 and a maxInFlight below 1 with RangeError', () => {
    const run: MicroBatcherOptions<number, number>['run'] = async () => [];
    for (const maxBatch of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.throws(() => new MicroBatcher({ run, maxBatch }), RangeError, `maxBatch ${maxBatch}`);
    }
    for (const maxInFlight of [0, -2, 0.5, Number.NaN]) {
      assert.throws(() => new MicroBatcher({ run, maxBatch: 1, maxInFlight }), RangeError, `maxInFlight ${maxInFlight}`);
    }
    assert.doesNotThrow(() => new MicroBatcher({ run, maxBatch: 1, maxInFlight: 1 }));
    assert.doesNotThrow(() => new MicroBatcher({ run, maxBatch: 1 }));
  });
});

describe('settleBatch: one batch, or each alone when the batch fails for its own reason', () => {
  const outage = new Error('down');
  const isOutage = (error: unknown) => error === outage;

  test('a lone input goes to `one`, never to `many`', async () => {
    let manyCalls = 0;
    const outcomes = await settleBatch([7], async () => (manyCalls++, []), async (n: number) => n * 2, isOutage);
    assert.deepEqual(outcomes, [{ status: 'fulfilled', value: 14 }]);
    assert.equal(manyCalls, 0);
  });

  test('a batch that answers is taken as it is', async () => {
    let oneCalls = 0;
    const outcomes = await settleBatch(
      [1, 2],
      async (all) => all.map((n): PromiseSettledResult<number> => (n === 2 ? { status: 'rejected', reason: new Error('two') } : { status: 'fulfilled', value: n })),
      async (n: number) => (oneCalls++, n),
      isOutage,
    );
    assert.deepEqual(outcomes[0], { status: 'fulfilled', value: 1 });
    assert.equal(outcomes[1]?.status, 'rejected');
    assert.equal(oneCalls, 0, 'per-element refusals are not retried');
  });

  test('a batch refused as a whole for its own reason is run input by input, so only the bad one fails', async () => {
    const outcomes = await settleBatch(
      [1, -1, 3],
      async () => {
        throw new Error('the statement failed');
      },
      async (n: number) => {
        if (n < 0) throw new Error('negative');
        return n;
      },
      isOutage,
    );
    assert.deepEqual(outcomes.map((outcome) => outcome.status), ['fulfilled', 'rejected', 'fulfilled']);
  });

  test('an outage is thrown and nothing is run again', async () => {
    let oneCalls = 0;
    await assert.rejects(
      settleBatch(
        [1, 2],
        async () => {
          throw outage;
        },
        async (n: number) => (oneCalls++, n),
        isOutage,
      ),
      (error) => error === outage,
    );
    assert.equal(oneCalls, 0);
  });
});
