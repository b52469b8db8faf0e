/**
 * The chaos run's answer log sees what the SDK's undici client gets from RMS: each answer's
 * status, each exchange without an answer, and nothing from other origins or paths.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RmsHttpClient, RmsUnavailableError } from '@rms/client-sdk';
import { closedPort } from '../../scripts/loopback-ports.js';
import { HttpRecorder } from '../support/http-recorder.js';
import { type RecordedAnswer, recordRmsAnswers } from './answer-log.js';

test('every SDK call and retry to an RMS origin is logged with its status or its failure', async (t) => {
  let answers = [{ status: 503, body: { error: { code: 'DEPENDENCY_UNAVAILABLE', message: 'down' } } }, { status: 200, body: { id: 'x', status: 'SENDING' } }];
  const rms = await HttpRecorder.start(() => answers.shift() ?? { status: 200, body: {} });
  t.after(() => rms.close());
  const closedUrl = `http://127.0.0.1:${await closedPort()}`;
  const log: RecordedAnswer[] = [];
  const stop = recordRmsAnswers([rms.url(''), closedUrl], (answer) => log.push(answer));
  t.after(stop);
  const client = new RmsHttpClient({ url: rms.url(''), token: 'orders-token-0123456789', retry: { retries: 2, baseDelayMs: 1, maxDelayMs: 1 } });
  const refused = new RmsHttpClient({ url: closedUrl, token: 'orders-token-0123456789', retry: { retries: 0 } });
  t.after(() => Promise.all([client.close(), refused.close()]));

  await client.confirm('0b6c1a38-6f5e-4b8e-9a51-0d1f6a3e2c11');
  await assert.rejects(refused.get('0b6c1a38-6f5e-4b8e-9a51-0d1f6a3e2c11'), RmsUnavailableError);
  answers = [];
  await fetch(rms.url('/healthz')); // not an API path: not logged

  assert.deepEqual(
    log.map(({ route, status, failure }) => ({ route, status, failure })),
    [
      { route: 'POST /v1/messages/:id/confirm', status: 503, failure: undefined },
      { route: 'POST /v1/messages/:id/confirm', status: 200, failure: undefined },
      { route: 'GET /v1/messages/:id', status: null, failure: 'ECONNREFUSED' },
    ],
  );
  for (const answer of log) assert.ok(answer.endedAt >= answer.sentAt);
});
