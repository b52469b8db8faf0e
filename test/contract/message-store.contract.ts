/**
 * The contract every `MessageStore` adapter must meet. Each adapter's test file calls
 * `messageStoreContract` with a factory for a fresh, empty store.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { v7 as uuidv7 } from 'uuid';
import {
  type Delivery,
  type Message,
  type MessageEvent,
  MessageService,
  type MessageStore,
  type NewMessage,
  StateConflictError,
  type Transition,
  movedMessage,
  preparedMessage,
} from '@rms/message-service';

/** The values of settled batch outcomes, asserting that every one was fulfilled. */
export function fulfilled<T>(outcomes: PromiseSettledResult<T>[]): T[] {
  return outcomes.map((outcome, index) => {
    if (outcome.status === 'rejected') assert.fail(`batch element ${index} was rejected: ${String(outcome.reason)}`);
    return outcome.value;
  });
}

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

    /** What `insert` stores for `input`: a PENDING message with nothing else decided yet. */
    function storedFrom(input: NewMessage): Message {
      return {
        ...input,
        status: 'PENDING',
        deadReason: null,
        updatedAt: input.createdAt,
        confirmedAt: null,
        completedAt: null,
        cancelledAt: null,
        checkAttempts: 0,
        deliveryAttempts: 0,
        lastTransport: null,
        lastError: null,
        deliverAt: input.deliverAt ?? null,
        deliveries: [],
        version: 0,
        lastPublishedAt: null,
        traceparent: input.traceparent ?? null,
        tracestate: input.tracestate ?? null,
      };
    }

    /** What `transition` makes of `before` when `change` applies (every write bumps the version). */
    function applied(before: Message, change: Transition): Message {
      return { ...before, ...change.set, status: change.to, deadReason: change.deadReason, updatedAt: change.at, version: before.version + 1 };
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
        deliverAt: null,
        deliveries: [],
        version: 0,
        lastPublishedAt: null,
        traceparent: null,
        tracestate: null,
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

    test('a delayed message keeps its deliverAt, and deliveries round-trip with their times', async () => {
      const deliverAt = new Date(Date.parse('2026-06-01T12:00:00.123Z'));
      const { message } = await store.insert(newMessage({ deliverAt }));
      assert.deepEqual(message.deliverAt, deliverAt);
      const at = tick();
      const deliveries: Delivery[] = [
        { group: 'inventory', status: 'SENDING', attempts: 1, nextAttemptAt: deliverAt, lastTransport: 'rabbitmq', lastError: null, ackedAt: null },
        { group: 'loyalty', status: 'ACKED', attempts: 2, nextAttemptAt: null, lastTransport: 'redis', lastError: 'rabbitmq: down', ackedAt: at },
        { group: 'shipping', status: 'DEAD', attempts: 50, nextAttemptAt: null, lastTransport: null, lastError: 'x', ackedAt: null },
      ];
      const updated = await store.transition({
        id: message.id, from: { status: 'PENDING', deadReason: null }, to: 'SENDING', deadReason: null, at, set: { confirmedAt: at, nextAttemptAt: deliverAt, deliveries },
      });
      assert.deepEqual(updated?.deliveries, deliveries);
      assert.deepEqual((await store.findById(message.id))?.deliveries, deliveries);
      assert.deepEqual((await store.findByIds([message.id]))[0]?.deliveries, deliveries);
    });

    test('every write bumps the version, and a versioned transition applies only on the version it read', async () => {
      const { message } = await store.insert(newMessage({ nextAttemptAt: new Date(0) }));
      assert.equal(message.version, 0);
      const base = { id: message.id, from: { status: 'PENDING' as const, deadReason: null }, to: 'PENDING' as const, deadReason: null };
      const first = await store.transition({ ...base, at: tick(), set: { checkAttempts: 1 }, version: 0 });
      assert.equal(first?.version, 1);
      assert.equal(await store.transition({ ...base, at: tick(), set: { checkAttempts: 2 }, version: 0 }), null, 'a stale version writes nothing');
      const [claimed] = (await store.claimDue({ status: 'PENDING', now: new Date(1), leaseUntil: new Date(Date.parse('2031-01-01T00:00:00Z')), limit: 1000 })).filter((m) => m.id === message.id);
      assert.equal(claimed?.version, 2, 'a claim is a write too');
      const [viaMany] = fulfilled(await store.transitionMany([{ ...base, at: tick(), set: { checkAttempts: 3 }, version: 1 }]));
      assert.equal(viaMany, null, 'transitionMany checks the version like transition');
      const [fresh] = fulfilled(await store.transitionMany([{ ...base, at: tick(), set: { checkAttempts: 3 }, version: 2 }]));
      assert.equal(fresh?.checkAttempts, 3);
      assert.equal(fresh?.version, 3);
    });

    test('claimDue for deliveries also claims a DEAD message that still has a delivery due, and never a delayed one early', async () => {
      const base = tick().getTime() + 5_000_000;
      const topic = `claim.dead.${base}`;
      const confirm = async (nextAttemptAt: Date | null, to: 'SENDING' | 'DEAD') => {
        const { message } = await store.insert(newMessage({ topic, nextAttemptAt: new Date(base + 1) }));
        return store.transition({
          id: message.id, from: { status: 'PENDING', deadReason: null }, to, deadReason: to === 'DEAD' ? 'DELIVERY_EXHAUSTED' : null, at: tick(), set: { nextAttemptAt },
        });
      };
      const deadButDue = await confirm(new Date(base - 1000), 'DEAD');
      const deadAndDone = await confirm(null, 'DEAD');
      const delayed = await confirm(new Date(base + 3_600_000), 'SENDING');
      const claimed = (await store.claimDue({ status: 'SENDING', now: new Date(base), leaseUntil: new Date(base + 30_000), limit: 1000 })).filter((m) => m.topic === topic);
      assert.deepEqual(claimed.map((m) => m.id), [deadButDue?.id]);
      assert.equal((await store.findById(deadAndDone!.id))?.nextAttemptAt, null);
      assert.equal((await store.findById(delayed!.id))?.nextAttemptAt?.getTime(), base + 3_600_000);
      const checkBacks = (await store.claimDue({ status: 'PENDING', now: new Date(base + 7_200_000), leaseUntil: new Date(base + 7_300_000), limit: 1000 })).filter((m) => m.topic === topic);
      assert.deepEqual(checkBacks, [], 'check-back claims never take confirmed messages');
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

    test('the trace context round-trips through insert and insertMany, and lastPublishedAt through a transition', async () => {
      const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
      const { message } = await store.insert(newMessage({ traceparent, tracestate: 'rms=1' }));
      assert.equal(message.traceparent, traceparent);
      assert.equal(message.tracestate, 'rms=1');
      const [batched] = fulfilled(await store.insertMany([newMessage({ traceparent })]));
      assert.equal(batched?.message.traceparent, traceparent);
      assert.equal(batched?.message.tracestate, null);
      const at = tick();
      const moved = await store.transition({
        id: message.id,
        from: { status: 'PENDING', deadReason: null },
        to: 'SENDING',
        deadReason: null,
        at,
        set: { confirmedAt: at, lastPublishedAt: at },
      });
      assert.deepEqual(moved?.lastPublishedAt, at);
      assert.deepEqual((await store.findById(message.id))?.lastPublishedAt, at);
    });

    test('backlogByTopic counts PENDING, SENDING and DEAD per topic with the oldest PENDING creation and SENDING confirmation', async () => {
      const topic = (name: string) => `backlog.${name}.${clock}`;
      const [busy, idle] = [topic('busy'), topic('idle')];
      const oldestPending = await store.insert(newMessage({ topic: busy }));
      await store.insert(newMessage({ topic: busy }));
      const moveTo = async (target: 'SENDING' | 'DEAD' | 'COMPLETED', topicName: string) => {
        const { message } = await store.insert(newMessage({ topic: topicName }));
        const at = tick();
        await store.transition({ id: message.id, from: { status: 'PENDING', deadReason: null }, to: 'SENDING', deadReason: null, at, set: { confirmedAt: at } });
        if (target !== 'SENDING') {
          await store.transition({
            id: message.id,
            from: { status: 'SENDING', deadReason: null },
            to: target,
            deadReason: target === 'DEAD' ? 'DELIVERY_EXHAUSTED' : null,
            at: tick(),
            set: {},
          });
        }
        return at;
      };
      const firstConfirmed = await moveTo('SENDING', busy);
      await moveTo('SENDING', busy);
      await moveTo('DEAD', busy);
      await moveTo('COMPLETED', busy);
      await moveTo('DEAD', idle);
      const backlog = (await store.backlogByTopic()).filter((entry) => entry.topic === busy || entry.topic === idle);
      assert.deepEqual(backlog, [
        { topic: busy, pending: 2, sending: 2, dead: 1, oldestPendingCreatedAt: oldestPending.message.createdAt, oldestSendingConfirmedAt: firstConfirmed },
        { topic: idle, pending: 0, sending: 0, dead: 1, oldestPendingCreatedAt: null, oldestSendingConfirmedAt: null },
      ]);
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

    test('pruneFinished removes only COMPLETED and CANCELLED messages finished on days before the cutoff, never more than a row-deleting store’s limit per call', async () => {
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
      // A store that deletes rows (MongoDB) removes at most the limit per call; one that
      // drops whole days (PostgreSQL) removes the days' messages at once.
      const removedPerCall: number[] = [];
      for (let call = 0; call < 5; call++) {
        const removed = await store.pruneFinished(cutoff, 2);
        removedPerCall.push(removed);
        if (removed === 0) break;
      }
      assert.equal(removedPerCall.reduce((sum, removed) => sum + removed, 0), 3, `removed per call: ${removedPerCall.join(', ')}`);
      assert.equal(removedPerCall.at(-1), 0, 'a call after everything is removed removes nothing');
      if (store.kind === 'mongodb') assert.ok(removedPerCall.every((removed) => removed <= 2), 'at most the limit per call');
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

    test('insertMany stores new messages in the order given, each round-tripping like insert', async () => {
      const inputs = [
        newMessage({
          producerMessageId: 'key-batch-new',
          payload: { order: { lines: [1, 2.5, 'x', null, true, { deep: {} }] }, text: 'héllo ✓' },
          headers: { 'trace-id': 'abc', empty: '' },
        }),
        newMessage({ producerMessageId: null, topic: 'stock.release', payload: null }),
        // The same key under another producer is another key, also within one batch.
        newMessage({ producer: 'billing', producerMessageId: 'key-batch-new', payload: ['a', 2], nextAttemptAt: new Date(0) }),
      ];
      const results = fulfilled(await store.insertMany(inputs));
      assert.equal(results.length, 3);
      for (const [i, input] of inputs.entries()) {
        assert.deepEqual(results[i], { message: storedFrom(input), created: true }, `message ${i}`);
        assert.deepEqual(await store.findById(input.id), storedFrom(input), `message ${i} as stored`);
      }
    });

    test('insertMany answers a known or repeated producer key with the stored message, as racing inserts would', async () => {
      const existing = (await store.insert(newMessage({ producerMessageId: 'key-batch-known' }))).message;
      const inputs = [
        newMessage({ producerMessageId: 'key-batch-fresh', payload: { first: true } }),
        newMessage({ producerMessageId: 'key-batch-known', payload: { late: true } }),
        newMessage({ producerMessageId: null }),
        newMessage({ producerMessageId: 'key-batch-fresh', payload: { second: true } }),
        newMessage({ producerMessageId: 'key-batch-other' }),
      ];
      const [fresh, known, unkeyed, repeat, other] = inputs as [NewMessage, NewMessage, NewMessage, NewMessage, NewMessage];
      const results = fulfilled(await store.insertMany(inputs));
      assert.deepEqual(results, [
        { message: storedFrom(fresh), created: true },
        { message: existing, created: false },
        { message: storedFrom(unkeyed), created: true },
        // The first of the batch holding the key wins, payload and all.
        { message: storedFrom(fresh), created: false },
        { message: storedFrom(other), created: true },
      ]);
      assert.equal(await store.findById(known.id), null, 'no second message under a known key');
      assert.equal(await store.findById(repeat.id), null, 'no second message under a key repeated in the batch');
      assert.deepEqual(await store.findById(existing.id), existing, 'the stored message is left as it was');
      for (const input of [fresh, unkeyed, other]) assert.deepEqual(await store.findById(input.id), storedFrom(input));
    });

    test('insertMany of nothing stores nothing and answers []', async () => {
      assert.deepEqual(await store.insertMany([]), []);
    });

    test('findByIds answers in the order given, null for an unknown id, and a repeated id twice', async () => {
      const a = (await store.insert(newMessage())).message;
      const b = (await store.insert(newMessage({ payload: 'b' }))).message;
      const at = tick();
      const c = await store.transition({
        id: (await store.insert(newMessage())).message.id,
        from: { status: 'PENDING', deadReason: null },
        to: 'CANCELLED',
        deadReason: null,
        at,
        set: { cancelledAt: at, nextAttemptAt: null },
      });
      assert.ok(c);
      const unknown = uuidv7();
      assert.deepEqual(await store.findByIds([b.id, unknown, c.id, a.id, b.id]), [b, null, c, a, b]);
      assert.deepEqual(await store.findByIds([unknown]), [null]);
      assert.deepEqual(await store.findByIds([]), []);
    });

    test('transitionMany applies each change exactly as transition would, answering in the order given', async () => {
      const pending = async (overrides: Partial<NewMessage> = {}) => (await store.insert(newMessage(overrides))).message;
      const deadOne = async () => {
        const dead = await store.transition({
          id: (await pending()).id,
          from: { status: 'PENDING', deadReason: null },
          to: 'DEAD',
          deadReason: 'CHECK_EXHAUSTED',
          at: tick(),
          set: { checkAttempts: 5, nextAttemptAt: null },
        });
        assert.ok(dead);
        return dead;
      };
      const lease = new Date(Date.parse('2031-01-01T00:00:00Z'));
      const fromPending = { status: 'PENDING' as const, deadReason: null };
      const later = (at: Date, ms: number) => new Date(at.getTime() + ms);
      // Each case: the message as it is before, the change, and whether the change applies.
      // Deliberately interleaved, with pairs of the same shape (condition, target, fields
      // set, fenced or not) but values of their own: an adapter that batches by shape must
      // still apply each change's own `at`, fields and fence.
      const cases: { before: Message | null; change: (id: string, at: Date) => Transition; applies: boolean }[] = [
        {
          before: await pending(),
          change: (id, at) => ({ id, from: fromPending, to: 'SENDING', deadReason: null, at, set: { confirmedAt: at, nextAttemptAt: later(at, 30_000) } }),
          applies: true,
        },
        {
          before: await pending(),
          change: (id, at) => ({ id, from: { status: 'SENDING', deadReason: null }, to: 'COMPLETED', deadReason: null, at, set: { completedAt: at } }),
          applies: false,
        },
        {
          before: await pending(),
          change: (id, at) => ({ id, from: fromPending, to: 'CANCELLED', deadReason: null, at, set: { cancelledAt: at, nextAttemptAt: null } }),
          applies: true,
        },
        {
          before: await pending({ nextAttemptAt: lease }),
          change: (id, at) => ({
            id, from: fromPending, to: 'PENDING', deadReason: null, at, set: { checkAttempts: 1, nextAttemptAt: later(at, 6000) },
            fence: { nextAttemptAt: later(lease, -60_000) },
          }),
          applies: false,
        },
        {
          before: await pending(),
          change: (id, at) => ({ id, from: fromPending, to: 'SENDING', deadReason: null, at, set: { confirmedAt: at, nextAttemptAt: later(at, 45_000) } }),
          applies: true,
        },
        {
          before: null,
          change: (_, at) => ({ id: uuidv7(), from: fromPending, to: 'CANCELLED', deadReason: null, at, set: { cancelledAt: at } }),
          applies: false,
        },
        {
          before: await pending({ nextAttemptAt: lease }),
          change: (id, at) => ({
            id, from: fromPending, to: 'PENDING', deadReason: null, at, set: { checkAttempts: 1, nextAttemptAt: later(at, 6000) },
            fence: { nextAttemptAt: lease },
          }),
          applies: true,
        },
        {
          // A null fence requires nextAttemptAt to still be null.
          before: await deadOne(),
          change: (id, at) => ({
            id, from: { status: 'DEAD', deadReason: 'CHECK_EXHAUSTED' }, to: 'PENDING', deadReason: null, at, set: { checkAttempts: 0, nextAttemptAt: at },
            fence: { nextAttemptAt: null },
          }),
          applies: true,
        },
        {
          before: await deadOne(),
          change: (id, at) => ({ id, from: { status: 'DEAD', deadReason: 'DELIVERY_EXHAUSTED' }, to: 'SENDING', deadReason: null, at, set: { deliveryAttempts: 0, nextAttemptAt: at } }),
          applies: false,
        },
      ];
      const changes = cases.map(({ before, change }) => change(before?.id ?? '', tick()));
      const results = fulfilled(await store.transitionMany(changes));
      assert.deepEqual(
        results,
        cases.map(({ before, applies }, i) => (applies && before ? applied(before, changes[i] as Transition) : null)),
      );
      for (const [i, { before }] of cases.entries()) {
        const stored = await store.findById((changes[i] as Transition).id);
        // What the answer says for a moved message, exactly as it was for the others.
        assert.deepEqual(stored, results[i] ?? before, `change ${i}`);
      }
    });

    test('move applies a change exactly as transition would, answering only the id and the new version; moveMany each change on its own', async () => {
      const fromPending = { status: 'PENDING' as const, deadReason: null };
      const pending = async () => (await store.insert(newMessage())).message;
      const confirm = (message: Message, overrides: Partial<Transition> = {}): Transition => {
        const at = tick();
        return { id: message.id, from: fromPending, to: 'SENDING', deadReason: null, at, set: { confirmedAt: at, nextAttemptAt: new Date(at.getTime() + 30_000) }, ...overrides };
      };

      const alone = await pending();
      const change = confirm(alone, { version: alone.version });
      const moved = await store.move(change);
      assert.deepEqual(moved, { id: alone.id, version: alone.version + 1 });
      const stored = await store.findById(alone.id);
      assert.deepEqual(stored, applied(alone, change), 'the row is what transition would have left');
      assert.deepEqual(stored, movedMessage(alone, change, moved), 'and what the caller rebuilds from its read');
      assert.equal(await store.move(confirm(alone)), null, 'a message no longer in the expected state does not move');
      assert.deepEqual(await store.findById(alone.id), stored);

      // One case per condition, some of the same shape, in one call.
      const [a, b, c, d] = [await pending(), await pending(), await pending(), await pending()];
      assert.ok(a && b && c && d);
      const changes = [
        confirm(a, { version: a.version }),
        confirm(b, { version: b.version + 1 }), // another write got there first
        confirm(c),
        { id: uuidv7(), from: fromPending, to: 'CANCELLED' as const, deadReason: null, at: tick(), set: { cancelledAt: tick() } },
        confirm(d, { fence: { nextAttemptAt: d.nextAttemptAt } }),
      ];
      const answers = fulfilled(await store.moveMany(changes));
      assert.deepEqual(answers, [{ id: a.id, version: 1 }, null, { id: c.id, version: 1 }, null, { id: d.id, version: 1 }]);
      for (const [i, before] of [a, b, c, null, d].entries()) {
        if (!before) continue;
        const answer = answers[i];
        assert.deepEqual(await store.findById(before.id), answer ? movedMessage(before, changes[i] as Transition, answer) : before, `change ${i}`);
      }
      await assert.rejects(store.moveMany([confirm(a), confirm(b), confirm(a)]), RangeError);
      assert.deepEqual(await store.findById(b.id), b, 'a refused moveMany writes nothing');
      assert.deepEqual(await store.moveMany([]), []);
    });

    test('a created insert answers what it stored without reading it back: preparedMessage of the input', async () => {
      const input = newMessage({ producerMessageId: 'key-prepared', headers: { b: '2', a: '1' }, deliverAt: new Date(clock + 60_000), traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' });
      const { message, created } = await store.insert(input);
      assert.equal(created, true);
      assert.deepEqual(message, preparedMessage(input));
      assert.deepEqual(await store.findById(input.id), message);
      const [batched] = fulfilled(await store.insertMany([newMessage({ producerMessageId: 'key-prepared-batch' })]));
      assert.ok(batched?.created);
      assert.deepEqual(await store.findById(batched.message.id), batched.message);
    });

    test('transitionMany refuses a message named twice with RangeError and writes nothing', async () => {
      const a = (await store.insert(newMessage())).message;
      const b = (await store.insert(newMessage())).message;
      const change = (message: Message, to: 'SENDING' | 'CANCELLED'): Transition => ({
        id: message.id, from: { status: 'PENDING', deadReason: null }, to, deadReason: null, at: tick(), set: {},
      });
      await assert.rejects(store.transitionMany([change(a, 'SENDING'), change(b, 'CANCELLED'), change(a, 'CANCELLED')]), RangeError);
      assert.deepEqual(await store.findById(a.id), a);
      assert.deepEqual(await store.findById(b.id), b);
    });

    test('transitionMany of nothing answers []', async () => {
      assert.deepEqual(await store.transitionMany([]), []);
    });

    test('a transition with a producer moves only a message of that producer, alone and within transitionMany', async () => {
      const fromPending = { status: 'PENDING' as const, deadReason: null };
      const confirm = (message: Message, producer: string | undefined, at = tick()): Transition => ({
        id: message.id, from: fromPending, to: 'SENDING', deadReason: null, at, set: { confirmedAt: at },
        ...(producer !== undefined && { producer }),
      });
      const ordersMessage = async () => (await store.insert(newMessage({ producer: 'orders' }))).message;

      const owned = await ordersMessage();
      const ownedChange = confirm(owned, 'orders');
      assert.deepEqual(await store.transition(ownedChange), applied(owned, ownedChange), 'the owner’s change moves it');

      const foreign = await ordersMessage();
      assert.equal(await store.transition(confirm(foreign, 'billing')), null, 'another producer’s change matches nothing');
      assert.deepEqual(await store.findById(foreign.id), foreign, 'and leaves the message as it was');

      // Owned and not-owned changes of the same shape, a message of another producer, and a
      // change without any producer condition, all in one call.
      const cases: { before: Message; change: Transition; applies: boolean }[] = [];
      const add = (before: Message, producer: string | undefined, applies: boolean) => cases.push({ before, change: confirm(before, producer), applies });
      add(await ordersMessage(), 'orders', true);
      add(await ordersMessage(), 'billing', false);
      add((await store.insert(newMessage({ producer: 'billing' }))).message, 'billing', true);
      add((await store.insert(newMessage({ producer: 'billing' }))).message, 'orders', false);
      add(await ordersMessage(), undefined, true);
      add(await ordersMessage(), 'orders', true);
      add(await ordersMessage(), 'inventory', false);
      const results = fulfilled(await store.transitionMany(cases.map(({ change }) => change)));
      assert.deepEqual(results, cases.map(({ before, change, applies }) => (applies ? applied(before, change) : null)));
      for (const [i, { before, applies }] of cases.entries()) {
        assert.deepEqual(await store.findById(before.id), applies ? results[i] : before, `change ${i}`);
      }
    });

    /** A history event of `messageId` at `at`, every other field set so that all of them round-trip. */
    function event(messageId: string, at: Date, overrides: Partial<MessageEvent> = {}): MessageEvent {
      return {
        messageId,
        at,
        type: 'delivery',
        actor: 'rms',
        app: 'orders',
        group: 'inventory',
        attempt: 2,
        transport: 'redis',
        outcome: 'published',
        durationMs: 12,
        reason: 'rabbitmq: connection refused',
        nextAttemptAt: new Date(at.getTime() + 5000),
        ...overrides,
      };
    }

    test('history: appended events come back oldest first, every field round-tripping, only the asked message’s, at most the limit', async () => {
      const { message } = await store.insert(newMessage());
      const { message: other } = await store.insert(newMessage());
      const t0 = tick();
      const prepared = event(message.id, t0, { type: 'prepared', actor: 'producer', group: null, attempt: null, transport: null, outcome: null, durationMs: null, reason: null, nextAttemptAt: null });
      const delivery = event(message.id, new Date(t0.getTime() + 20));
      const failure = event(message.id, new Date(t0.getTime() + 40), { type: 'consumer-failure', actor: 'consumer', app: 'inventory', reason: 'TypeError: sku missing ✓' });
      // Appended out of order and in two calls, with another message's event between.
      await store.appendEvents([failure, event(other.id, t0)]);
      await store.appendEvents([prepared, delivery]);
      assert.deepEqual(await store.history(message.id, 100), [prepared, delivery, failure]);
      assert.deepEqual(await store.history(message.id, 2), [prepared, delivery]);
      assert.deepEqual(await store.history(other.id, 100), [event(other.id, t0)]);
      assert.deepEqual(await store.history(uuidv7(), 100), []);
      await store.appendEvents([]);
    });

    test('history is pruned with its message by pruneFinished, and kept for messages that stay', async () => {
      const topic = `history-retention.${Date.now()}`;
      const old = new Date('2000-01-01T00:00:00Z');
      const { message: gone } = await store.insert(newMessage({ topic }));
      const { message: kept } = await store.insert(newMessage({ topic }));
      await store.transition({ id: gone.id, from: { status: 'PENDING', deadReason: null }, to: 'CANCELLED', deadReason: null, at: old, set: {} });
      await store.appendEvents([event(gone.id, old, { type: 'cancelled' }), event(kept.id, old, { type: 'prepared' })]);
      let deleted = 0;
      while ((await store.pruneFinished(new Date('2001-01-01T00:00:00Z'), 100)) > 0) deleted++;
      assert.ok(deleted >= 1);
      assert.deepEqual(await store.history(gone.id, 100), []);
      assert.equal((await store.history(kept.id, 100)).length, 1);
    });

    test('list filters by producer, by the producer’s key and by a creation time range, combined with paging', async () => {
      const topic = `search.${Date.now()}`;
      const inserted: Message[] = [];
      for (let i = 0; i < 6; i++) {
        const producer = i % 2 === 0 ? 'orders' : 'billing';
        inserted.push((await store.insert(newMessage({ topic, producer, producerMessageId: `order-${i}` }))).message);
      }
      const ids = (page: { messages: Message[] }) => page.messages.map((m) => m.id);
      const newestFirst = (messages: Message[]) => [...messages].reverse().map((m) => m.id);
      const billing = inserted.filter((m) => m.producer === 'billing');
      assert.deepEqual(ids(await store.list({ topic, producer: 'billing', limit: 10 })), newestFirst(billing));
      assert.deepEqual(ids(await store.list({ producerMessageId: 'order-3', limit: 10 })).filter((id) => inserted.some((m) => m.id === id)), [inserted[3]?.id]);
      assert.deepEqual(ids(await store.list({ producerMessageId: 'order-3', producer: 'orders', topic, limit: 10 })), []);
      const from = inserted[1]?.createdAt as Date;
      const before = inserted[4]?.createdAt as Date;
      assert.deepEqual(ids(await store.list({ topic, createdFrom: from, createdBefore: before, limit: 10 })), newestFirst(inserted.slice(1, 4)), 'from inclusive, to exclusive');
      const first = await store.list({ topic, createdFrom: from, limit: 2 });
      assert.ok(first.next);
      const second = await store.list({ topic, createdFrom: from, limit: 2, after: first.next });
      assert.deepEqual([...ids(first), ...ids(second)], newestFirst(inserted.slice(1)).slice(0, 4));
    });

    test('countByStatusAndTopic counts every (status, topic) pair; oldestWaiting lists PENDING and SENDING messages created longest ago', async () => {
      const topic = `stats.${Date.now()}`;
      const longAgo = (year: number) => new Date(`${year}-01-01T00:00:00Z`);
      const pendingOld = (await store.insert(newMessage({ topic, createdAt: longAgo(1990) }))).message;
      const sendingOld = (await store.insert(newMessage({ topic, createdAt: longAgo(1991) }))).message;
      const cancelledOlder = (await store.insert(newMessage({ topic, createdAt: longAgo(1989) }))).message;
      await store.insert(newMessage({ topic }));
      const pending = { status: 'PENDING' as const, deadReason: null };
      const far = new Date('2100-01-01T00:00:00Z'); // never due: the claim tests must not see these
      await store.transition({ id: sendingOld.id, from: pending, to: 'SENDING', deadReason: null, at: tick(), set: { nextAttemptAt: far } });
      await store.transition({ id: pendingOld.id, from: pending, to: 'PENDING', deadReason: null, at: tick(), set: { nextAttemptAt: far } });
      await store.transition({ id: cancelledOlder.id, from: pending, to: 'CANCELLED', deadReason: null, at: tick(), set: {} });

      const counts = (await store.countByStatusAndTopic()).filter((count) => count.topic === topic);
      const byStatus = Object.fromEntries(counts.map((count) => [count.status, count.count]));
      assert.deepEqual(byStatus, { PENDING: 2, SENDING: 1, CANCELLED: 1 });
      assert.deepEqual((await store.oldestWaiting(2)).map((m) => m.id), [pendingOld.id, sendingOld.id]);

      // Settle them, so that no later test finds them waiting.
      await store.transition({ id: pendingOld.id, from: pending, to: 'CANCELLED', deadReason: null, at: tick(), set: {} });
      await store.transition({ id: sendingOld.id, from: { status: 'SENDING', deadReason: null }, to: 'COMPLETED', deadReason: null, at: tick(), set: {} });
    });
  });
}
