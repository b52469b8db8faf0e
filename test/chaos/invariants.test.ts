import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { RecordedAnswer } from './answer-log.js';
import { CHAOS_DURATIONS } from './chaos-settings.js';
import { ALL_FAULT_KINDS, planFaults } from './fault-schedule.js';
import { type RunFacts, allHold, checkInvariants, isUnexpected5xx } from './invariants.js';

const answer = (status: number | null, sentAt: number, endedAt = sentAt + 10): RecordedAnswer => ({ route: 'POST /v1/messages', sentAt, endedAt, status });

function facts(overrides: Partial<RunFacts> = {}): RunFacts {
  return {
    decisions: new Map([
      ['m-0', 'committed'],
      ['m-1', 'rolled-back'],
    ]),
    keysStarted: 2,
    handled: new Map([['m-0', 1]]),
    crashed: new Map(),
    stored: [
      { key: 'm-0', status: 'COMPLETED', deliveryAttempts: 1, lastTransport: 'rabbitmq' },
      { key: 'm-1', status: 'CANCELLED', deliveryAttempts: 0, lastTransport: null },
    ],
    answers: [answer(201, 1000)],
    storeFaults: [{ startedAt: 5000, endedAt: 6000 }],
    storeRecoveryMs: 500,
    ...overrides,
  };
}

const failing = (f: RunFacts) => checkInvariants(f).filter((row) => row.holds === false).map((row) => row.name);

describe('the chaos invariants', () => {
  test('a clean run holds every invariant', () => {
    assert.ok(allHold(checkInvariants(facts())));
  });

  test('a committed message never handled is reported lost', () => {
    assert.deepEqual(failing(facts({ handled: new Map() })), ['confirmed or committed, never delivered (lost)']);
  });

  test('a rolled-back message that reached a handler, even one that crashed, is reported delivered', () => {
    assert.ok(failing(facts({ crashed: new Map([['m-1', 1]]) })).includes('cancelled or rolled back, delivered'));
  });

  test('a PENDING or SENDING message after settling is stuck, and contradicts its decision', () => {
    const stored = [{ key: 'm-0', status: 'SENDING', deliveryAttempts: 3, lastTransport: 'redis' } as const];
    assert.deepEqual(failing(facts({ stored })), ['stuck non-terminal (PENDING or SENDING)', 'store status contradicts the decision']);
  });

  test('duplicates are counted, not failed', () => {
    const rows = checkInvariants(facts({ handled: new Map([['m-0', 3]]) }));
    assert.equal(rows.find((row) => row.name.startsWith('duplicates'))?.value, '2');
    assert.ok(allHold(rows));
  });

  test('only a 503 overlapping a store fault (or its recovery) is an expected 5xx', () => {
    const windows = [{ startedAt: 5000, endedAt: 6000 }];
    assert.equal(isUnexpected5xx(answer(503, 5500), windows, 500), false, '503 inside the fault');
    assert.equal(isUnexpected5xx(answer(503, 4000, 5100), windows, 500), false, '503 of a request that ran into the fault');
    assert.equal(isUnexpected5xx(answer(503, 6400), windows, 500), false, '503 within the recovery allowance');
    assert.equal(isUnexpected5xx(answer(503, 7000), windows, 500), true, '503 long after the fault');
    assert.equal(isUnexpected5xx(answer(500, 5500), windows, 500), true, '500 even inside the fault');
    assert.equal(isUnexpected5xx(answer(null, 5500), windows, 500), false, 'no answer is not a 5xx');
    assert.deepEqual(failing(facts({ answers: [answer(502, 100)] })), ['5xx answers, unexpected']);
  });
});

describe('the chaos fault schedule', () => {
  test('the same seed gives the same schedule, another seed another', () => {
    const plan = (seed: number) => planFaults({ seed, cycles: 30, instances: 2 });
    assert.deepEqual(plan(7), plan(7));
    assert.notDeepEqual(plan(7), plan(8));
  });

  test('every run of as many cycles as kinds injects each kind once', () => {
    const kinds = planFaults({ seed: 3, cycles: ALL_FAULT_KINDS.length * 10, instances: 2 }).map((fault) => fault.kind);
    for (let round = 0; round < 10; round++) {
      const slice = kinds.slice(round * ALL_FAULT_KINDS.length, (round + 1) * ALL_FAULT_KINDS.length);
      assert.deepEqual(new Set(slice), new Set(ALL_FAULT_KINDS));
    }
  });

  test('a freeze outlasts the lease and a ZooKeeper cut the session timeout', () => {
    for (const fault of planFaults({ seed: 5, cycles: 200, instances: 2 })) {
      if (fault.kind === 'rms-freeze') assert.ok(fault.durationMs > CHAOS_DURATIONS.leaseMs);
      if (fault.kind === 'zookeeper-cut') assert.ok(fault.durationMs > CHAOS_DURATIONS.zkSessionTimeoutMs);
      assert.ok(fault.instance === 0 || fault.instance === 1);
    }
  });
});
