import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { test, type TestContext } from 'node:test';
import { FaultProxy } from '../support/fault-proxy.js';

/** How long "nothing arrives" is watched for; short, but far above loopback latency. */
const QUIET_WINDOW_MS = 150;

/**
 * The tests wait on events (data, close), so a broken proxy would hang rather than fail;
 * a per-test limit turns that hang into a failure of the test that hung.
 */
const BOUNDED = { timeout: 5_000 };

/** A local echo server that records what reached it, standing in for a real service. */
interface Echo {
  port: number;
  /** Bytes the server has received, over all connections. */
  received: () => Buffer;
  /** Connections the server has accepted so far. */
  accepted: () => number;
  /** Server-side sockets, in accept order, for tests that act from the service's side. */
  sockets: net.Socket[];
}

async function startEcho(t: TestContext): Promise<Echo> {
  const chunks: Buffer[] = [];
  const sockets: net.Socket[] = [];
  const server = net.createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      socket.write(chunk);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  const address = server.address() as net.AddressInfo;
  return {
    port: address.port,
    received: () => Buffer.concat(chunks),
    accepted: () => sockets.length,
    sockets,
  };
}

async function startProxy(t: TestContext, echo: Echo): Promise<FaultProxy> {
  const proxy = await FaultProxy.start({ targetHost: '127.0.0.1', targetPort: echo.port });
  t.after(() => proxy.close());
  return proxy;
}

/** A client socket that records its data, error and close, and never throws on a reset. */
interface Client {
  socket: net.Socket;
  received: () => Buffer;
  /** The first error the socket saw, if any. */
  error: () => NodeJS.ErrnoException | undefined;
  closed: Promise<void>;
  ended: Promise<void>;
}

/**
 * Opens a client without waiting for the connect: a connection the proxy resets at once
 * may fail the connect itself with ECONNRESET, depending on which side's event loop is first.
 */
function openClient(t: TestContext, port: number): Client {
  const socket = net.connect({ host: '127.0.0.1', port });
  const chunks: Buffer[] = [];
  let error: NodeJS.ErrnoException | undefined;
  socket.on('error', (err) => {
    error ??= err;
  });
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  const closed = next(socket, 'close');
  const ended = next(socket, 'end');
  t.after(() => {
    socket.destroy();
  });
  return { socket, received: () => Buffer.concat(chunks), error: () => error, closed, ended };
}

/** Opens a client and resolves once it is connected (to the proxy, not yet the service). */
async function connect(t: TestContext, port: number): Promise<Client> {
  const client = openClient(t, port);
  await once(client.socket, 'connect');
  return client;
}

/**
 * Resolves on the next `name` event. Unlike events.once() it does not reject on 'error':
 * resets are expected in these tests and are asserted on explicitly.
 */
function next(emitter: NodeJS.EventEmitter, name: string): Promise<void> {
  return new Promise((resolve) => emitter.once(name, () => resolve()));
}

/** Resolves once `client` has received at least `length` bytes in total. */
async function receivedAtLeast(client: Client, length: number): Promise<Buffer> {
  while (client.received().length < length) {
    await Promise.race([next(client.socket, 'data'), client.closed]);
    if (client.socket.destroyed && client.received().length < length) {
      throw new Error(`socket closed after ${client.received().length} of ${length} bytes`);
    }
  }
  return client.received();
}

/**
 * Resolves once `predicate` holds, checking every turn of the event loop; for state that
 * has no event of its own. Stops when the test times out so the poll cannot keep the
 * process alive.
 */
async function until(t: TestContext, predicate: () => boolean): Promise<void> {
  while (!predicate()) {
    if (t.signal.aborted) throw new Error('condition never became true');
    await new Promise((resolve) => setImmediate(resolve));
  }
}

test('forwards bytes both ways, byte for byte, including a payload larger than socket buffers', BOUNDED, async (t) => {
  const echo = await startEcho(t);
  const proxy = await startProxy(t, echo);
  const client = await connect(t, proxy.port);

  client.socket.write('ping');
  assert.equal((await receivedAtLeast(client, 4)).toString(), 'ping');
  assert.equal(echo.received().toString(), 'ping');
  assert.equal(proxy.connectionCount, 1);

  // 4 MiB forces partial writes and 'drain' on the way, so backpressure handling is exercised.
  const payload = Buffer.alloc(4 * 1024 * 1024);
  for (let i = 0; i < payload.length; i++) payload[i] = (i * 31) % 251;
  client.socket.write(payload);
  const echoed = await receivedAtLeast(client, 4 + payload.length);
  assert.ok(echoed.subarray(4).equals(payload), 'echoed payload differs from what was sent');
});

