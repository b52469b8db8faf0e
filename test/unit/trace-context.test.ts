import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ConsumeMessage } from 'amqplib';
import { parseAmqpDelivery, parseTraceparent, parseTracestate, traceContextFrom, traceHeaders } from '@rms/client-sdk';

const VALID = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

describe('W3C trace context parsing', () => {
  test('a valid traceparent is kept as it is', () => {
    assert.equal(parseTraceparent(VALID), VALID);
    assert.equal(parseTraceparent('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00'), '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00');
  });

  test('a later version is read by the 00 rules and cut to its 55 known characters', () => {
    assert.equal(parseTraceparent('01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more'), '01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01');
  });

  test('invalid traceparents are dropped: version ff, all-zero ids, extra fields on 00, upper case, wrong lengths, non-strings', () => {
    for (const value of [
      'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
      '00-00000000000000000000000000000000-00f067aa0ba902b7-01',
      '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01',
      `${VALID}-extra`,
      VALID.toUpperCase(),
      VALID.slice(1),
      `01-${'a'.repeat(32)}-${'b'.repeat(16)}-01-${'x'.repeat(300)}`,
      '',
      42,
      undefined,
      [VALID],
    ]) {
      assert.equal(parseTraceparent(value), undefined, String(value));
    }
  });

  test('tracestate: printable ASCII up to 512 characters, else dropped', () => {
    assert.equal(parseTracestate('rojo=00f067aa0ba902b7,congo=t61rcWkgMzE'), 'rojo=00f067aa0ba902b7,congo=t61rcWkgMzE');
    assert.equal(parseTracestate('a'.repeat(513)), undefined);
    assert.equal(parseTracestate('k=v\n'), undefined);
    assert.equal(parseTracestate('k=ü'), undefined);
    assert.equal(parseTracestate(''), undefined);
  });

  test('a carrier gives a trace context only with a valid traceparent; AMQP Buffers are read as text', () => {
    assert.deepEqual(traceContextFrom({ traceparent: VALID, tracestate: 'a=1' }), { traceparent: VALID, tracestate: 'a=1' });
    assert.deepEqual(traceContextFrom({ traceparent: Buffer.from(VALID), tracestate: Buffer.from('a=1') }), { traceparent: VALID, tracestate: 'a=1' });
    assert.deepEqual(traceContextFrom({ traceparent: VALID, tracestate: 'bad\u0000' }), { traceparent: VALID });
    assert.equal(traceContextFrom({ tracestate: 'a=1' }), undefined);
    assert.equal(traceContextFrom(undefined), undefined);
    assert.deepEqual(traceHeaders({ traceparent: VALID }), { traceparent: VALID });
    assert.deepEqual(traceHeaders(undefined), {});
  });

  test('an AMQP delivery carries its trace context as `trace`, not among the producer headers', () => {
    const message = {
      content: Buffer.from('{"n":1}'),
      properties: { messageId: 'm-1', headers: { traceparent: VALID, tracestate: 'a=1', 'x-rms-attempt': 2, 'x-rms-producer': 'orders', kept: 'yes' } },
      fields: {},
    } as unknown as ConsumeMessage;
    const delivery = parseAmqpDelivery('t', message);
    assert.ok(!('invalid' in delivery));
    assert.deepEqual(delivery.trace, { traceparent: VALID, tracestate: 'a=1' });
    assert.deepEqual(delivery.headers, { kept: 'yes' });
  });
});
