import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { FaultProxy } from '../support/fault-proxy.js';
import { dropSchema, freshSchemaUrl } from '../support/postgres.js';
import { spawnRms } from '../support/rms-process.js';
import { TEST_APPS } from '../support/rms-server.js';

const APPS = JSON.stringify(Object.values(TEST_APPS));

describe('npm start: start-up and shutdown of the RMS process', () => {
  const schemas: string[] = [];
  let proxy: FaultProxy;
  before(async () => {
    proxy = await FaultProxy.start({ targetHost: '127.0.0.1', targetPort: 5432 });
  });
  after(async () => {
    await proxy?.close();
    for (const schema of schemas) await dropSchema(schema);
  });

  test('a missing setting stops start-up with exit code 2 and a message naming it', async () => {
    const rms = spawnRms({ RMS_APPS: APPS });
    assert.equal(await rms.exited, 2);
    assert.match(rms.stderr(), /STORE_URL: is required/);
  });

  test('a malformed app registry stops start-up naming the entry', async () => {
    const { url } = freshSchemaUrl();
    const rms = spawnRms({ STORE_URL: url, RMS_APPS: '[{"app":"x","token":"short","roles":["producer"]}]' });
    assert.equal(await rms.exited, 2);
    assert.match(rms.stderr(), /RMS_APPS\[0\]\.token/);
  });

  test('a STORE_URL naming a schema RMS cannot use stops start-up with exit code 2 naming STORE_URL, not a fatal crash', async () => {
    const url = new URL(freshSchemaUrl().url);
    url.searchParams.set('schema', 'Bad-Schema!');
    const rms = spawnRms({ STORE_URL: url.toString(), RMS_APPS: APPS });
    assert.equal(await rms.exited, 2);
    assert.match(rms.stderr(), /STORE_URL: its \?schema= parameter must match/);
    assert.doesNotMatch(rms.stdout(), /"level":60/, 'no fatal log line');
  });

  test('SIGTERM lets an in-flight request finish, then the process exits 0', async () => {
    const { url, schema } = freshSchemaUrl();
    schemas.push(schema);
    const rms = spawnRms({ STORE_URL: proxy.route(url), RMS_APPS: APPS, PORT: '0', LOG_LEVEL: 'info', RMS_SHUTDOWN_GRACE_MS: '5000' });
    const port = await rms.listening;
    const post = (payload: number) =>
      fetch(`http://127.0.0.1:${port}/v1/messages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TEST_APPS.orders.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ topic: 'lifecycle', payload }),
        signal: AbortSignal.timeout(10_000),
      });
    assert.equal((await post(1)).status, 201);

    proxy.stall();
    const inFlight = post(2);
    // Give the request time to reach the stalled store before the signal.
    await new Promise((resolve) => setTimeout(resolve, 200));
    rms.child.kill('SIGTERM');
    await new Promise((resolve) => setTimeout(resolve, 200));
    proxy.restore();

    const answer = await inFlight;
    assert.equal(answer.status, 201, 'the request that was in flight at SIGTERM completed');
    assert.equal(await rms.exited, 0);
    assert.match(rms.stdout(), /"signal":"SIGTERM"/);
    assert.match(rms.stdout(), /RMS stopped/);
  });

  test('SIGTERM while clients keep their connections busy: answers carry Connection: close, nothing is reset, and the process exits long before the grace period', async () => {
    const { url, schema } = freshSchemaUrl();
    schemas.push(schema);
    const graceMs = 8000;
    const rms = spawnRms({ STORE_URL: url, RMS_APPS: APPS, PORT: '0', LOG_LEVEL: 'info', RMS_SHUTDOWN_GRACE_MS: String(graceMs) });
    const port = await rms.listening;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    const outcomes = { answered: 0, closeAnswers: 0, refused: 0, otherErrors: [] as string[] };
    const post = (n: number) =>
      new Promise<void>((resolve) => {
        const request = http.request(
          { host: '127.0.0.1', port, path: '/v1/messages', method: 'POST', agent, headers: { authorization: `Bearer ${TEST_APPS.orders.token}`, 'content-type': 'application/json' } },
          (response) => {
            response.resume();
            response.on('end', () => {
              outcomes.answered++;
              if (response.headers.connection === 'close') outcomes.closeAnswers++;
              resolve();
            });
          },
        );
        request.on('error', (error: NodeJS.ErrnoException) => {
          if (error.code === 'ECONNREFUSED') outcomes.refused++;
          else outcomes.otherErrors.push(error.code ?? error.message);
          resolve();
        });
        request.end(JSON.stringify({ topic: 'lifecycle.busy', payload: n }));
      });
    let running = true;
    const loops = Array.from({ length: 4 }, async (_, loop) => {
      for (let n = 0; running; n++) {
        const refusedBefore = outcomes.refused;
        await post(loop * 1_000_000 + n);
        if (outcomes.refused > refusedBefore) return; // the server stopped listening: this client is done
      }
    });
    // Let the connections get busy, then stop the server under them.
    while (outcomes.answered < 40) await new Promise((resolve) => setImmediate(resolve));
    const signalledAt = Date.now();
    rms.child.kill('SIGTERM');
    const code = await rms.exited;
    const exitedAfterMs = Date.now() - signalledAt;
    running = false;
    await Promise.all(loops);
    agent.destroy();
    assert.equal(code, 0);
    assert.ok(exitedAfterMs < graceMs / 2, `exited ${exitedAfterMs} ms after SIGTERM (grace ${graceMs} ms)`);
    assert.deepEqual(outcomes.otherErrors, [], 'no request was reset or cut mid-answer');
    assert.ok(outcomes.closeAnswers >= 1, `answers during the drain said Connection: close (${JSON.stringify(outcomes)})`);
  });
});
