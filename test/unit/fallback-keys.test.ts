/**
 * The Redis fallback's wire contract (design section 7): list keys `rms:fb:<topic>:<NN>`,
 * the shard hash that producers and consumers of every SDK version must agree on, and the
 * JSON envelope of an entry.
 */
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import { decodeEnvelope, encodeEnvelope, fallbackKey, fallbackKeys, fallbackShardOf, type OutgoingMessage } from '@rms/client-sdk';

describe('fallback list keys', () => {
  test('a key is rms:fb:<topic>:<shard>, zero-padded to two digits for 100 shards', () => {
    assert.equal(fallbackKey('orders.paid', 7, 100), 'rms:fb:orders.paid:07');
    assert.equal(fallbackKey('orders.paid', 0, 100), 'rms:fb:orders.paid:00');
    assert.equal(fallbackKey('orders.paid', 99, 100), 'rms:fb:orders.paid:99');
    assert.equal(fallbackKey('orders.paid', 7), 'rms:fb:orders.paid:07', '100 shards is the default');
  });

  test('the shard is padded to the width of shards - 1, never under two digits', () => {
    assert.equal(fallbackKey('t', 7, 1000), 'rms:fb:t:007');
    assert.equal(fallbackKey('t', 999, 1000), 'rms:fb:t:999');
    assert.equal(fallbackKey('t', 100, 101), 'rms:fb:t:100');
    assert.equal(fallbackKey('t', 5, 101), 'rms:fb:t:005');
    assert.equal(fallbackKey('t', 3, 10), 'rms:fb:t:03');
    assert.equal(fallbackKey('t', 0, 1), 'rms:fb:t:00');
  });

  test('fallbackKeys lists every shard of the topic once, in shard order', () => {
    const keys = fallbackKeys('orders.paid', 100);
    assert.equal(keys.length, 100);
    assert.equal(new Set(keys).size, 100);
    assert.equal(keys[0], 'rms:fb:orders.paid:00');
    assert.equal(keys[42], 'rms:fb:orders.paid:42');
    assert.equal(keys[99], 'rms:fb:orders.paid:99');
    assert.equal(fallbackKeys('t', 1000)[999], 'rms:fb:t:999');
  });

  test('keys carry no hash tag, so a Redis Cluster spreads the shards', () => {
    for (const key of fallbackKeys('orders.paid', 100)) assert.doesNotMatch(key, /[{}]/);
  });

  test('a shard outside 0..shards-1 or a bad shard count is refused', () => {
    assert.throws(() => fallbackKey('t', 100, 100), RangeError);
    assert.throws(() => fallbackKey('t', -1, 100), RangeError);
    assert.throws(() => fallbackKey('t', 1.5, 100), RangeError);
    assert.throws(() => fallbackKeys('t', 0), RangeError);
    assert.throws(() => fallbackShardOf('id', 0), RangeError);
  });
});

describe('the shard hash (must never change: producers and consumers of different versions share it)', () => {
  test('is FNV-1a 32-bit: the published test vectors come out with 2^32 shards', () => {
    // With 2^32 shards the modulo is the identity, so this is the raw hash.
    assert.equal(fallbackShardOf('', 2 ** 32), 0x811c9dc5);
    assert.equal(fallbackShardOf('a', 2 ** 32), 0xe40c292c);
    assert.equal(fallbackShardOf('foobar', 2 ** 32), 0xbf9cf968);
  });

  test('pins known id → shard pairs (a change to the hash fails here)', () => {
    const pinned: [id: string, shards: number, shard: number][] = [
      ['3f2c1a9e-8b1d-4c3e-9f6a-2d7b5e8c1a04', 100, 63],
      ['b6a1f4d2-0c9e-47a8-8e3b-5f1d2c7a9e60', 100, 89],
      ['msg-1', 100, 4],
      ['3f2c1a9e-8b1d-4c3e-9f6a-2d7b5e8c1a04', 1000, 863],
      ['msg-1', 1000, 404],
      // UTF-8 bytes are hashed, not UTF-16 code units.
      ['ordre-été-№7', 100, 70],
      ['注文-42', 100, 36],
    ];
    for (const [id, shards, shard] of pinned) assert.equal(fallbackShardOf(id, shards), shard, `${id} over ${shards} shards`);
  });

  test('is deterministic and always within 0..shards-1', () => {
    for (let i = 0; i < 200; i += 1) {
      const id = randomUUID();
      const shard = fallbackShardOf(id, 100);
      assert.ok(Number.isInteger(shard) && shard >= 0 && shard < 100, `${id} → ${shard}`);
      assert.equal(fallbackShardOf(id, 100), shard);
    }
  });

  test('spreads 2,000 UUIDs over all 100 shards, none far above or below the mean of 20', () => {
    // The same 2,000 UUID-shaped ids every run (from a hash of their index): the bounds
    // below then judge the hash only, never a run's luck (random ids broke them about
    // once in 7,000 runs).
    const uuidOf = (i: number) => {
      const h = createHash('sha256').update(`fallback-keys-${i}`).digest('hex');
      return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
    };
    const counts = new Array<number>(100).fill(0);
    for (let i = 0; i < 2000; i += 1) {
      const shard = fallbackShardOf(uuidOf(i), 100);
      counts[shard] = (counts[shard] ?? 0) + 1;
    }
    const min = Math.min(...counts);
    const max = Math.max(...counts);
    console.log(`# 2000 UUIDs over 100 shards: min ${min}, max ${max} per shard (mean 20)`);
    assert.ok(min > 0, 'every shard is used');
    // A uniform hash gives about Poisson(20) per shard: below 3 or above 45 has odds under
    // 1e-6 per shard, so this fails for a skewed hash, not by bad luck.
    assert.ok(min >= 3, `least-used shard has ${min}`);
    assert.ok(max <= 45, `most-used shard has ${max}`);
  });
});

