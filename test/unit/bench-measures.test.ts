import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RequestLedger } from '../../bench/per-message-flow.js';
import { combineUsage, cpuBreakdown, type CpuSnapshot } from '../../bench/proc-usage.js';

describe('bench: the plain HTTP client\'s ledger', () => {
  test('503s are counted as refused (with or without Retry-After) and kept out of the admitted latency, as are network errors', () => {
    const ledger = new RequestLedger();
    ledger.record(201, 10);
    ledger.record(200, 20);
    ledger.record(503, 1, true);
    ledger.record(503, 2, false);
    ledger.record('error', 30_000);
    ledger.record(409, 40);
    const summary = ledger.summary();
    assert.equal(summary.requests, 6);
    assert.deepEqual(summary.byStatus, { '200': 1, '201': 1, '409': 1, '503': 2, error: 1 });
    assert.equal(summary.rejected, 2);
    assert.equal(summary.rejectedWithRetryAfter, 1);
    // Admitted: 10, 20, 40 ms (any answer but 503; a 409 was admitted and answered).
    assert.equal(summary.admitted.count, 3);
    assert.equal(summary.admitted.p50, 20);
    assert.equal(summary.admitted.max, 40);
  });

  test('reset forgets the warm-up', () => {
    const ledger = new RequestLedger();
    ledger.record(503, 1, true);
    ledger.record(200, 5);
    ledger.reset();
    const summary = ledger.summary();
    assert.equal(summary.requests, 0);
    assert.equal(summary.rejected, 0);
    assert.equal(summary.admitted.count, 0);
  });
});

describe('bench: CPU of several processes', () => {
  test('pids named alike add up under one program (two RMS processes are "rms")', () => {
    const snapshot = (cpu: [number, number][], busy: number): CpuSnapshot => ({ byPid: new Map(cpu), machineBusy: busy, machineTotal: busy * 2, machineSteal: 0 });
    const before = snapshot([[101, 1], [102, 2], [200, 5]], 10);
    const after = snapshot([[101, 2], [102, 2.5], [200, 5.5]], 12);
    const breakdown = cpuBreakdown(before, after, { rms: [101, 102], bench: 200 }, 2);
    // rms: (1 + 0.5) s over 2 s = 75 % of a core; bench 0.5 s = 25 %.
    assert.equal(breakdown.byProgram['rms'], 75);
    assert.equal(breakdown.byProgram['bench'], 25);
    // The machine was busy 2 s in 2 s of wall time (100 % of a core), all accounted for.
    assert.equal(breakdown.unaccountedPercent, 0);
  });

  test('combined usage adds CPU and resident sets and keeps the largest peak', () => {
    const combined = combineUsage([
      { cpuPercent: 40, cpuSeconds: 8, systemPercent: 4, peakRssMb: 180, rssMb: 170 },
      { cpuPercent: 35, cpuSeconds: 7, systemPercent: 3, peakRssMb: 190, rssMb: 160 },
    ]);
    assert.deepEqual(combined, { cpuPercent: 75, cpuSeconds: 15, systemPercent: 7, peakRssMb: 190, rssMb: 330 });
  });
});
