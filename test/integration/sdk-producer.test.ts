/**
 * The SDK's producer against a real RMS (in-process, PostgreSQL, RabbitMQ): the raw calls
 * and their typed errors, `send` through each of its failure windows, and the client's
 * retries against a small stand-in that answers 503. RMS's check-backs reach a real
 * `checkHandler` server whose resolver answers from what the local transactions recorded.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { type IncomingMessage, type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import {
  type CheckResolver,
  type ProducerOptions,
  RmsConflictError,
  RmsNotFoundError,
  RmsUnauthorizedError,
  RmsUnavailableError,
  RmsValidationError,
  type SdkLogger,
  checkHandler,
  createProducer,
} from '@rms/client-sdk';
import { FaultProxy } from '../support/fault-proxy.js';
import { QueueWatcher } from '../support/rabbitmq.js';
import { TEST_APPS, type TestServer, startTestServer } from '../support/rms-server.js';
import { recordSdkRequests } from '../support/sdk-requests.js';
import { waitUntil } from '../support/wait.js';
import { closedPort } from '../../scripts/loopback-ports.js';
import { recordingLogger } from '../support/recording-logger.js';

/** Fast check-backs so a message left PENDING is resolved within the test. */
const ENV = {
  RMS_CHECK_DELAY_MS: '50',
  RMS_CHECK_INTERVAL_MS: '50',
  RMS_POLL_INTERVAL_MS: '20',
  RMS_CHECK_TIMEOUT_MS: '500',
  RMS_LEASE_MS: '15000',
  // The lease must outlast (RMS_RETRY_IMMEDIATE + 1) × publish timeout: 4 × 2000 < 15000.
  RMS_PUBLISH_TIMEOUT_MS: '2000',
};

/** Few, short retries: the tests that exhaust them must stay fast. */
const RETRY = { retries: 2, baseDelayMs: 10, maxDelayMs: 40 };


async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

async function close(server: Server | undefined): Promise<void> {
  if (!server) return;
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}


async function readBody(request: IncomingMessage): Promise<string> {
  let body = '';
  for await (const chunk of request) body += String(chunk);
  return body;
}

