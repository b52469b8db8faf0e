/**
 * What admission control bounds, measured without needing a quiet machine: RMS's resident
 * memory while requests are held in flight. RMS (a child process, its store behind a TCP
 * proxy) takes a warm-up, then the proxy stalls the store and `BENCH_HELD` prepares (200-byte
 * payloads) are sent at once on as many connections, as an overload piles requests up in
 * front of a store that cannot keep up. With the bound, RMS holds `RMS_MAX_INFLIGHT_REQUESTS`
 * of them and refuses the rest at once; without it (a bound above `BENCH_HELD`) it holds
 * them all. The growth of RSS over the held requests is what an overload costs per request
 * admitted. Then the store is released and every admitted request must complete.
 *
 * Run: `node --conditions=rms-source --import tsx bench/admission-memory.ts` with
 * BENCH_HELD (4000) and BENCH_BOUNDS (`512,100000`: one RMS per bound).
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { randomUUID } from 'node:crypto';
import { Pool } from 'undici';
import { FaultProxy } from '../test/support/fault-proxy.js';
import { cleanUp } from './environment.js';
import { memoryOf } from './proc-usage.js';
import { RmsProcess } from './rms-process.js';
import { benchPayload } from './workload.js';

const postgresUrl = process.env['BENCH_POSTGRES_URL'] ?? process.env['TEST_POSTGRES_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const urls = { postgres: postgresUrl, amqp: process.env['RABBITMQ_URL'] ?? 'amqp://guest:guest@127.0.0.1:5672', redis: process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379', zk: process.env['ZK_CONNECT'] ?? '127.0.0.1:2181' };

/** The figures of one bound. */
interface HeldResult {
  bound: number;
  sent: number;
  admitted: number;
  refused: number;
  rssAtRestMb: number;
  rssHeldMb: number;
  /** RSS growth per admitted request, KB. */
  kbPerAdmitted: number;
  /** Statuses of the answers once the store was released. */
  statuses: Record<string, number>;
}

async function scrape(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
  return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN);
}

async function measure(bound: number, held: number): Promise<HeldResult> {
  const runId = randomUUID().slice(0, 8);
  const schema = `bench_admission_${runId}`;
  const token = `bench-producer-token-${runId}`;
  const proxy = await FaultProxy.start({ targetHost: '127.0.0.1', targetPort: Number(new URL(postgresUrl).port || 5432) });
  const storeUrl = new URL(proxy.route(postgresUrl));
  storeUrl.searchParams.set('schema', schema);
  const rms = await RmsProcess.start({
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    logFile: join('/tmp', `rms-admission-memory-${runId}.log`),
    env: {
      STORE_URL: storeUrl.toString(),
      RABBITMQ_URL: urls.amqp,
      REDIS_URL: urls.redis,
      ZK_CONNECT: urls.zk,
      RMS_ZK_ROOT: `/rms-bench/${runId}`,
      RMS_APPS: JSON.stringify([{ app: 'bench-producer', token, roles: ['producer'], checkUrl: 'http://127.0.0.1:9/rms/check', secret: `bench-check-secret-${runId}` }]),
      RMS_CHECK_DELAY_MS: '600000',
      RMS_STORE_DEADLINE_MS: '600000',
      RMS_MAX_INFLIGHT_REQUESTS: String(bound),
      RMS_METRICS_CACHE_MS: '600000',
      RMS_SHUTDOWN_GRACE_MS: '3000',
    },
  });
  const pool = new Pool(rms.url, { connections: held, pipelining: 1, headersTimeout: 600_000, bodyTimeout: 600_000 });
  const body = JSON.stringify({ topic: `bench.admission.${runId}`, payload: benchPayload() });
  const prepare = async () => {
    const answer = await pool.request({ method: 'POST', path: '/v1/messages', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body });
    const text = await answer.body.text();
    return answer.statusCode < 300 ? String(answer.statusCode) : `${answer.statusCode} ${(JSON.parse(text) as { error: { code: string } }).error.code}`;
  };
  try {
    for (let round = 0; round < 20; round++) await Promise.all(Array.from({ length: 50 }, prepare));
    await scrape(rms.url, 'rms_http_requests_in_flight'); // primes the backlog cache
    await sleep(1000);
    const rssAtRestMb = memoryOf(rms.pid)?.rssMb ?? Number.NaN;
    proxy.stall();
    const answers = Array.from({ length: held }, () => prepare().catch((error: unknown) => (error instanceof Error ? error.message : 'failed')));
    const refusedBefore = await scrape(rms.url, 'rms_http_requests_refused_total');
    let admitted = 0;
    let refused = 0;
    // The store's driver times a stalled statement out after 10 s: measure well before.
    for (let waited = 0; waited < 7000; waited += 100) {
      await sleep(100);
      admitted = await scrape(rms.url, 'rms_http_requests_in_flight');
      refused = (await scrape(rms.url, 'rms_http_requests_refused_total')) - refusedBefore;
      if (admitted + refused >= held) break;
    }
    await sleep(500);
    const rssHeldMb = memoryOf(rms.pid)?.rssMb ?? Number.NaN;
    proxy.restore();
    const statuses: Record<string, number> = {};
    for (const status of await Promise.all(answers)) statuses[status] = (statuses[status] ?? 0) + 1;
    return { bound, sent: held, admitted, refused, rssAtRestMb, rssHeldMb, kbPerAdmitted: ((rssHeldMb - rssAtRestMb) * 1024) / Math.max(1, admitted), statuses };
  } finally {
    proxy.restore();
    await pool.close();
    await rms.stop();
    await proxy.close();
    await cleanUp(urls, { queues: [], schemas: [schema], redisTopics: [], zkNodes: [`/rms-bench/${runId}/degrade`, `/rms-bench/${runId}`] });
  }
}

const held = Number(process.env['BENCH_HELD'] ?? 4000);
const results: HeldResult[] = [];
for (const bound of (process.env['BENCH_BOUNDS'] ?? '512,100000').split(',').map(Number)) results.push(await measure(bound, held));
process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
