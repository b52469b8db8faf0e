import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  type Command,
  type Decision,
  type Delivery,
  type DeliveryCommand,
  type Message,
  type MessageState,
  decide,
  decideDeliveries,
  deliveriesOf,
  freshDelivery,
  patchFor,
} from '@rms/message-service';

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
  'check-back COMMIT': { type: 'check-commit' },
  'check-back ROLLBACK': { type: 'check-rollback' },
  'check-backs exhausted': { type: 'check-exhausted' },
  'check-back recorded': { type: 'check-recorded' },
};

/** `→X` moves to X (`→X!` also dispatches), `=` is an idempotent repeat, `409` a refusal. */
type Expected = `→${string}` | '=' | '409';

// Every (command, state) pair, allowed and refused: the whole of design section 3.
const TABLE: Record<string, Record<keyof typeof STATES, Expected>> = {
  'producer confirm':      { PENDING: '→SENDING!', SENDING: '=', COMPLETED: '=', CANCELLED: '409', DEAD_CHECK: '409', DEAD_DELIVERY: '=' },
  'admin confirm':         { PENDING: '→SENDING!', SENDING: '=', COMPLETED: '=', CANCELLED: '409', DEAD_CHECK: '→SENDING!', DEAD_DELIVERY: '=' },
  'producer cancel':       { PENDING: '→CANCELLED', SENDING: '409', COMPLETED: '409', CANCELLED: '=', DEAD_CHECK: '409', DEAD_DELIVERY: '409' },
  'admin cancel':          { PENDING: '→CANCELLED', SENDING: '409', COMPLETED: '409', CANCELLED: '=', DEAD_CHECK: '→CANCELLED', DEAD_DELIVERY: '409' },
  'check-back COMMIT':     { PENDING: '→SENDING!', SENDING: '=', COMPLETED: '=', CANCELLED: '409', DEAD_CHECK: '409', DEAD_DELIVERY: '409' },
  'check-back ROLLBACK':   { PENDING: '→CANCELLED', SENDING: '409', COMPLETED: '409', CANCELLED: '=', DEAD_CHECK: '409', DEAD_DELIVERY: '409' },
  'check-backs exhausted': { PENDING: '→DEAD', SENDING: '409', COMPLETED: '409', CANCELLED: '409', DEAD_CHECK: '409', DEAD_DELIVERY: '409' },
  'check-back recorded':   { PENDING: '→PENDING', SENDING: '409', COMPLETED: '409', CANCELLED: '409', DEAD_CHECK: '409', DEAD_DELIVERY: '409' },
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
  });

  test('a message refused by the producer for being check-exhausted points at the admin', () => {
    const decision = decide(DEAD_CHECK, { type: 'confirm', actor: 'producer' });
    assert.match(decision.outcome === 'refused' ? decision.reason : '', /only an admin may settle it/);
  });
});

