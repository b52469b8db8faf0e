/**
 * The bench's outputs: the table printed at the end, `docs/bench/results.json`, the chart
 * `docs/bench/throughput.svg` (plain SVG written by hand, no charting dependency) and
 * `docs/bench/summary.md` (the same figures as Markdown, for docs/benchmarks.md).
 */
import type { ProfileSummary } from './cpu-profile.js';
import type { DueScanPoint, DueScanResult, OperationLatency } from './due-scan.js';
import type { PhaseResult } from './workload.js';

/** One target of the issue and whether this run met it. */
export interface TargetCheck {
  target: string;
  measured: string;
  met: boolean;
}

/** Everything one run measured. */
export interface BenchResults {
  runId: string;
  date: string;
  /** Wall time of the whole run, s. */
  durationSeconds: number;
  machine: {
    cores: number;
    cpuModel: string;
    memoryGb: number;
    os: string;
    /** How busy the box was just before the run (0–100 %): anything else running skews every figure. */
    busyBeforeRunPercent: number;
  };
  versions: Record<string, string>;
  /** PostgreSQL settings that decide commit cost. */
  postgresSettings: Record<string, string>;
  /** The phases' figures: with several runs, the median of each figure over the runs (see `runs.ts`). */
  phases: PhaseResult[];
  /** Each run's flow phases, when the flow phases ran more than once (`BENCH_RUNS`). */
  runs?: PhaseResult[][];
  dueScan?: DueScanResult;
  /** The redelivery claim pass without and with delayed messages stored. */
  delayedScan?: DueScanResult;
  profile?: ProfileSummary;
  targets: TargetCheck[];
}

const fixed = (value: number | undefined, digits = 1) => (value === undefined || Number.isNaN(value) ? '—' : value.toFixed(digits));

/** `name value, …` with at most three decimals (a median of rounded figures can carry float noise). */
function countersText(counters: Record<string, number>): string {
  return Object.entries(counters)
    .map(([name, value]) => `${name} ${Number.isFinite(value) ? Number(value.toFixed(3)) : '—'}`)
    .join(', ');
}

/** The phases as rows of cells, in {@link HEADER}'s order. */
function rows(results: BenchResults): string[][] {
  return results.phases.map((phase) => [
    phase.cpu.contended ? `${phase.phase} (contended!)` : phase.phase,
    Math.round(phase.messagesPerSecond).toLocaleString('en-US'),
    fixed(phase.latency.p50),
    fixed(phase.latency.p95),
    fixed(phase.latency.p99),
    fixed(phase.latency.fromConfirmCall.p99),
    phase.rms ? `${fixed(phase.rms.cpuPercent, 0)} (${fixed(phase.rms.systemPercent, 0)} sys)` : '—',
    phase.rms ? fixed(phase.rms.peakRssMb, 1) : '—',
    phase.ratios?.toRaw === undefined ? '—' : `${phase.ratios.toRaw.toFixed(3)}×`,
  ]);
}

const EFFICIENCY_HEADER = ['phase', 'msgs/s', 'RMS ms', 'msgs/s per RMS core', 'PostgreSQL ms', 'RabbitMQ ms', 'Redis ms', 'client ms', 'total ms', 'WAL syncs', 'WAL writes'];

/** CPU (ms of one core) and WAL work per delivered message, one row per load phase, in {@link EFFICIENCY_HEADER}'s order. */
function efficiencyRows(results: BenchResults): string[][] {
  return results.phases
    .filter((phase) => phase.efficiency)
    .map((phase) => {
      const e = phase.efficiency as NonNullable<PhaseResult['efficiency']>;
      return [
        phase.phase,
        Math.round(phase.messagesPerSecond).toLocaleString('en-US'),
        fixed(e.rmsCpuMs, 3),
        Number.isFinite(e.messagesPerRmsCore) ? Math.round(e.messagesPerRmsCore).toLocaleString('en-US') : '—',
        fixed(e.postgresCpuMs, 3),
        fixed(e.rabbitmqCpuMs, 3),
        fixed(e.redisCpuMs, 3),
        fixed(e.clientCpuMs, 3),
        fixed(e.totalCpuMs, 3),
        fixed(e.walSyncs, 3),
        fixed(e.walWrites, 3),
      ];
    });
}

