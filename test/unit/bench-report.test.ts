import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { efficiencyOf, withRatios } from '../../bench/efficiency.js';
import { formatTable, renderChart, renderSummary, type BenchResults } from '../../bench/report.js';
import { medianPhases } from '../../bench/runs.js';
import { evaluateTargets } from '../../bench/targets.js';
import type { PhaseResult } from '../../bench/workload.js';
import { phase } from './bench-fixtures.js';

const withEfficiency = (p: PhaseResult) => ({ ...p, efficiency: efficiencyOf(p) });

function results(phases: PhaseResult[], runs?: PhaseResult[][]): BenchResults {
  const partial = {
    runId: 'test',
    date: '2026-12-02T06:00:00.000Z',
    durationSeconds: 100,
    machine: { cores: 2, cpuModel: 'test CPU', memoryGb: 24, os: 'Linux', busyBeforeRunPercent: 1 },
    versions: { node: 'v20.20.2' },
    postgresSettings: { fsync: 'on' },
    phases,
    ...(runs && { runs }),
    targets: [],
  };
  return { ...partial, targets: evaluateTargets(partial) };
}

const perMessage = () =>
  phase('per-message', {
    messagesPerSecond: 1100,
    settings: { producers: 64 },
    healthz: { connections: 64, requests: 25_000, seconds: 10, requestsPerSecond: 2500, rmsCpuMs: 0.12, clientCpuMs: 0.05, latency: { count: 25_000, p50: 20, p95: 30, p99: 40.5, max: 50 }, errors: 0 },
    requests: { requests: 22_000, byStatus: { '200': 11_000, '201': 11_000 }, rejected: 0, rejectedWithRetryAfter: 0, admitted: { count: 22_000, p50: 25, p95: 50, p99: 60, max: 90 } },
  });

const twoRms = () =>
  phase('two-rms', {
    rmsProcesses: [
      { cpuPercent: 45, cpuSeconds: 0.9, systemPercent: 4, peakRssMb: 180, rssMb: 170 },
      { cpuPercent: 40, cpuSeconds: 0.8, systemPercent: 4, peakRssMb: 175, rssMb: 165 },
    ],
  });

describe('bench: the report', () => {
  test('the terminal table gives every phase a row, the per-message CPU split and the /healthz ratio', () => {
    const phases = withRatios([phase('raw', { messagesPerSecond: 20_000, rms: undefined }), phase('reliable', { messagesPerSecond: 5000 }), perMessage(), twoRms()].map(withEfficiency));
    const table = formatTable(results(phases));
    const rowOf = (start: string) => table.split('\n').find((line) => line.startsWith(start)) ?? '';
    assert.match(rowOf('reliable '), /5,000 .* 0\.250×$/);
    assert.match(table, /per-message: GET \/healthz 2,500 req\/s over 64 connections \(RMS 0\.120 ms, client 0\.050 ms of CPU per request; p99 40\.5 ms; 0 errors\); the flow 1,100 msgs\/s = 0\.440 × \/healthz/);
    assert.match(table, /two-rms: 2 RMS processes, together 500 msgs\/s; CPU #1 45 %, #2 40 % of a core; peak RSS 180 MB, 175 MB/);
    assert.match(table, /per-message: 22,000 HTTP requests; answers 200 × 11,000, 201 × 11,000; 503 with Retry-After 0 of 0/);
    // The efficiency table: reliable's RMS 0.2 ms (5,000 per core), PostgreSQL 1 ms, RabbitMQ 0.5, client 0.1, total 2.
    const efficiencyHeader = table.split('\n').findIndex((line) => line.startsWith('phase ') && line.includes('msgs/s per RMS core'));
    assert.ok(efficiencyHeader > 0, 'the per-message CPU table is printed');
    const efficiencyRows = table.split('\n').slice(efficiencyHeader + 2);
    assert.match(efficiencyRows.find((line) => line.startsWith('reliable')) ?? '', /^reliable\s+5,000\s+0\.200\s+5,000\s+1\.000\s+0\.500\s+0\.000\s+0\.100\s+2\.000\s+—\s+—$/);
    assert.match(efficiencyRows.find((line) => line.startsWith('raw')) ?? '', /^raw\s+20,000\s+—\s+—\s+1\.000/);
  });

  test('the targets are listed with their verdicts, met or NOT met', () => {
    const table = formatTable(results(withRatios([perMessage()].map(withEfficiency))));
    assert.match(table, /\[met\] per-message HTTP flow ≥ 1,000 msgs\/s \(undici, 64 connections\): 1,100 msgs\/s/);
    assert.match(table, /\[met\] per-message flow ≥ 0\.4 × GET \/healthz/);
    const slow = formatTable(results([phase('per-message', { messagesPerSecond: 900 })]));
    assert.match(slow, /\[NOT met\] per-message HTTP flow ≥ 1,000 msgs\/s/);
  });

  test('with several runs the report says the figures are medians and lists the per-run values in the targets', () => {
    const runs = [1000, 1200, 1100].map((rate) => withRatios([perMessage()].map((p) => withEfficiency({ ...p, messagesPerSecond: rate }))));
    const table = formatTable(results(medianPhases(runs), runs));
    assert.match(table, /median of each figure over 3 runs/);
    assert.match(table, /1,100 msgs\/s \(median of 3 runs: 1,000, 1,200, 1,100\)/);
  });

  test('summary.md carries the efficiency table and the targets in Markdown', () => {
    const summary = renderSummary(results([phase('reliable', { messagesPerSecond: 5000 }), perMessage()].map(withEfficiency)));
    assert.match(summary, /\| phase \| msgs\/s \| RMS ms \| msgs\/s per RMS core \| PostgreSQL ms \| RabbitMQ ms \| Redis ms \| client ms \| total ms \| WAL syncs \| WAL writes \|/);
    assert.match(summary, /\| reliable \| 5,000 \| 0\.200 \| 5,000 \| 1\.000 \|/);
    assert.match(summary, /^- .*per-message: GET \/healthz 2,500 req\/s/m);
    assert.match(summary, /## Targets\n\n- (met|\*\*not met\*\*): SDK flow \(reliable\) ≥ 5,000 msgs\/s/);
  });

  test('the chart is one SVG with a bar per phase, the per-message targets and the CPU split by process', () => {
    const svg = renderChart(results([phase('reliable', { messagesPerSecond: 5000 }), perMessage(), twoRms()].map(withEfficiency)));
    assert.match(svg, /^<svg [^>]*>\n[\s\S]*\n<\/svg>\n$/);
    for (const label of ['reliable', 'per-message', 'two-rms', '0.4 × /healthz', 'per-message target 1,000/s', 'RMS target 0.1 ms', 'PostgreSQL', 'RabbitMQ', 'client']) {
      assert.ok(svg.includes(`>${label}<`), `the chart shows "${label}"`);
    }
    assert.ok(!/NaN|undefined/.test(svg), 'no NaN or undefined in the SVG');
  });
});
