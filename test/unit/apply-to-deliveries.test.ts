/**
 * `applyToDeliveries` under contention: every concurrent writer of one message's
 * deliveries lands, however many there are, as long as the others make progress.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type Delivery, type Message, type MessageStore, type Moved, type Transition, movedMessage } from '@rms/message-service';
import { applyToDeliveries } from '../../services/message-service/src/application/apply-command.js';

const T0 = new Date('2026-01-01T00:00:00Z');
const T1 = new Date('2026-01-01T00:01:00Z');

function sending(group: string): Delivery {
  return { group, status: 'SENDING', attempts: 1, nextAttemptAt: T1, lastTransport: 'rabbitmq', lastError: null, ackedAt: null };
}

function fanOut(groups: readonly string[]): Message {
  return {
    id: '0190f000-0000-7000-8000-000000000001', producer: 'orders', producerMessageId: null, topic: 'order.paid', payload: null, headers: {},
    status: 'SENDING', deadReason: null, createdAt: T0, updatedAt: T0, confirmedAt: T0, completedAt: null,
    cancelledAt: null, checkAttempts: 0, deliveryAttempts: 1, nextAttemptAt: T1, lastTransport: 'rabbitmq', lastError: null, deliverAt: null,
    deliveries: groups.map(sending), version: 1, lastPublishedAt: null, traceparent: null, tracestate: null,
  };
}

/**
 * One message held in memory with a version, as the real stores hold it: a `move` from a
 * version that is no longer current writes nothing. Each call yields first, so writers
 * started together read the same version and collide as they would on a busy store.
 */
class OneMessageStore {
  writes = 0;
  losses = 0;
  constructor(public current: Message) {}

  async findById(id: string): Promise<Message | null> {
    await new Promise((resolve) => setImmediate(resolve));
    return id === this.current.id ? structuredClone(this.current) : null;
  }

  async move(change: Transition): Promise<Moved | null> {
    await new Promise((resolve) => setImmediate(resolve));
    if (change.version !== this.current.version || change.from.status !== this.current.status) {
      this.losses += 1;
      return null;
    }
    const moved = { version: this.current.version + 1 } as Moved;
    this.current = movedMessage(this.current, change, moved);
    this.writes += 1;
    return moved;
  }
}

describe('applyToDeliveries: concurrent writers of one message', () => {
  test('16 groups acking one message at once all land, and the message completes once', async () => {
    // With k writers in step, one wins each round and the last one loses k − 1 times: at a
    // bound of 8 rounds, the 10th to 16th acks came back lost (STATE_CONFLICT to the consumer).
    const groups = Array.from({ length: 16 }, (_, i) => `group-${i}`);
    const store = new OneMessageStore(fanOut(groups));
    const read = structuredClone(store.current);
    const outcomes = await Promise.all(
      groups.map((group) => applyToDeliveries(store as unknown as MessageStore, read, [{ group, command: { type: 'ack' } }], { at: T1, defaultGroup: 'default' })),
    );
    assert.deepEqual(outcomes.map((outcome) => outcome.kind), groups.map(() => 'moved'), 'every ack landed');
    assert.equal(store.writes, 16, 'one write per ack');
    assert.ok(store.losses >= 15, `the writers did collide (${store.losses} lost writes), so the test exercised the retries`);
    assert.equal(store.current.status, 'COMPLETED');
    assert.deepEqual(store.current.deliveries.map((delivery) => delivery.status), groups.map(() => 'ACKED'));
    const completing = outcomes.filter((outcome) => outcome.kind === 'moved' && outcome.message.status === 'COMPLETED');
    assert.equal(completing.length, 1, 'exactly one ack saw the message complete');
  });

  test('a writer that something rewrites without end still gives up (lost), not loops forever', async () => {
    const store = new OneMessageStore(fanOut(['inventory']));
    const read = structuredClone(store.current);
    // Every move loses: another writer always got there first.
    store.move = async () => {
      store.losses += 1;
      return null;
    };
    const outcome = await applyToDeliveries(store as unknown as MessageStore, read, [{ group: 'inventory', command: { type: 'ack' } }], { at: T1, defaultGroup: 'default' });
    assert.equal(outcome.kind, 'lost');
    assert.equal(store.losses, 32, 'decided again up to its bound');
  });
});
