/**
 * Closing a node-zookeeper-client (1.1.3) client for good, which the library does not do
 * safely on its own: `close()` without an established session can leave a socket or open
 * a new one (alexguan/node-zookeeper-client#60), closing during a pending handshake
 * crashes the process when the handshake answer arrives, and a stalled close never
 * completes. This module knows the library's internals so that the rest does not.
 */
import type net from 'node:net';
import type { Client } from 'node-zookeeper-client';

// ConnectionManager's state numbers (lib/ConnectionManager.js), for closing clients safely.
const MANAGER_CONNECTED = 2;
const MANAGER_CONNECTED_READ_ONLY = 3;
const MANAGER_CLOSING = -1;
const MANAGER_CLOSED = -2;

/** The internals of node-zookeeper-client 1.1.3 that closing a client for good needs. */
interface ConnectionManagerInternals {
  state?: unknown;
  socket?: net.Socket;
  setState?: (state: number) => void;
  connect?: () => void;
  onSocketConnected?: () => void;
  onPacketQueueReadable?: () => void;
}

function managerOf(client: Client): ConnectionManagerInternals | undefined {
  const manager = (client as unknown as { connectionManager?: unknown }).connectionManager;
  return typeof manager === 'object' && manager !== null ? (manager as ConnectionManagerInternals) : undefined;
}

/**
 * Shuts a client down without a word to the server: it never reconnects, never writes
 * again, and its socket is destroyed. For a client without an established session, where
 * the polite close() is unsafe: close() queues CLOSE_SESSION with xid 0, and when the
 * pending handshake's ConnectResponse then arrives, the client (now CLOSING) parses it as
 * that request's reply (its protocolVersion 0 reads as xid 0), takes session-id bytes for
 * an error code and throws "Unknown code" from a socket handler, which kills the process.
 * Also for a client presumed dead (its server session expires on its own).
 *
 * Without the expected internals (another client version) it falls back to close().
 */
export function abandonClient(client: Client): void {
  const manager = managerOf(client);
  if (manager?.setState === undefined || manager.state === MANAGER_CLOSED) {
    if (manager?.state !== MANAGER_CLOSED) {
      try {
        client.close();
      } catch {
        // close() throws when the client has no socket yet.
      }
    }
    return;
  }
  // Instance properties shadow the prototype: a reconnect already scheduled (the client
  // waits up to spinDelay between rounds) binds these when it opens its socket.
  manager.connect = () => undefined;
  manager.onPacketQueueReadable = () => undefined;
  manager.onSocketConnected = function (this: ConnectionManagerInternals) {
    this.socket?.destroy();
  };
  try {
    // CLOSING: the socket's close then ends in CLOSED instead of a retry, and new requests fail at once.
    manager.setState(MANAGER_CLOSING);
  } catch {
    // setState only throws for a non-number.
  }
  manager.socket?.destroy();
}

/**
 * Closes a client for good. With an established session, politely (CLOSE_SESSION ends the
 * session on the server at once), and if the server does not confirm within `graceMs`
 * (stalled), by abandoning it; without one, by abandoning it right away.
 */
export function closeClient(client: Client, graceMs: number): Promise<void> {
  const manager = managerOf(client);
  if (manager === undefined || manager.state === MANAGER_CLOSED) return Promise.resolve();
  if (manager.state !== MANAGER_CONNECTED && manager.state !== MANAGER_CONNECTED_READ_ONLY) {
    abandonClient(client);
    return Promise.resolve();
  }
  try {
    client.close();
  } catch {
    abandonClient(client);
    return Promise.resolve();
  }
  return new Promise<void>((resolve) => {
    const startedAt = Date.now();
    const timer = setInterval(() => {
      if (manager.state === MANAGER_CLOSED) {
        clearInterval(timer);
        resolve();
      } else if (Date.now() - startedAt >= graceMs) {
        clearInterval(timer);
        abandonClient(client);
        resolve();
      }
    }, 20);
    // Not unref'd: whoever awaits close() expects it to settle, and it is bounded by graceMs.
  });
}
