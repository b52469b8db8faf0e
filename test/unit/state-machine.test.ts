import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type Command, type Decision, type MessageState, decide, patchFor } from '@rms/message-service';

const PENDING: MessageState = { status: 'PENDING', deadReason: null };
const SENDING: MessageState = { status: 'SENDING', deadReason: null };
const COMPLETED: MessageState = { status: 'COMPLETED', deadReason: null };
const CANCELLED: MessageState = { status: 'CANCELLED', deadReason: null };
const DEAD_CHECK: MessageState = { status: 'DEAD', deadReason: 'CHECK_EXHAUSTED' };
const DEAD_DELIVERY: MessageState = { status: 'DEAD', deadReason: 'DELIVERY_EXHAUSTED' };
const STATES = { PENDING, SENDING, COMPLETED, CANCELLED, DEAD_CHECK, DEAD_DELIVERY };

const COMMANDS: Record<string, Command> = {
  'producer confirm': { type: 'confirm', actor: 'producer' },
  'admin confirm': { type: 'confirm', actor: 'admin' },
  'producer cancel': { type: 'cancel', actor: 'producer' },
  'admin cancel': { type: 'cancel', actor: 'admin' },
  ack: { type: 'ack' },
  resend: { type: 'resend' },
  'check-back COMMIT': { type: 'check-commit' },
  'check-back ROLLBACK': { type: 'check-rollback' },
  'check-backs exhausted': { type: 'check-exhausted' },
  'deliveries exhausted': { type: 'delivery-exhausted' },
  'delivery round recorded': { type: 'delivery-recorded' },
  'check-back recorded': { type: 'check-recorded' },
  heartbeat: { type: 'heartbeat' },
  'consumer failure (nack)': { type: 'nack' },
};

/** `→X` moves to X (`→X!` also dispatches), `=` is an idempotent repeat, `409` a refusal. */
type Expected = `→${string}` | '=' | '409';

// Every (command, state) pair, allowed and refused: the whole of design section 3.
const TABLE: Record<string, Record<keyof typeof STATES, Expected>> = {
  'producer confirm':      { PENDING: '→SENDING!', SENDING: '=', COMPLETED: '=', CANCELLED: '409', DEAD_CHECK: '409', DEAD_DELIVERY: '=' },
  'admin confirm':         { PENDING: '→SENDING!', SENDING: '=', COMPLETED: '=', CANCELLED: '409', DEAD_CHECK: '→SENDING!', DEAD_DELIVERY: '=' },
  'producer cancel':       { PENDING: '→CANCELLED', SENDING: '409', COMPLETED: '409', CANCELLED: '=', DEAD_CHECK: '409', DEAD_DELIVERY: '409' },
  'admin cancel':          { PENDING: '→CANCELLED', SENDING: '409', COMPLETED: '409', CANCELLED: '=', DEAD_CHECK: '→CANCELLED', DEAD_DELIVERY: '409' },
  ack:                     { PENDING: '409', SENDING: '→COMPLETED', COMPLETED: '=', CANCELLED: '409', DEAD_CHECK: '409', DEAD_DELIVERY: '→COMPLETED' },
  resend:                  { PENDING: '409', SENDING: '=', COMPLETED: '409', CANCELLED: '409', DEAD_CHECK: '409', DEAD_DELIVERY: '→SENDING!' },
  'check-back COMMIT':     { PENDING: '→SENDING!', SENDING: '=', COMPLETED: '=', CANCELLED: '409', DEAD_CHECK: '409', DEAD_DELIVERY: '409' },
  'check-back ROLLBACK':   { PENDING: '→CANCELLED', SENDING: '409', COMPLETED: '409', CANCELLED: '=', DEAD_CHECK: '409', DEAD_DELIVERY: '409' },
  'check-backs exhausted': { PENDING: '→DEAD', SENDING: '409', COMPLETED: '409', CANCELLED: '409', DEAD_CHECK: '409', DEAD_DELIVERY: '409' },
  'deliveries exhausted':  { PENDING: '409', SENDING: '→DEAD', COMPLETED: '409', CANCELLED: '409', DEAD_CHECK: '409', DEAD_DELIVERY: '409' },
  'delivery round recorded': { PENDING: '409', SENDING: '→SENDING', COMPLETED: '409', CANCELLED: '409', DEAD_CHECK: '409', DEAD_DELIVERY: '409' },
  'check-back recorded':   { PENDING: '→PENDING', SENDING: '409', COMPLETED: '409', CANCELLED: '409', DEAD_CHECK: '409', DEAD_DELIVERY: '409' },
  heartbeat:               { PENDING: '409', SENDING: '→SENDING', COMPLETED: '=', CANCELLED: '409', DEAD_CHECK: '409', DEAD_DELIVERY: '409' },
  'consumer failure (nack)': { PENDING: '409', SENDING: '→SENDING', COMPLETED: '=', CANCELLED: '409', DEAD_CHECK: '409', DEAD_DELIVERY: '=' },
};

