/**
 * A TCP proxy that sits between a test and a real service (PostgreSQL, RabbitMQ,
 * Redis, ...) and injects network faults on command: reset every connection, stall
 * traffic, or add latency. Point the code under test at `proxy.host:proxy.port`
 * instead of the service, then call {@link FaultProxy.cut}, {@link FaultProxy.stall}
 * or {@link FaultProxy.delay}, and {@link FaultProxy.restore} to heal.
 *
 * It works on bytes, not on any protocol, so it fits every backend the same way.
 */
import type { TestContext } from 'node:test';
import net from 'node:net';

/** Options for {@link FaultProxy.start}. */
export interface FaultProxyOptions {
  /** Host of the real service every connection is forwarded to, e.g. `'127.0.0.1'`. */
  targetHost: string;
  /** Port of the real service, e.g. `5432` for PostgreSQL. */
  targetPort: number;
  /**
   * Port to listen on (always on 127.0.0.1).
   * @defaultValue `0`, an ephemeral port chosen by the OS; read it from {@link FaultProxy.port}.
   */
  listenPort?: number;
}

/** What the proxy does with traffic right now; `delayMs` applies on top of `'forward'`. */
type Mode = 'forward' | 'cut' | 'stall';

/** The fault settings, shared by reference with every {@link Pipe} so a change applies at once. */
interface FaultState {
  mode: Mode;
  delayMs: number;
}

// Both sides are opened with allowHalfOpen so a FIN from one peer is passed on as a FIN
// (after any queued bytes), not turned into an early close: protocols such as Redis
// QUIT or an AMQP close handshake still see the last reply.
const HALF_OPEN = { allowHalfOpen: true } as const;

/**
 * Aborts a socket with a TCP RST where the platform allows it, because a reset is the
 * fault we want clients to see (ECONNRESET), not a polite FIN. A socket that is still
 * connecting cannot be reset (Node would defer it until connected), so it is destroyed.
 */
function reset(socket: net.Socket): void {
  if (socket.destroyed) return;
  if (socket.connecting || typeof socket.resetAndDestroy !== 'function') {
    socket.destroy();
    return;
  }
  try {
    socket.resetAndDestroy();
  } catch {
    // resetAndDestroy throws for non-TCP handles; destroying is the best we can do.
    socket.destroy();
  }
}

// Errors are expected here (that is the point of a fault proxy); the 'close' handlers
// do the clean-up. Without a listener an ECONNRESET would crash the test process.
function ignoreError(): void {}

/**
 * One direction of one connection. Every chunk goes through a FIFO queue with a due
 * time, so a delay never reorders bytes (a later, shorter delay waits behind an earlier,
 * longer one) and a stall can hold chunks that were already read.
 */
class Pipe {
  readonly #state: Readonly<FaultState>;
  readonly #src: net.Socket;
  readonly #dst: net.Socket;
  readonly #queue: { chunk: Buffer; dueAt: number }[] = [];
  #timer: NodeJS.Timeout | undefined;
  #awaitingDrain = false;
  #srcDone = false;
  #endSent = false;

  constructor(state: Readonly<FaultState>, src: net.Socket, dst: net.Socket) {
    this.#state = state;
    this.#src = src;
    this.#dst = dst;
    src.on('data', (chunk: Buffer) => {
      this.#queue.push({ chunk, dueAt: Date.now() + state.delayMs });
      this.pump();
    });
    // A FIN is passed on only after the bytes before it, hence through the queue.
    src.on('end', () => {
      this.#srcDone = true;
      this.pump();
    });
    src.on('close', (hadError: boolean) => {
      if (hadError) {
        // The peer reset us (or the target was unreachable): pass the abort on as an abort.
        this.dispose();
        reset(dst);
        return;
      }
      // Gone without an error (normally after 'end', then this is a no-op): pass it on
      // as a FIN once the queued bytes are out.
      this.#srcDone = true;
      this.pump();
    });
  }

