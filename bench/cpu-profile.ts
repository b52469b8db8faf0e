/**
 * Reads a V8 `.cpuprofile` (what `node --cpu-prof` writes) and says where the time went:
 * self time per function and per package, over the load window only.
 *
 * Self time of a sample is the time delta that follows it (`timeDeltas[i + 1]`), which
 * is exact where a sampling interval times the hit count is not. The profile's timestamps
 * are microseconds of the monotonic clock, the same clock as `process.hrtime` in any
 * process on the machine, so the bench's own load window selects the samples.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** One row of a self-time table. */
export interface SelfTimeRow {
  name: string;
  selfMs: number;
  /** Percent of the busy (non-idle) time in the window. */
  percent: number;
}

/** The summary of one profile. */
export interface ProfileSummary {
  file: string;
  /** Sampled time in the window, ms (idle included). */
  windowMs: number;
  /** Sampled time not idle, ms. */
  busyMs: number;
  /** Whether the window matched the profile's clock (otherwise the whole profile is used). */
  windowed: boolean;
  /**
   * The process's CPU time over the same window, from /proc, when known. V8 samples the
   * main thread on a wall-clock timer, so on a saturated box a thread that is runnable but
   * descheduled keeps being sampled where it stopped (typically in a socket `writev` that
   * woke a peer): `busyMs - processCpuMs` is roughly that descheduled time.
   */
  processCpuMs?: number;
  topFunctions: SelfTimeRow[];
  byPackage: SelfTimeRow[];
  /** The packages grouped by what they do for RMS (HTTP, PostgreSQL, AMQP, ...). */
  byLayer: SelfTimeRow[];
}

/** Which layer of RMS a package serves, for a coarser view than packages. */
const LAYERS: [RegExp, string][] = [
  [/^(express|router|body-parser|raw-body|iconv-lite|parseurl|path-to-regexp|finalhandler|on-finished|content-type|type-is|mime-types|mime-db|media-typer|qs|statuses|http-errors|depd|negotiator|accepts|vary|etag|fresh|proxy-addr|forwarded|ipaddr\.js|cookie|encodeurl|escape-html|bytes|unpipe|ee-first|send|setprototypeof|safer?-buffer|side-channel.*|call-bind.*|get-intrinsic|es-.*|has-symbols|hasown|function-bind|gopd|math-intrinsics|dunder-proto|object-inspect)$|^node: _http_/, 'HTTP server (express and node:http)'],
  [/^(pg|pg-protocol|pg-pool|pg-types|pg-int8|postgres-.*|pg-connection-string|pgpass|split2)$/, 'PostgreSQL driver (pg)'],
  [/^(amqplib|buffer-more-ints|url-parse|querystringify|requires-port)$/, 'AMQP (amqplib)'],
  [/^(ioredis|@ioredis\/.*|redis-.*|denque|cluster-key-slot|standard-as-callback|node-zookeeper-client|async|underscore)$/, 'Redis and ZooKeeper clients'],
  [/^zod$/, 'validation (zod)'],
  [/^(pino|pino-.*|sonic-boom|thread-stream|on-exit-leak-free|atomic-sleep|quick-format-unescaped|safe-stable-stringify|real-require|process-warning|@pinojs\/.*)$/, 'logging (pino)'],
  [/^(prom-client|tdigest|bintrees)$/, 'metrics (prom-client)'],
  [/^rms /, 'RMS code (server and SDK)'],
  [/^node: (net|internal\/streams|internal\/stream_base_commons|stream|internal\/net)/, 'node sockets and streams (all connections)'],
  [/^node: /, 'node core, other (events, timers, buffers, crypto, ...)'],
  [/^\(garbage collector\)$/, 'garbage collector'],
  [/^\(program\)$/, 'V8 (program)'],
];

/** The layer of a package label (see {@link packageOf}); `writev` gets its own row. */
export function layerOf(pkg: string, functionName: string): string {
  if (functionName === 'writev' || functionName === 'writeBuffer' || functionName === 'writeUtf8String' || functionName === 'writeLatin1String') {
    return 'socket writes (native writev/write)';
  }
  if (pkg === 'native / V8 builtins') return 'other native code and V8 builtins';
  for (const [pattern, layer] of LAYERS) if (pattern.test(pkg)) return layer;
  return 'other packages';
}

