import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  FIRST_PUBLISH_ALLOWANCE_MS,
  afterConsumerFailure,
  afterDeliveryRound,
  afterUnansweredCheck,
  deliveryExhausted,
  deliveryScheduleResolver,
  firstRoundDeadline,
  parseTopicSchedules,
} from '@rms/message-service';

const now = new Date('2026-01-01T00:00:00Z');
const at = (ms: number) => new Date(now.getTime() + ms);
// The design's defaults: 3 immediate retries, then 4 minutes, then every minute, 50 rounds, 4-minute ack deadline.
const DELIVERY = { ackTimeoutMs: 240_000, retryImmediate: 3, retryFirstDelayMs: 240_000, retryIntervalMs: 60_000, retryMax: 50 };
const CHECKS = { delayMs: 6000, intervalMs: 30_000, maxChecks: 15 };

describe('delivery schedule', () => {
  test('a published round waits for the ack until the ack deadline', () => {
    assert.deepEqual(afterDeliveryRound(DELIVERY, 1, true, false, now), { kind: 'await-ack', at: at(240_000) });
  });

  test('the first failed round retries 4 minutes after the failure, later failed rounds every minute', () => {
    assert.deepEqual(afterDeliveryRound(DELIVERY, 1, false, false, now), { kind: 'retry', at: at(240_000) });
    assert.deepEqual(afterDeliveryRound(DELIVERY, 2, false, true, now), { kind: 'retry', at: at(60_000) });
    assert.deepEqual(afterDeliveryRound(DELIVERY, 7, false, true, now), { kind: 'retry', at: at(60_000) });
    // A failure after a successful round (the broker went down between redeliveries) starts the ladder again.
    assert.deepEqual(afterDeliveryRound(DELIVERY, 8, false, false, now), { kind: 'retry', at: at(240_000) });
  });

  test('the 50th round that fails is the last; a published 50th round still gets its ack deadline', () => {
    assert.deepEqual(afterDeliveryRound(DELIVERY, 49, false, true, now), { kind: 'retry', at: at(60_000) });
    assert.deepEqual(afterDeliveryRound(DELIVERY, 50, false, true, now), { kind: 'exhausted' });
    assert.deepEqual(afterDeliveryRound(DELIVERY, 50, true, true, now), { kind: 'await-ack', at: at(240_000) });
    assert.equal(deliveryExhausted(DELIVERY, 49), false);
    assert.equal(deliveryExhausted(DELIVERY, 50), true);
  });

  test('round 1 recorded at confirm is due at the ack timeout plus the publish allowance', () => {
    assert.deepEqual(firstRoundDeadline(DELIVERY, 30_000, now), at(240_000 + FIRST_PUBLISH_ALLOWANCE_MS));
    assert.deepEqual(firstRoundDeadline({ ...DELIVERY, ackTimeoutMs: 2000 }, 3000, now), at(3000), 'exactly at the lease end');
  });

  test('a group whose deadline would come before the dispatch lease ends is not recorded ahead', () => {
    // Its deadline would have to wait for the lease: an unacked round 1 redelivered late.
    assert.equal(firstRoundDeadline({ ...DELIVERY, ackTimeoutMs: 150 }, 3000, now), null);
  });

  test('a group allowed one round is not recorded ahead: a crash before the publish would spend its only round', () => {
    assert.equal(firstRoundDeadline({ ...DELIVERY, retryMax: 1 }, 30_000, now), null);
    assert.ok(firstRoundDeadline({ ...DELIVERY, retryMax: 2 }, 30_000, now));
  });

  test('per-topic overrides replace only the fields they name', () => {
    const scheduleFor = deliveryScheduleResolver(DELIVERY, parseTopicSchedules('{"payments.capture": {"ackTimeoutMs": 30000, "retryMax": 5}}'));
    assert.deepEqual(scheduleFor('payments.capture'), { ...DELIVERY, ackTimeoutMs: 30_000, retryMax: 5 });
    assert.equal(scheduleFor('stock.reduce'), DELIVERY);
    assert.throws(() => parseTopicSchedules('{"a": {"retryMax": 0}}'), /RMS_TOPIC_SCHEDULES\.a\.retryMax: must be at least 1/);
    assert.throws(() => parseTopicSchedules('{"bad topic": {}}'), /topic names must match/);
    assert.throws(() => parseTopicSchedules('{"a": {"speed": 1}}'), /unknown field RMS_TOPIC_SCHEDULES\.a\.speed/);
  });

  test('per-group overrides of a topic replace only their fields, over the topic\'s', () => {
    const scheduleFor = deliveryScheduleResolver(
      DELIVERY,
      parseTopicSchedules('{"orders.paid": {"ackTimeoutMs": 30000, "groups": {"points": {"retryMax": 5}}}}'),
    );
    assert.deepEqual(scheduleFor('orders.paid', 'points'), { ...DELIVERY, ackTimeoutMs: 30_000, retryMax: 5 });
    assert.deepEqual(scheduleFor('orders.paid', 'inventory'), { ...DELIVERY, ackTimeoutMs: 30_000 });
    assert.equal(scheduleFor('stock.reduce', 'points'), DELIVERY);
    assert.throws(() => parseTopicSchedules('{"a": {"groups": {"b.c": {}}}}'), /group names must match/);
  });
});

describe('check-back schedule', () => {
  test('an unanswered check is followed by another an interval later, up to the maximum', () => {
    assert.deepEqual(afterUnansweredCheck(CHECKS, 1, now), { kind: 'retry', at: at(30_000) });
    assert.deepEqual(afterUnansweredCheck(CHECKS, 14, now), { kind: 'retry', at: at(30_000) });
    assert.deepEqual(afterUnansweredCheck(CHECKS, 15, now), { kind: 'exhausted' });
  });
});

describe('after a consumer reports a failed handling (nack)', () => {
  test('the next round is due at once, not at the ack deadline', () => {
    assert.deepEqual(afterConsumerFailure(DELIVERY, 1, undefined, undefined, now), { kind: 'retry', at: now, rounds: 1 });
  });

  test('a consumer asking for a pause gets the next round retryAfterMs later', () => {
    assert.deepEqual(afterConsumerFailure(DELIVERY, 3, 3, 5000, now), { kind: 'retry', at: at(5000), rounds: 3 });
  });

  test('the failed round counts: after the last allowed round the message is out of rounds at once', () => {
    assert.deepEqual(afterConsumerFailure(DELIVERY, 50, undefined, undefined, now), { kind: 'exhausted', rounds: 50 });
    assert.deepEqual(afterConsumerFailure({ ...DELIVERY, retryMax: 2 }, 2, 2, 60_000, now), { kind: 'exhausted', rounds: 2 });
    assert.equal(afterConsumerFailure({ ...DELIVERY, retryMax: 2 }, 1, 1, undefined, now).kind, 'retry');
  });

  test('a round failed before RMS recorded it counts, but a consumer cannot count rounds never made', () => {
    assert.deepEqual(afterConsumerFailure(DELIVERY, 0, 1, undefined, now), { kind: 'retry', at: now, rounds: 1 });
    assert.deepEqual(afterConsumerFailure({ ...DELIVERY, retryMax: 1 }, 0, 1, undefined, now), { kind: 'exhausted', rounds: 1 });
    assert.deepEqual(afterConsumerFailure(DELIVERY, 2, 40, undefined, now), { kind: 'retry', at: now, rounds: 3 });
    assert.deepEqual(afterConsumerFailure(DELIVERY, 4, 1, undefined, now), { kind: 'retry', at: now, rounds: 4 }, 'a late report of an old round spends nothing more');
  });
});
