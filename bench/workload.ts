/**
 * What every load phase shares: the message body and the shape of a phase's result.
 */
import type { LatencySummary } from './latency.js';
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

/** The measured figures of one load phase. */
export interface PhaseResult {
  /** Short key: `raw`, `reliable`, `degraded`, `steady-1000`, `profiled`. */
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
  /** The RMS process over the load window (none for the raw baseline). */
  rms?: ProcessUsage;
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
}
