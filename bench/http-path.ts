/**
 * The cost of RMS's HTTP path alone: the express app RMS serves (`createHttpApp`: request
 * id, metrics, admission control, authentication, routing, body reading, validation,
 * spans, views, answers) in a child process whose message service answers at once with a
 * canned message, no store and no broker behind it. An undici pool drives `GET /healthz`
 * and prepare-then-confirm pairs (answered whole, then with `Prefer: return=minimal`); the child's CPU per request (from /proc) is what the
 * HTTP layer costs, free of the store's batching, which makes the full flow's CPU per
 * message depend on its rate. Run: `node --conditions=rms-source --import tsx
 * bench/http-path.ts` (BENCH_HTTP_MS, 5000, per phase; BENCH_HTTP_CONNECTIONS, 64).
 *
 * CPU time per request moves with whatever else runs on the machine. With
 * BENCH_CALLGRIND=<count> the child runs under valgrind's callgrind instead, instrumented
 * only while exactly <count> requests (pairs, for prepare and confirm) of each phase run
 * after a warm-up, and the figure is instructions per request: the same on a busy box.
 */
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { AppRegistry, Metrics, createHttpApp, createLogger, type Message } from '@rms/message-service';
import type { MessageService } from '../services/message-service/src/application/message-service.js';
import type { MessageStats } from '../services/message-service/src/application/message-stats.js';
import { Pool } from 'undici';
import { nowMs } from './latency.js';
import { cpuSecondsOf } from './proc-usage.js';
import { benchMessage, benchPayload } from './workload.js';

const TOKEN = 'bench-http-path-token-0123456789';
const MESSAGE_ID = '01936f7e-7c1a-7d2b-9c3d-4e5f60718293';

/** A message as the store would return it after a prepare (`status`) of the bench payload. */
const cannedMessage = (status: 'PENDING' | 'SENDING'): Message => benchMessage(status, { id: MESSAGE_ID, producerMessageId: null, topic: 'bench.http-path' });

/** The child: RMS's express app over a service that answers at once. Prints its port. */
async function serve(): Promise<void> {
  const pending = cannedMessage('PENDING');
  const sending = cannedMessage('SENDING');
  const service = {
    prepare: async () => ({ message: pending, created: true }),
    confirm: async () => sending,
  } as unknown as MessageService;
  const app = createHttpApp({
    service,
    stats: {} as MessageStats,
    registry: new AppRegistry([{ app: 'bench-producer', token: TOKEN, roles: ['producer'], checkUrl: 'http://127.0.0.1:9/check', secret: 'bench-http-path-secret-0123' }]),
    readinessChecks: [],
    maxPayloadBytes: 262_144,
    maxPayloadDepth: 64,
    maxHeartbeatExtendMs: 3_600_000,
    logger: createLogger('warn'),
    metrics: new Metrics(),
  });
  const server = app.listen(0, '127.0.0.1');
  // Under valgrind a pause between phases outlasts node's 5 s default, and the client would
  // send on a socket the server is closing.
  server.keepAliveTimeout = 600_000;
  await once(server, 'listening');
  // A normal exit, so that `--cpu-prof` writes its profile.
  process.once('SIGINT', () => process.exit(0));
  process.stdout.write(`${(server.address() as AddressInfo).port}\n`);
}

/** `connections` loops of `worker` for `ms`; returns how many ran. */
async function loop(ms: number, connections: number, worker: () => Promise<void>): Promise<number> {
  const deadline = nowMs() + ms;
  let count = 0;
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (nowMs() < deadline) {
        await worker();
        count += 1;
      }
    }),
  );
  return count;
}

/** `count` runs of `worker` over `connections` loops. */
async function runCount(count: number, connections: number, worker: () => Promise<void>): Promise<void> {
  let started = 0;
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (started < count) {
        started += 1;
        await worker();
      }
    }),
  );
}

/** Instructions callgrind counted in the child between `-z` and `-d`: the `totals:` line of the newest dump. */
function callgrindDump(pid: number, outFile: string): number {
  execFileSync('callgrind_control', ['-d', String(pid)], { stdio: 'ignore' });
  const dir = outFile.slice(0, outFile.lastIndexOf('/'));
  const base = outFile.slice(outFile.lastIndexOf('/') + 1);
  const dumps = readdirSync(dir).filter((name) => name.startsWith(`${base}.`)).sort((a, b) => Number(a.split('.').pop()) - Number(b.split('.').pop()));
  const text = readFileSync(`${dir}/${dumps.at(-1)}`, 'utf8');
  return Number(/^totals: (\d+)/m.exec(text)?.[1] ?? Number.NaN);
}

