import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { runChaos } from './chaos-run.js';
import { ALL_FAULT_KINDS } from './fault-schedule.js';

// The short chaos run of CI: every fault kind once, against two real RMS processes. The
// long run is `npm run chaos` (docs/reliability.md). CHAOS_SEED replays a failure.
const seed = Number(process.env['CHAOS_SEED'] ?? 10);

test(
  'under every kind of fault once: no confirmed message lost, no cancelled one delivered, none stuck, no unexpected 5xx',
  { timeout: 170_000 },
  async () => {
    const report = await runChaos({
      seed,
      cycles: ALL_FAULT_KINDS.length,
      instances: 2,
      logDir: join(tmpdir(), `rms-chaos-test-${process.pid}`),
      settleTimeoutMs: 60_000,
    });
    console.log(report.text.replace(/^/gm, '# '));
    assert.deepEqual(new Set(report.faults.map((fault) => fault.kind)), new Set(ALL_FAULT_KINDS), 'every kind was injected');
    assert.ok(report.ok, `an invariant failed (seed ${seed}):\n${report.text}`);
  },
);