  /** Writes every chunk that is due, unless the proxy is stalled; safe to call any time. */
  pump(): void {
    if (this.#timer !== undefined || this.#state.mode === 'stall') return;
    if (this.#dst.destroyed) {
      this.dispose();
      return;
    }
    for (let head = this.#queue[0]; head !== undefined; head = this.#queue[0]) {
      const wait = head.dueAt - Date.now();
      if (wait > 0) {
        this.#timer = setTimeout(() => {
          this.#timer = undefined;
          this.pump();
        }, wait);
        return;
      }
      this.#queue.shift();
      if (!this.#dst.write(head.chunk) && !this.#awaitingDrain) {
        // Respect backpressure so a fast sender cannot balloon the proxy's memory.
        this.#awaitingDrain = true;
        this.#src.pause();
        this.#dst.once('drain', () => {
          this.#awaitingDrain = false;
          this.resume();
        });
      }
    }
    if (this.#srcDone && !this.#endSent) {
      this.#endSent = true;
      this.#dst.end();
    }
  }

  /** Lets the source flow again, unless the destination still has to drain. */
  resume(): void {
    if (this.#state.mode === 'stall' || this.#awaitingDrain) return;
    this.#src.resume();
    this.pump();
  }

  /** Stops the source from being read; bytes then wait in Node's buffer and the kernel. */
  pause(): void {
    this.#src.pause();
  }

  /** Forgets queued bytes and timers; used when the sockets are being torn down. */
  dispose(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#queue.length = 0;
  }
}

/** One accepted client and, once connected, its upstream socket to the target. */
interface Connection {
  client: net.Socket;
  upstream: net.Socket | undefined;
  pipes: Pipe[];
}

/**
 * A TCP proxy on 127.0.0.1 that forwards to one target and can inject faults.
 *
 * Faults are modes; each of {@link FaultProxy.cut}, {@link FaultProxy.stall} and
 * {@link FaultProxy.restore} replaces the current one. {@link FaultProxy.delay} adds
 * latency to forwarding and is cleared by `restore()`.
 *
 * @example
 * ```ts
 * const proxy = await FaultProxy.start({ targetHost: '127.0.0.1', targetPort: 5432 });
 * t.after(() => proxy.close());
 * const pool = new Pool({ host: proxy.host, port: proxy.port });
 * proxy.cut(); // the database "goes away"
 * proxy.restore(); // and comes back
 * ```
 */
export class FaultProxy {
  /** The address the proxy listens on; always loopback so tests never expose a port. */
  readonly host = '127.0.0.1';
  /** The port the proxy listens on (the ephemeral one if `listenPort` was 0). */
  readonly port: number;

  readonly #server: net.Server;
  readonly #targetHost: string;
  readonly #targetPort: number;
  /** Every socket the proxy owns, client or upstream, so faults and close() reach all. */
  readonly #sockets = new Set<net.Socket>();
  /** Open client connections; what {@link FaultProxy.connectionCount} reports. */
  readonly #connections = new Set<Connection>();
  readonly #state: FaultState = { mode: 'forward', delayMs: 0 };
  #closing: Promise<void> | undefined;

  private constructor(server: net.Server, port: number, options: FaultProxyOptions) {
    this.#server = server;
    this.port = port;
    this.#targetHost = options.targetHost;
    this.#targetPort = options.targetPort;
    server.on('connection', (socket) => this.#accept(socket));
    // A listening server can still report errors (e.g. EMFILE on accept); a test
    // helper must not take the process down with it.
    server.on('error', ignoreError);
  }

  /**
   * Starts listening on 127.0.0.1 and resolves once the port is bound.
   * @param options - where to forward to, and optionally which port to listen on.
   * @returns a proxy in forwarding mode.
   */
  static async start(options: FaultProxyOptions): Promise<FaultProxy> {
    const server = net.createServer(HALF_OPEN);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: '127.0.0.1', port: options.listenPort ?? 0 }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const address = server.address();
    if (address === null || typeof address === 'string') {
      server.close();
      throw new Error('FaultProxy: server is not listening on a TCP port');
    }
    return new FaultProxy(server, address.port, options);
  }

  /** Number of open client connections, including ones held by {@link FaultProxy.stall}. */
  get connectionCount(): number {
    return this.#connections.size;
  }