async function main(): Promise<void> {
  const durationMs = Number(process.env['BENCH_HTTP_MS'] ?? 5000);
  const connections = Number(process.env['BENCH_HTTP_CONNECTIONS'] ?? 64);
  const callgrindCount = Number(process.env['BENCH_CALLGRIND'] ?? 0);
  const callgrindOut = `/tmp/rms-http-path-${process.pid}.callgrind`;
  // BENCH_CHILD_NODE_OPTIONS: extra flags for the child's node, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`.
  const extraNodeArgs = (process.env['BENCH_CHILD_NODE_OPTIONS'] ?? '').split(' ').filter(Boolean);
  const nodeArgs = ['--conditions=rms-source', '--import', 'tsx', ...extraNodeArgs, fileURLToPath(import.meta.url), 'serve'];
  const [command, args] = callgrindCount
    ? ['valgrind', ['--tool=callgrind', '--instr-atstart=no', '--smc-check=all-non-file', `--callgrind-out-file=${callgrindOut}`, process.execPath, ...nodeArgs]]
    : [process.execPath, nodeArgs];
  const child = spawn(command, args as string[], {
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const [chunk] = (await once(child.stdout, 'data')) as [Buffer];
  const pool = new Pool(`http://127.0.0.1:${chunk.toString().trim()}`, { connections, pipelining: 1 });
  const pid = child.pid as number;
  const body = JSON.stringify({ topic: 'bench.http-path', payload: benchPayload() });
  const headers = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };
  const check = (status: number, expected: number, what: string) => {
    if (status !== expected) throw new Error(`${what} answered ${status}`);
  };
  const phases = {
    healthz: async () => {
      const answer = await pool.request({ method: 'GET', path: '/healthz' });
      await answer.body.dump();
      check(answer.statusCode, 200, 'GET /healthz');
    },
    prepareConfirm: async () => {
      const prepared = await pool.request({ method: 'POST', path: '/v1/messages', headers, body });
      const { id } = (await prepared.body.json()) as { id: string };
      check(prepared.statusCode, 201, 'prepare');
      const confirmed = await pool.request({ method: 'POST', path: `/v1/messages/${id}/confirm`, headers: { authorization: headers.authorization } });
      await confirmed.body.dump();
      check(confirmed.statusCode, 200, 'confirm');
    },
    prepareConfirmMinimal: async () => {
      const prepared = await pool.request({ method: 'POST', path: '/v1/messages', headers: { ...headers, prefer: 'return=minimal' }, body });
      const { id } = (await prepared.body.json()) as { id: string };
      check(prepared.statusCode, 201, 'prepare');
      const confirmed = await pool.request({ method: 'POST', path: `/v1/messages/${id}/confirm`, headers: { authorization: headers.authorization, prefer: 'return=minimal' } });
      await confirmed.body.dump();
      check(confirmed.statusCode, 200, 'confirm');
    },
  };
  const results: Record<string, { requests: number; requestsPerSecond: number; cpuMsPerRequest: number } | { requests: number; instructionsPerRequest: number }> = {};
  try {
    if (callgrindCount) {
      for (const [name, worker] of Object.entries(phases)) {
        await runCount(callgrindCount, connections, worker);
        execFileSync('callgrind_control', ['-z', String(pid)], { stdio: 'ignore' });
        execFileSync('callgrind_control', ['-i', 'on', String(pid)], { stdio: 'ignore' });
        await runCount(callgrindCount, connections, worker);
        execFileSync('callgrind_control', ['-i', 'off', String(pid)], { stdio: 'ignore' });
        const requests = name === 'healthz' ? callgrindCount : 2 * callgrindCount;
        results[name] = { requests, instructionsPerRequest: Math.round(callgrindDump(pid, callgrindOut) / requests) };
      }
      process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
      return;
    }
    for (const [name, worker] of Object.entries(phases)) {
      await loop(Math.min(2000, durationMs), connections, worker);
      const cpuBefore = cpuSecondsOf(pid) ?? 0;
      const startedAt = nowMs();
      const runs = await loop(durationMs, connections, worker);
      const seconds = (nowMs() - startedAt) / 1000;
      const requests = name === 'healthz' ? runs : 2 * runs;
      results[name] = { requests, requestsPerSecond: requests / seconds, cpuMsPerRequest: (((cpuSecondsOf(pid) ?? 0) - cpuBefore) * 1000) / requests };
    }
    process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
  } finally {
    await pool.close();
    child.kill('SIGINT');
    await once(child, 'exit');
  }
}

if (process.argv[2] === 'serve') await serve();
else await main();
