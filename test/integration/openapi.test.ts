/**
 * The OpenAPI document: generated from the routes' zod schemas, committed as
 * docs/openapi.json (and the same at /openapi.json), documenting exactly the routes the
 * app has; and a real request for every documented operation answers what the document
 * says, checked with ajv against the documented schema.
 */
import assert from 'node:assert/strict';
import type { MessageStats } from '../../services/message-service/src/application/message-stats.js';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import {
  AppRegistry,
  type MessageService,
  Metrics,
  OPERATIONS,
  PostgresMessageStore,
  createHttpApp,
  createLogger,
  expressPath,
  routesOf,
} from '@rms/message-service';
import { openApiText } from '../../scripts/generate-openapi.js';
import { startTestServer, type TestServer, type Answer } from '../support/rms-server.js';
import { waitUntil } from '../support/wait.js';

const COMMITTED = new URL('../../docs/openapi.json', import.meta.url);

interface Document {
  paths: Record<string, Record<string, { operationId: string; requestBody?: { content: Record<string, { schema: { $ref: string } }> }; responses: Record<string, { content?: Record<string, { schema: { $ref?: string } }> }> }>>;
  components: { schemas: Record<string, unknown> };
}

let rms: TestServer;
let store: PostgresMessageStore;
let document: Document;
const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats.default(ajv);

before(async () => {
  rms = await startTestServer({ env: { RMS_CHECK_DELAY_MS: '600000', RMS_ACK_TIMEOUT_MS: '600000' } });
  store = new PostgresMessageStore({ url: rms.storeUrl });
  document = JSON.parse(readFileSync(COMMITTED, 'utf8')) as Document;
  ajv.addSchema({ $id: 'rms-openapi', components: document.components });
});
after(async () => {
  await store?.close();
  await rms?.stop();
});

/** Checks `value` against a `#/components/schemas/...` reference of the document. */
function assertMatches(ref: string, value: unknown, what: string): void {
  const validate = ajv.getSchema(`rms-openapi${ref}`);
  assert.ok(validate, `${ref} is in the document`);
  assert.ok(validate(value), `${what} does not match ${ref}: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(value).slice(0, 500)}`);
}

/** The documented answer schema for `status`, exact or by range (`4XX`). */
function answerSchema(path: string, method: string, status: number): { $ref?: string } | undefined | 'undocumented' {
  const responses = document.paths[path]?.[method]?.responses ?? {};
  const answer = responses[String(status)] ?? responses[`${String(status)[0]}XX`];
  if (!answer) return 'undocumented';
  return answer.content?.['application/json']?.schema;
}

async function prepared(topic = 'openapi.topic'): Promise<string> {
  const answer = await rms.call('orders', 'POST', '/v1/messages', { topic, payload: { n: 1 } });
  assert.equal(answer.status, 201);
  return answer.body.id as string;
}

async function sending(): Promise<string> {
  const id = await prepared();
  assert.equal((await rms.call('orders', 'POST', `/v1/messages/${id}/confirm`)).status, 200);
  return id;
}

/** A DEAD message on openapi.topic (made DEAD in the store: no API call does that at once). */
async function dead(): Promise<string> {
  const id = await sending();
  const message = await waitUntil(async () => {
    const found = await store.findById(id);
    return found?.deliveryAttempts === 1 ? found : null;
  }, 'the first delivery round is recorded');
  const moved = await store.transition({ id, from: message, to: 'DEAD', deadReason: 'DELIVERY_EXHAUSTED', at: new Date(), set: { nextAttemptAt: null } });
  assert.equal(moved?.status, 'DEAD');
  return id;
}

type Caller = 'orders' | 'inventory' | 'ops' | null;
/** A valid request for each documented operation. */
const REQUESTS: Record<string, () => Promise<{ app: Caller; path: string; body?: unknown }>> = {
  health: async () => ({ app: null, path: '/healthz' }),
  readiness: async () => ({ app: null, path: '/readyz' }),
  metrics: async () => ({ app: null, path: '/metrics' }),
  openapi: async () => ({ app: null, path: '/openapi.json' }),
  prepareMessage: async () => ({ app: 'orders', path: '/v1/messages', body: { topic: 'openapi.topic', payload: [1, 'two'], messageId: 'k-1', headers: { a: 'b' } } }),
  prepareMessages: async () => ({ app: 'orders', path: '/v1/messages/batch', body: { messages: [{ topic: 'openapi.topic', payload: 1 }, { topic: 'bad topic', payload: 2 }] } }),
  confirmMessage: async () => ({ app: 'orders', path: `/v1/messages/${await prepared()}/confirm` }),
  confirmMessages: async () => ({ app: 'orders', path: '/v1/confirms', body: { ids: [await prepared(), '00000000-0000-4000-8000-000000000000'] } }),
  cancelMessage: async () => ({ app: 'orders', path: `/v1/messages/${await prepared()}` }),
  ackMessage: async () => ({ app: 'inventory', path: `/v1/messages/${await sending()}/ack` }),
  ackMessages: async () => ({ app: 'inventory', path: '/v1/acks', body: { ids: [await sending(), await prepared()] } }),
  getMessage: async () => ({ app: 'orders', path: `/v1/messages/${await prepared()}` }),
  listMessages: async () => ({ app: 'ops', path: '/v1/messages?limit=3&topic=openapi.topic' }),
  heartbeatMessage: async () => ({ app: 'inventory', path: `/v1/messages/${await sending()}/heartbeat`, body: { extendMs: 5000 } }),
  resendTopic: async () => (await dead(), { app: 'ops', path: '/v1/topics/openapi.topic/resend', body: { limit: 10 } }),
  resendMessage: async () => ({ app: 'ops', path: `/v1/messages/${await dead()}/resend` }),
  nackMessage: async () => ({ app: 'inventory', path: `/v1/messages/${await sending()}/nack`, body: { reason: 'openapi: the handler failed', retryAfterMs: 60_000 } }),
  nackMessages: async () => ({ app: 'inventory', path: '/v1/nacks', body: { nacks: [{ id: await sending(), reason: 'openapi: failed' }] } }),
  messageHistory: async () => ({ app: 'orders', path: `/v1/messages/${await sending()}/history` }),
  resendMatching: async () => (await dead(), { app: 'ops', path: '/v1/resends', body: { filter: { topic: 'openapi.topic' }, dryRun: true } }),
  stats: async () => ({ app: 'ops', path: '/v1/stats' }),
  readDegradeSwitch: async () => ({ app: 'ops', path: '/v1/degrade' }),
  setDegradeSwitch: async () => ({ app: 'ops', path: '/v1/degrade', body: { mode: 'auto', reason: 'openapi contract test' } }),
};