/** Columns padded for the terminal: the first left-aligned, the rest right-aligned. */
function aligned(header: string[], body: string[][]): string[] {
  const table = [header, ...body];
  const widths = header.map((_, column) => Math.max(...table.map((row) => (row[column] ?? '').length)));
  const line = (row: string[]) => row.map((cell, column) => (column === 0 ? cell.padEnd(widths[column] ?? 0) : cell.padStart(widths[column] ?? 0))).join('  ');
  return [line(header), widths.map((width) => '-'.repeat(width)).join('  '), ...body.map(line)];
}

/** A Markdown table. */
function markdown(header: string[], body: string[][]): string {
  return [`| ${header.join(' | ')} |`, `| ${header.map((_, i) => (i === 0 ? '---' : '---:')).join(' | ')} |`, ...body.map((row) => `| ${row.join(' | ')} |`)].join('\n');
}

/**
 * What only some phases have, a line each: the per-message flow's `/healthz` baseline and
 * ratio, each RMS process of a multi-process phase, the plain HTTP client's answers.
 */
export function phaseNotes(results: BenchResults): string[] {
  const out: string[] = [];
  for (const phase of results.phases) {
    const runs = phase.runs && phase.runs > 1 ? ` (median of ${phase.runs} runs)` : '';
    if (phase.healthz) {
      const h = phase.healthz;
      out.push(
        `${phase.phase}: GET /healthz ${Math.round(h.requestsPerSecond).toLocaleString('en-US')} req/s over ${h.connections} connections (RMS ${fixed(h.rmsCpuMs, 3)} ms, client ${fixed(h.clientCpuMs, 3)} ms of CPU per request; p99 ${fixed(h.latency.p99, 1)} ms; ${h.errors} errors); the flow ${Math.round(phase.messagesPerSecond).toLocaleString('en-US')} msgs/s = ${fixed(phase.ratios?.toHealthz, 3)} × /healthz${runs}`,
      );
    }
    if (phase.rmsProcesses) {
      out.push(
        `${phase.phase}: ${phase.rmsProcesses.length} RMS processes, together ${Math.round(phase.messagesPerSecond).toLocaleString('en-US')} msgs/s; CPU ${phase.rmsProcesses.map((usage, index) => `#${index + 1} ${fixed(usage.cpuPercent, 0)} %`).join(', ')} of a core; peak RSS ${phase.rmsProcesses.map((usage) => `${fixed(usage.peakRssMb, 0)} MB`).join(', ')}${runs}`,
      );
    }
    if (phase.requests) {
      const r = phase.requests;
      out.push(
        `${phase.phase}: ${r.requests.toLocaleString('en-US')} HTTP requests${phase.offeredPerSecond === undefined ? '' : ` at ${Math.round(phase.offeredPerSecond).toLocaleString('en-US')} msgs/s offered`}; answers ${Object.entries(r.byStatus).map(([status, count]) => `${status} × ${Math.round(count).toLocaleString('en-US')}`).join(', ')}; 503 with Retry-After ${r.rejectedWithRetryAfter} of ${r.rejected}; admitted p50 ${fixed(r.admitted.p50, 1)} / p99 ${fixed(r.admitted.p99, 1)} / max ${fixed(r.admitted.max, 1)} ms${runs}`,
      );
    }
  }
  return out;
}

const HEADER = ['phase', 'msgs/s', 'p50 ms', 'p95 ms', 'p99 ms', 'p99 from call ms', 'RMS CPU %', 'RMS peak RSS MB', 'RMS / raw'];

/** `; prepare/confirm/ack p50 …` for the terminal, when the point measured them. */
function operationsText(point: DueScanPoint): string {
  const ops = point.operations;
  if (!ops) return '';
  return `; prepare / confirm / ack p50 ${ops.prepare.p50.toFixed(2)} / ${ops.confirm.p50.toFixed(2)} / ${ops.ack.p50.toFixed(2)} ms, p99 ${ops.prepare.p99.toFixed(2)} / ${ops.confirm.p99.toFixed(2)} / ${ops.ack.p99.toFixed(2)} ms`;
}

