/**
 * Property-based fuzzing of the HTTP API with fast-check: generated hostile requests for
 * every route (any method, ids and topics with broken percent-escapes, any token, bodies
 * that are random JSON, random bytes, deeply nested, ill-formed Unicode, with any
 * Content-Type and Content-Encoding, odd query strings) must never get a 5xx, never crash
 * the server, and every 4xx must carry the error body naming the problem.
 *
 * Every request may also carry hostile `X-Request-Id`, `traceparent` and `tracestate`
 * headers; every answer must still echo a safe request id.
 *
 * `FUZZ_RUNS` sets the number of generated requests (default 1,500 in `npm test`; CI and
 * `npm run fuzz` run 10,000); `FUZZ_SEED` replays a run (the seed is printed on failure).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { deflateSync, gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { startTestServer, TEST_APPS, type TestServer } from '../support/rms-server.js';

const RUNS = Number(process.env['FUZZ_RUNS'] ?? 1500);
const SEED = process.env['FUZZ_SEED'] === undefined ? Date.now() % 2 ** 31 : Number(process.env['FUZZ_SEED']);

let rms: TestServer;
/** Ids of real messages in each status, so generated requests also hit existing rows. */
const knownIds: string[] = [];

before(async () => {
  rms = await startTestServer({ env: { RMS_MAX_PAYLOAD_BYTES: '4096', RMS_CHECK_DELAY_MS: '3600000' } });
  for (let n = 0; n < 4; n++) {
    const prepared = await rms.call('orders', 'POST', '/v1/messages', { topic: 'fuzz.seed', payload: { n }, messageId: `seed-${n}` });
    knownIds.push(prepared.body.id as string);
  }
  await rms.call('orders', 'POST', `/v1/messages/${knownIds[1]}/confirm`);
  await rms.call('orders', 'DELETE', `/v1/messages/${knownIds[2]}`);
  await rms.call('orders', 'POST', `/v1/messages/${knownIds[3]}/confirm`);
  await rms.call('inventory', 'POST', `/v1/messages/${knownIds[3]}/ack`);
});
after(async () => {
  await rms?.stop();
});

/** `text` with lone surrogates replaced by U+FFFD, as UTF-8 encoding does (`encodeURIComponent` throws on them instead). */
const wellFormed = (text: string): string => Buffer.from(text).toString('utf8');

/** Path segments: real ids, random UUIDs, broken percent-escapes, and any text, encoded. */
const segment = fc.oneof(
  fc.constantFrom(...['%ZZ', '%', '%C0%AF', '%FF%FE', '%00', '%2F', '..', '%ED%A0%80', '']),
  fc.uuid(),
  fc.integer({ min: 0, max: 3 }).map((index) => knownIds[index] ?? ''),
  fc.string({ unit: 'binary', maxLength: 40 }).map((text) => encodeURIComponent(wellFormed(text))),
  fc.string({ maxLength: 300 }).map(encodeURIComponent),
);

const topicLike = fc.oneof(fc.constantFrom('fuzz.topic', 'orders.*', 'a'.repeat(129)), fc.string({ maxLength: 20 }));

const path = fc.oneof(
  { weight: 3, arbitrary: fc.constant('/v1/messages') },
  fc.constant('/v1/messages/batch'),
  fc.constant('/v1/confirms'),
  fc.constant('/v1/acks'),
  fc.constant('/v1/nacks'),
  fc.constant('/v1/resends'),
  fc.constant('/v1/stats'),
  fc.constant('/v1/degrade'),
  fc.constantFrom('/dashboard', '/dashboard/', '/dashboard/app.js', '/dashboard/style.css'),
  segment.map((file) => `/dashboard/${file}`),
  segment.map((id) => `/v1/messages/${id}`),
  { weight: 4, arbitrary: fc.tuple(segment, fc.constantFrom('confirm', 'ack', 'heartbeat', 'resend', 'history', 'nack', '')).map(([id, verb]) => `/v1/messages/${id}/${verb}`) },
  segment.map((topic) => `/v1/topics/${topic}/resend`),
  fc.constantFrom('/healthz', '/readyz', '/metrics', '/', '/v1', '/v2/messages', '/v1/messages/'),
  segment.map((text) => `/${text}`),
);

const query = fc.oneof(
  fc.constant(''),
  fc
    .array(
      fc.tuple(
        fc.constantFrom('status', 'topic', 'limit', 'cursor', 'messageId', 'producer', 'from', 'to', 'x', ''),
        fc.oneof(
          fc.constantFrom('DEAD', 'PENDING', '0', '-1', '501', '1e3', 'NaN', '%ZZ', '', '2026-01-01T00:00:00Z', '0000-01-01T00:00:00Z', '9999-12-31T23:59:59.999%2B14:00', '2026-02-30T00:00:00Z'),
          fc.string({ maxLength: 30 }).map(encodeURIComponent),
          fc.base64String({ maxLength: 80 }),
          fc.jsonValue({ maxDepth: 2 }).map((value) => Buffer.from(JSON.stringify(value) ?? '').toString('base64url')),
        ),
      ),
      { maxLength: 4 },
    )
    .map((pairs) => `?${pairs.map(([key, value]) => `${key}=${value}`).join('&')}`),
);