function summarize(decision: Decision): Expected {
  if (decision.outcome === 'unchanged') return '=';
  if (decision.outcome === 'refused') return '409';
  return `→${decision.to}${decision.dispatch ? '!' : ''}`;
}

describe('state machine: every command against every state', () => {
  for (const [commandName, row] of Object.entries(TABLE)) {
    for (const [stateName, expected] of Object.entries(row)) {
      test(`${commandName} on ${stateName} → ${expected}`, () => {
        const command = COMMANDS[commandName];
        assert.ok(command);
        assert.equal(summarize(decide(STATES[stateName as keyof typeof STATES], command)), expected);
      });
    }
  }
});

describe('state machine: details of decisions', () => {
  test('a refusal names the command and the current status', () => {
    const decision = decide(CANCELLED, { type: 'confirm', actor: 'producer' });
    assert.equal(decision.outcome, 'refused');
    assert.match(decision.outcome === 'refused' ? decision.reason : '', /cannot confirm a message in status CANCELLED/);
  });

  test('only DEAD carries a dead reason, and it says which loop gave up', () => {
    assert.deepEqual(decide(PENDING, { type: 'check-exhausted' }), {
      outcome: 'transition', to: 'DEAD', deadReason: 'CHECK_EXHAUSTED', dispatch: false,
    });
    assert.deepEqual(decide(SENDING, { type: 'delivery-exhausted' }), {
      outcome: 'transition', to: 'DEAD', deadReason: 'DELIVERY_EXHAUSTED', dispatch: false,
    });
    const resent = decide(DEAD_DELIVERY, { type: 'resend' });
    assert.equal(resent.outcome === 'transition' && resent.deadReason, null);
  });

  test('a message refused by the producer for being check-exhausted points at the admin', () => {
    const decision = decide(DEAD_CHECK, { type: 'confirm', actor: 'producer' });
    assert.match(decision.outcome === 'refused' ? decision.reason : '', /only an admin may settle it/);
  });
});

describe('state machine: what a transition writes', () => {
  const now = new Date('2026-01-01T00:00:00Z');
  const later = new Date('2026-01-01T00:00:05Z');

  test('confirm stamps confirmedAt and makes the message due for dispatch', () => {
    const decision = decide(PENDING, { type: 'confirm', actor: 'producer' });
    assert.equal(decision.outcome, 'transition');
    if (decision.outcome !== 'transition') return;
    assert.deepEqual(patchFor(PENDING, decision, now, later), { confirmedAt: now, nextAttemptAt: later, lastError: null });
  });

  test('resend resets the delivery attempts but keeps the original confirmation time', () => {
    const decision = decide(DEAD_DELIVERY, { type: 'resend' });
    if (decision.outcome !== 'transition') assert.fail('resend of a dead message must transition');
    const patch = patchFor(DEAD_DELIVERY, decision, now);
    assert.equal(patch.deliveryAttempts, 0);
    assert.equal('confirmedAt' in patch, false);
  });

  test('terminal states clear the schedule and stamp their time', () => {
    const ack = decide(SENDING, { type: 'ack' });
    const cancel = decide(PENDING, { type: 'cancel', actor: 'producer' });
    if (ack.outcome !== 'transition' || cancel.outcome !== 'transition') assert.fail('both must transition');
    assert.deepEqual(patchFor(SENDING, ack, now), { completedAt: now, nextAttemptAt: null });
    assert.deepEqual(patchFor(PENDING, cancel, now), { cancelledAt: now, nextAttemptAt: null });
  });
});