/** The table for the terminal, with the due-scan, the machine's CPU split and the targets. */
export function formatTable(results: BenchResults): string {
  const out = aligned(HEADER, rows(results));
  if (results.runs && results.runs.length > 1) out.push(`Flow phases: the median of each figure over ${results.runs.length} runs (ratios formed within each run).`);
  if (results.phases.some((phase) => phase.cpu.contended)) {
    out.push('(contended!): something else used the CPU during that phase (see "other node" and "unaccounted" below); repeat the run on a quiet machine.');
  }
  const notes = phaseNotes(results);
  if (notes.length > 0) out.push('', ...notes);
  const efficiency = efficiencyRows(results);
  if (efficiency.length > 0) out.push('', 'Per delivered message: ms of CPU by process, WAL syncs and writes (pg_stat_wal):', ...aligned(EFFICIENCY_HEADER, efficiency));
  const withPostgres = results.phases.filter((phase) => phase.postgresPerMessage);
  if (withPostgres.length > 0) {
    out.push('', 'PostgreSQL work per delivered message (database-wide counters):');
    for (const phase of withPostgres) {
      const counters = phase.postgresPerMessage ?? {};
      out.push(`  ${phase.phase.padEnd(12)} ${countersText(counters)}`);
    }
  }
  out.push('', 'CPU over each load window, % of one core (200 % = the whole box):');
  for (const phase of results.phases) {
    const split = Object.entries(phase.cpu.byProgram)
      .filter(([, value]) => value >= 1)
      .sort((a, b) => b[1] - a[1])
      .map(([name, value]) => `${name} ${value.toFixed(0)}`)
      .join(', ');
    out.push(`  ${phase.phase.padEnd(12)} machine busy ${fixed(phase.cpu.machineBusyPercent, 0)} % (steal ${fixed(phase.cpu.stealPercent, 1)} %); ${split}; unaccounted ${fixed(phase.cpu.unaccountedPercent, 0)}`);
  }
  if (results.dueScan) {
    out.push('', 'Due-scan (claimDue, 1,000 due, limit 1,000; median of the passes):');
    for (const point of results.dueScan.points) {
      out.push(`  ${point.storedMessages.toLocaleString('en-US').padStart(9)} stored: ${point.medianMs.toFixed(1)} ms (SQL execution ${fixed(point.explainExecutionMs, 1)} ms)${operationsText(point)}`);
    }
    out.push(`  ratio largest / smallest: ${results.dueScan.ratio.toFixed(2)}`);
  }
  if (results.delayedScan) {
    out.push('', 'Delayed-scan (claimDue SENDING, 1,000 due, limit 1,000; median of the passes):');
    for (const point of results.delayedScan.points) {
      out.push(`  ${point.storedMessages.toLocaleString('en-US').padStart(9)} stored: ${point.medianMs.toFixed(1)} ms (SQL execution ${fixed(point.explainExecutionMs, 1)} ms)`);
    }
    out.push(`  ratio with / without delayed: ${results.delayedScan.ratio.toFixed(2)}`);
  }
  out.push('', 'Targets:');
  for (const target of results.targets) out.push(`  [${target.met ? 'met' : 'NOT met'}] ${target.target}: ${target.measured}`);
  return out.join('\n');
}

/** The same table as Markdown. */
export function markdownTable(results: BenchResults): string {
  return markdown(HEADER, rows(results));
}

/** The per-message CPU and WAL table as Markdown. */
export function markdownEfficiencyTable(results: BenchResults): string {
  return markdown(EFFICIENCY_HEADER, efficiencyRows(results));
}

