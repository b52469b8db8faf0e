/**
 * Where an admitted request's time goes under overload, measured, not guessed: the bench
 * client times a request from `pool.request()` to the end of its answer, which holds more
 * than RMS's handling of it. Over the measured window this records
 * - RMS's own view: the admitted (2xx) `/v1` requests' durations from its
 *   `rms_http_request_duration_seconds` histogram (first byte parsed to answer sent), as
 *   bucket bounds, and its event-loop delay (`nodejs_eventloop_lag_*`, since the previous
 *   scrape);
 * - the client's: its own event-loop delay (it shares the box and runs the consumers), the
 *   undici pool's queue (requests waiting for a connection), its fewest connected
 *   connections and the connections it opened in the window;
 * - the kernel's: listen-queue overflows and drops, TCP retransmissions (a connect whose
 *   SYN met a full accept queue is retried after 1 s, then 3 s, 7 s, 15 s in all).
 */
import { channel } from 'node:diagnostics_channel';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { Pool } from 'undici';
import { nowMs, percentiles, type Percentiles } from './latency.js';

/** What {@link OverloadProbe} found over the window. */
export interface OverloadBreakdown {
  /** RMS's admitted `/v1` requests by duration (ms, upper bucket bound → count), from first byte parsed to answer sent. */
  rmsAdmittedMs: { count: number; p50UpToMs: number; p99UpToMs: number; buckets: Record<string, number> };
  /** RMS's event-loop delay at the end of the window (prom-client's, ms). */
  rmsEventLoopLagMs: { p50: number; p99: number; max: number };
  /** The bench process's event-loop delay over the window (ms). */
  clientEventLoopLagMs: { p50: number; p99: number; max: number };
  /** The most requests the undici pool held waiting for a connection, sampled every 50 ms. */
  clientPoolQueuedMax: number;
  /** The fewest connections the pool had connected, sampled every 50 ms. */
  clientPoolConnectedMin: number;
  /** Connections the pool began to open, and those that closed, in the window. */
  connectsStarted: number;
  disconnects: number;
  /**
   * Each request's time (refused ones too) from the moment the pool handed it to a
   * connection: `queuedMs` until undici wrote its headers to the socket (waiting for that
   * connection to connect or be free), `answeredMs` from then to the answer's headers (the
   * network, the kernel's queues, RMS). Over all requests, and over the slowest 1 % by
   * their sum. What the client's own latency adds to these is the pool's queue before a
   * connection was chosen.
   */
  clientSplit: { all: { queuedMs: Percentiles; answeredMs: Percentiles }; slowest1Percent: { count: number; meanQueuedMs: number; meanAnsweredMs: number } };
  /**
   * RMS's sockets as the kernel saw them, sampled every 250 ms with `ss`: the most
   * connections waiting in its accept queue (handshake done, not yet accepted by RMS), and
   * the most accepted connections with bytes RMS had not read yet, and those bytes.
   */
  rmsSockets: { acceptQueueMax: number; unreadConnectionsMax: number; unreadBytesMax: number };
  /** Kernel TCP counters over the window (all processes on the box). */
  kernel: { listenOverflows: number; listenDrops: number; retransmittedSegments: number };
}

interface Histogram {
  /** `le` in seconds → cumulative count. */
  cumulative: Map<number, number>;
}