/** A prepare-shaped body with each field possibly wrong. */
const prepareLike = fc.record(
  {
    topic: fc.oneof(topicLike, fc.jsonValue({ maxDepth: 1 })),
    payload: fc.oneof(fc.jsonValue({ maxDepth: 4 }), fc.string({ unit: 'binary', maxLength: 20 })),
    messageId: fc.oneof(fc.string({ unit: 'binary', maxLength: 30 }), fc.string({ maxLength: 300 }), fc.jsonValue({ maxDepth: 1 })),
    headers: fc.oneof(fc.dictionary(fc.string({ maxLength: 10 }), fc.string({ unit: 'binary', maxLength: 20 })), fc.jsonValue({ maxDepth: 2 })),
    extra: fc.jsonValue({ maxDepth: 1 }),
    traceparent: fc.oneof(fc.constant('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'), fc.string({ maxLength: 300 }), fc.jsonValue({ maxDepth: 1 })),
    tracestate: fc.oneof(fc.string({ maxLength: 1100 }), fc.jsonValue({ maxDepth: 1 })),
  },
  { requiredKeys: [] },
);

const bodyText = fc.oneof(
  prepareLike.map((body) => JSON.stringify(body)),
  fc.array(prepareLike, { maxLength: 5 }).map((messages) => JSON.stringify({ messages })),
  fc.array(fc.oneof(fc.uuid(), fc.string({ maxLength: 40 }), fc.integer()), { maxLength: 5 }).map((ids) => JSON.stringify({ ids })),
  fc.record({ extendMs: fc.oneof(fc.integer(), fc.double(), fc.string()), limit: fc.oneof(fc.integer(), fc.string()) }, { requiredKeys: [] }).map((body) => JSON.stringify(body)),
  // nack, batch nack, bulk resend and degrade bodies, each field possibly wrong.
  fc
    .record(
      {
        reason: fc.oneof(fc.string({ unit: 'binary', maxLength: 30 }), fc.string({ minLength: 990, maxLength: 1010 }), fc.jsonValue({ maxDepth: 1 })),
        retryAfterMs: fc.oneof(fc.integer(), fc.double(), fc.string()),
        attempt: fc.oneof(fc.integer(), fc.double(), fc.constant(null)),
      },
      { requiredKeys: [] },
    )
    .chain((nack) => fc.oneof(fc.constant(nack), fc.array(fc.record({ id: fc.oneof(fc.uuid(), fc.string({ maxLength: 10 })) }).map((item) => ({ ...item, ...nack })), { maxLength: 3 }).map((nacks) => ({ nacks }))))
    .map((body) => JSON.stringify(body)),
  fc
    .record(
      {
        filter: fc.oneof(
          fc.record({ topic: topicLike, producer: fc.string({ maxLength: 10 }), messageId: fc.string({ maxLength: 10 }), from: fc.constantFrom('2026-01-01T00:00:00Z', 'noon', '0000-01-01T00:00:00Z'), to: fc.string() }, { requiredKeys: [] }),
          fc.jsonValue({ maxDepth: 1 }),
        ),
        dryRun: fc.oneof(fc.constant(true), fc.jsonValue({ maxDepth: 0 })),
        limit: fc.oneof(fc.integer(), fc.string()),
      },
      { requiredKeys: [] },
    )
    .map((body) => JSON.stringify(body)),
  fc.record({ mode: fc.constantFrom('auto', 'off', 'sideways', ''), reason: fc.oneof(fc.string({ maxLength: 20 }), fc.integer()) }, { requiredKeys: [] }).map((body) => JSON.stringify(body)),
  fc.jsonValue({ maxDepth: 3 }).map((value) => JSON.stringify(value) ?? 'null'),
  fc.integer({ min: 1, max: 200_000 }).map((depth) => `{"topic":"fuzz.deep","payload":${'['.repeat(depth)}${']'.repeat(depth)}}`),
  fc.string({ unit: 'binary', maxLength: 200 }),
  fc.constantFrom('{', '{"topic":', '[', 'null', '', '\u0000', '{"__proto__":{"x":1}}', '{"constructor":{"prototype":{}}}'),
);

const body = fc.oneof(
  { weight: 1, arbitrary: fc.constant<Uint8Array | null>(null) },
  { weight: 6, arbitrary: bodyText.map((text) => new Uint8Array(Buffer.from(text))) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300 }) },
);