test('a client that hangs up ends the upstream connection and leaves the count', BOUNDED, async (t) => {
  const echo = await startEcho(t);
  const proxy = await startProxy(t, echo);
  const client = await connect(t, proxy.port);
  client.socket.write('x');
  await receivedAtLeast(client, 1);
  const upstream = echo.sockets[0];
  assert.ok(upstream);
  const upstreamClosed = next(upstream, 'close');

  client.socket.end();
  await upstreamClosed;
  await client.closed;
  await until(t, () => proxy.connectionCount === 0);
});

test('a service that hangs up ends the client connection', BOUNDED, async (t) => {
  const echo = await startEcho(t);
  const proxy = await startProxy(t, echo);
  const client = await connect(t, proxy.port);
  client.socket.write('x');
  await receivedAtLeast(client, 1);

  echo.sockets[0]?.end();
  await client.ended;
  await client.closed;
  assert.equal(client.error(), undefined);
});

test('a reset from the service reaches the client as a reset', BOUNDED, async (t) => {
  const echo = await startEcho(t);
  const proxy = await startProxy(t, echo);
  const client = await connect(t, proxy.port);
  client.socket.write('x');
  await receivedAtLeast(client, 1);

  echo.sockets[0]?.resetAndDestroy();
  await client.closed;
  assert.equal(client.error()?.code, 'ECONNRESET');
});

test('an unreachable target closes the client connection without crashing', BOUNDED, async (t) => {
  // Reserve a port, then free it, so nothing is listening there.
  const placeholder = net.createServer().listen(0, '127.0.0.1');
  await once(placeholder, 'listening');
  const deadPort = (placeholder.address() as net.AddressInfo).port;
  await new Promise((resolve) => placeholder.close(resolve));
  const proxy = await FaultProxy.start({ targetHost: '127.0.0.1', targetPort: deadPort });
  t.after(() => proxy.close());

  const client = openClient(t, proxy.port);
  await client.closed;
  await until(t, () => proxy.connectionCount === 0);
});

test('cut() resets open connections and refuses new ones until restore()', BOUNDED, async (t) => {
  const echo = await startEcho(t);
  const proxy = await startProxy(t, echo);
  const open = await connect(t, proxy.port);
  open.socket.write('before');
  await receivedAtLeast(open, 6);
  const upstream = echo.sockets[0];
  assert.ok(upstream);
  const upstreamClosed = next(upstream, 'close');

  proxy.cut();
  await open.closed;
  assert.equal(open.error()?.code, 'ECONNRESET');
  await upstreamClosed;
  assert.equal(proxy.connectionCount, 0);

  // The port stays bound, so the handshake completes, but the proxy resets it at once.
  const refused = openClient(t, proxy.port);
  refused.socket.write('must not arrive');
  await refused.closed;
  assert.equal(refused.received().length, 0);
  assert.equal(echo.accepted(), 1, 'the service saw a connection made after cut()');
  assert.equal(echo.received().toString(), 'before');
  assert.equal(proxy.connectionCount, 0);
});

test('restore() after cut() lets new connections through again', BOUNDED, async (t) => {
  const echo = await startEcho(t);
  const proxy = await startProxy(t, echo);
  proxy.cut();
  const refused = openClient(t, proxy.port);
  await refused.closed;

  proxy.restore();
  const client = await connect(t, proxy.port);
  client.socket.write('back');
  assert.equal((await receivedAtLeast(client, 4)).toString(), 'back');
  assert.equal(proxy.connectionCount, 1);
});

test('stall() holds bytes on an open connection and delivers them in order after restore()', BOUNDED, async (t) => {
  const echo = await startEcho(t);
  const proxy = await startProxy(t, echo);
  const client = await connect(t, proxy.port);
  client.socket.write('a');
  await receivedAtLeast(client, 1);

  proxy.stall();
  client.socket.write('b');
  client.socket.write('c');
  await sleep(QUIET_WINDOW_MS);
  assert.equal(echo.received().toString(), 'a', 'bytes reached the service while stalled');
  assert.equal(client.received().toString(), 'a');
  assert.equal(client.socket.destroyed, false);
  assert.equal(proxy.connectionCount, 1);

  proxy.restore();
  assert.equal((await receivedAtLeast(client, 3)).toString(), 'abc');
  assert.equal(echo.received().toString(), 'abc');
});