describe('state machine: what a transition writes', () => {
  const now = new Date('2026-01-01T00:00:00Z');
  const later = new Date('2026-01-01T00:00:05Z');

  test('confirm stamps confirmedAt and opens one delivery per subscribed group, due for dispatch', () => {
    const decision = decide(PENDING, { type: 'confirm', actor: 'producer' });
    assert.equal(decision.outcome, 'transition');
    if (decision.outcome !== 'transition') return;
    assert.deepEqual(patchFor(PENDING, decision, now, later, { groups: ['inventory', 'loyalty'], deliverAt: null }), {
      confirmedAt: now,
      nextAttemptAt: later,
      lastError: null,
      deliveries: [freshDelivery('inventory', later), freshDelivery('loyalty', later)],
    });
  });

  test('a delayed message is due at its deliverAt, not at the dispatch lease', () => {
    const decision = decide(PENDING, { type: 'confirm', actor: 'producer' });
    if (decision.outcome !== 'transition') assert.fail('confirm must transition');
    const deliverAt = new Date('2026-01-01T00:30:00Z');
    const patch = patchFor(PENDING, decision, now, later, { groups: ['inventory'], deliverAt });
    assert.deepEqual(patch.nextAttemptAt, deliverAt);
    assert.deepEqual(patch.deliveries?.[0]?.nextAttemptAt, deliverAt);
  });

  test('a confirm that records round 1 opens those groups at one attempt, due at their ack deadline, on the expected transport', () => {
    const decision = decide(PENDING, { type: 'confirm', actor: 'producer' });
    if (decision.outcome !== 'transition') assert.fail('confirm must transition');
    const inventoryDeadline = new Date('2026-01-01T00:04:01Z');
    const firstRound = { transport: 'rabbitmq' as const, deadlines: new Map([['inventory', inventoryDeadline]]) };
    // loyalty is not in the round (a single-round group): it starts at round 0, due when the lease ends.
    assert.deepEqual(patchFor(PENDING, decision, now, later, { groups: ['inventory', 'loyalty'], deliverAt: null, firstRound }), {
      confirmedAt: now,
      nextAttemptAt: later,
      lastError: null,
      deliveries: [
        { group: 'inventory', status: 'SENDING', attempts: 1, nextAttemptAt: inventoryDeadline, lastTransport: 'rabbitmq', lastError: null, ackedAt: null },
        freshDelivery('loyalty', later),
      ],
      deliveryAttempts: 1,
      lastTransport: 'rabbitmq',
      lastPublishedAt: now,
    });
    const alone = patchFor(PENDING, decision, now, later, { groups: ['inventory'], deliverAt: null, firstRound });
    assert.deepEqual(alone.nextAttemptAt, inventoryDeadline, 'the message is due when its only delivery is');
    const delayed = patchFor(PENDING, decision, now, later, { groups: ['inventory'], deliverAt: new Date('2026-01-01T00:30:00Z'), firstRound });
    assert.equal(delayed.deliveries?.[0]?.attempts, 0, 'a delayed message is not published on confirm, so nothing is recorded ahead');
    assert.equal(delayed.lastPublishedAt, undefined);
  });

  test('terminal states clear the schedule and stamp their time', () => {
    const cancel = decide(PENDING, { type: 'cancel', actor: 'producer' });
    if (cancel.outcome !== 'transition') assert.fail('cancel must transition');
    assert.deepEqual(patchFor(PENDING, cancel, now), { cancelledAt: now, nextAttemptAt: null });
  });
});

const T0 = new Date('2026-01-01T00:00:00Z');
const T1 = new Date('2026-01-01T00:01:00Z');
const T2 = new Date('2026-01-01T00:02:00Z');

function message(status: Message['status'], deliveries: Delivery[], extra: Partial<Message> = {}): Message {
  return {
    id: '0190f000-0000-7000-8000-000000000001', producer: 'orders', producerMessageId: null, topic: 'order.paid', payload: null, headers: {},
    status, deadReason: status === 'DEAD' ? 'DELIVERY_EXHAUSTED' : null, createdAt: T0, updatedAt: T0, confirmedAt: T0, completedAt: null,
    cancelledAt: null, checkAttempts: 0, deliveryAttempts: 1, nextAttemptAt: T1, lastTransport: 'rabbitmq', lastError: null, deliverAt: null,
    deliveries, version: 3, lastPublishedAt: null, traceparent: null, tracestate: null, ...extra,
  };
}

function delivery(group: string, status: Delivery['status'], attempts = 1, nextAttemptAt: Date | null = status === 'SENDING' ? T1 : null): Delivery {
  return { group, status, attempts, nextAttemptAt, lastTransport: 'rabbitmq', lastError: null, ackedAt: status === 'ACKED' ? T0 : null };
}

const record = { attempts: 2, nextAttemptAt: T2, lastTransport: 'rabbitmq' as const, lastError: null };
const DELIVERY_COMMANDS: Record<string, DeliveryCommand> = {
  ack: { type: 'ack' },
  heartbeat: { type: 'heartbeat', until: T2 },
  resend: { type: 'resend', dueAt: T1 },
  'round recorded': { type: 'delivery-recorded', afterAttempts: 1, record },
  'rounds exhausted': { type: 'delivery-exhausted', afterAttempts: 1 },
  'consumer failure (nack)': { type: 'nack', attempts: 1, retryAt: T0, lastError: 'consumer inventory: boom' },
  'consumer failure on the last round': { type: 'nack', attempts: 1, retryAt: null, lastError: 'consumer inventory: boom' },
};

