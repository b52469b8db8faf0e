import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AdmissionLimit } from '@rms/message-service';

const TARGET = 250;

/**
 * One interval of an overload against a store that serves `perSecond` requests: the limit
 * is full (arrivals exceed it), and by Little's law each request takes `limit / perSecond`.
 * Returns the limit after the interval.
 */
function overloadedInterval(limit: AdmissionLimit, clock: { now: number }, perSecond: number): number {
  const latencyMs = (limit.limit / perSecond) * 1000;
  limit.observeInFlight(limit.limit);
  for (let n = 0; n < 50; n++) limit.ended(latencyMs);
  clock.now += TARGET;
  return limit.update(clock.now, { oldestAgeMs: latencyMs });
}

/** A limit adjusted every `TARGET` ms, whose first interval has begun at `clock.now`. */
function started(options: { maxLimit: number; minLimit?: number }, clock: { now: number }): AdmissionLimit {
  const limit = new AdmissionLimit({ targetMs: TARGET, intervalMs: TARGET, ...options });
  limit.update(clock.now, { oldestAgeMs: 0 });
  return limit;
}

describe('the adaptive admission limit', () => {
  test('starts at the ceiling and changes nothing within an interval', () => {
    const clock = { now: 1000 };
    const limit = started({ maxLimit: 512 }, clock);
    assert.equal(limit.limit, 512);
    for (let n = 0; n < 100; n++) limit.ended(5000);
    assert.equal(limit.update(clock.now + TARGET - 1, { oldestAgeMs: 5000 }), 512, 'the interval has not passed');
  });

  test('by default the interval is a quarter of the target, within 100–250 ms', () => {
    for (const [targetMs, intervalMs] of [[1000, 250], [4000, 250], [600, 150], [200, 100]] as const) {
      const limit = new AdmissionLimit({ targetMs, maxLimit: 512 });
      limit.update(0, { oldestAgeMs: 0 });
      for (let n = 0; n < 10; n++) limit.ended(4 * targetMs);
      assert.equal(limit.update(intervalMs - 1, { oldestAgeMs: 0 }), 512, `target ${targetMs}: not yet at ${intervalMs - 1} ms`);
      assert.equal(limit.update(intervalMs, { oldestAgeMs: 0 }), 256, `target ${targetMs}: adjusted at ${intervalMs} ms`);
    }
  });

  test('latency twice the target halves the limit; far above it, the limit is at most halved per interval', () => {
    const clock = { now: 0 };
    const limit = started({ maxLimit: 400 }, clock);
    for (let n = 0; n < 10; n++) limit.ended(2 * TARGET);
    clock.now += TARGET;
    assert.equal(limit.update(clock.now, { oldestAgeMs: 0 }), 200);
    for (let n = 0; n < 10; n++) limit.ended(20 * TARGET);
    clock.now += TARGET;
    assert.equal(limit.update(clock.now, { oldestAgeMs: 0 }), 100, 'halved, not divided by 20');
  });

  test('the 90th percentile decides: a few slow requests among fast ones do not shrink the limit', () => {
    const clock = { now: 0 };
    const limit = started({ maxLimit: 400 }, clock);
    limit.observeInFlight(400);
    for (let n = 0; n < 95; n++) limit.ended(TARGET / 2);
    for (let n = 0; n < 5; n++) limit.ended(10 * TARGET);
    clock.now += TARGET;
    assert.equal(limit.update(clock.now, { oldestAgeMs: 0 }), 400);
    for (let n = 0; n < 85; n++) limit.ended(TARGET / 2);
    for (let n = 0; n < 15; n++) limit.ended(2 * TARGET);
    clock.now += TARGET;
    assert.equal(limit.update(clock.now, { oldestAgeMs: 0 }), 200, 'with 15 % slow the 90th percentile is slow');
  });

  test('under overload it settles where the store serves the target: throughput × target', () => {
    for (const perSecond of [200, 400, 1000]) {
      const clock = { now: 0 };
      const limit = started({ maxLimit: 512 }, clock);
      for (let interval = 0; interval < 20; interval++) overloadedInterval(limit, clock, perSecond);
      const settled = (perSecond * TARGET) / 1000;
      // Over the next intervals it stays within a few percent of that, never far above.
      for (let interval = 0; interval < 20; interval++) {
        const now = overloadedInterval(limit, clock, perSecond);
        assert.ok(Math.abs(now - settled) <= Math.max(2, settled * 0.05), `at ${perSecond}/s the limit is ${now}, expected about ${settled}`);
      }
    }
  });

  test('a store that stops answering is seen from the oldest request in flight, before anything completes: the limit keeps falling, to its floor', () => {
    const clock = { now: 0 };
    const limit = started({ maxLimit: 512, minLimit: 8 }, clock);
    const stalledSince = clock.now;
    const seen: number[] = [];
    for (let interval = 0; interval < 40; interval++) {
      limit.observeInFlight(limit.limit);
      clock.now += TARGET;
      seen.push(limit.update(clock.now, { oldestAgeMs: clock.now - stalledSince }));
    }
    assert.equal(seen[0], 512, 'the first interval: the oldest is exactly at the target');
    assert.ok(seen[1]! < 512, `shrinking by the second interval (${seen.join(', ')})`);
    assert.ok(seen[19]! <= 32, `a sixteenth of the ceiling or less within 5 s, the store's deadline (${seen.join(', ')})`);
    assert.equal(seen.at(-1), 8, `down to the floor (${seen.join(', ')})`);
    assert.ok(seen.every((value, index) => value >= 8 && (index === 0 || value <= seen[index - 1]!)), 'never rising, never below the floor');
  });

  test('latency that does not fall when the limit is cut (a store slow per call, not a queue) holds the limit instead of cutting it to the floor', () => {
    const clock = { now: 0 };
    const limit = started({ maxLimit: 512, minLimit: 8 }, clock);
    const seen: number[] = [];
    const interval = (latencyMs: number) => {
      limit.observeInFlight(limit.limit);
      for (let n = 0; n < 20; n++) limit.ended(latencyMs);
      clock.now += TARGET;
      seen.push(limit.update(clock.now, { oldestAgeMs: latencyMs }));
    };
    for (let n = 0; n < 10; n++) interval(4 * TARGET);
    assert.deepEqual(seen, [256, 256, 256, 256, 256, 256, 256, 256, 256, 256], 'one cut, then it holds');
    // The store gets slower still (twice as slow): cutting may help again.
    interval(9 * TARGET);
    assert.equal(seen.at(-1), 128);
    // A cut that worked (the latency fell by more than a tenth) is followed by another.
    interval(6 * TARGET);
    assert.equal(seen.at(-1), 64);
  });

  test('once the store is fast again the limit grows back from its floor to the ceiling within a few intervals, never past it', () => {
    const clock = { now: 0 };
    const limit = started({ maxLimit: 512, minLimit: 8 }, clock);
    for (let interval = 0; interval < 12; interval++) overloadedInterval(limit, clock, 10);
    assert.equal(limit.limit, 8);
    const seen: number[] = [];
    for (let interval = 0; interval < 12; interval++) {
      limit.observeInFlight(limit.limit);
      for (let n = 0; n < 20; n++) limit.ended(10);
      clock.now += TARGET;
      seen.push(limit.update(clock.now, { oldestAgeMs: 10 }));
    }
    assert.equal(seen.at(-1), 512, `grew back to the ceiling (${seen.join(', ')})`);
    assert.ok(seen.every((value, index) => index === 0 || value >= seen[index - 1]!), `grew monotonically (${seen.join(', ')})`);
    assert.ok(seen.every((value, index) => index === 0 || value <= seen[index - 1]! * 2), `at most doubling per interval (${seen.join(', ')})`);
    assert.ok(seen.indexOf(512) <= 6, `at the ceiling within 6 intervals, 1.5 s (${seen.join(', ')})`);
  });

  test('a limit that is not in use does not grow: an idle RMS learns nothing about its store', () => {
    const clock = { now: 0 };
    const limit = started({ maxLimit: 512 }, clock);
    for (let n = 0; n < 10; n++) limit.ended(4 * TARGET);
    clock.now += TARGET;
    assert.equal(limit.update(clock.now, { oldestAgeMs: 0 }), 256);
    // Fast answers, but never more than a quarter of the limit in flight.
    for (let interval = 0; interval < 5; interval++) {
      limit.observeInFlight(60);
      for (let n = 0; n < 10; n++) limit.ended(10);
      clock.now += TARGET;
      assert.equal(limit.update(clock.now, { oldestAgeMs: 0 }), 256);
    }
    // Nothing ended and nothing in flight: no latency seen, nothing changes.
    clock.now += TARGET;
    assert.equal(limit.update(clock.now, { oldestAgeMs: 0 }), 256);
  });

  test('the constructor refuses a target ≤ 0 and limits that are not whole numbers ≥ 1 with the floor above the ceiling', () => {
    assert.throws(() => new AdmissionLimit({ targetMs: 0, maxLimit: 10 }), RangeError);
    assert.throws(() => new AdmissionLimit({ targetMs: 100, maxLimit: 0 }), RangeError);
    assert.throws(() => new AdmissionLimit({ targetMs: 100, maxLimit: 2.5 }), RangeError);
    assert.throws(() => new AdmissionLimit({ targetMs: 100, maxLimit: 10, minLimit: 11 }), RangeError);
    assert.throws(() => new AdmissionLimit({ targetMs: 100, maxLimit: 10, minLimit: 0 }), RangeError);
    assert.equal(new AdmissionLimit({ targetMs: 100, maxLimit: 3 }).limit, 3, 'a ceiling under the default floor of 8 lowers the floor');
  });
});
