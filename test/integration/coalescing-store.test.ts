/**
 * `CoalescingMessageStore` over a real PostgreSQL store: it must meet the store contract
 * like any adapter, turn concurrent calls into few batch statements while each call keeps
 * the answer the store would give it alone, keep racing commands to one winner, and let a
 * call that breaks its batch statement fail alone.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { v7 as uuidv7 } from 'uuid';
import {
  DependencyUnavailableError,
  ValueRefusedByStoreError,
  type Message,
  MessageService,
  type MessageStore,
  type NewMessage,
  PostgresMessageStore,
  StateConflictError,
  type Transition,
} from '@rms/message-service';
// Not part of the package's public surface: the server wires it in itself.
import { CoalescingMessageStore } from '../../services/message-service/src/store/coalescing-message-store.js';
import { messageStoreContract } from '../contract/message-store.contract.js';
import { dropSchema, freshSchemaUrl } from '../support/postgres.js';

messageStoreContract('PostgreSQL behind CoalescingMessageStore', async () => {
  const { url, schema } = freshSchemaUrl();
  const store = new CoalescingMessageStore(new PostgresMessageStore({ url }));
  return {
    store,
    async dispose() {
      await store.close();
      await dropSchema(schema);
    },
  };
});

/** What the decorator asks of the store beneath it: calls per method, and every message a transition or a move moved. */
function spyOn(inner: MessageStore) {
  const calls = { insert: 0, insertMany: 0, findById: 0, findByIds: 0, transition: 0, transitionMany: 0, move: 0, moveMany: 0 };
  const moved: Message[] = [];
  // A move answers only the id and version: the spy reads what it wrote (nothing else writes these messages).
  const movedRow = async (id: string) => {
    const message = await inner.findById(id);
    if (message) moved.push(message);
  };
  const store: MessageStore = {
    kind: inner.kind,
    init: () => inner.init(),
    close: () => inner.close(),
    ping: () => inner.ping(),
    backlogByTopic: () => inner.backlogByTopic(),
    insert: (message) => (calls.insert++, inner.insert(message)),
    insertMany: (messages) => (calls.insertMany++, inner.insertMany(messages)),
    findById: (id) => (calls.findById++, inner.findById(id)),
    findByIds: (ids) => (calls.findByIds++, inner.findByIds(ids)),
    transition: async (change) => {
      calls.transition++;
      const result = await inner.transition(change);
      if (result) moved.push(result);
      return result;
    },
    transitionMany: async (changes) => {
      calls.transitionMany++;
      const results = await inner.transitionMany(changes);
      for (const result of results) if (result.status === 'fulfilled' && result.value) moved.push(result.value);
      return results;
    },
    move: async (change) => {
      calls.move++;
      const result = await inner.move(change);
      if (result) await movedRow(result.id);
      return result;
    },
    moveMany: async (changes) => {
      calls.moveMany++;
      const results = await inner.moveMany(changes);
      for (const result of results) if (result.status === 'fulfilled' && result.value) await movedRow(result.value.id);
      return results;
    },
    list: (query) => inner.list(query),
    claimDue: (query) => inner.claimDue(query),
    pruneFinished: (before, limit) => inner.pruneFinished(before, limit),
    appendEvents: (events) => inner.appendEvents(events),
    history: (id, limit) => inner.history(id, limit),
    countByStatusAndTopic: () => inner.countByStatusAndTopic(),
    oldestWaiting: (limit) => inner.oldestWaiting(limit),
  };
  return { store, calls, moved };
}

type Dispatcher = NonNullable<ConstructorParameters<typeof MessageService>[0]['dispatcher']>;

/** A dispatcher that only records what it was asked to publish: a message that entered SENDING. */
function recordingDispatcher() {
  const dispatched: string[] = [];
  const dispatch = (message: Message) => void dispatched.push(message.id);
  const dispatcher = { firstRound: () => undefined, dispatchConfirmed: dispatch, dispatchSoon: dispatch } as unknown as Dispatcher;
  return { dispatcher, dispatched };
}

const PRODUCER = { app: 'orders', roles: ['producer' as const] };
const PENDING = { status: 'PENDING' as const, deadReason: null };

let clock = Date.parse('2026-03-01T00:00:00Z');
const tick = () => new Date((clock += 1000));

function newMessage(overrides: Partial<NewMessage> = {}): NewMessage {
  const createdAt = tick();
  return {
    id: uuidv7(),
    producer: 'orders',
    producerMessageId: null,
    topic: 'stock.reduce',
    payload: { n: 1 },
    headers: {},
    createdAt,
    nextAttemptAt: new Date(createdAt.getTime() + 6000),
    ...overrides,
  };
}