  /**
   * Resets every open connection on both sides (the client and the target each see
   * ECONNRESET) and refuses new connections until {@link FaultProxy.restore}.
   *
   * New connections are accepted and reset at once rather than the server being closed:
   * that keeps the port reserved, so no other process can take it while the "outage"
   * lasts and nothing has to re-bind on restore(). The kernel completes the handshake,
   * so a client sees ECONNRESET either on connect or on its first read, much like a
   * service that died right behind a load balancer; no byte reaches the target.
   */
  cut(): void {
    this.#state.mode = 'cut';
    for (const connection of this.#connections) {
      for (const pipe of connection.pipes) pipe.dispose();
    }
    for (const socket of this.#sockets) reset(socket);
  }

  /**
   * Holds all traffic: open connections stay open and new ones are accepted, but no
   * byte moves in either direction until {@link FaultProxy.restore}. Models a network
   * partition or a hung server, where clients must rely on their own timeouts.
   *
   * Semantics: nothing is dropped. Sockets are paused, so unread bytes wait in Node's
   * buffers and the kernel (and, once those are full, TCP flow control pushes back on
   * the sender); bytes already read are held in order in the proxy. New connections are
   * not connected to the target until restore(). On restore everything flows on in
   * order, so the byte stream is never corrupted, only late. A client that gave up and
   * closed in the meantime simply has its connection closed.
   */
  stall(): void {
    this.#state.mode = 'stall';
    for (const connection of this.#connections) {
      for (const pipe of connection.pipes) pipe.pause();
    }
  }

  /**
   * Forwards each chunk `ms` milliseconds after it was received, in both directions,
   * keeping the order of bytes in each direction. A round trip therefore takes at least
   * `2 * ms`. Applies to chunks received from now on; restore() sets it back to 0.
   * @param ms - non-negative delay in milliseconds.
   */
  delay(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) {
      throw new RangeError(`FaultProxy.delay: ms must be a finite number >= 0, got ${ms}`);
    }
    this.#state.delayMs = ms;
  }

  /**
   * Back to plain forwarding without delay. Stalled connections are connected to the
   * target if they were not yet, and their held bytes flow on in order.
   */
  restore(): void {
    this.#state.mode = 'forward';
    this.#state.delayMs = 0;
    for (const connection of this.#connections) {
      if (connection.upstream === undefined) {
        this.#connectUpstream(connection);
      }
      for (const pipe of connection.pipes) pipe.resume();
    }
  }

  /**
   * Stops listening and destroys every socket. Safe to call more than once, also
   * concurrently; every call resolves once the server is closed.
   */
  /** `url` with its host and port replaced by the proxy's: the same service, reached through the proxy. */
  route(url: string): string {
    const through = new URL(url);
    through.host = `${this.host}:${this.port}`;
    return through.toString();
  }

  close(): Promise<void> {
    this.#closing ??= new Promise<void>((resolve, reject) => {
      for (const connection of this.#connections) {
        for (const pipe of connection.pipes) pipe.dispose();
      }
      for (const socket of this.#sockets) socket.destroy();
      // server.close() waits for open connections, which we have just destroyed.
      this.#server.close((err) => (err ? reject(err) : resolve()));
    });
    return this.#closing;
  }

  #track(socket: net.Socket): void {
    socket.on('error', ignoreError);
    this.#sockets.add(socket);
    socket.once('close', () => this.#sockets.delete(socket));
  }

  #accept(client: net.Socket): void {
    if (this.#state.mode === 'cut' || this.#closing !== undefined) {
      client.on('error', ignoreError);
      reset(client);
      return;
    }
    this.#track(client);
    const connection: Connection = { client, upstream: undefined, pipes: [] };
    this.#connections.add(connection);
    client.once('close', () => this.#connections.delete(connection));
    if (this.#state.mode === 'stall') {
      // Keep the bytes in the kernel; restore() connects upstream and resumes.
      client.pause();
      return;
    }
    this.#connectUpstream(connection);
  }

  #connectUpstream(connection: Connection): void {
    const { client } = connection;
    if (client.destroyed) return;
    const upstream = net.connect({ host: this.#targetHost, port: this.#targetPort, ...HALF_OPEN });
    this.#track(upstream);
    connection.upstream = upstream;
    // Writes before 'connect' are buffered by Node, so the pipes can start right away.
    connection.pipes = [new Pipe(this.#state, client, upstream), new Pipe(this.#state, upstream, client)];
    for (const pipe of connection.pipes) pipe.resume();
  }
}

/**
 * A fault proxy in front of the service at `serviceUrl` (closed when the test ends), and
 * the same URL routed through it: a node of that service whose network the test controls.
 */
export async function proxyInFrontOf(t: TestContext, serviceUrl: string, defaultPort: number): Promise<{ proxy: FaultProxy; url: string }> {
  const target = new URL(serviceUrl);
  const proxy = await FaultProxy.start({ targetHost: target.hostname, targetPort: Number(target.port || defaultPort) });
  t.after(() => proxy.close());
  return { proxy, url: proxy.route(serviceUrl) };
}

