import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { HistoryRecorder, type MessageEvent, type MessageStore, createLogger } from '@rms/message-service';

/** A store that only takes history events: each call's batch is kept, or refused while `refusing`. */
function eventStore() {
  const calls: MessageEvent[][] = [];
  const state = { refusing: false };
  const store = {
    appendEvents: async (events: readonly MessageEvent[]) => {
      if (state.refusing) throw new Error('store down');
      calls.push([...events]);
    },
    history: async (id: string) => calls.flat().filter((event) => event.messageId === id),
  } as unknown as MessageStore;
  return { store, calls, state };
}

/** A pino-shaped logger that keeps its warnings. */
function warnings() {
  const lines: { obj: object; msg: string }[] = [];
  const logger = Object.assign(createLogger('silent'), { warn: (obj: object, msg: string) => void lines.push({ obj, msg }) });
  return { logger, lines };
}

const at = new Date('2026-01-01T00:00:00Z');
const event = (messageId: string, type: MessageEvent['type'] = 'prepared') => ({ messageId, at, type, actor: 'producer' as const });

describe('history recorder', () => {
  test('events recorded in one turn of the event loop reach the store in one write, in the order recorded, with absent fields null', async () => {
    const { store, calls } = eventStore();
    const recorder = new HistoryRecorder({ store, logger: warnings().logger });
    recorder.record(event('a'));
    recorder.record({ ...event('b', 'acked'), actor: 'consumer', app: 'inventory' });
    recorder.record(event('a', 'confirmed'));
    assert.equal(calls.length, 0, 'recording never writes on the caller’s path');
    await recorder.flush();
    assert.equal(calls.length, 1);
    assert.deepEqual(calls[0]?.map((e) => [e.messageId, e.type]), [['a', 'prepared'], ['b', 'acked'], ['a', 'confirmed']]);
    assert.deepEqual(calls[0]?.[1], { messageId: 'b', at, type: 'acked', actor: 'consumer', app: 'inventory', group: null, attempt: null, transport: null, outcome: null, durationMs: null, reason: null, nextAttemptAt: null });
  });

  test('a batch larger than maxBatch goes out in several writes; a history read includes events still queued', async () => {
    const { store, calls } = eventStore();
    const recorder = new HistoryRecorder({ store, logger: warnings().logger, maxBatch: 2 });
    for (let i = 0; i < 5; i++) recorder.record(event('m'));
    assert.equal((await recorder.history('m')).length, 5);
    assert.deepEqual(calls.map((batch) => batch.length), [2, 2, 1]);
  });

  test('a batch the store refuses is logged and dropped; later events are still written', async () => {
    const { store, calls, state } = eventStore();
    const { logger, lines } = warnings();
    const recorder = new HistoryRecorder({ store, logger });
    state.refusing = true;
    recorder.record(event('lost'));
    await recorder.flush();
    assert.equal(lines.length, 1);
    assert.match(lines[0]?.msg ?? '', /could not be written; dropped/);
    state.refusing = false;
    recorder.record(event('kept'));
    await recorder.flush();
    assert.deepEqual(calls.flat().map((e) => e.messageId), ['kept']);
  });

  test('a reason longer than 1000 characters is cut, marked with an ellipsis', async () => {
    const { store, calls } = eventStore();
    const recorder = new HistoryRecorder({ store, logger: warnings().logger });
    recorder.record({ ...event('r', 'consumer-failure'), reason: 'x'.repeat(5000) });
    await recorder.flush();
    const reason = calls[0]?.[0]?.reason ?? '';
    assert.equal(reason.length, 1000);
    assert.ok(reason.endsWith('…'));
  });
});
