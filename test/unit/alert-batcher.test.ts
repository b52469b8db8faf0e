import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type Alert, AlertBatcher, type Notification, createLogger } from '@rms/message-service';

function alert(topic: string, reason: Alert['reason'], n: number): Alert {
  return { topic, reason, messageId: `m-${topic}-${n}`, producer: 'orders', at: new Date(1_700_000_000_000 + n), lastError: n === 0 ? 'consumer: boom' : null };
}

/** Resolves once the microtasks of the sends have run. */
const settled = () => new Promise((resolve) => setImmediate(resolve));

describe('alerts that arrive at once, then grouped', () => {
  test('the first alert of a topic and reason is sent at once, the rest of the window as one follow-up with a count and samples', async () => {
    const sent: Notification[] = [];
    const batcher = new AlertBatcher({ sinks: [{ send: async (n) => void sent.push(n) }], logger: createLogger('silent'), windowMs: 60_000 });
    for (let i = 0; i < 21; i++) batcher.notify(alert('stock.reduce', 'DELIVERY_EXHAUSTED', i));
    batcher.notify(alert('stock.reduce', 'CHECK_EXHAUSTED', 0));
    batcher.notify(alert('points.add', 'DELIVERY_EXHAUSTED', 0));
    await settled();
    assert.deepEqual(
      sent.map((n) => [n.kind, n.topic, n.reason, n.count, n.sampleIds]),
      [
        ['first', 'stock.reduce', 'DELIVERY_EXHAUSTED', 1, ['m-stock.reduce-0']],
        ['first', 'stock.reduce', 'CHECK_EXHAUSTED', 1, ['m-stock.reduce-0']],
        ['first', 'points.add', 'DELIVERY_EXHAUSTED', 1, ['m-points.add-0']],
      ],
      'each (topic, reason) is announced at once, before any window closes',
    );
    assert.match(sent[0]?.text ?? '', /message m-stock.reduce-0 on topic stock.reduce is DEAD \(DELIVERY_EXHAUSTED\): consumer: boom/);
    await batcher.flush();
    assert.equal(sent.length, 4, 'one follow-up, for the only window that grouped further alerts');
    const followUp = sent[3];
    assert.equal(followUp?.kind, 'follow-up');
    assert.equal(followUp?.count, 20);
    assert.deepEqual(followUp?.sampleIds, Array.from({ length: 10 }, (_, i) => `m-stock.reduce-${i + 1}`));
    assert.equal(followUp?.firstAt, new Date(1_700_000_000_001).toISOString());
    assert.equal(followUp?.lastAt, new Date(1_700_000_000_020).toISOString());
    assert.match(followUp?.text ?? '', /20 more message\(s\) on topic stock.reduce are DEAD/);
  });

  test('when the window closes by itself, the next alert of that topic and reason is sent at once again', async () => {
    const sent: Notification[] = [];
    const batcher = new AlertBatcher({ sinks: [{ send: async (n) => void sent.push(n) }], logger: createLogger('silent'), windowMs: 20 });
    batcher.notify(alert('a', 'CHECK_EXHAUSTED', 1));
    batcher.notify(alert('a', 'CHECK_EXHAUSTED', 2));
    // Waited on, not slept for: a loaded box can fire the 20 ms window's timer late.
    for (let i = 0; i < 200 && sent.length < 2; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.deepEqual(sent.map((n) => [n.kind, n.count]), [['first', 1], ['follow-up', 1]]);
    batcher.notify(alert('a', 'CHECK_EXHAUSTED', 3));
    await settled();
    assert.deepEqual(sent.map((n) => [n.kind, n.count]), [['first', 1], ['follow-up', 1], ['first', 1]]);
    await batcher.flush();
    assert.equal(sent.length, 3, 'a window nothing joined sends no follow-up');
  });

  test('a failing sink neither throws nor stops the others', async () => {
    const sent: Notification[] = [];
    const batcher = new AlertBatcher({
      sinks: [{ send: async () => Promise.reject(new Error('webhook down')) }, { send: async (n) => void sent.push(n) }],
      logger: createLogger('silent'),
      windowMs: 60_000,
    });
    batcher.notify(alert('a', 'CHECK_EXHAUSTED', 1));
    await batcher.flush();
    assert.equal(sent.length, 1);
  });
});