const encoding = fc.constantFrom(undefined, 'gzip', 'deflate', 'br', 'identity', 'compress', 'gzip, gzip', 'x-garbage');
const contentType = fc.constantFrom(undefined, 'application/json', 'text/plain', 'application/json; charset=latin1', 'application/json; charset=utf-16', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', '*/*');
const authorization = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...Object.values(TEST_APPS).map((app) => `Bearer ${app.token}`)) },
  fc.constantFrom(undefined, 'Bearer', 'Bearer ', 'Basic Zm9vOmJhcg==', `bearer ${TEST_APPS.ops.token}`, `Bearer ${TEST_APPS.ops.token} extra`),
  fc.string({ maxLength: 40 }).map((text) => `Bearer ${text.replace(/[^\x20-\x7e]/g, '')}`),
);

/**
 * Values for the correlation headers (`X-Request-Id`, `traceparent`, `tracestate`): valid
 * ones, near misses (all-zero ids, version ff, too long), and any text a header can carry.
 */
const correlationHeader = fc.option(
  fc.oneof(
    fc.constantFrom(
      'req-1',
      'a'.repeat(129),
      '../../etc/passwd',
      '<script>alert(1)</script>',
      '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
      '00-00000000000000000000000000000000-00f067aa0ba902b7-01',
      '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01',
      'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
      '01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future',
      'rojo=00f067aa0ba902b7,congo=t61rcWkgMzE',
      `${'k=v,'.repeat(100)}k=v`,
    ),
    fc.string({ maxLength: 600 }).map((text) => text.replace(/[^\x20-\x7e]/g, '')),
    // Latin-1 bytes above 0x7f: what a header can carry beyond ASCII.
    fc.string({ unit: 'binary', maxLength: 60 }).map((text) => [...Buffer.from(text).toString('latin1')].filter((char) => char >= ' ' && char !== '\x7f').join('')),
  ),
  { nil: undefined },
);

const hostileRequest = fc.record({
  method: fc.constantFrom('GET', 'POST', 'DELETE', 'PUT', 'PATCH', 'OPTIONS', 'HEAD'),
  path,
  query,
  authorization,
  contentType,
  encoding,
  /** Whether to really compress the body as the encoding says, or send it as it is. */
  compress: fc.boolean(),
  body,
  requestId: correlationHeader,
  traceparent: correlationHeader,
  tracestate: correlationHeader,
});

type HostileRequest = typeof hostileRequest extends fc.Arbitrary<infer T> ? T : never;

function encodeBody(request: HostileRequest): Uint8Array | null {
  if (!request.body || !request.compress) return request.body;
  if (request.encoding === 'gzip') return new Uint8Array(gzipSync(request.body));
  if (request.encoding === 'deflate') return new Uint8Array(deflateSync(request.body));
  return request.body;
}

describe('fuzzing the HTTP API with generated hostile requests', () => {
  test(`${RUNS} generated requests: never a 5xx, and every 4xx names the problem (seed ${SEED})`, { timeout: 600_000 }, async () => {
    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(hostileRequest, async (request) => {
        const headers: Record<string, string> = {};
        if (request.authorization !== undefined) headers['authorization'] = request.authorization;
        if (request.contentType !== undefined) headers['content-type'] = request.contentType;
        if (request.encoding !== undefined) headers['content-encoding'] = request.encoding;
        if (request.requestId !== undefined) headers['x-request-id'] = request.requestId;
        if (request.traceparent !== undefined) headers['traceparent'] = request.traceparent;
        if (request.tracestate !== undefined) headers['tracestate'] = request.tracestate;
        const sendsBody = request.method !== 'GET' && request.method !== 'HEAD';
        const response = await fetch(`${rms.baseUrl}${request.path}${request.query}`, {
          method: request.method,
          headers,
          body: sendsBody ? encodeBody(request) : null,
          signal: AbortSignal.timeout(15_000),
        });
        const text = await response.text();
        statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
        assert.ok(response.status < 500, `${request.method} ${request.path}${request.query} → ${response.status} ${text.slice(0, 300)}`);
        assert.match(response.headers.get('x-request-id') ?? '', /^[A-Za-z0-9._:-]{1,128}$/, 'every answer carries a safe request id');
        if (response.status >= 400 && request.method !== 'HEAD') {
          const parsed = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
          assert.equal(typeof parsed.error?.code, 'string', text);
          assert.ok(typeof parsed.error?.message === 'string' && parsed.error.message.length > 0, text);
        }
      }),
      { numRuns: RUNS, seed: SEED, endOnFailure: true },
    );
    // The server is still whole after all of it.
    assert.equal((await rms.call(null, 'GET', '/healthz')).status, 200);
    const fresh = await rms.call('orders', 'POST', '/v1/messages', { topic: 'fuzz.after', payload: { ok: true } });
    assert.equal(fresh.status, 201, 'a plain prepare still works');
    assert.equal((await rms.call('orders', 'GET', `/v1/messages/${fresh.body.id}`)).body.status, 'PENDING');
    const summary = [...statuses.entries()].sort(([a], [b]) => a - b).map(([status, count]) => `${status}×${count}`).join(' ');
    process.stdout.write(`# fuzz: ${RUNS} requests, seed ${SEED}: ${summary}\n`);
    assert.ok((statuses.get(400) ?? 0) > 0 && (statuses.get(401) ?? 0) > 0, 'the generator reaches both the authentication and the validation');
  });
});