function confirmChange(id: string, at = tick()): Transition {
  return { id, from: PENDING, to: 'SENDING', deadReason: null, at, set: { confirmedAt: at } };
}

describe('CoalescingMessageStore over PostgreSQL: concurrent calls share statements, each keeps its own answer', { timeout: 120_000 }, () => {
  let schema: string;
  let postgres: PostgresMessageStore;
  let spy: ReturnType<typeof spyOn>;
  let store: CoalescingMessageStore;

  before(async () => {
    const fresh = freshSchemaUrl();
    schema = fresh.schema;
    postgres = new PostgresMessageStore({ url: fresh.url });
    spy = spyOn(postgres);
    store = new CoalescingMessageStore(spy.store);
    await store.init();
  });
  after(async () => {
    await store?.close();
    if (schema) await dropSchema(schema);
  });

  test('200 concurrent inserts each resolve with their own result while sharing far fewer than 200 statements', async () => {
    const known = (await postgres.insert(newMessage({ producerMessageId: 'coalesce-known' }))).message;
    const inputs = Array.from({ length: 200 }, (_, i) =>
      newMessage({
        payload: { i },
        // Four reuse a key already stored, two share a key new to the batch, the rest have keys or none.
        producerMessageId: i % 50 === 0 ? 'coalesce-known' : i === 7 || i === 8 ? 'coalesce-twice' : i % 3 === 0 ? null : `coalesce-${i}`,
      }),
    );
    const before = { batches: store.batches.inserts, calls: { ...spy.calls } };
    const results = await Promise.all(inputs.map((input) => store.insert(input)));

    const batches = store.batches.inserts - before.batches;
    assert.ok(batches >= 1 && batches <= 10, `200 inserts took ${batches} batch statements`);
    assert.equal(spy.calls.insert - before.calls.insert, 0, 'no insert had to be retried alone');
    for (const [i, input] of inputs.entries()) {
      const result = results[i];
      assert.ok(result, `insert ${i} answered`);
      if (input.producerMessageId === 'coalesce-known') {
        assert.deepEqual(result, { message: known, created: false }, `insert ${i} finds the stored message`);
      } else if (i === 8) {
        assert.equal(result.created, false, 'the second of two same-key inserts finds the first');
        assert.equal(result.message.id, inputs[7]?.id);
        assert.deepEqual(result.message.payload, { i: 7 });
      } else {
        assert.equal(result.created, true, `insert ${i} is new`);
        assert.equal(result.message.id, input.id, `insert ${i} answers its own message`);
        assert.deepEqual(result.message.payload, { i }, `insert ${i} answers its own payload`);
        assert.equal(result.message.producerMessageId, input.producerMessageId);
        assert.equal(result.message.status, 'PENDING');
        assert.deepEqual(result.message.createdAt, input.createdAt);
      }
    }
    const stored = await postgres.findByIds(inputs.map((input) => input.id));
    const expectedStored = inputs.map((input, i) => input.producerMessageId !== 'coalesce-known' && i !== 8);
    assert.deepEqual(stored.map((message) => message !== null), expectedStored, 'exactly the new messages are stored');
  });

  test('50 racing confirms of one message through MessageService: it moves once, and every confirm answers SENDING', async () => {
    const { dispatcher, dispatched } = recordingDispatcher();
    const service = new MessageService({ store, checkDelayMs: 6000, dispatcher });
    const { message } = await service.prepare(PRODUCER, { topic: 'stock.reduce', payload: { race: 'confirm' } });
    const movedBefore = spy.moved.length;

    const answers = await Promise.all(Array.from({ length: 50 }, () => service.confirm(PRODUCER, message.id)));

    const moves = spy.moved.slice(movedBefore).filter((moved) => moved.id === message.id);
    assert.equal(moves.length, 1, 'exactly one write moved the message');
    assert.equal(moves[0]?.status, 'SENDING');
    assert.deepEqual(dispatched, [message.id], 'it is handed to the dispatcher once');
    for (const answer of answers) {
      assert.equal(answer.status, 'SENDING');
      assert.deepEqual(answer.confirmedAt, moves[0]?.confirmedAt, 'the losers see the winner’s confirm');
    }
    assert.deepEqual(await postgres.findById(message.id), moves[0]);
  });

  test('20 messages each confirmed and cancelled concurrently: each ends SENDING or CANCELLED, and every loser gets StateConflictError', async () => {
    const { dispatcher, dispatched } = recordingDispatcher();
    const service = new MessageService({ store, checkDelayMs: 6000, dispatcher });
    const prepared = await Promise.all(
      Array.from({ length: 20 }, (_, i) => service.prepare(PRODUCER, { topic: 'stock.reduce', payload: { race: i } })),
    );
    const ids = prepared.map(({ message }) => message.id);
    const movedBefore = spy.moved.length;
    const batchesBefore = store.batches.moves;

    // Two confirms and two cancels per message, interleaved across messages, all at once.
    const calls = ids.flatMap((id, i) =>
      (i % 2 === 0 ? (['confirm', 'cancel', 'confirm', 'cancel'] as const) : (['cancel', 'confirm', 'cancel', 'confirm'] as const)).map((command) => ({ id, command })),
    );
    const outcomes = await Promise.all(
      calls.map(async ({ id, command }) => {
        try {
          const message = await (command === 'confirm' ? service.confirm(PRODUCER, id) : service.cancel(PRODUCER, id));
          return { id, command, ok: true, status: message.status };
        } catch (error) {
          assert.ok(error instanceof StateConflictError, `${command} ${id}: unexpected ${String(error)}`);
          return { id, command, ok: false, status: error.status };
        }
      }),
    );

    const finals = await postgres.findByIds(ids);
    const moves = spy.moved.slice(movedBefore);
    for (const [i, id] of ids.entries()) {
      const final = finals[i];
      assert.ok(final && (final.status === 'SENDING' || final.status === 'CANCELLED'), `message ${i} ends ${final?.status}`);
      assert.equal(moves.filter((moved) => moved.id === id).length, 1, `message ${i} moved exactly once`);
      const winner = final.status === 'SENDING' ? 'confirm' : 'cancel';
      for (const outcome of outcomes.filter((o) => o.id === id)) {
        assert.equal(outcome.ok, outcome.command === winner, `message ${i}: ${JSON.stringify(outcome)}`);
        assert.equal(outcome.status, final.status, `message ${i}: every answer reports the final status`);
      }
    }
    const sending = ids.filter((_, i) => finals[i]?.status === 'SENDING');
    assert.deepEqual([...dispatched].sort(), [...sending].sort(), 'exactly the confirmed messages are dispatched, once each');
    const batches = store.batches.moves - batchesBefore;
    assert.ok(batches < calls.length / 2, `${calls.length} commands took ${batches} move batches: messages share them`);
  });

  test('a findById that breaks the batch statement (not a UUID) fails alone; the ids read with it resolve', async () => {
    const [a, b] = await Promise.all([store.insert(newMessage()), store.insert(newMessage({ payload: 'b' }))]);
    assert.ok(a && b);
    const unknown = uuidv7();
    const before = { batches: store.batches.reads, calls: { ...spy.calls } };

    const outcomes = await Promise.allSettled([
      store.findById(a.message.id),
      store.findById('not-a-uuid'),
      store.findById(unknown),
      store.findById(b.message.id),
    ]);

    assert.equal(store.batches.reads - before.batches, 1, 'the four reads shared one batch');
    assert.equal(spy.calls.findByIds - before.calls.findByIds, 1);
    assert.deepEqual(outcomes[0], { status: 'fulfilled', value: a.message });
    assert.deepEqual(outcomes[2], { status: 'fulfilled', value: null });
    assert.deepEqual(outcomes[3], { status: 'fulfilled', value: b.message });
    assert.equal(outcomes[1]?.status, 'rejected');
    const reason = (outcomes[1] as PromiseRejectedResult).reason as Error;
    assert.ok(!(reason instanceof DependencyUnavailableError), 'a bad id is not an unavailable store');
    assert.ok(reason instanceof ValueRefusedByStoreError, 'a value the store refuses is the request’s fault (400)');
    assert.equal((reason.cause as { code?: string }).code, '22P02', 'PostgreSQL’s invalid_text_representation, from the call’s own statement');
  });

  test('an insert that breaks the batch statement fails alone; the others are stored once each', async () => {
    const good = [newMessage({ producerMessageId: 'coalesce-bad-1' }), newMessage(), newMessage({ producerMessageId: 'coalesce-bad-2' })];
    const bad = newMessage({ id: 'not-a-uuid' });
    const before = store.batches.inserts;

    const outcomes = await Promise.allSettled([good[0], bad, good[1], good[2]].map((message) => store.insert(message as NewMessage)));

    assert.equal(store.batches.inserts - before, 1, 'the four inserts shared one batch');
    assert.equal(outcomes[1]?.status, 'rejected');
    assert.ok(!((outcomes[1] as PromiseRejectedResult).reason instanceof DependencyUnavailableError));
    for (const [i, outcome] of [outcomes[0], outcomes[2], outcomes[3]].entries()) {
      assert.equal(outcome?.status, 'fulfilled', `good insert ${i}`);
      const { message, created } = (outcome as PromiseFulfilledResult<{ message: Message; created: boolean }>).value;
      assert.equal(created, true, `good insert ${i} was created`);
      assert.equal(message.id, good[i]?.id);
    }
    const stored = await postgres.findByIds(good.map((message) => message.id));
    assert.ok(stored.every((message) => message?.status === 'PENDING'), 'each good message is stored');
  });

  test('a transition that breaks the batch statement fails alone; the changes batched with it apply and answer', async () => {
    const messages = await Promise.all([newMessage(), newMessage(), newMessage()].map((message) => store.insert(message)));
    const before = store.batches.transitions;

    const outcomes = await Promise.allSettled([
      store.transition(confirmChange(messages[0]!.message.id)),
      store.transition(confirmChange('not-a-uuid')),
      store.transition(confirmChange(messages[1]!.message.id)),
      store.transition(confirmChange(messages[2]!.message.id)),
    ]);

    assert.equal(store.batches.transitions - before, 1, 'the four transitions shared one batch');
    assert.equal(outcomes[1]?.status, 'rejected');
    for (const [i, outcome] of [outcomes[0], outcomes[2], outcomes[3]].entries()) {
      assert.equal(outcome?.status, 'fulfilled', `good transition ${i}`);
      const moved = (outcome as PromiseFulfilledResult<Message | null>).value;
      assert.equal(moved?.status, 'SENDING', `good transition ${i} answers the moved message`);
      assert.deepEqual(await postgres.findById(messages[i]!.message.id), moved);
    }
  });

  test('concurrent moves share one batch and answer only id and version; one that breaks the statement fails alone', async () => {
    const messages = await Promise.all([newMessage(), newMessage(), newMessage()].map((message) => store.insert(message)));
    const before = { batches: store.batches.moves, calls: { ...spy.calls } };

    const outcomes = await Promise.allSettled([
      store.move(confirmChange(messages[0]!.message.id)),
      store.move(confirmChange('not-a-uuid')),
      store.move(confirmChange(messages[1]!.message.id)),
      store.move(confirmChange(messages[2]!.message.id)),
    ]);

    assert.equal(store.batches.moves - before.batches, 1, 'the four moves shared one batch');
    assert.equal(spy.calls.moveMany - before.calls.moveMany, 1);
    assert.equal(outcomes[1]?.status, 'rejected');
    for (const [i, outcome] of [outcomes[0], outcomes[2], outcomes[3]].entries()) {
      const { message } = messages[i]!;
      assert.deepEqual(outcome, { status: 'fulfilled', value: { id: message.id, version: message.version + 1 } }, `good move ${i}`);
      assert.equal((await postgres.findById(message.id))?.status, 'SENDING', `good move ${i} was written`);
    }
  });

  test(
    'a transition batched with a failing change of another shape answers the message it moved (each change is settled on its own)',
    async () => {
      const { message } = await store.insert(newMessage());
      const cancelOfBadId: Transition = { id: 'not-a-uuid', from: PENDING, to: 'CANCELLED', deadReason: null, at: tick(), set: {} };
      const [confirmed, refused] = await Promise.allSettled([store.transition(confirmChange(message.id)), store.transition(cancelOfBadId)]);
      assert.equal(refused.status, 'rejected');
      const stored = await postgres.findById(message.id);
      assert.equal(stored?.status, 'SENDING', 'the confirm was written');
      assert.deepEqual(confirmed, { status: 'fulfilled', value: stored }, 'so its caller must be told it moved the message, not null');
    },
  );
});

describe('CoalescingMessageStore over an unreachable PostgreSQL', () => {
  test('an unavailable store fails the whole batch with DependencyUnavailableError, without retrying each call alone', async () => {
    // Port 1: nothing listens, every connection is refused at once.
    const spy = spyOn(new PostgresMessageStore({ url: 'postgres://postgres@127.0.0.1:1/test', connectTimeoutMs: 1000 }));
    const store = new CoalescingMessageStore(spy.store);
    try {
      const outcomes = await Promise.allSettled([uuidv7(), uuidv7(), uuidv7()].map((id) => store.findById(id)));
      for (const outcome of outcomes) {
        assert.equal(outcome.status, 'rejected');
        assert.ok((outcome as PromiseRejectedResult).reason instanceof DependencyUnavailableError, String((outcome as PromiseRejectedResult).reason));
      }
      assert.equal(store.batches.reads, 1);
      assert.equal(spy.calls.findByIds, 1);
      assert.equal(spy.calls.findById, 0, 'a down store is not asked once per call');
    } finally {
      await store.close();
    }
  });
});