// One group's delivery under every command, the other group's delivery still SENDING:
// `→X/Y` moves the delivery to X and the message to Y, `=` changes nothing, `409` refuses.
const DELIVERY_TABLE: Record<string, Record<Delivery['status'], string>> = {
  ack:                { SENDING: '→ACKED/SENDING', ACKED: '=', DEAD: '→ACKED/SENDING' },
  heartbeat:          { SENDING: '→SENDING/SENDING', ACKED: '=', DEAD: '409' },
  resend:             { SENDING: '=', ACKED: '409', DEAD: '→SENDING/SENDING' },
  // On ACKED: the consumer acked the round before its record landed; the round still counts.
  'round recorded':   { SENDING: '→SENDING/SENDING', ACKED: '→ACKED/SENDING', DEAD: '=' },
  'rounds exhausted': { SENDING: '→DEAD/DEAD', ACKED: '=', DEAD: '=' },
  'consumer failure (nack)': { SENDING: '→SENDING/SENDING', ACKED: '=', DEAD: '=' },
  'consumer failure on the last round': { SENDING: '→DEAD/DEAD', ACKED: '=', DEAD: '=' },
};

describe('state machine: one group\'s delivery under every command', () => {
  for (const [name, row] of Object.entries(DELIVERY_TABLE)) {
    for (const [status, expected] of Object.entries(row)) {
      test(`${name} of a ${status} delivery → ${expected}`, () => {
        const read = message(status === 'DEAD' ? 'DEAD' : 'SENDING', [delivery('inventory', status as Delivery['status']), delivery('loyalty', 'SENDING')]);
        const decision = decideDeliveries(read, [{ group: 'inventory', command: DELIVERY_COMMANDS[name] as DeliveryCommand }], T0, 'default');
        const summary =
          decision.outcome === 'unchanged' ? '=' : decision.outcome === 'refused' ? '409' : `→${decision.set.deliveries?.[0]?.status}/${decision.to}`;
        assert.equal(summary, expected);
      });
    }
  }
});

