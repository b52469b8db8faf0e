/**
 * Graceful shutdown of the HTTP server: stop taking connections, finish the requests in
 * flight, and close every keep-alive connection as soon as it has nothing to do, so that
 * shutdown takes as long as the slowest request in flight — not the whole grace period
 * because a client holds an idle keep-alive socket open.
 *
 * Once draining, every answer carries `Connection: close` (the client opens its next
 * request elsewhere, and the socket ends after the answer), and every socket that becomes
 * idle is closed. Requests still running when the grace period ends are cut off.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';

/** Tracks a server's requests in flight, and drains them on shutdown. */
export class RequestDrain {
  readonly #inFlight = new Set<ServerResponse>();
  #draining = false;
  #onIdle: (() => void) | undefined;

  constructor(private readonly server: Server) {
    // Prepended so that the flag is set before express runs and possibly answers at once.
    server.prependListener('request', (_request: IncomingMessage, response: ServerResponse) => this.#track(response));
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
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    const grace = setTimeout(() => this.server.closeAllConnections(), graceMs);
    // A response that went out with keep-alive before draining began leaves an idle socket behind.
    this.#onIdle = () => this.server.closeIdleConnections();
    return closed.finally(() => clearTimeout(grace));
  }

  #track(response: ServerResponse): void {
    this.#inFlight.add(response);
    if (this.#draining) response.shouldKeepAlive = false;
    response.once('close', () => {
      this.#inFlight.delete(response);
      // The socket is marked idle only after this event: look once the current turn is over.
      if (this.#onIdle) setImmediate(this.#onIdle);
    });
  }
}