test('stall() holds replies already on their way back to the client', BOUNDED, async (t) => {
  const echo = await startEcho(t);
  const proxy = await startProxy(t, echo);
  const client = await connect(t, proxy.port);
  client.socket.write('a');
  await receivedAtLeast(client, 1);
  const upstream = echo.sockets[0];
  assert.ok(upstream);

  proxy.stall();
  upstream.write('pushed');
  await sleep(QUIET_WINDOW_MS);
  assert.equal(client.received().toString(), 'a', 'bytes reached the client while stalled');

  proxy.restore();
  assert.equal((await receivedAtLeast(client, 7)).toString(), 'apushed');
});

test('stall() accepts new connections but connects them upstream only after restore()', BOUNDED, async (t) => {
  const echo = await startEcho(t);
  const proxy = await startProxy(t, echo);
  proxy.stall();

  const client = await connect(t, proxy.port);
  client.socket.write('early');
  await sleep(QUIET_WINDOW_MS);
  assert.equal(proxy.connectionCount, 1);
  assert.equal(echo.accepted(), 0, 'the service saw a connection while stalled');
  assert.equal(client.received().length, 0);

  proxy.restore();
  assert.equal((await receivedAtLeast(client, 5)).toString(), 'early');
  assert.equal(echo.accepted(), 1);
});

test('delay(50) holds each direction for 50 ms, so a round trip takes at least 100 ms', BOUNDED, async (t) => {
  const echo = await startEcho(t);
  const proxy = await startProxy(t, echo);
  const client = await connect(t, proxy.port);
  // Warm up so connection set-up is not part of the measurement.
  client.socket.write('w');
  await receivedAtLeast(client, 1);

  proxy.delay(50);
  const started = performance.now();
  client.socket.write('x');
  await receivedAtLeast(client, 2);
  const elapsed = performance.now() - started;
  // Timers may fire up to ~1 ms early against performance.now(); allow a little slack.
  assert.ok(elapsed >= 95, `round trip took ${elapsed.toFixed(1)} ms, expected >= 100 ms`);

  proxy.restore();
  const restoredStart = performance.now();
  client.socket.write('y');
  await receivedAtLeast(client, 3);
  const restoredElapsed = performance.now() - restoredStart;
  assert.ok(restoredElapsed < 90, `after restore() a round trip took ${restoredElapsed.toFixed(1)} ms`);
});

test('shortening the delay never lets a later chunk overtake an earlier one', BOUNDED, async (t) => {
  const echo = await startEcho(t);
  const proxy = await startProxy(t, echo);
  const client = await connect(t, proxy.port);

  proxy.delay(100);
  client.socket.write('first');
  // A gap so the two writes reach the proxy as separate chunks; without order keeping,
  // 'second' (no delay) would be forwarded ~80 ms before 'first'.
  await sleep(20);
  proxy.delay(0);
  client.socket.write('second');
  assert.equal((await receivedAtLeast(client, 11)).toString(), 'firstsecond');
  assert.equal(echo.received().toString(), 'firstsecond');
});

test('delay() rejects a negative or non-finite delay', BOUNDED, async (t) => {
  const echo = await startEcho(t);
  const proxy = await startProxy(t, echo);
  assert.throws(() => proxy.delay(-1), RangeError);
  assert.throws(() => proxy.delay(Number.NaN), RangeError);
  assert.throws(() => proxy.delay(Number.POSITIVE_INFINITY), RangeError);
});

test('close() destroys open connections, stops listening and is idempotent', BOUNDED, async (t) => {
  const echo = await startEcho(t);
  const proxy = await startProxy(t, echo);
  const client = await connect(t, proxy.port);
  client.socket.write('x');
  await receivedAtLeast(client, 1);

  await Promise.all([proxy.close(), proxy.close()]);
  await proxy.close();
  await client.closed;
  assert.equal(proxy.connectionCount, 0);

  const late = net.connect({ host: '127.0.0.1', port: proxy.port });
  const [err] = (await once(late, 'error')) as [NodeJS.ErrnoException];
  assert.equal(err.code, 'ECONNREFUSED');
});

test('listens on the requested port when listenPort is given', BOUNDED, async (t) => {
  const echo = await startEcho(t);
  const placeholder = net.createServer().listen(0, '127.0.0.1');
  await once(placeholder, 'listening');
  const wanted = (placeholder.address() as net.AddressInfo).port;
  await new Promise((resolve) => placeholder.close(resolve));

  const proxy = await FaultProxy.start({ targetHost: '127.0.0.1', targetPort: echo.port, listenPort: wanted });
  t.after(() => proxy.close());
  assert.equal(proxy.port, wanted);
  assert.equal(proxy.host, '127.0.0.1');
});
