/**
 * What the delivery path counts and times, by topic: publishes, delivery rounds (first and
 * redeliveries), nacks, check-back verdicts and durations, DEAD messages, and the two
 * latencies an SRE alerts on (confirm → first publish, publish → ack).
 */
import { Counter, Histogram, type Registry } from 'prom-client';

/** Buckets (seconds) for steps RMS itself takes: a publish after a confirm. */
const FAST_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/** Buckets (seconds) for what consumers take: publish → ack spans handling and retries. */
const CONSUMER_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600];

/** The delivery path's counters and histograms, registered in `registry`. */
export class DeliveryMetrics {
  /** Publish attempts by topic, transport and outcome (`ok`, `failed`). */
  readonly publishes: Counter<'topic' | 'transport' | 'outcome'>;
  /** Delivery rounds by topic and kind (`first`, or `redelivery` for every later round). */
  readonly deliveryRounds: Counter<'topic' | 'kind'>;
  /** Consumer acks by topic. */
  readonly acks: Counter<'topic'>;
  /** Consumer nacks (a handler reported a failure) by topic. */
  readonly nacks: Counter<'topic'>;
  /** Check-backs by topic and verdict (`COMMIT`, `ROLLBACK`, `UNKNOWN`). */
  readonly checkBacks: Counter<'topic' | 'verdict'>;
  /** Messages that became DEAD, by topic and reason. */
  readonly dead: Counter<'topic' | 'reason'>;
  /** Seconds from confirm to the first successful publish. */
  readonly confirmToFirstPublish: Histogram;
  /** Seconds from the last publish to the consumer's ack, by the transport it went out on. */
  readonly publishToAck: Histogram<'transport'>;
  /** Seconds one check-back call took, by verdict. */
  readonly checkBackDuration: Histogram<'verdict'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.publishes = new Counter({ name: 'rms_publishes_total', help: 'Publish attempts by topic, transport and outcome', labelNames: ['topic', 'transport', 'outcome'], registers });
    this.deliveryRounds = new Counter({
      name: 'rms_delivery_rounds_total',
      help: 'Delivery rounds (a publish and its immediate retries) by topic and kind: first, or redelivery',
      labelNames: ['topic', 'kind'],
      registers,
    });
    this.acks = new Counter({ name: 'rms_acks_total', help: 'Messages acked by a consumer, by topic', labelNames: ['topic'], registers });
    this.nacks = new Counter({ name: 'rms_nacks_total', help: 'Failed handlings reported by consumers (nacks), by topic', labelNames: ['topic'], registers });
    this.checkBacks = new Counter({ name: 'rms_check_backs_total', help: 'Check-backs made, by topic and verdict', labelNames: ['topic', 'verdict'], registers });
    this.dead = new Counter({ name: 'rms_dead_messages_total', help: 'Messages that became DEAD, by topic and reason', labelNames: ['topic', 'reason'], registers });
    this.confirmToFirstPublish = new Histogram({
      name: 'rms_confirm_to_first_publish_seconds',
      help: 'Time from confirm (by the producer, a check-back or an admin) to the first successful publish',
      buckets: FAST_BUCKETS,
      registers,
    });
    this.publishToAck = new Histogram({
      name: 'rms_publish_to_ack_seconds',
      help: 'Time from the last publish of a message to its ack, by the transport it went out on',
      labelNames: ['transport'],
      buckets: CONSUMER_BUCKETS,
      registers,
    });
    this.checkBackDuration = new Histogram({
      name: 'rms_check_back_duration_seconds',
      help: 'Duration of one check-back call to the producer, by verdict',
      labelNames: ['verdict'],
      buckets: FAST_BUCKETS,
      registers,
    });
  }
}

/** Seconds from `from` to `to`, never negative (clocks of two instances may disagree slightly). */
export function secondsBetween(from: Date, to: Date): number {
  return Math.max(0, (to.getTime() - from.getTime()) / 1000);
}
