/**
 * Reads a `--cpu-prof` profile of `bench/client-cpu.ts` per mode: give the profile and the
 * JSON line the run printed; prints each mode's top functions and packages.
 *
 * ```sh
 * node --cpu-prof --cpu-prof-dir=/tmp/client-prof --conditions=rms-source --import tsx bench/client-cpu.ts > /tmp/client-cpu.json
 * node --import tsx bench/client-profile.ts /tmp/client-prof/CPU.*.001.cpuprofile /tmp/client-cpu.json
 * ```
 */
import { readFileSync } from 'node:fs';
import { summarizeCpuProfile } from './cpu-profile.js';

const [profile, resultsFile, top = '25'] = process.argv.slice(2);
if (profile === undefined || resultsFile === undefined) throw new Error('usage: client-profile.ts <profile> <client-cpu JSON line file> [top]');
const { results } = JSON.parse(readFileSync(resultsFile, 'utf8').trim().split('\n').at(-1) ?? '{}') as { results: { mode: string; messages: number; windowUs: [number, number] }[] };
for (const { mode, messages, windowUs } of results) {
  const summary = summarizeCpuProfile(profile, windowUs, Number(top));
  process.stdout.write(`\n== ${mode}: ${messages} messages, ${summary.busyMs} ms sampled busy (${((summary.busyMs / messages) * 1000).toFixed(1)} µs/msg)${summary.windowed ? '' : ' (whole profile: window not found)'}\n`);
  for (const row of summary.byPackage) process.stdout.write(`  pkg  ${row.percent.toFixed(1).padStart(5)} %  ${row.name}\n`);
  for (const row of summary.topFunctions) process.stdout.write(`  fn   ${row.percent.toFixed(1).padStart(5)} %  ${row.name}\n`);
}