const REPO_PARTS: [RegExp, string][] = [
  [/\/services\/message-service\/(?:src|dist)\/([^/]+)\//, 'rms server: $1'],
  [/\/services\/message-service\/(?:src|dist)\//, 'rms server'],
  [/\/client-sdk\/(?:src|dist)\//, 'rms client-sdk (in the server)'],
];

/** Where a function lives: an npm package, a part of RMS, Node's internals, or a V8 pseudo-frame. */
export function packageOf(url: string, functionName: string): string {
  if (url === '') {
    if (functionName.startsWith('(')) return functionName; // (garbage collector), (program), (idle)
    return 'native / V8 builtins';
  }
  if (url.startsWith('node:')) return `node: ${url.slice(5).split('/').slice(0, 2).join('/')}`;
  const modules = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (modules) return modules[1] as string;
  for (const [pattern, label] of REPO_PARTS) {
    const match = pattern.exec(url);
    if (match) return label.replace('$1', match[1] ?? '');
  }
  return url;
}

function shortUrl(url: string): string {
  const modules = url.lastIndexOf('node_modules/');
  if (modules >= 0) return url.slice(modules + 'node_modules/'.length);
  const repo = /\/(services|client-sdk)\//.exec(url);
  if (repo) return url.slice(repo.index + 1);
  return url.replace(/^file:\/\//, '');
}

/**
 * Summarises `file`. `window` is `[fromUs, toUs]` on the monotonic clock in microseconds
 * (`process.hrtime.bigint() / 1000n` in the bench); samples outside it are ignored.
 */
export function summarizeCpuProfile(file: string, window?: [number, number], top = 15): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  let windowed = window !== undefined && window[0] < profile.endTime && window[1] > profile.startTime;
  const selfUs = new Map<number, number>();
  const tally = (from: number, to: number) => {
    selfUs.clear();
    let at = profile.startTime;
    for (let i = 0; i < profile.samples.length; i++) {
      at += profile.timeDeltas[i] ?? 0;
      const delta = profile.timeDeltas[i + 1] ?? 0;
      if (at < from || at > to) continue;
      const id = profile.samples[i] as number;
      selfUs.set(id, (selfUs.get(id) ?? 0) + delta);
    }
  };
  tally(windowed && window ? window[0] : -Infinity, windowed && window ? window[1] : Infinity);
  if (selfUs.size === 0) {
    windowed = false;
    tally(-Infinity, Infinity);
  }

  const byFunction = new Map<string, number>();
  const byPackage = new Map<string, number>();
  const byLayer = new Map<string, number>();
  let windowUs = 0;
  let idleUs = 0;
  for (const [id, us] of selfUs) {
    const frame = (byId.get(id) as ProfileNode).callFrame;
    windowUs += us;
    if (frame.functionName === '(idle)') {
      idleUs += us;
      continue;
    }
    const name = frame.url === '' ? frame.functionName || '(anonymous)' : `${frame.functionName || '(anonymous)'}  ${shortUrl(frame.url)}:${frame.lineNumber + 1}`;
    byFunction.set(name, (byFunction.get(name) ?? 0) + us);
    const pkg = packageOf(frame.url, frame.functionName);
    byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + us);
    const layer = layerOf(pkg, frame.functionName);
    byLayer.set(layer, (byLayer.get(layer) ?? 0) + us);
  }
  const busyUs = windowUs - idleUs;
  const rows = (map: Map<string, number>, limit: number): SelfTimeRow[] =>
    [...map]
      .sort((a, b) => b[1] - a[1])
      .slice(0, limit)
      .map(([name, us]) => ({ name, selfMs: Math.round(us / 100) / 10, percent: Math.round((1000 * us) / busyUs) / 10 }));
  return {
    file,
    windowMs: Math.round(windowUs / 1000),
    busyMs: Math.round(busyUs / 1000),
    windowed,
    topFunctions: rows(byFunction, top),
    byPackage: rows(byPackage, top),
    byLayer: rows(byLayer, LAYERS.length + 4),
  };
}
