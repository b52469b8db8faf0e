/**
 * Graceful shutdown of the HTTP server: stop taking connections, finish the requests in
 * flight, and close every keep-alive connection as soon as it has nothing to do, so that
 * shutdown takes as long as the slowest request in flight — not the whole grace period
 * because a client holds an idle keep-alive socket open.
 *
 * Once draining, every answer carries `Connection: close` (the client opens its next
 * request elsewhere, and the socket ends after the answer). An answer that had already
 * gone out with keep-alive when draining began, or a socket idle at that moment, may be
 * reused by its client at once: such a socket is closed only after it has stayed idle for
 * a short linger, so a client's next request is answered (with `Connection: close`) rather
 * than reset as it is sent. Requests still running when the grace period ends are cut off.
 *
 * That is why listening stops through `net.Server#close` rather than `http.Server#close`:
 * the latter also closes every idle connection at once, racing clients that are just
 * sending their next request on one.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { Server as NetServer, type Socket } from 'node:net';

/**
 * How long a socket left in keep-alive by an answer sent before draining began may stay
 * idle before it is closed: longer than a busy client takes to send its next request on it.
 */
export const DRAIN_IDLE_LINGER_MS = 100;

/** Tracks a server's requests in flight, and drains them on shutdown. */
export class RequestDrain {
  readonly #inFlight = new Set<ServerResponse>();
  /** Requests being handled per socket: a socket with none is idle. */
  readonly #activeBySocket = new Map<Socket, number>();
  readonly #sockets = new Set<Socket>();
  #draining = false;

  constructor(private readonly server: Server) {
    // Prepended so that the flag is set before express runs and possibly answers at once.
    server.prependListener('request', (_request: IncomingMessage, response: ServerResponse) => this.#track(response));
    server.on('connection', (socket: Socket) => {
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    });
  }

  /** Requests being handled now. */
  get inFlight(): number {
    return this.#inFlight.size;
  }

  /**
   * Stops accepting connections and resolves when the requests in flight are done and
   * every connection is closed, or when `graceMs` has passed (what is left is cut off).
   * Idempotent in effect: call it once.
   */
  drain(graceMs: number): Promise<void> {
    this.#draining = true;
    for (const response of this.#inFlight) {
      if (!response.headersSent) response.shouldKeepAlive = false;
    }
    const closed = new Promise<void>((resolve) => NetServer.prototype.close.call(this.server, () => resolve()));
    for (const socket of this.#sockets) {
      if (!this.#activeBySocket.has(socket)) this.#closeIfStillIdle(socket);
    }
    const grace = setTimeout(() => this.server.closeAllConnections(), graceMs);
    return closed.finally(() => clearTimeout(grace));
  }

  #track(response: ServerResponse): void {
    const socket = response.socket;
    this.#inFlight.add(response);
    if (socket) this.#activeBySocket.set(socket, (this.#activeBySocket.get(socket) ?? 0) + 1);
    if (this.#draining) response.shouldKeepAlive = false;
    response.once('close', () => {
      this.#inFlight.delete(response);
      if (!socket) return;
      const active = (this.#activeBySocket.get(socket) ?? 1) - 1;
      if (active > 0) {
        this.#activeBySocket.set(socket, active);
        return;
      }
      this.#activeBySocket.delete(socket);
      if (this.#draining && !socket.destroyed) this.#closeIfStillIdle(socket);
    });
  }

  /** Ends `socket` unless a new request arrives on it within the linger. */
  #closeIfStillIdle(socket: Socket): void {
    setTimeout(() => {
      if (!this.#activeBySocket.has(socket) && !socket.destroyed) socket.end();
    }, DRAIN_IDLE_LINGER_MS).unref();
  }
}
