/**
 * The one place that decides *when*: the check-back schedule (design section 5) and the
 * delivery and redelivery schedule (section 6). Pure functions of the message's counters,
 * the outcome of the last attempt and the configured durations.
 */

/** Check-back timing. */
export interface CheckSchedule {
  /** First check this long after prepare. */
  delayMs: number;
  /** Then every this long. */
  intervalMs: number;
  /** At most this many checks. */
  maxChecks: number;
}

/** Delivery timing. */
export interface DeliverySchedule {
  /** After a delivery the consumer has this long to ack before it is redelivered. */
  ackTimeoutMs: number;
  /** Immediate retries of a failed publish inside one delivery round. */
  retryImmediate: number;
  /** The next round this long after a round whose publishes all failed... */
  retryFirstDelayMs: number;
  /** ...and this long after each further failed round in a row. */
  retryIntervalMs: number;
  /** At most this many delivery rounds. */
  retryMax: number;
}

/** What to do after an UNKNOWN (or missing) check-back answer. */
export type AfterCheck = { kind: 'retry'; at: Date } | { kind: 'exhausted' };

/**
 * After check number `checksMade` (counting this one) got no decisive answer: check again
 * an interval later, or give up when the maximum is reached.
 */
export function afterUnansweredCheck(schedule: CheckSchedule, checksMade: number, now: Date): AfterCheck {
  if (checksMade >= schedule.maxChecks) return { kind: 'exhausted' };
  return { kind: 'retry', at: new Date(now.getTime() + schedule.intervalMs) };
}

/** What to do after a delivery round. */
export type AfterDelivery = { kind: 'await-ack' | 'retry'; at: Date } | { kind: 'exhausted' };

/**
 * When the next delivery round is due after round number `roundsMade` (counting this one).
 *
 * - Published: wait for the ack until the ack deadline, then redeliver (if rounds remain;
 *   the last round too waits for its ack, so a late consumer is not declared dead early).
 * - Every publish of the round failed: the first failed round in a row waits
 *   `retryFirstDelayMs`, later ones `retryIntervalMs`; the last round gives up at once.
 *
 * @param previousRoundFailed whether the round before this one also failed to publish.
 */
export function afterDeliveryRound(
  schedule: DeliverySchedule,
  roundsMade: number,
  published: boolean,
  previousRoundFailed: boolean,
  now: Date,
): AfterDelivery {
  if (published) return { kind: 'await-ack', at: new Date(now.getTime() + schedule.ackTimeoutMs) };
  if (roundsMade >= schedule.retryMax) return { kind: 'exhausted' };
  const delay = previousRoundFailed ? schedule.retryIntervalMs : schedule.retryFirstDelayMs;
  return { kind: 'retry', at: new Date(now.getTime() + delay) };
}

/**
 * How much later than the confirm's write a first publish may land and still leave its
 * consumer the whole ack timeout before the deadline that write recorded (see
 * `firstRoundDeadline`); a publish that lands later has its round recorded again.
 */
export const FIRST_PUBLISH_ALLOWANCE_MS = 1000;

/**
 * The ack deadline that a confirm's write records for round 1 of a group's delivery, when
 * the confirming instance publishes it right after that write (design section 6), or
 * `null` when round 1 is to be recorded only once published.
 *
 * The deadline is the ack timeout plus `FIRST_PUBLISH_ALLOWANCE_MS` after the confirm: the
 * consumer of a publish that lands within the allowance has at least the whole ack timeout.
 * The recorded round is also the crash window's cover: if the instance dies before
 * publishing, the delivery is due at this deadline and the redelivery loop publishes it
 * (as round 2, the recorded round being spent). Not recorded ahead, hence:
 * - a group allowed a single round (`retryMax` 1): a crash would spend its only round and
 *   leave the message DEAD without a publish;
 * - a group whose deadline would come before the dispatch lease's end: a round fits in the
 *   lease, and an earlier deadline would let another instance start round 2 while this one
 *   may still be publishing round 1; moving it to the lease's end would redeliver an
 *   unacked round 1 later than its ack timeout.
 */
export function firstRoundDeadline(schedule: DeliverySchedule, dispatchLeaseMs: number, confirmedAt: Date): Date | null {
  if (schedule.retryMax <= 1) return null;
  const afterMs = schedule.ackTimeoutMs + FIRST_PUBLISH_ALLOWANCE_MS;
  if (afterMs < dispatchLeaseMs) return null;
  return new Date(confirmedAt.getTime() + afterMs);
}

/** Whether a message whose ack deadline passed after `roundsMade` rounds is out of rounds. */
export function deliveryExhausted(schedule: DeliverySchedule, roundsMade: number): boolean {
  return roundsMade >= schedule.retryMax;
}

/** What to do after a consumer reported a failed handling (a nack), and how many rounds now count as made. */
export type AfterConsumerFailure = { kind: 'retry'; at: Date; rounds: number } | { kind: 'exhausted'; rounds: number };

/**
 * After a consumer reported that it failed to handle a delivery: that round counts as a
 * spent attempt, so with no rounds left the message is out of rounds at once; otherwise
 * the next round is brought forward to now, or set `retryAfterMs` from now when the
 * consumer asked for a pause.
 *
 * A fast consumer can fail (and report) a round before RMS has recorded it: the
 * `failedRound` it names (its `x-rms-attempt`) then counts, but never more than the one
 * round that can be in flight unrecorded, so a consumer cannot spend rounds never made.
 *
 * @param recordedRounds the delivery rounds the store holds as made.
 * @param failedRound the round the consumer names, if it does.
 */
export function afterConsumerFailure(
  schedule: DeliverySchedule,
  recordedRounds: number,
  failedRound: number | undefined,
  retryAfterMs: number | undefined,
  now: Date,
): AfterConsumerFailure {
  const rounds = failedRound === undefined ? recordedRounds : Math.min(Math.max(recordedRounds, failedRound), recordedRounds + 1);
  if (deliveryExhausted(schedule, rounds)) return { kind: 'exhausted', rounds };
  return { kind: 'retry', at: new Date(now.getTime() + (retryAfterMs ?? 0)), rounds };
}