describe('the OpenAPI document', () => {
  test('docs/openapi.json is what `npm run openapi` generates from the zod schemas (regenerate it when this fails)', () => {
    assert.equal(readFileSync(COMMITTED, 'utf8'), openApiText());
  });

  test('/openapi.json serves the same document', async () => {
    const answer = await rms.call(null, 'GET', '/openapi.json');
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.body, document);
  });

  test('every route of the app is documented, and every documented operation is a route', () => {
    const app = createHttpApp({
      service: {} as MessageService,
      stats: {} as MessageStats,
      registry: new AppRegistry([]),
      readinessChecks: [],
      maxPayloadBytes: 1,
      maxPayloadDepth: 1,
      maxHeartbeatExtendMs: 1,
      logger: createLogger('silent'),
      metrics: new Metrics({ processMetrics: false }),
    });
    // The dashboard's page is static content for a browser, not an API operation.
    const routes = routesOf(app)
      .filter((route) => !route.path.startsWith('/dashboard'))
      .map((route) => `${route.method.toUpperCase()} ${route.path}`)
      .sort();
    const documented = OPERATIONS.map((operation) => `${operation.method.toUpperCase()} ${expressPath(operation.path)}`).sort();
    assert.deepEqual(documented, routes);
  });

  test('a request for every documented operation answers a documented status with a body matching its schema', async () => {
    const operations = Object.entries(document.paths).flatMap(([path, methods]) => Object.entries(methods).map(([method, operation]) => ({ path, method, operation })));
    assert.deepEqual(operations.map((o) => o.operation.operationId).sort(), Object.keys(REQUESTS).sort(), 'every documented operation has a request in this test');
    for (const { path, method, operation } of operations) {
      const request = await (REQUESTS[operation.operationId] as () => Promise<{ app: Caller; path: string; body?: unknown }>)();
      const bodyRef = operation.requestBody?.content['application/json']?.schema.$ref;
      if (bodyRef && request.body !== undefined) assertMatches(bodyRef, request.body, `the request of ${operation.operationId}`);
      let answer: Answer;
      if (path === '/metrics') {
        const response = await fetch(`${rms.baseUrl}/metrics`);
        answer = { status: response.status, headers: response.headers, body: await response.text() };
        assert.match(response.headers.get('content-type') ?? '', /^text\/plain/);
      } else {
        answer = await rms.call(request.app, method.toUpperCase(), request.path, request.body);
      }
      assert.ok(answer.status < 400 || operation.operationId === 'readiness', `${operation.operationId} answered ${answer.status}: ${JSON.stringify(answer.body)}`);
      const schema = answerSchema(path, method, answer.status);
      assert.notEqual(schema, 'undocumented', `${operation.operationId} answered ${answer.status}, which is not documented`);
      if (schema !== 'undocumented' && schema?.$ref) assertMatches(schema.$ref, answer.body, `the answer of ${operation.operationId}`);
      assert.match(answer.headers.get('x-request-id') ?? '', /^[A-Za-z0-9._:-]{1,128}$/);
    }
  });

  test('refusals of every operation that needs a token match the documented error body', async () => {
    for (const [path, methods] of Object.entries(document.paths)) {
      for (const [method, operation] of Object.entries(methods)) {
        if (!path.startsWith('/v1/')) continue;
        const concrete = path.replace('{id}', '00000000-0000-4000-8000-000000000000').replace('{topic}', 'openapi.topic');
        const unauthenticated = await rms.call(null, method.toUpperCase(), concrete, method === 'get' ? undefined : {});
        assert.equal(unauthenticated.status, 401, operation.operationId);
        assertMatches('#/components/schemas/ErrorBody', unauthenticated.body, `the 401 of ${operation.operationId}`);
        if (operation.requestBody) {
          const app = /^(ack|heartbeat|nack)/.test(operation.operationId) ? 'inventory' : /^(resend|setDegrade)/.test(operation.operationId) ? 'ops' : 'orders';
          const refused = await rms.call(app, method.toUpperCase(), concrete, { unexpected: true });
          assert.equal(refused.status, 400, `${operation.operationId}: ${JSON.stringify(refused.body)}`);
          assertMatches('#/components/schemas/ErrorBody', refused.body, `the 400 of ${operation.operationId}`);
        }
      }
    }
  });
});