/** Measures the client, RMS and kernel sides of an overload window. */
export class OverloadProbe {
  readonly #lag = monitorEventLoopDelay({ resolution: 10 });
  #queuedMax = 0;
  #connectedMin = Number.POSITIVE_INFINITY;
  #connectsStarted = 0;
  #disconnects = 0;
  readonly #created = new WeakMap<object, number>();
  readonly #sent = new WeakMap<object, number>();
  readonly #splits: { queuedMs: number; answeredMs: number }[] = [];
  readonly #onCreate = (message: unknown) => {
    this.#created.set((message as { request: object }).request, nowMs());
  };
  readonly #onSendHeaders = (message: unknown) => {
    this.#sent.set((message as { request: object }).request, nowMs());
  };
  readonly #onHeaders = (message: unknown) => {
    const { request } = message as { request: object };
    const created = this.#created.get(request);
    const sent = this.#sent.get(request);
    if (created === undefined || sent === undefined) return;
    this.#splits.push({ queuedMs: sent - created, answeredMs: nowMs() - sent });
  };
  readonly #onDisconnected = () => {
    this.#disconnects += 1;
  };
  #timer: NodeJS.Timeout | undefined;
  #ssTimer: NodeJS.Timeout | undefined;
  readonly #sockets = { acceptQueueMax: 0, unreadConnectionsMax: 0, unreadBytesMax: 0 };
  #before: { histogram: Histogram; kernel: Record<string, number> } | undefined;
  readonly #onBeforeConnect = () => {
    this.#connectsStarted += 1;
  };

  constructor(
    private readonly url: string,
    private readonly pool: Pool,
  ) {}

  /** The undici diagnostics channels the probe listens on, with their listeners. */
  #subscriptions(): [string, (message: unknown) => void][] {
    return [
      ['undici:client:beforeConnect', this.#onBeforeConnect],
      ['undici:client:connectError', this.#onDisconnected],
      ['undici:client:disconnected', this.#onDisconnected],
      ['undici:request:create', this.#onCreate],
      ['undici:client:sendHeaders', this.#onSendHeaders],
      ['undici:request:headers', this.#onHeaders],
    ];
  }

  /** Starts the window. */
  async start(): Promise<void> {
    this.#before = { histogram: await scrapeAdmitted(this.url), kernel: kernelCounters() };
    this.#lag.enable();
    for (const [name, listener] of this.#subscriptions()) channel(name).subscribe(listener);
    const port = new URL(this.url).port;
    this.#ssTimer = setInterval(() => {
      execFile('ss', ['-tnH', 'state', 'all', `sport = :${port}`], (error, stdout) => {
        if (error) return;
        let unreadConnections = 0;
        let unreadBytes = 0;
        for (const line of stdout.trim().split('\n')) {
          const [state, recvQ] = line.trim().split(/\s+/);
          const queued = Number(recvQ);
          if (state === 'LISTEN') this.#sockets.acceptQueueMax = Math.max(this.#sockets.acceptQueueMax, queued);
          else if (queued > 0) {
            unreadConnections += 1;
            unreadBytes += queued;
          }
        }
        this.#sockets.unreadConnectionsMax = Math.max(this.#sockets.unreadConnectionsMax, unreadConnections);
        this.#sockets.unreadBytesMax = Math.max(this.#sockets.unreadBytesMax, unreadBytes);
      });
    }, 250);
    this.#timer = setInterval(() => {
      const { pending, connected } = this.pool.stats;
      this.#queuedMax = Math.max(this.#queuedMax, pending);
      this.#connectedMin = Math.min(this.#connectedMin, connected);
    }, 50);
  }

  /** Ends the window and returns what it found. */
  async stop(): Promise<OverloadBreakdown> {
    clearInterval(this.#timer);
    clearInterval(this.#ssTimer);
    this.#lag.disable();
    for (const [name, listener] of this.#subscriptions()) channel(name).unsubscribe(listener);
    const kernelAfter = kernelCounters();
    const text = await scrapeText(this.url);
    const after = admittedHistogram(text);
    const before = this.#before ?? { histogram: { cumulative: new Map() }, kernel: kernelAfter };
    const buckets: Record<string, number> = {};
    let previous = 0;
    const bounds = [...after.cumulative.keys()].sort((a, b) => a - b);
    const diff = bounds.map((le) => (after.cumulative.get(le) ?? 0) - (before.histogram.cumulative.get(le) ?? 0));
    const count = diff.at(-1) ?? 0;
    bounds.forEach((le, index) => {
      const cumulative = diff[index] ?? 0;
      const label = Number.isFinite(le) ? String(le * 1000) : '+Inf';
      buckets[label] = cumulative - previous;
      previous = cumulative;
    });
    const upTo = (fraction: number) => {
      const index = diff.findIndex((cumulative) => cumulative >= fraction * count);
      return (bounds[index] ?? Number.POSITIVE_INFINITY) * 1000;
    };
    const gauge = (name: string) => Number(new RegExp(`^${name} ([0-9.e+-]+)`, 'm').exec(text)?.[1] ?? Number.NaN) * 1000;
    const ms = (ns: number) => ns / 1e6;
    return {
      rmsAdmittedMs: { count, p50UpToMs: upTo(0.5), p99UpToMs: upTo(0.99), buckets },
      rmsEventLoopLagMs: { p50: gauge('nodejs_eventloop_lag_p50_seconds'), p99: gauge('nodejs_eventloop_lag_p99_seconds'), max: gauge('nodejs_eventloop_lag_max_seconds') },
      clientEventLoopLagMs: { p50: ms(this.#lag.percentile(50)), p99: ms(this.#lag.percentile(99)), max: ms(this.#lag.max) },
      clientPoolQueuedMax: this.#queuedMax,
      clientPoolConnectedMin: this.#connectedMin,
      connectsStarted: this.#connectsStarted,
      disconnects: this.#disconnects,
      clientSplit: split(this.#splits),
      rmsSockets: { ...this.#sockets },
      kernel: {
        listenOverflows: (kernelAfter['ListenOverflows'] ?? 0) - (before.kernel['ListenOverflows'] ?? 0),
        listenDrops: (kernelAfter['ListenDrops'] ?? 0) - (before.kernel['ListenDrops'] ?? 0),
        retransmittedSegments: (kernelAfter['RetransSegs'] ?? 0) - (before.kernel['RetransSegs'] ?? 0),
      },
    };
  }
}

function split(splits: readonly { queuedMs: number; answeredMs: number }[]): OverloadBreakdown['clientSplit'] {
  const slowest = [...splits].sort((a, b) => b.queuedMs + b.answeredMs - (a.queuedMs + a.answeredMs)).slice(0, Math.ceil(splits.length / 100));
  const mean = (values: number[]) => values.reduce((sum, value) => sum + value, 0) / Math.max(1, values.length);
  return {
    all: { queuedMs: percentiles(splits.map((entry) => entry.queuedMs)), answeredMs: percentiles(splits.map((entry) => entry.answeredMs)) },
    slowest1Percent: {
      count: slowest.length,
      meanQueuedMs: mean(slowest.map((entry) => entry.queuedMs)),
      meanAnsweredMs: mean(slowest.map((entry) => entry.answeredMs)),
    },
  };
}

async function scrapeText(url: string): Promise<string> {
  const answer = await fetch(new URL('/metrics', url));
  return answer.text();
}

async function scrapeAdmitted(url: string): Promise<Histogram> {
  return admittedHistogram(await scrapeText(url));
}

/** Sums the 2xx `/v1` series of `rms_http_request_duration_seconds` by bucket. */
function admittedHistogram(text: string): Histogram {
  const cumulative = new Map<number, number>();
  const line = /^rms_http_request_duration_seconds_bucket\{([^}]*)\} (\d+)/gm;
  for (const match of text.matchAll(line)) {
    const labels = match[1] ?? '';
    if (!/route="\/v1/.test(labels) || !/status="2\d\d"/.test(labels)) continue;
    const le = /le="([^"]+)"/.exec(labels)?.[1] ?? '+Inf';
    const bound = le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le);
    cumulative.set(bound, (cumulative.get(bound) ?? 0) + Number(match[2]));
  }
  return { cumulative };
}

/** TcpExt and Tcp counters of /proc/net/{netstat,snmp}, by name. */
function kernelCounters(): Record<string, number> {
  const counters: Record<string, number> = {};
  for (const file of ['/proc/net/netstat', '/proc/net/snmp']) {
    let lines: string[];
    try {
      lines = readFileSync(file, 'utf8').trim().split('\n');
    } catch {
      continue;
    }
    for (let index = 0; index + 1 < lines.length; index += 2) {
      const names = (lines[index] ?? '').split(/\s+/).slice(1);
      const values = (lines[index + 1] ?? '').split(/\s+/).slice(1);
      names.forEach((name, at) => {
        counters[name] = Number(values[at]);
      });
    }
  }
  return counters;
}