describe('fallback envelopes', () => {
  const message: OutgoingMessage = {
    id: 'b6a1f4d2-0c9e-47a8-8e3b-5f1d2c7a9e60',
    topic: 'orders.paid',
    payload: { orderId: 42, items: [{ sku: 'A-1', qty: 2 }], note: 'ünïcödé' },
    headers: { 'x-trace-id': 'abc' },
    attempt: 3,
    producer: 'orders',
  };

  test('round-trips every field of the message', () => {
    assert.deepEqual(decodeEnvelope(encodeEnvelope(message)), message);
  });

  test("carries the producer's messageId when it gave one, and no messageId field otherwise", () => {
    const keyed = { ...message, messageId: 'order-42' };
    assert.deepEqual(decodeEnvelope(encodeEnvelope(keyed)), keyed);
    assert.equal(JSON.parse(encodeEnvelope(keyed)).messageId, 'order-42');
    assert.equal('messageId' in JSON.parse(encodeEnvelope(message)), false);
  });

  test('is JSON with exactly the fields id, topic, payload, headers, attempt, producer (and messageId when set)', () => {
    const extra = { ...message, secret: 'not on the wire' } as OutgoingMessage;
    const json = JSON.parse(encodeEnvelope(extra)) as Record<string, unknown>;
    assert.deepEqual(Object.keys(json).sort(), ['attempt', 'headers', 'id', 'payload', 'producer', 'topic']);
  });

  test('the trace context travels as traceparent and tracestate fields and comes back as the delivery trace', () => {
    const trace = { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', tracestate: 'rojo=1' };
    const json = JSON.parse(encodeEnvelope({ ...message, trace })) as Record<string, unknown>;
    assert.equal(json['traceparent'], trace.traceparent);
    assert.equal(json['tracestate'], 'rojo=1');
    assert.deepEqual(decodeEnvelope(encodeEnvelope({ ...message, trace })), { ...message, trace });
    const forged = decodeEnvelope(JSON.stringify({ ...json, traceparent: 'ff-nonsense' }));
    assert.ok(!('invalid' in forged));
    assert.equal(forged.trace, undefined, 'an invalid trace context in an entry is dropped, the entry kept');
  });

  test('an undefined payload travels as null', () => {
    const decoded = decodeEnvelope(encodeEnvelope({ ...message, payload: undefined }));
    assert.ok(!('invalid' in decoded));
    assert.equal(decoded.payload, null);
  });

  test('a payload that cannot be serialised throws instead of writing garbage', () => {
    assert.throws(() => encodeEnvelope({ ...message, payload: { n: 1n } }), TypeError);
  });

  test('garbage decodes to { invalid } with the reason', () => {
    const cases: [text: string, reason: RegExp][] = [
      ['not json', /not JSON/],
      ['', /not JSON/],
      ['[1,2]', /not a JSON object/],
      ['null', /not a JSON object/],
      ['"text"', /not a JSON object/],
      ['{"topic":"t","payload":1}', /no id/],
      ['{"id":"","topic":"t","payload":1}', /no id/],
      ['{"id":7,"topic":"t","payload":1}', /no id/],
      ['{"id":"x","payload":1}', /no topic/],
      ['{"id":"x","topic":"t"}', /no payload/],
    ];
    for (const [text, reason] of cases) {
      const decoded = decodeEnvelope(text);
      assert.ok('invalid' in decoded, `${JSON.stringify(text)} should be invalid`);
      assert.match(decoded.invalid, reason, JSON.stringify(text));
    }
  });

  test('missing or odd optional fields get safe defaults instead of failing the message', () => {
    const decoded = decodeEnvelope('{"id":"x","topic":"t","payload":null,"headers":{"a":"1","b":2,"c":true,"d":{"e":1}},"attempt":0,"messageId":""}');
    assert.deepEqual(decoded, { id: 'x', topic: 't', payload: null, headers: { a: '1', b: '2', c: 'true' }, attempt: 1, producer: '' });
  });
});
