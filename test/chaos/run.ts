/**
 * `npm run chaos`: a fault run against real RMS processes, printing the invariants table
 * and exiting 1 when one fails (2 for a bad setting).
 *
 *   CHAOS_SEED      seeds the fault schedule and the stream (default: random, printed)
 *   CHAOS_CYCLES    fault cycles (default 20)
 *   CHAOS_KINDS     comma-separated fault kinds to draw from (default: all)
 *   CHAOS_INSTANCES RMS instances (default 2)
 *   CHAOS_RATE      sends started per second (default 20)
 *   CHAOS_LOG_DIR   where the RMS logs go (default: a temp folder named for the seed)
 *   CHAOS_KEEP_DATA keep the schema, queue and lists afterwards (`1`)
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ALL_FAULT_KINDS, FAULT_KINDS, parseFaultKinds } from './fault-schedule.js';
import { runChaos } from './chaos-run.js';

function integerSetting(name: string, fallback: number, min: number): number {
  const text = process.env[name];
  if (text === undefined || text === '') return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < min) {
    process.stderr.write(`chaos: ${name} must be an integer >= ${min}, got ${JSON.stringify(text)}\n`);
    process.exit(2);
  }
  return value;
}

const seed = integerSetting('CHAOS_SEED', Math.floor(Math.random() * 2 ** 31), 0);
const cycles = integerSetting('CHAOS_CYCLES', 20, 0);
const instances = integerSetting('CHAOS_INSTANCES', 2, 1);
const ratePerSecond = integerSetting('CHAOS_RATE', 20, 1);
let kinds = ALL_FAULT_KINDS;
try {
  if (process.env['CHAOS_KINDS']) kinds = parseFaultKinds(process.env['CHAOS_KINDS']);
} catch (error) {
  process.stderr.write(`chaos: CHAOS_KINDS: ${(error as Error).message}\n`);
  process.exit(2);
}
const logDir = process.env['CHAOS_LOG_DIR'] || join(tmpdir(), `rms-chaos-${seed}`);

console.log(`chaos: seed ${seed}, ${cycles} cycles over ${kinds.join(', ')}; RMS logs in ${logDir}`);
for (const kind of kinds) console.log(`  ${kind}: ${FAULT_KINDS[kind]}`);
const report = await runChaos({
  seed,
  cycles,
  kinds,
  instances,
  ratePerSecond,
  logDir,
  keepData: process.env['CHAOS_KEEP_DATA'] === '1',
  progress: (line) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${line}`),
});
console.log(`\n${report.text}\n`);
console.log(report.ok ? 'every invariant holds' : 'INVARIANT FAILED (see the table)');
console.log(`repeat with: CHAOS_SEED=${seed} CHAOS_CYCLES=${cycles} npm run chaos`);
process.exit(report.ok ? 0 : 1);
