/**
 * The contract every `MessageStore` adapter must meet. Each adapter's test file calls
 * `messageStoreContract` with a factory for a fresh, empty store.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { v7 as uuidv7 } from 'uuid';
import {
  type Message,
  MessageService,
  type MessageStore,
  type NewMessage,
  StateConflictError,
} from '@rms/message-service';

/** A fresh, empty store and how to dispose of it. */
export interface StoreFixture {
  store: MessageStore;
  dispose(): Promise<void>;
}

/** Runs the contract against the stores `makeStore` returns (one per call). */
export function messageStoreContract(adapterName: string, makeStore: () => Promise<StoreFixture>, skip: string | false = false): void {
  describe(`MessageStore contract: ${adapterName}`, { skip }, () => {
    let fixture: StoreFixture;
    let store: MessageStore;
    let clock = Date.parse('2026-01-01T00:00:00Z');
    const tick = () => new Date((clock += 1000));

    function newMessage(overrides: Partial<NewMessage> = {}): NewMessage {
      const createdAt = overrides.createdAt ?? tick();
      return {
        id: uuidv7(),
        producer: 'orders',
        producerMessageId: null,
        topic: 'stock.reduce',
        payload: { orderId: 1 },
        headers: {},
        createdAt,
        nextAttemptAt: new Date(createdAt.getTime() + 6000),
        ...overrides,
      };
    }

    before(async () => {
      fixture = await makeStore();
      store = fixture.store;
      await store.init();
    });
    after(async () => {
      await fixture?.dispose();
    });

    test('init is idempotent, also when run concurrently', async () => {
      await Promise.all([store.init(), store.init(), store.init()]);
      await store.ping();
    });

    test('insert stores a PENDING message and every field round-trips', async () => {
      const payload = { order: { id: 'o-1', lines: [1, 2.5, 'x', null, true, { deep: {} }] }, empty: {}, text: 'héllo ✓' };
      const input = newMessage({ producerMessageId: 'key-roundtrip', payload, headers: { 'trace-id': 'abc', empty: '' } });
      const { message, created } = await store.insert(input);
      assert.equal(created, true);
      const expected: Message = {
        id: input.id,
        producer: 'orders',
        producerMessageId: 'key-roundtrip',
        topic: 'stock.reduce',
        payload,
        headers: { 'trace-id': 'abc', empty: '' },
        status: 'PENDING',
        deadReason: null,
        createdAt: input.createdAt,
        updatedAt: input.createdAt,
        confirmedAt: null,
        completedAt: null,
        cancelledAt: null,
        checkAttempts: 0,
        deliveryAttempts: 0,
        nextAttemptAt: input.nextAttemptAt,
        lastTransport: null,
        lastError: null,
      };
      assert.deepEqual(message, expected);
      assert.deepEqual(await store.findById(input.id), expected);
    });

    test('payloads of every JSON type round-trip, including null and an empty object', async () => {
      for (const payload of [null, 0, -1.5, 'text', '', true, false, [], {}, [{ a: [null] }]]) {
        const { message } = await store.insert(newMessage({ payload }));
        assert.deepEqual((await store.findById(message.id))?.payload, payload, `payload ${JSON.stringify(payload)}`);
      }
    });

    test('the same producer key returns the stored message instead of a second one', async () => {
      const first = await store.insert(newMessage({ producerMessageId: 'key-dup' }));
      const again = await store.insert(newMessage({ producerMessageId: 'key-dup', payload: { other: true } }));
      assert.equal(again.created, false);
      assert.equal(again.message.id, first.message.id);
      assert.deepEqual(again.message.payload, { orderId: 1 });
    });

    test('producer keys are scoped per producer, and messages without a key never collide', async () => {
      const a = await store.insert(newMessage({ producer: 'orders', producerMessageId: 'shared-key' }));
      const b = await store.insert(newMessage({ producer: 'billing', producerMessageId: 'shared-key' }));
      const c = await store.insert(newMessage({ producerMessageId: null }));
      const d = await store.insert(newMessage({ producerMessageId: null }));
      assert.deepEqual([a.created, b.created, c.created, d.created], [true, true, true, true]);
      assert.notEqual(a.message.id, b.message.id);
    });

    test('20 concurrent inserts with one producer key store exactly one message', async () => {
      const results = await Promise.all(
        Array.from({ length: 20 }, () => store.insert(newMessage({ producerMessageId: 'key-race' }))),
      );
      assert.equal(results.filter((result) => result.created).length, 1);
      assert.equal(new Set(results.map((result) => result.message.id)).size, 1);
    });

    test('findById of an unknown id is null', async () => {
      assert.equal(await store.findById(uuidv7()), null);
    });

    test('a transition applies when the message is still in the expected state', async () => {
      const { message } = await store.insert(newMessage());
      const at = tick();
      const updated = await store.transition({
        id: message.id,
        from: { status: 'PENDING', deadReason: null },
        to: 'SENDING',
        deadReason: null,
        at,
        set: { confirmedAt: at, nextAttemptAt: at, deliveryAttempts: 2, lastTransport: 'rabbitmq', lastError: 'boom' },
      });
      assert.ok(updated);
      assert.equal(updated.status, 'SENDING');
      assert.deepEqual(updated.updatedAt, at);
      assert.deepEqual(updated.confirmedAt, at);
      assert.equal(updated.deliveryAttempts, 2);
      assert.equal(updated.lastTransport, 'rabbitmq');
      assert.equal(updated.lastError, 'boom');
      assert.deepEqual(await store.findById(message.id), updated);
    });

    test('a transition from a state the message has left writes nothing', async () => {
      const { message } = await store.insert(newMessage());
      const stale = await store.transition({
        id: message.id,
        from: { status: 'SENDING', deadReason: null },
        to: 'COMPLETED',
        deadReason: null,
        at: tick(),
        set: { completedAt: tick() },
      });
      assert.equal(stale, null);
      assert.deepEqual(await store.findById(message.id), message);
    });

    test('the dead reason is part of the condition', async () => {
      const { message } = await store.insert(newMessage());
      const dead = await store.transition({
        id: message.id, from: { status: 'PENDING', deadReason: null }, to: 'DEAD', deadReason: 'CHECK_EXHAUSTED', at: tick(), set: { nextAttemptAt: null },
      });
      assert.equal(dead?.deadReason, 'CHECK_EXHAUSTED');
      const wrongReason = await store.transition({
        id: message.id, from: { status: 'DEAD', deadReason: 'DELIVERY_EXHAUSTED' }, to: 'SENDING', deadReason: null, at: tick(), set: {},
      });
      assert.equal(wrongReason, null);
      const rightReason = await store.transition({
        id: message.id, from: { status: 'DEAD', deadReason: 'CHECK_EXHAUSTED' }, to: 'CANCELLED', deadReason: null, at: tick(), set: {},
      });
      assert.equal(rightReason?.status, 'CANCELLED');
      assert.equal(rightReason?.deadReason, null);
    });

    test('50 parallel transitions from one state: exactly one wins', async () => {
      const { message } = await store.insert(newMessage());
      const results = await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          store.transition({
            id: message.id,
            from: { status: 'PENDING', deadReason: null },
            to: i % 2 === 0 ? 'SENDING' : 'CANCELLED',
            deadReason: null,
            at: tick(),
            set: {},
          }),
        ),
      );
      const winners = results.filter((result) => result !== null);
      assert.equal(winners.length, 1);
      assert.equal((await store.findById(message.id))?.status, winners[0]?.status);
    });

    test('50 parallel confirms and cancels of one message through the service leave exactly one winner', async () => {
      const service = new MessageService({ store, checkDelayMs: 6000 });
      const producer = { app: 'orders', roles: ['producer' as const] };
      const { message } = await service.prepare(producer, { topic: 'stock.reduce', payload: { n: 1 } });
      const outcomes = await Promise.all(
        Array.from({ length: 50 }, async (_, i) => {
          const command = i % 2 === 0 ? 'confirm' : 'cancel';
          try {
            const result = await (command === 'confirm' ? service.confirm(producer, message.id) : service.cancel(producer, message.id));
            return { command, ok: true, status: result.status };
          } catch (error) {
            assert.ok(error instanceof StateConflictError, `unexpected ${String(error)}`);
            return { command, ok: false, status: error.status };
          }
        }),
      );
      const final = await store.findById(message.id);
      assert.ok(final && (final.status === 'SENDING' || final.status === 'CANCELLED'));
      const winningCommand = final.status === 'SENDING' ? 'confirm' : 'cancel';
      for (const outcome of outcomes) {
        // The winning side all succeed (one moved it, the rest are repeats); the losing side all get 409.
        assert.equal(outcome.ok, outcome.command === winningCommand, JSON.stringify(outcome));
        assert.equal(outcome.status, final.status);
      }
    });

    test('claimDue claims only due messages of the asked status, oldest due first, and leases them', async () => {
      const topic = `claim.${Date.now()}`;
      const base = tick().getTime();
      const due = [];
      for (const offset of [-3000, -1000, -2000]) {
        due.push((await store.insert(newMessage({ topic, nextAttemptAt: new Date(base + offset) }))).message);
      }
      const notDue = (await store.insert(newMessage({ topic, nextAttemptAt: new Date(base + 60_000) }))).message;
      const now = new Date(base);
      const leaseUntil = new Date(base + 30_000);
      const claimed = (await store.claimDue({ status: 'PENDING', now, leaseUntil, limit: 1000 })).filter((m) => m.topic === topic);
      assert.deepEqual(claimed.map((m) => m.id), [due[0]!.id, due[2]!.id, due[1]!.id]);
      for (const message of claimed) assert.deepEqual(message.nextAttemptAt, leaseUntil);
      assert.equal((await store.findById(notDue.id))?.nextAttemptAt?.getTime(), base + 60_000);
      const again = (await store.claimDue({ status: 'PENDING', now, leaseUntil, limit: 1000 })).filter((m) => m.topic === topic);
      assert.deepEqual(again, [], 'leased messages are not due again before the lease ends');
      const sending = (await store.claimDue({ status: 'SENDING', now: new Date(base + 100_000), leaseUntil, limit: 1000 })).filter((m) => m.topic === topic);
      assert.deepEqual(sending, [], 'a PENDING message is never claimed as SENDING');
      const afterLease = (await store.claimDue({ status: 'PENDING', now: new Date(base + 30_000), leaseUntil: new Date(base + 90_000), limit: 2 }));
      assert.equal(afterLease.length, 2, 'the limit is respected, and expired leases are claimable');
    });

    test('three concurrent claimers get disjoint sets that together cover every due message', async () => {
      const topic = `claim.race.${Date.now()}`;
      const base = tick().getTime() + 1_000_000;
      const ids = new Set<string>();
      for (let i = 0; i < 90; i++) {
        ids.add((await store.insert(newMessage({ topic, nextAttemptAt: new Date(base - i) }))).message.id);
      }
      const claimer = async () => {
        const mine: string[] = [];
        for (;;) {
          const batch = await store.claimDue({ status: 'PENDING', now: new Date(base), leaseUntil: new Date(base + 60_000), limit: 7 });
          if (batch.length === 0) return mine;
          mine.push(...batch.filter((m) => m.topic === topic).map((m) => m.id));
        }
      };
      const sets = await Promise.all([claimer(), claimer(), claimer()]);
      const all = sets.flat();
      assert.equal(all.length, 90, 'no message claimed twice');
      assert.deepEqual(new Set(all), ids, 'every due message claimed');
    });

    test('a fenced transition writes nothing once another claimer took the message over', async () => {
      const { message } = await store.insert(newMessage({ nextAttemptAt: new Date(0) }));
      const leaseA = new Date(Date.parse('2030-01-01T00:00:00Z'));
      const [claimedA] = (await store.claimDue({ status: 'PENDING', now: new Date(1), leaseUntil: leaseA, limit: 1000 })).filter((m) => m.id === message.id);
      assert.ok(claimedA);
      // A's lease expires; B claims the message with a lease of its own.
      const leaseB = new Date(leaseA.getTime() + 60_000);
      const [claimedB] = (await store.claimDue({ status: 'PENDING', now: leaseA, leaseUntil: leaseB, limit: 1000 })).filter((m) => m.id === message.id);
      assert.ok(claimedB);
      const base = { id: message.id, from: { status: 'PENDING' as const, deadReason: null }, to: 'PENDING' as const, deadReason: null, at: tick() };
      assert.equal(await store.transition({ ...base, set: { checkAttempts: 1 }, fence: { nextAttemptAt: leaseA } }), null);
      const byB = await store.transition({ ...base, set: { checkAttempts: 1 }, fence: { nextAttemptAt: leaseB } });
      assert.equal(byB?.checkAttempts, 1);
    });

    test('deleteFinished removes only COMPLETED and CANCELLED messages older than the cutoff, in bounded batches', async () => {
      const topic = `retention.${Date.now()}`;
      const old = new Date('2000-01-01T00:00:00Z');
      const finish = async (to: 'COMPLETED' | 'CANCELLED' | 'DEAD', at: Date) => {
        const { message } = await store.insert(newMessage({ topic }));
        const from = { status: 'PENDING' as const, deadReason: null };
        if (to === 'COMPLETED') {
          await store.transition({ id: message.id, from, to: 'SENDING', deadReason: null, at, set: {} });
          await store.transition({ id: message.id, from: { status: 'SENDING', deadReason: null }, to, deadReason: null, at, set: {} });
        } else {
          await store.transition({ id: message.id, from, to, deadReason: to === 'DEAD' ? 'CHECK_EXHAUSTED' : null, at, set: {} });
        }
        return message.id;
      };
      const oldCompleted = [await finish('COMPLETED', old), await finish('COMPLETED', old), await finish('CANCELLED', old)];
      const oldDead = await finish('DEAD', old);
      const recent = await finish('COMPLETED', new Date());
      const pending = (await store.insert(newMessage({ topic }))).message.id;
      const cutoff = new Date('2001-01-01T00:00:00Z');
      assert.equal(await store.deleteFinished(cutoff, 2), 2, 'at most the limit per call');
      assert.equal(await store.deleteFinished(cutoff, 100), 1);
      assert.equal(await store.deleteFinished(cutoff, 100), 0);
      for (const id of oldCompleted) assert.equal(await store.findById(id), null);
      for (const id of [oldDead, recent, pending]) assert.ok(await store.findById(id), 'kept');
    });

    test('list pages newest first, filters by status and topic, and visits each message once', async () => {
      const topic = `list.${Date.now()}`;
      const sameInstant = tick();
      const inserted: Message[] = [];
      for (let i = 0; i < 7; i++) {
        // Three share one createdAt: the id breaks the tie, so paging stays exact.
        const createdAt = i < 3 ? sameInstant : tick();
        inserted.push((await store.insert(newMessage({ topic, createdAt }))).message);
      }
      const cancelled = inserted[1];
      assert.ok(cancelled);
      await store.transition({ id: cancelled.id, from: { status: 'PENDING', deadReason: null }, to: 'CANCELLED', deadReason: null, at: tick(), set: {} });

      const seen: string[] = [];
      let page = await store.list({ topic, limit: 3 });
      seen.push(...page.messages.map((m) => m.id));
      while (page.next) {
        page = await store.list({ topic, limit: 3, after: page.next });
        seen.push(...page.messages.map((m) => m.id));
      }
      const expectedOrder = [...inserted]
        .sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime() || (a.id < b.id ? 1 : -1))
        .map((m) => m.id);
      assert.deepEqual(seen, expectedOrder);

      const onlyCancelled = await store.list({ topic, status: 'CANCELLED', limit: 10 });
      assert.deepEqual(onlyCancelled.messages.map((m) => m.id), [cancelled.id]);
      assert.equal(onlyCancelled.next, null);
      const otherTopic = await store.list({ topic: `${topic}.none`, limit: 10 });
      assert.deepEqual(otherTopic, { messages: [], next: null });
    });
  });
}
