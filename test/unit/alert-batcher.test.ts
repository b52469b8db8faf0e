import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type Alert, AlertBatcher, type Notification, createLogger } from '@rms/message-service';

function alert(topic: string, reason: Alert['reason'], n: number): Alert {
  return { topic, reason, messageId: `m-${topic}-${n}`, producer: 'orders', at: new Date(1_700_000_000_000 + n), lastError: null };
}

describe('alert noise reduction', () => {
  test('alerts of one topic and reason inside the window go out as one notification with a count and samples', async () => {
    const sent: Notification[] = [];
    const batcher = new AlertBatcher({ sinks: [{ send: async (n) => void sent.push(n) }], logger: createLogger('silent'), windowMs: 60_000 });
    for (let i = 0; i < 20; i++) batcher.notify(alert('stock.reduce', 'DELIVERY_EXHAUSTED', i));
    batcher.notify(alert('stock.reduce', 'CHECK_EXHAUSTED', 0));
    batcher.notify(alert('points.add', 'DELIVERY_EXHAUSTED', 0));
    assert.equal(sent.length, 0, 'nothing is sent before the window closes');
    await batcher.flush();
    assert.equal(sent.length, 3);
    const grouped = sent.find((n) => n.topic === 'stock.reduce' && n.reason === 'DELIVERY_EXHAUSTED');
    assert.ok(grouped);
    assert.equal(grouped.count, 20);
    assert.deepEqual(grouped.sampleIds, Array.from({ length: 10 }, (_, i) => `m-stock.reduce-${i}`));
    assert.equal(grouped.firstAt, new Date(1_700_000_000_000).toISOString());
    assert.equal(grouped.lastAt, new Date(1_700_000_000_019).toISOString());
    assert.match(grouped.text, /20 message\(s\) on topic stock.reduce are DEAD/);
  });

  test('the window closes by itself, and a failing sink neither throws nor stops the others', async () => {
    const sent: Notification[] = [];
    const batcher = new AlertBatcher({
      sinks: [{ send: async () => Promise.reject(new Error('webhook down')) }, { send: async (n) => void sent.push(n) }],
      logger: createLogger('silent'),
      windowMs: 30,
    });
    batcher.notify(alert('a', 'CHECK_EXHAUSTED', 1));
    await new Promise((resolve) => setTimeout(resolve, 80));
    assert.equal(sent.length, 1);
    assert.equal(sent[0]?.count, 1);
    await batcher.flush();
  });
});