describe('producer SDK against a real RMS', { timeout: 60_000 }, () => {
  let rms: TestServer;
  let checkServer: Server;
  let watcher: QueueWatcher;
  const topic = `sdk.producer.${randomUUID().slice(0, 8)}`;
  /** What the local transactions recorded, as the resolver's database would hold it. */
  const committed = new Set<string>();
  const rolledBack = new Set<string>();
  const resolverCalls: { messageId: string; verdict: string }[] = [];
  // Never ROLLBACK for a message it knows nothing about: a CANCELLED status in these tests
  // must come from the SDK's cancel, not from a check-back.
  const resolve: CheckResolver = (messageId) => {
    const verdict = committed.has(messageId) ? 'COMMIT' : rolledBack.has(messageId) ? 'ROLLBACK' : 'UNKNOWN';
    resolverCalls.push({ messageId, verdict });
    return verdict;
  };
  const orders = (extra: Partial<ProducerOptions> = {}) => createProducer({ url: rms.baseUrl, token: TEST_APPS.orders.token, retry: RETRY, ...extra });

  before(async () => {
    checkServer = createServer(checkHandler(resolve, { secret: TEST_APPS.orders.secret }));
    const checkPort = await listen(checkServer);
    rms = await startTestServer({ env: ENV, checkUrl: `http://127.0.0.1:${checkPort}/rms/check` });
    watcher = await QueueWatcher.open();
  });
  after(async () => {
    await watcher?.deleteQueues([topic]).catch(() => undefined);
    await watcher?.close();
    await rms?.stop();
    await close(checkServer);
  });

  describe('the raw calls', () => {
    test('prepare stores the message PENDING with its payload, headers and messageId; confirm moves it to SENDING; get reads it', async () => {
      const producer = orders();
      const messageId = `order-${randomUUID()}`;
      const prepared = await producer.prepare(topic, { orderId: 42 }, { messageId, headers: { tenant: 'eu' } });
      assert.equal(prepared.status, 'PENDING');
      assert.equal(prepared.producer, 'orders');
      assert.equal(prepared.messageId, messageId);
      assert.deepEqual(prepared.payload, { orderId: 42 });
      assert.deepEqual(prepared.headers, { tenant: 'eu' });

      const confirmed = await producer.confirm(prepared.id);
      assert.equal(confirmed.status, 'SENDING');
      const read = await producer.get(prepared.id);
      assert.equal(read.id, prepared.id);
      assert.ok(read.status === 'SENDING' || read.status === 'COMPLETED', read.status);
      assert.notEqual(read.confirmedAt, null);
    });

    test('cancel moves a prepared message to CANCELLED, and cancelling again succeeds again', async () => {
      const producer = orders();
      const prepared = await producer.prepare(topic, { orderId: 43 });
      assert.equal((await producer.cancel(prepared.id)).status, 'CANCELLED');
      assert.equal((await producer.cancel(prepared.id)).status, 'CANCELLED');
      assert.equal((await producer.get(prepared.id)).status, 'CANCELLED');
    });

    test('prepare without a messageId still sends one, so every message has an idempotency key', async () => {
      const prepared = await orders().prepare(topic, { orderId: 44 });
      assert.match(prepared.messageId ?? '', /^[0-9a-f-]{36}$/);
      await orders().cancel(prepared.id);
    });

    test('a prepare repeated with the same messageId returns the same message instead of a second one', async () => {
      const producer = orders();
      const messageId = `order-${randomUUID()}`;
      const first = await producer.prepare(topic, { orderId: 45 }, { messageId });
      const again = await producer.prepare(topic, { orderId: 45 }, { messageId });
      assert.equal(again.id, first.id);
      await producer.cancel(first.id);
    });

    test('confirm after cancel throws RmsConflictError carrying the current status CANCELLED', async () => {
      const producer = orders();
      const prepared = await producer.prepare(topic, { orderId: 46 });
      await producer.cancel(prepared.id);
      const error = await producer.confirm(prepared.id).then(
        () => assert.fail('confirm after cancel must be refused'),
        (e: unknown) => e,
      );
      assert.ok(error instanceof RmsConflictError, String(error));
      assert.equal(error.status, 409);
      assert.equal(error.currentStatus, 'CANCELLED');
    });

    test('get of an id RMS does not know throws RmsNotFoundError', async () => {
      await assert.rejects(orders().get(randomUUID()), (error: unknown) => error instanceof RmsNotFoundError && error.status === 404);
    });

    test('a token RMS does not know throws RmsUnauthorizedError', async () => {
      await assert.rejects(
        orders({ token: 'not-a-registered-token-000' }).prepare(topic, {}),
        (error: unknown) => error instanceof RmsUnauthorizedError && error.status === 401,
      );
    });

    test("another app's message does not exist for the caller: reading or confirming it throws RmsNotFoundError", async () => {
      const billing = createProducer({ url: rms.baseUrl, token: TEST_APPS.billing.token, retry: RETRY });
      const theirs = await billing.prepare(topic, { invoice: 1 });
      await assert.rejects(orders().get(theirs.id), (error: unknown) => error instanceof RmsNotFoundError && error.status === 404);
      await assert.rejects(orders().confirm(theirs.id), RmsNotFoundError);
      assert.equal((await billing.get(theirs.id)).status, 'PENDING', "a refused confirm must not touch the other app's message");
      await billing.cancel(theirs.id);
    });

    test('an invalid topic throws RmsValidationError naming the field', async () => {
      const error = await orders()
        .prepare('not a valid topic!', {})
        .then(
          () => assert.fail('an invalid topic must be refused'),
          (e: unknown) => e,
        );
      assert.ok(error instanceof RmsValidationError, String(error));
      assert.equal(error.status, 400);
      assert.equal(error.field, 'topic');
    });
  });

  describe('send', () => {
    test('runs the local transaction on the PENDING message, then confirms it to SENDING and returns the result', async () => {
      const producer = orders();
      const messageId = `order-${randomUUID()}`;
      let seenInTransaction: { status: string; messageId: string | null } | undefined;
      const sent = await producer.send(
        topic,
        { orderId: 50 },
        async (message) => {
          seenInTransaction = { status: message.status, messageId: message.messageId };
          committed.add(messageId);
          return 'order 50 paid';
        },
        { messageId },
      );
      assert.deepEqual(seenInTransaction, { status: 'PENDING', messageId });
      assert.equal(sent.confirmed, true);
      assert.equal(sent.result, 'order 50 paid');
      assert.equal(sent.message.status, 'SENDING');
      const read = await producer.get(sent.message.id);
      assert.ok(read.status === 'SENDING' || read.status === 'COMPLETED', read.status);
    });

    test('when the local transaction throws, the message is cancelled and the transaction’s own error is rethrown', async () => {
      const producer = orders();
      const failure = new Error('insufficient funds');
      let id: string | undefined;
      await assert.rejects(
        producer.send(topic, { orderId: 51 }, async (message) => {
          id = message.id;
          throw failure;
        }),
        (error: unknown) => error === failure,
      );
      assert.ok(id);
      assert.equal((await producer.get(id)).status, 'CANCELLED');
    });

    test('when RMS is unreachable for the prepare, send throws RmsUnavailableError and the local transaction never runs', async () => {
      const producer = createProducer({ url: `http://127.0.0.1:${await closedPort()}`, token: TEST_APPS.orders.token, retry: RETRY });
      let ran = false;
      await assert.rejects(
        producer.send(topic, { orderId: 52 }, async () => {
          ran = true;
        }),
        (error: unknown) => error instanceof RmsUnavailableError && error.code === 'NETWORK',
      );
      assert.equal(ran, false);
    });

    test('when the prepare is refused, send throws the typed error and the local transaction never runs', async () => {
      let ran = false;
      await assert.rejects(
        orders().send('bad topic!', {}, async () => {
          ran = true;
        }),
        RmsValidationError,
      );
      assert.equal(ran, false);
    });

    describe('with RMS behind a fault proxy', () => {
      let proxy: FaultProxy;
      const viaProxy = (logger: SdkLogger) =>
        createProducer({ url: `http://${proxy.host}:${proxy.port}`, token: TEST_APPS.orders.token, retry: RETRY, timeoutMs: 1000, logger });

      before(async () => {
        proxy = await FaultProxy.start({ targetHost: '127.0.0.1', targetPort: rms.server.port });
      });
      after(() => proxy?.close());

      test('a confirm that cannot get through after the commit returns confirmed: false without cancelling, and the check-back commits the message', async (t) => {
        proxy.restore();
        const { logger, entries } = recordingLogger();
        const producer = viaProxy(logger);
        const proxyUrl = `http://${proxy.host}:${proxy.port}`;
        // Every request the SDK makes through the proxy: a cancel would show as a DELETE.
        const sdkRequests = recordSdkRequests();
        t.after(sdkRequests.stop);
        const sdkCalls = () =>
          sdkRequests
            .seen()
            .filter((request) => request.origin === proxyUrl)
            .map((request) => `${request.method} ${request.path}`);
        const messageId = `order-${randomUUID()}`;

        const sent = await producer.send(
          topic,
          { orderId: 60 },
          async () => {
            committed.add(messageId);
            proxy.cut(); // RMS goes away between the commit and the confirm
            return 'committed';
          },
          { messageId },
        );

        assert.equal(sent.confirmed, false);
        assert.equal(sent.result, 'committed');
        assert.equal(sent.message.status, 'PENDING');
        assert.ok(sdkCalls().some((call) => call.endsWith('/confirm')), `the confirm was tried: ${sdkCalls().join(', ')}`);
        assert.ok(!sdkCalls().some((call) => call.startsWith('DELETE')), `no cancel may be sent: ${sdkCalls().join(', ')}`);
        const warning = entries.find((entry) => entry.level === 'warn');
        assert.ok(warning, 'the failed confirm is logged as a warning');
        assert.equal(warning.obj['id'], sent.message.id);
        assert.ok(warning.obj['err'] instanceof RmsUnavailableError);

        proxy.restore();
        const settled = await waitUntil(async () => {
          const message = await producer.get(sent.message.id);
          return message.status === 'PENDING' ? undefined : message;
        }, 'the check-back settles the message');
        assert.ok(settled.status === 'SENDING' || settled.status === 'COMPLETED', settled.status);
        assert.ok(settled.checkAttempts >= 1, 'it was settled by a check-back');
        assert.ok(resolverCalls.some((call) => call.messageId === messageId && call.verdict === 'COMMIT'));
      });

      test('when the transaction throws and the cancel cannot get through, the transaction’s error is rethrown, the failed cancel only logged, and the check-back rolls back', async () => {
        proxy.restore();
        const { logger, entries } = recordingLogger();
        const producer = viaProxy(logger);
        const messageId = `order-${randomUUID()}`;
        const failure = new Error('stock reservation failed');
        let id: string | undefined;

        await assert.rejects(
          producer.send(
            topic,
            { orderId: 61 },
            async (message) => {
              id = message.id;
              rolledBack.add(messageId);
              proxy.cut();
              throw failure;
            },
            { messageId },
          ),
          (error: unknown) => error === failure,
        );
        const warning = entries.find((entry) => entry.level === 'warn');
        assert.ok(warning, 'the failed cancel is logged as a warning');
        assert.ok(warning.obj['err'] instanceof RmsUnavailableError);
        assert.equal(warning.obj['transactionError'], failure);

        proxy.restore();
        assert.ok(id);
        const messageIdOfRms = id;
        const settled = await waitUntil(async () => {
          const message = await producer.get(messageIdOfRms);
          return message.status === 'PENDING' ? undefined : message;
        }, 'the check-back settles the message');
        assert.equal(settled.status, 'CANCELLED');
        assert.ok(resolverCalls.some((call) => call.messageId === messageId && call.verdict === 'ROLLBACK'));
      });
    });
  });
});