/** `docs/bench/summary.md`: the run's figures, regenerated by every run. */
export function renderSummary(results: BenchResults): string {
  const out = [
    `# Benchmark run ${results.runId}`,
    '',
    `${results.date}; ${results.machine.cores} cores (${results.machine.cpuModel}), ${results.machine.memoryGb} GB, ${results.machine.os}; machine ${results.machine.busyBeforeRunPercent.toFixed(0)} % busy just before the run; the whole run took ${results.durationSeconds.toFixed(0)} s.`,
    '',
    `Versions: ${Object.entries(results.versions).map(([name, version]) => `${name} ${version}`).join(', ')}.`,
    '',
    `PostgreSQL settings: ${Object.entries(results.postgresSettings).map(([name, value]) => `${name}=${value}`).join(', ')}.`,
    '',
    markdownTable(results),
    '',
    ...(results.runs && results.runs.length > 1 ? [`Flow phases: the median of each figure over ${results.runs.length} runs (ratios formed within each run, then the median).`, ''] : []),
    ...phaseNotes(results).map((note) => `- ${note}`),
    '',
    'Per delivered message: ms of CPU (one core) by process, and PostgreSQL WAL syncs (flushes) and writes (`pg_stat_wal`); msgs/s per RMS core = 1000 / RMS ms:',
    '',
    markdownEfficiencyTable(results),
    '',
    ...(results.phases.some((phase) => phase.cpu.contended)
      ? ['(contended!): something else used the CPU during that phase (see "other node" and "unaccounted" below); repeat the run on a quiet machine.', '']
      : []),
    '| phase | delivered | seconds | confirmed/s | handled before confirm answer | errors | unconfirmed | duplicates | transports | settings |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |',
    ...results.phases.map(
      (phase) =>
        `| ${phase.phase} | ${phase.messages} | ${phase.seconds.toFixed(1)} | ${Math.round(phase.confirmedPerSecond)} | ${phase.latency.handledBeforeConfirm} | ${phase.errors} | ${phase.unconfirmed} | ${phase.duplicates} | ${JSON.stringify(phase.transports ?? {})} | ${Object.entries(phase.settings).map(([k, v]) => `${k}=${v}`).join(', ')} |`,
    ),
    '',
    'PostgreSQL work per delivered message (database-wide counters):',
    '',
    ...results.phases
      .filter((phase) => phase.postgresPerMessage)
      .map((phase) => `- ${phase.phase}: ${countersText(phase.postgresPerMessage ?? {})}`),
    '',
    'CPU over each load window, % of one core (200 % = the whole box):',
    '',
    ...results.phases.map(
      (phase) =>
        `- ${phase.phase}: machine busy ${fixed(phase.cpu.machineBusyPercent, 0)} % (steal ${fixed(phase.cpu.stealPercent, 1)} %); ${Object.entries(phase.cpu.byProgram)
          .filter(([, value]) => value >= 1)
          .sort((a, b) => b[1] - a[1])
          .map(([name, value]) => `${name} ${value.toFixed(0)}`)
          .join(', ')}; unaccounted ${fixed(phase.cpu.unaccountedPercent, 0)}`,
    ),
  ];
  if (results.dueScan) {
    out.push('', '## Due-scan', '', '| stored | due | median ms | passes ms | SQL execution ms | load s |', '| ---: | ---: | ---: | --- | ---: | ---: |');
    for (const point of results.dueScan.points) {
      out.push(
        `| ${point.storedMessages.toLocaleString('en-US')} | ${point.dueMessages} | ${point.medianMs.toFixed(1)} | ${point.passesMs.map((ms) => ms.toFixed(1)).join(', ')} | ${fixed(point.explainExecutionMs, 1)} | ${point.loadSeconds.toFixed(1)} |`,
      );
    }
    out.push('', `Ratio largest / smallest: ${results.dueScan.ratio.toFixed(2)}.`);
    if (results.dueScan.points.some((point) => point.operations)) {
      out.push('', 'One message at a time through the use cases (no HTTP), ms:', '', '| stored | prepare p50 / p99 | confirm p50 / p99 | ack p50 / p99 |', '| ---: | ---: | ---: | ---: |');
      for (const point of results.dueScan.points) {
        const ops = point.operations;
        if (!ops) continue;
        const cell = (latency: OperationLatency) => `${latency.p50.toFixed(2)} / ${latency.p99.toFixed(2)}`;
        out.push(`| ${point.storedMessages.toLocaleString('en-US')} | ${cell(ops.prepare)} | ${cell(ops.confirm)} | ${cell(ops.ack)} |`);
      }
    }
    for (const point of results.dueScan.points) {
      out.push('', `Plan at ${point.storedMessages.toLocaleString('en-US')} stored:`, '', '```', ...point.plan, '```');
    }
  }
  if (results.profile) {
    const profile = results.profile;
    out.push(
      '',
      '## RMS CPU profile (profiled run)',
      '',
      `${profile.busyMs} ms of non-idle samples in ${profile.windowMs} ms sampled${profile.windowed ? ' (the load window)' : ' (whole process: the load window did not match the profile clock)'}` +
        (profile.processCpuMs === undefined
          ? '.'
          : `; RMS used ${profile.processCpuMs} ms of CPU in that window. V8 samples on a wall-clock timer, so the difference is mostly time the thread was runnable but descheduled, sampled where it stopped (usually \`writev\`, after a loopback write woke a peer).`),
      '',
      '| layer | self ms | % of busy |',
      '| --- | ---: | ---: |',
      ...profile.byLayer.map((row) => `| ${row.name} | ${row.selfMs} | ${row.percent} |`),
      '',
      '| package | self ms | % of busy |',
      '| --- | ---: | ---: |',
      ...profile.byPackage.map((row) => `| ${row.name} | ${row.selfMs} | ${row.percent} |`),
      '',
      '| function | self ms | % of busy |',
      '| --- | ---: | ---: |',
      ...profile.topFunctions.map((row) => `| \`${row.name}\` | ${row.selfMs} | ${row.percent} |`),
    );
  }
  out.push('', '## Targets', '', ...results.targets.map((target) => `- ${target.met ? 'met' : '**not met**'}: ${target.target}: ${target.measured}`), '');
  return out.join('\n');
}

