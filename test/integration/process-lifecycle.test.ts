import assert from 'node:assert/strict';
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

  test('SIGTERM lets an in-flight request finish, then the process exits 0', async () => {
    const { url, schema } = freshSchemaUrl();
    schemas.push(schema);
    const through = new URL(url);
    through.host = `${proxy.host}:${proxy.port}`;
    const rms = spawnRms({ STORE_URL: through.toString(), RMS_APPS: APPS, PORT: '0', LOG_LEVEL: 'info', RMS_SHUTDOWN_GRACE_MS: '5000' });
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
});
