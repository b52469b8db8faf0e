/**
 * What every load phase shares: the message body and the shape of a phase's result.
 */
import type { Message } from '@rms/message-service';
import type { OverloadBreakdown } from './overload-breakdown.js';
import type { LatencySummary, Percentiles } from './latency.js';
import type { PostgresCounters } from './postgres-stats.js';
import type { CpuBreakdown, ProcessUsage } from './proc-usage.js';

/** Size of the JSON payload every phase sends, in bytes (the "~200-byte JSON"). */
export const PAYLOAD_BYTES = 200;

/** A JSON object that serialises to exactly {@link PAYLOAD_BYTES} bytes, shaped like an order event. */
export function benchPayload(): Record<string, unknown> {
  const base = { orderId: 'order-000123456', sku: 'SKU-00042', qty: 3, amountCents: 129_900, currency: 'EUR', customer: 'cust-0000789', note: '' };
  const pad = PAYLOAD_BYTES - Buffer.byteLength(JSON.stringify(base));
  return { ...base, note: 'x'.repeat(Math.max(0, pad)) };
}

/**
 * A message as the store returns it with the bench payload: after a prepare (`PENDING`)
 * or a confirm (`SENDING`, with one `bench` group's delivery due).
 */
export function benchMessage(status: 'PENDING' | 'SENDING', fields: Pick<Message, 'id' | 'producerMessageId' | 'topic'>): Message {
  const now = new Date();
  const sending = status === 'SENDING';
  return {
    ...fields,
    producer: 'bench-producer',
    payload: benchPayload() as Message['payload'],
    headers: {},
    status,
    deadReason: null,
    createdAt: now,
    updatedAt: now,
    confirmedAt: sending ? now : null,
    completedAt: null,
    cancelledAt: null,
    checkAttempts: 0,
    deliveryAttempts: 0,
    nextAttemptAt: now,
    lastTransport: null,
    lastError: null,
    deliverAt: null,
    deliveries: sending ? [{ group: 'bench', status: 'SENDING', attempts: 0, nextAttemptAt: now, lastTransport: null, lastError: null, ackedAt: null }] : [],
    version: 1,
  } as Message;
}

/** The measured figures of one load phase. */
export interface PhaseResult {
  /** Short key: `raw`, `reliable`, `degraded`, `per-message`, `three-groups`, `two-rms`, `steady-1000`, `overload`, `profiled`. */
  phase: string;
  /** What ran, in a sentence. */
  description: string;
  /** Messages delivered end to end (handled and acked) in the measured window. */
  messages: number;
  /** From the first publish (or prepare) of the window to the last ack, in seconds. */
  seconds: number;
  /** `messages / seconds`. */
  messagesPerSecond: number;
  /** Confirmed messages per second of load (the producers' side). */
  confirmedPerSecond: number;
  /** Confirm answer → handler, in ms. */
  latency: LatencySummary;
  /** The RMS process over the load window (none for the raw baseline); with several, their sum (peak RSS: the largest). */
  rms?: ProcessUsage;
  /** Each RMS process over the load window, in start order, when the phase ran more than one. */
  rmsProcesses?: ProcessUsage[];
  /** The bench process (producers and consumer) over the load window, percent of one core. */
  benchCpuPercent: number;
  /** Where the machine's CPU went over the load window. */
  cpu: CpuBreakdown;
  /** Sends or publishes that failed outright. */
  errors: number;
  /** Prepares whose confirm did not get through (RMS would check back on them). */
  unconfirmed: number;
  /** Handler runs for a message already handled (redeliveries). */
  duplicates: number;
  /** PostgreSQL's work per delivered message (database-wide counters; RMS phases only). */
  postgresPerMessage?: PostgresCounters;
  /** Deliveries by transport (`rabbitmq`, `redis`), to show which path carried the phase. */
  transports?: Record<string, number>;
  /** The knobs of the phase (producers, windows, durations). */
  settings: Record<string, number | string | boolean>;
  /** CPU and WAL per delivered message (see `efficiency.ts`). */
  efficiency?: Efficiency;
  /** Ratios computed within the run that measured this phase (a median phase holds the median of each run's ratio). */
  ratios?: PhaseRatios;
  /** `per-message`: `GET /healthz` on the same RMS process with the same client, just before the flow. */
  healthz?: HealthzBaseline;
  /** Per-request answers of the plain HTTP client (`per-message`, `overload`). */
  requests?: RequestSummary;
  /** `overload`: where an admitted request's time went (`bench/overload-breakdown.ts`). */
  breakdown?: OverloadBreakdown;
  /** `overload`: the offered rate. */
  offeredPerSecond?: number;
  /** How many runs this phase's figures are the median of (absent: one). */
  runs?: number;
}

/** CPU time and WAL work per delivered message, in milliseconds of CPU (one core). */
export interface Efficiency {
  /** Every RMS process of the phase. */
  rmsCpuMs: number;
  /** `1000 / rmsCpuMs`: what one core given to RMS alone would carry, msgs/s. */
  messagesPerRmsCore: number;
  postgresCpuMs: number;
  rabbitmqCpuMs: number;
  redisCpuMs: number;
  /** The bench process: producers and consumers (the SDK, amqplib or undici). */
  clientCpuMs: number;
  /** The whole machine's busy time, including anything not listed. */
  totalCpuMs: number;
  /** `pg_stat_wal.wal_sync` per message: WAL flushes to disk. */
  walSyncs: number;
  /** `pg_stat_wal.wal_write` per message. */
  walWrites: number;
}

/** Ratios between phases of one run. */
export interface PhaseRatios {
  /** msgs/s over the same run's raw amqplib msgs/s. */
  toRaw?: number;
  /** msgs/s over the same server's `GET /healthz` req/s (`per-message`). */
  toHealthz?: number;
}

/** `GET /healthz` back to back over the per-message client's connections. */
export interface HealthzBaseline {
  connections: number;
  requests: number;
  seconds: number;
  requestsPerSecond: number;
  /** RMS CPU per request, ms. */
  rmsCpuMs: number;
  /** The bench process's CPU per request, ms. */
  clientCpuMs: number;
  /** Request latency, ms. */
  latency: Percentiles;
  /** Answers other than 200, and network errors. */
  errors: number;
}

/** What the plain HTTP client's requests got back over the measured window. */
export interface RequestSummary {
  /** Requests answered or failed. */
  requests: number;
  /** Answers by HTTP status; `error` for a network error or timeout. */
  byStatus: Record<string, number>;
  /** 503 answers (RMS's admission control refusing work). */
  rejected: number;
  /** 503 answers that carried `Retry-After`. */
  rejectedWithRetryAfter: number;
  /** Latency of the admitted requests (any answer but 503 or a network error), ms. */
  admitted: Percentiles;
}

/** How a producer of the bench sends one message: prepare, an empty local transaction, confirm. */
export interface MessageSender {
  /**
   * Sends one message to `topic`; calls `confirming(id)` just before the confirm goes out.
   * Rejects when the message could not be prepared.
   * @returns the message's id and whether the confirm got through.
   */
  send(topic: string, payload: unknown, confirming: (id: string) => void): Promise<{ id: string; confirmed: boolean }>;
  /** Closes the sender's connections. */
  close(): Promise<void>;
}