const escapeXml = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Colours of the CPU-per-message panel's stacked segments, bottom up. */
const CPU_SEGMENTS: { name: string; colour: string; pick: (e: NonNullable<PhaseResult['efficiency']>) => number }[] = [
  { name: 'RMS', colour: '#1f77b4', pick: (e) => e.rmsCpuMs },
  { name: 'PostgreSQL', colour: '#9467bd', pick: (e) => e.postgresCpuMs },
  { name: 'RabbitMQ', colour: '#ff7f0e', pick: (e) => e.rabbitmqCpuMs },
  { name: 'Redis', colour: '#d62728', pick: (e) => e.redisCpuMs },
  { name: 'client', colour: '#2ca02c', pick: (e) => e.clientCpuMs },
];

/**
 * A bar chart in three panels: messages/s per phase (with the 5,000/s target, 0.25 × raw
 * and, when the per-message flow ran, its 1,000/s target marked); p50/p95/p99 latency per
 * phase on a log scale (with the 25 ms target); and CPU per delivered message, stacked by
 * process (with the 0.1 ms RMS target).
 */
export function renderChart(results: BenchResults): string {
  const width = 1000;
  const height = 760;
  const panelTop = 60;
  const panelHeight = 240;
  const baseline = panelTop + panelHeight;
  const parts: string[] = [];
  const text = (x: number, y: number, content: string, attrs = '') =>
    parts.push(`<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" ${attrs}>${escapeXml(content)}</text>`);
  /** A phase's name under its bar, slanted so that ten phases' names fit side by side. */
  const phaseLabel = (x: number, y: number, name: string) =>
    parts.push(`<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" font-size="10" text-anchor="end" transform="rotate(-35 ${x.toFixed(1)} ${y.toFixed(1)})">${escapeXml(name)}</text>`);
  parts.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`);
  text(20, 28, `RMS benchmark ${results.date.slice(0, 10)}: ${results.machine.cores} cores, node ${results.versions['node'] ?? ''}`, 'font-size="15" font-weight="bold"');

  // Left panel: throughput.
  const left = { x: 70, w: 400 };
  const phases = results.phases;
  const maxRate = Math.max(5000, ...phases.map((phase) => phase.messagesPerSecond)) * 1.1;
  const yRate = (value: number) => baseline - (value / maxRate) * panelHeight;
  text(left.x, panelTop - 12, 'messages/s end to end', 'font-size="13"');
  for (let tick = 0; tick <= maxRate; tick += niceStep(maxRate)) {
    parts.push(`<line x1="${left.x}" x2="${left.x + left.w}" y1="${yRate(tick)}" y2="${yRate(tick)}" stroke="#eeeeee"/>`);
    text(left.x - 6, yRate(tick) + 4, tick.toLocaleString('en-US'), 'font-size="10" text-anchor="end"');
  }
  const slot = left.w / phases.length;
  phases.forEach((phase, i) => {
    const x = left.x + i * slot + slot * 0.15;
    const y = yRate(phase.messagesPerSecond);
    const colour = phase.phase === 'raw' ? '#7f7f7f' : phase.phase === 'degraded' ? '#d62728' : '#1f77b4';
    parts.push(`<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${(slot * 0.7).toFixed(1)}" height="${(baseline - y).toFixed(1)}" fill="${colour}"/>`);
    text(x + slot * 0.35, y - 4, Math.round(phase.messagesPerSecond).toLocaleString('en-US'), 'font-size="10" text-anchor="middle"');
    phaseLabel(x + slot * 0.35, baseline + 12, phase.phase);
    if (phase.healthz) {
      // The per-message target: 0.4 × the same server's /healthz rate, across this bar only.
      const mark = yRate(0.4 * phase.healthz.requestsPerSecond);
      parts.push(`<line x1="${(x - slot * 0.1).toFixed(1)}" x2="${(x + slot * 0.8).toFixed(1)}" y1="${mark.toFixed(1)}" y2="${mark.toFixed(1)}" stroke="#8c564b" stroke-width="2"/>`);
      text(x + slot * 0.35, mark - 4, '0.4 × /healthz', 'font-size="9" text-anchor="middle" fill="#8c564b"');
    }
  });
  const target = yRate(5000);
  parts.push(`<line x1="${left.x}" x2="${left.x + left.w}" y1="${target}" y2="${target}" stroke="#2ca02c" stroke-dasharray="6 4"/>`);
  text(left.x + left.w, target - 4, 'target 5,000/s', 'font-size="10" text-anchor="end" fill="#2ca02c"');
  const raw = phases.find((phase) => phase.phase === 'raw');
  if (raw) {
    const quarter = yRate(raw.messagesPerSecond * 0.25);
    parts.push(`<line x1="${left.x}" x2="${left.x + left.w}" y1="${quarter}" y2="${quarter}" stroke="#ff7f0e" stroke-dasharray="2 3"/>`);
    text(left.x + 4, quarter - 4, '0.25 × raw', 'font-size="10" fill="#ff7f0e"');
  }
  if (phases.some((phase) => phase.phase === 'per-message')) {
    const perMessageTarget = yRate(1000);
    parts.push(`<line x1="${left.x}" x2="${left.x + left.w}" y1="${perMessageTarget}" y2="${perMessageTarget}" stroke="#8c564b" stroke-dasharray="3 3"/>`);
    text(left.x + left.w, perMessageTarget - 4, 'per-message target 1,000/s', 'font-size="10" text-anchor="end" fill="#8c564b"');
  }

  // Right panel: latency percentiles, log scale from 0.1 ms.
  const right = { x: 540, w: 440 };
  const maxLatency = Math.max(100, ...phases.map((phase) => (Number.isNaN(phase.latency.p99) ? 0 : phase.latency.p99))) * 1.5;
  const lo = Math.log10(0.1);
  const hi = Math.log10(maxLatency);
  const yLat = (ms: number) => baseline - ((Math.log10(Math.max(0.1, ms)) - lo) / (hi - lo)) * panelHeight;
  text(right.x, panelTop - 12, 'confirm → handler, ms (log scale): p50 / p95 / p99', 'font-size="13"');
  for (let exponent = -1; 10 ** exponent <= maxLatency; exponent++) {
    const ms = 10 ** exponent;
    parts.push(`<line x1="${right.x}" x2="${right.x + right.w}" y1="${yLat(ms)}" y2="${yLat(ms)}" stroke="#eeeeee"/>`);
    text(right.x - 6, yLat(ms) + 4, String(ms), 'font-size="10" text-anchor="end"');
  }
  const latencySlot = right.w / phases.length;
  const shades = ['#9ecae1', '#4292c6', '#08519c'];
  phases.forEach((phase, i) => {
    const values = [phase.latency.p50, phase.latency.p95, phase.latency.p99];
    values.forEach((value, j) => {
      if (Number.isNaN(value)) return;
      const barWidth = (latencySlot * 0.7) / 3;
      const x = right.x + i * latencySlot + latencySlot * 0.15 + j * barWidth;
      const y = yLat(value);
      parts.push(`<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${barWidth.toFixed(1)}" height="${(baseline - y).toFixed(1)}" fill="${shades[j]}"/>`);
    });
    text(right.x + i * latencySlot + latencySlot * 0.5, yLat(phase.latency.p99) - 4, phase.latency.p99.toFixed(1), 'font-size="9" text-anchor="middle"');
    phaseLabel(right.x + i * latencySlot + latencySlot * 0.5, baseline + 12, phase.phase);
  });
  const latencyTarget = yLat(25);
  parts.push(`<line x1="${right.x}" x2="${right.x + right.w}" y1="${latencyTarget}" y2="${latencyTarget}" stroke="#2ca02c" stroke-dasharray="6 4"/>`);
  text(right.x + 4, latencyTarget - 4, 'p99 target 25 ms (at 1,000/s)', 'font-size="10" fill="#2ca02c"');

  // Bottom panel: CPU per delivered message, stacked by process.
  const withCpu = phases.filter((phase) => phase.efficiency);
  const cpuTop = 420;
  const cpuHeight = 200;
  const cpuBase = cpuTop + cpuHeight;
  const cpu = { x: 70, w: 700 };
  const stackOf = (phase: PhaseResult) => CPU_SEGMENTS.map((segment) => (phase.efficiency ? segment.pick(phase.efficiency) : Number.NaN)).map((value) => (Number.isFinite(value) ? value : 0));
  const maxCpu = Math.max(0.2, ...withCpu.map((phase) => stackOf(phase).reduce((sum, value) => sum + value, 0))) * 1.1;
  const yCpu = (ms: number) => cpuBase - (ms / maxCpu) * cpuHeight;
  text(cpu.x, cpuTop - 12, 'CPU per delivered message, ms of one core, by process', 'font-size="13"');
  for (let tick = 0; tick <= maxCpu; tick += niceStep(maxCpu)) {
    parts.push(`<line x1="${cpu.x}" x2="${cpu.x + cpu.w}" y1="${yCpu(tick)}" y2="${yCpu(tick)}" stroke="#eeeeee"/>`);
    text(cpu.x - 6, yCpu(tick) + 4, String(Math.round(tick * 1000) / 1000), 'font-size="10" text-anchor="end"');
  }
  const cpuSlot = cpu.w / Math.max(1, withCpu.length);
  withCpu.forEach((phase, i) => {
    const x = cpu.x + i * cpuSlot + cpuSlot * 0.2;
    let bottom = cpuBase;
    stackOf(phase).forEach((value, j) => {
      const top = bottom - (value / maxCpu) * cpuHeight;
      parts.push(`<rect x="${x.toFixed(1)}" y="${top.toFixed(1)}" width="${(cpuSlot * 0.6).toFixed(1)}" height="${(bottom - top).toFixed(1)}" fill="${CPU_SEGMENTS[j]?.colour}"/>`);
      bottom = top;
    });
    text(x + cpuSlot * 0.3, bottom - 4, (stackOf(phase).reduce((sum, value) => sum + value, 0)).toFixed(2), 'font-size="10" text-anchor="middle"');
    phaseLabel(x + cpuSlot * 0.3, cpuBase + 12, phase.phase);
  });
  const rmsTarget = yCpu(0.1);
  parts.push(`<line x1="${cpu.x}" x2="${cpu.x + cpu.w}" y1="${rmsTarget}" y2="${rmsTarget}" stroke="#1f77b4" stroke-dasharray="6 4"/>`);
  text(cpu.x + cpu.w + 6, rmsTarget + 4, 'RMS target 0.1 ms', 'font-size="10" fill="#1f77b4"');
  CPU_SEGMENTS.forEach((segment, j) => {
    const y = cpuTop + 10 + j * 18;
    parts.push(`<rect x="${cpu.x + cpu.w + 30}" y="${y}" width="12" height="12" fill="${segment.colour}"/>`);
    text(cpu.x + cpu.w + 48, y + 10, segment.name, 'font-size="11"');
  });

  const due = results.dueScan;
  if (due) {
    const line = due.points.map((point) => `${point.storedMessages.toLocaleString('en-US')} stored: ${point.medianMs.toFixed(1)} ms`).join(', ');
    text(20, height - 20, `Due-scan (1,000 due): ${line}; ratio ${due.ratio.toFixed(2)} (target ≤ 2)`, 'font-size="12"');
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">\n${parts.join('\n')}\n</svg>\n`;
}

/** A round grid step giving about five lines up to `max`. */
function niceStep(max: number): number {
  const raw = max / 5;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((candidate) => candidate >= raw) ?? raw;
  return step;
}
