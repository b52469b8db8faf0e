import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { efficiencyOf, withRatios } from '../../bench/efficiency.js';
import { median, medianOf, medianPhases, perRun, RunsSettingError, runsSetting } from '../../bench/runs.js';
import { phase } from './bench-fixtures.js';

describe('bench: the number of runs', () => {
  test('--runs N and --runs=N on the command line win over BENCH_RUNS, which wins over the default of one run', () => {
    assert.equal(runsSetting([], undefined), 1);
    assert.equal(runsSetting([], ''), 1);
    assert.equal(runsSetting([], '3'), 3);
    assert.equal(runsSetting(['--runs', '5'], '3'), 5);
    assert.equal(runsSetting(['--runs=2'], undefined), 2);
  });

  test('anything but a positive integer is refused rather than silently run once', () => {
    for (const bad of ['0', '-1', '1.5', 'three']) assert.throws(() => runsSetting([], bad), RunsSettingError);
    assert.throws(() => runsSetting(['--runs'], undefined), RunsSettingError);
  });
});

describe('bench: medians over runs', () => {
  test('the median of an odd count is the middle value, of an even count the mean of the middle two; NaN values are left out', () => {
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 3, 2]), 2.5);
    assert.equal(median([Number.NaN, 7, 1, 4]), 4);
    assert.ok(Number.isNaN(median([])));
    assert.ok(Number.isNaN(median([Number.NaN])));
  });

  test('medianOf takes each figure of nested objects and arrays separately', () => {
    const merged = medianOf([
      { rate: 1, nested: { p99: 30, list: [1, 10] }, contended: false, name: 'reliable', only: 5 },
      { rate: 3, nested: { p99: 10, list: [3, 30] }, contended: true, name: 'reliable' },
      { rate: 2, nested: { p99: 20, list: [2, 20] }, contended: false, name: 'reliable', only: 7 },
    ]);
    assert.deepEqual(merged, { rate: 2, nested: { p99: 20, list: [2, 20] }, contended: true, name: 'reliable', only: 6 });
  });

  test('strings that differ between runs are all kept', () => {
    assert.equal(medianOf(['123 456', '120 400']), '123 456 / 120 400');
  });

  test('each phase is the median of its runs, in the order the phases first ran, and says how many runs it comes from', () => {
    const runs = [
      [phase('raw', { messagesPerSecond: 20_000 }), phase('reliable', { messagesPerSecond: 3000 })],
      [phase('raw', { messagesPerSecond: 10_000 }), phase('reliable', { messagesPerSecond: 2000 })],
      [phase('raw', { messagesPerSecond: 15_000 }), phase('reliable', { messagesPerSecond: 4000 })],
    ];
    const medians = medianPhases(runs);
    assert.deepEqual(
      medians.map((p) => [p.phase, p.messagesPerSecond, p.runs]),
      [
        ['raw', 15_000, 3],
        ['reliable', 3000, 3],
      ],
    );
    assert.deepEqual(perRun(runs, 'reliable', (p) => p.messagesPerSecond), [3000, 2000, 4000]);
  });

  test('a ratio is the median of the ratios each run formed, not the ratio of the medians', () => {
    // Run by run: 0.3, 0.1, 0.2 → median 0.2; the medians' ratio would be 3000 / 15000 = 0.2 too,
    // so the runs are chosen to make the two differ: 0.30, 0.10, 0.26 → 0.26 vs 3000 / 15000 = 0.2.
    const runs = [
      withRatios([phase('raw', { messagesPerSecond: 10_000 }), phase('reliable', { messagesPerSecond: 3000 })]),
      withRatios([phase('raw', { messagesPerSecond: 20_000 }), phase('reliable', { messagesPerSecond: 2000 })]),
      withRatios([phase('raw', { messagesPerSecond: 15_000 }), phase('reliable', { messagesPerSecond: 3900 })]),
    ];
    const reliable = medianPhases(runs).find((p) => p.phase === 'reliable');
    assert.equal(reliable?.ratios?.toRaw, 0.26);
    assert.equal(reliable?.messagesPerSecond, 3000);
  });

  test('one run is reported as it was measured', () => {
    const only = [phase('reliable')];
    assert.deepEqual(medianPhases([only]), only);
  });
});

describe('bench: ratios within one run', () => {
  test('saturated flows are compared with the run\'s raw rate; steady and overload phases, whose rate is their schedule\'s, are not', () => {
    const [raw, reliable, steady, overload] = withRatios([
      phase('raw', { messagesPerSecond: 20_000 }),
      phase('reliable', { messagesPerSecond: 5000 }),
      phase('steady-1000', { messagesPerSecond: 1000 }),
      phase('overload', { messagesPerSecond: 900 }),
    ]);
    assert.equal(raw?.ratios, undefined);
    assert.equal(reliable?.ratios?.toRaw, 0.25);
    assert.equal(steady?.ratios, undefined);
    assert.equal(overload?.ratios, undefined);
  });

  test('the per-message flow is compared with the /healthz rate measured on the same server', () => {
    const healthz = { connections: 64, requests: 50_000, seconds: 10, requestsPerSecond: 5000, rmsCpuMs: 0.1, clientCpuMs: 0.05, latency: { count: 1, p50: 1, p95: 1, p99: 1, max: 1 }, errors: 0 };
    const [perMessage] = withRatios([phase('per-message', { messagesPerSecond: 2000, healthz })]);
    assert.equal(perMessage?.ratios?.toHealthz, 0.4);
    assert.equal(perMessage?.ratios?.toRaw, undefined, 'no raw phase in this run: no ratio to raw');
  });
});

describe('bench: CPU and WAL per message', () => {
  test('each process\'s share of the window is turned into ms of CPU per delivered message', () => {
    // 1,000 messages in 2 s; RMS used 0.2 s of CPU; PostgreSQL 50 % of a core = 1 s; RabbitMQ 0.5 s; the bench 5 % = 0.1 s.
    const efficiency = efficiencyOf(phase('reliable', { postgresPerMessage: { commits: 0.1, rowsInserted: 1, rowsUpdated: 3, rowsFetched: 3, walRecords: 20, walWrites: 0.06, walSyncs: 0.05, walBytes: 3000 } }));
    assert.equal(efficiency.rmsCpuMs, 0.2);
    assert.equal(efficiency.messagesPerRmsCore, 5000);
    assert.equal(efficiency.postgresCpuMs, 1);
    assert.equal(efficiency.rabbitmqCpuMs, 0.5);
    assert.equal(efficiency.redisCpuMs, 0);
    assert.equal(efficiency.clientCpuMs, 0.1);
    // Listed programs 90 % + unaccounted 10 % = one core for 2 s = 2 ms per message.
    assert.equal(efficiency.totalCpuMs, 2);
    assert.equal(efficiency.walSyncs, 0.05);
    assert.equal(efficiency.walWrites, 0.06);
  });

  test('a phase without RMS (raw) or without PostgreSQL counters has no figure there rather than a zero', () => {
    const { rms: _rms, ...withoutRms } = phase('raw');
    const efficiency = efficiencyOf(withoutRms);
    assert.ok(Number.isNaN(efficiency.rmsCpuMs));
    assert.ok(Number.isNaN(efficiency.messagesPerRmsCore));
    assert.ok(Number.isNaN(efficiency.walSyncs));
  });

  test('no messages, no per-message figure', () => {
    const efficiency = efficiencyOf(phase('reliable', { messages: 0 }));
    assert.ok(Number.isNaN(efficiency.rmsCpuMs));
    assert.ok(Number.isNaN(efficiency.postgresCpuMs));
  });
});
