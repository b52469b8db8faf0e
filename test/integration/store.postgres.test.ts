import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { InvalidRequestError, PostgresMessageStore, ValueRefusedByStoreError } from '@rms/message-service';
import { messageStoreContract } from '../contract/message-store.contract.js';
import { dropSchema, freshSchemaUrl } from '../support/postgres.js';

messageStoreContract('PostgreSQL', async () => {
  const { url, schema } = freshSchemaUrl();
  const store = new PostgresMessageStore({ url });
  return {
    store,
    async dispose() {
      await store.close();
      await dropSchema(schema);
    },
  };
});

describe('PostgreSQL: a value it cannot hold is the request’s fault', () => {
  const { url, schema } = freshSchemaUrl();
  const store = new PostgresMessageStore({ url });
  before(() => store.init());
  after(async () => {
    await store.close();
    await dropSchema(schema);
  });

  const message = (headerValue: string, key: string) => ({
    id: randomUUID(),
    producer: 'orders',
    producerMessageId: key,
    topic: 'refused.values',
    payload: { key },
    headers: { h: headerValue },
    createdAt: new Date(),
    nextAttemptAt: new Date(Date.now() + 60_000),
  });

  test('a jsonb refusal (a lone surrogate in a header value) rejects with ValueRefusedByStoreError, a 400, not a raw driver error', async () => {
    await assert.rejects(store.insert(message('a\ud800b', 'surrogate-single')), (error: unknown) => {
      assert.ok(error instanceof ValueRefusedByStoreError, String(error));
      assert.ok(error instanceof InvalidRequestError);
      return true;
    });
  });

  test('in a batch, only the refused element fails; the others are written once', async () => {
    const outcomes = await store.insertMany([message('fine', 'batch-ok-1'), message('x\udfff', 'batch-bad'), message('fine', 'batch-ok-3')]);
    assert.deepEqual(outcomes.map((outcome) => outcome.status), ['fulfilled', 'rejected', 'fulfilled']);
    assert.ok((outcomes[1] as PromiseRejectedResult).reason instanceof ValueRefusedByStoreError);
    const stored = await store.list({ topic: 'refused.values', limit: 10 });
    assert.deepEqual(stored.messages.map((m) => m.producerMessageId).sort(), ['batch-ok-1', 'batch-ok-3']);
  });
});