describe('the client retries 503s against an RMS stand-in', () => {
  let server: Server;
  let url: string;
  /** How many 503s to answer before answering normally; Infinity for never. */
  let failuresLeft = 0;
  const bodies: { messageId?: string }[] = [];

  before(async () => {
    server = createServer((request, response) => {
      void readBody(request).then((text) => {
        const body = (text ? JSON.parse(text) : {}) as { topic?: string; messageId?: string };
        bodies.push(body);
        response.setHeader('content-type', 'application/json');
        if (failuresLeft > 0) {
          failuresLeft--;
          response.writeHead(503, { 'retry-after': '1' });
          response.end(JSON.stringify({ error: { code: 'STORE_UNAVAILABLE', message: 'the message store is down' } }));
          return;
        }
        response.writeHead(201);
        response.end(JSON.stringify({ id: randomUUID(), producer: 'orders', messageId: body.messageId, topic: body.topic, status: 'PENDING' }));
      });
    });
    url = `http://127.0.0.1:${await listen(server)}`;
  });
  after(() => close(server));

  test('a prepare answered 503 twice succeeds on the third attempt, with the same messageId every time', async () => {
    failuresLeft = 2;
    bodies.length = 0;
    const producer = createProducer({ url, token: TEST_APPS.orders.token, retry: RETRY });
    const prepared = await producer.prepare('orders.paid', { orderId: 70 });
    assert.equal(prepared.status, 'PENDING');
    assert.equal(bodies.length, 3);
    const ids = new Set(bodies.map((body) => body.messageId));
    assert.equal(ids.size, 1, 'a retried prepare must carry the same messageId');
    assert.equal(prepared.messageId, [...ids][0]);
  });

  test('when every attempt is answered 503, the call throws RmsUnavailableError after 1 + retries attempts', async () => {
    failuresLeft = Infinity;
    bodies.length = 0;
    const producer = createProducer({ url, token: TEST_APPS.orders.token, retry: RETRY });
    const error = await producer.prepare('orders.paid', { orderId: 71 }).then(
      () => assert.fail('the prepare must fail'),
      (e: unknown) => e,
    );
    assert.ok(error instanceof RmsUnavailableError, String(error));
    assert.equal(error.status, 503);
    assert.equal(error.code, 'STORE_UNAVAILABLE');
    assert.equal(bodies.length, 1 + RETRY.retries);
  });
});