describe('state machine: a message over its groups\' deliveries', () => {
  test('a nack brings the group\'s next round forward, counts the round and keeps the reason; the message is due then', () => {
    const read = message('SENDING', [delivery('inventory', 'SENDING', 0, T2), delivery('loyalty', 'SENDING', 1, T2)], { nextAttemptAt: T2 });
    const decision = decideDeliveries(read, [{ group: 'inventory', command: { type: 'nack', attempts: 1, retryAt: T0, lastError: 'consumer inventory: boom' } }], T0, 'default');
    assert.equal(decision.outcome, 'transition');
    if (decision.outcome !== 'transition') return;
    assert.deepEqual(decision.set.deliveries?.[0], { ...delivery('inventory', 'SENDING', 1, T0), lastError: 'consumer inventory: boom' });
    assert.equal(decision.set.nextAttemptAt?.getTime(), T0.getTime(), 'the message is due when the nacked delivery is');
    assert.equal(decision.set.lastError, 'consumer inventory: boom');
  });

  test('the message completes only when the last group acks', () => {
    const read = message('SENDING', [delivery('inventory', 'ACKED'), delivery('loyalty', 'SENDING')]);
    const decision = decideDeliveries(read, [{ group: 'loyalty', command: { type: 'ack' } }], T2, 'default');
    assert.equal(decision.outcome === 'transition' && decision.to, 'COMPLETED');
    assert.deepEqual(decision.outcome === 'transition' && decision.set.completedAt, T2);
    assert.equal(decision.outcome === 'transition' && decision.set.nextAttemptAt, null);
  });

  test('a group acking a message DEAD for another group leaves it DEAD, and resending the dead group revives it', () => {
    const read = message('DEAD', [delivery('inventory', 'DEAD'), delivery('loyalty', 'SENDING')]);
    const ack = decideDeliveries(read, [{ group: 'loyalty', command: { type: 'ack' } }], T1, 'default');
    assert.equal(ack.outcome === 'transition' && ack.to, 'DEAD');
    const resend = decideDeliveries(read, [{ group: 'inventory', command: { type: 'resend', dueAt: T1 } }], T1, 'default');
    assert.equal(resend.outcome === 'transition' && resend.to, 'SENDING');
    assert.equal(resend.outcome === 'transition' && resend.set.deliveries?.[0]?.attempts, 0);
  });

  test('the exhausted groups are named', () => {
    const read = message('SENDING', [delivery('inventory', 'SENDING'), delivery('loyalty', 'SENDING')]);
    const decision = decideDeliveries(read, [{ group: 'loyalty', command: { type: 'delivery-exhausted', afterAttempts: 1 } }], T1, 'default');
    assert.deepEqual(decision.outcome === 'transition' && decision.deadGroups, ['loyalty']);
  });

  test('a round recorded from a stale attempt count is skipped (another instance recorded it)', () => {
    const read = message('SENDING', [delivery('inventory', 'SENDING', 2)]);
    const decision = decideDeliveries(read, [{ group: 'inventory', command: { type: 'delivery-recorded', afterAttempts: 1, record } }], T1, 'default');
    assert.equal(decision.outcome, 'unchanged');
  });

  test('a round acked before its record landed still counts: the record sets the rounds on the ACKED delivery, nothing else', () => {
    // CI: round 3 went out, the consumer acked it before the publish confirm returned, and the
    // completed message said 2 attempts.
    const acked = { ...delivery('inventory', 'ACKED', 2), lastError: 'consumer inventory: boom' };
    const read = message('COMPLETED', [acked], { completedAt: T0, nextAttemptAt: null, deliveryAttempts: 2 });
    const round3 = { attempts: 3, nextAttemptAt: T2, lastTransport: 'redis' as const, lastError: null };
    const decision = decideDeliveries(read, [{ group: 'inventory', command: { type: 'delivery-recorded', afterAttempts: 2, record: round3 } }], T1, 'default');
    assert.equal(decision.outcome, 'transition');
    if (decision.outcome !== 'transition') return;
    assert.equal(decision.to, 'COMPLETED');
    assert.deepEqual(decision.set.deliveries, [{ ...acked, attempts: 3, lastTransport: 'redis' }], 'still ACKED, no deadline, its ack time kept');
    assert.equal(decision.set.deliveryAttempts, 3);
    assert.equal(decision.set.nextAttemptAt, null);
    assert.deepEqual(decision.set.completedAt, T0, 'completed when it was');
    // A record of the round the delivery already counts (round 1 written again after the
    // confirm recorded it) changes nothing on an acked delivery.
    const again = decideDeliveries(read, [{ group: 'inventory', command: { type: 'delivery-recorded', afterAttempts: 2, record: { ...round3, attempts: 2 } } }], T1, 'default');
    assert.equal(again.outcome, 'unchanged');
    const stale = decideDeliveries(read, [{ group: 'inventory', command: { type: 'delivery-recorded', afterAttempts: 1, record: { ...round3, attempts: 2 } } }], T1, 'default');
    assert.equal(stale.outcome, 'unchanged', 'a stale record is skipped on an acked delivery too');
  });

  test('an ack never brings the message due earlier than it is (a claim\'s lease holds)', () => {
    const lease = new Date('2026-01-01T00:10:00Z');
    const read = message('SENDING', [delivery('inventory', 'SENDING', 1, T0), delivery('loyalty', 'SENDING', 1, T1)], { nextAttemptAt: lease });
    const decision = decideDeliveries(read, [{ group: 'loyalty', command: { type: 'ack' } }], T1, 'default');
    assert.deepEqual(decision.outcome === 'transition' && decision.set.nextAttemptAt, lease);
  });

  test('a group without a delivery is refused by name', () => {
    const read = message('SENDING', [delivery('inventory', 'SENDING')]);
    const decision = decideDeliveries(read, [{ group: 'shipping', command: { type: 'ack' } }], T1, 'default');
    assert.match(decision.outcome === 'refused' ? decision.reason : '', /no delivery for group shipping/);
  });

  test('an unconfirmed message refuses delivery commands', () => {
    const read = message('PENDING', []);
    const decision = decideDeliveries(read, [{ group: 'default', command: { type: 'ack' } }], T1, 'default');
    assert.match(decision.outcome === 'refused' ? decision.reason : '', /cannot ack a message in status PENDING/);
  });

  test('a message stored before groups existed reads as one delivery of the default group with its counters', () => {
    const legacy = message('SENDING', [], { deliveryAttempts: 3, nextAttemptAt: T2, lastError: 'boom' });
    assert.deepEqual(deliveriesOf(legacy, 'default'), [
      { group: 'default', status: 'SENDING', attempts: 3, nextAttemptAt: T2, lastTransport: 'rabbitmq', lastError: 'boom', ackedAt: null },
    ]);
    const decision = decideDeliveries(legacy, [{ group: 'default', command: { type: 'ack' } }], T2, 'default');
    assert.equal(decision.outcome === 'transition' && decision.to, 'COMPLETED');
  });
});
