/**
 * Connection handling shared by the RabbitMQ publisher and consumer: the heartbeat in the
 * URL, and closing a connection without trusting amqplib 2.3.1's `close()` to settle on a
 * stalled or dying socket.
 */
import type { Socket } from 'node:net';
import type { ChannelModel } from 'amqplib';

/** Does nothing; for ignored rejections and default listeners. */
export function noop(): void {}

/** The message of an error, or the value as text. */
export function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The URL with the heartbeat asked for, unless the URL already names one. */
export function withHeartbeat(url: string, seconds: number): string {
  try {
    const parsed = new URL(url);
    if (!parsed.searchParams.has('heartbeat')) parsed.searchParams.set('heartbeat', String(seconds));
    return parsed.toString();
  } catch {
    return url; // amqplib reports the bad URL when connecting
  }
}

/**
 * Ends a connection without waiting on the broker: destroys its socket with an error, so
 * amqplib runs its own clean-up (channels closed, pending confirms failed, heartbeat timer
 * cleared, 'error' then 'close'). `ChannelModel.close()` is no use on a stalled connection:
 * it waits for a close-ok that never comes, and the heartbeat timer keeps the process up.
 * The socket is amqplib's internal `connection.stream`; if that ever moves, fall back to
 * the polite close.
 */
export function destroyConnection(model: ChannelModel, reason: string): void {
  const stream = (model.connection as unknown as { stream?: Partial<Socket> }).stream;
  if (typeof stream?.destroy === 'function') {
    stream.destroy(new Error(reason));
  } else {
    model.close().catch(noop);
  }
}

/** Sockets corked by {@link corkForThisTurn} and not yet uncorked. */
const corked = new WeakSet<object>();

/**
 * Holds the connection's socket writes for a turn of the event loop, so that the
 * frames of many publishes (or acks) made in one turn leave in one `writev` instead of one
 * system call each; under load that was a sixth of a publisher's CPU. Uses amqplib's
 * internal `connection.stream` like {@link destroyConnection}; if it is missing, nothing
 * is held. Nothing waits longer than one turn.
 */
export function corkForThisTurn(model: ChannelModel): void {
  const stream = (model.connection as unknown as { stream?: Partial<Socket> }).stream;
  if (stream === undefined || typeof stream.cork !== 'function' || typeof stream.uncork !== 'function' || corked.has(stream)) return;
  corked.add(stream);
  stream.cork();
  // amqplib hands frames to the socket from its own setImmediate (its multiplexer), queued
  // after this turn's; uncorking one turn later lets that hand-over happen while corked.
  setImmediate(() =>
    setImmediate(() => {
      corked.delete(stream);
      stream.uncork?.();
    }),
  );
}

/**
 * Closes politely, and destroys the connection if the broker has not answered within
 * `graceMs`. Done on the 'close' event, not only on `close()`'s promise: when the socket
 * dies during the close handshake, amqplib emits 'close' but never settles that promise.
 */
export async function closeConnection(model: ChannelModel, graceMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  let onClose: () => void = noop;
  const closed = new Promise<true>((resolve) => {
    onClose = () => resolve(true);
    model.once('close', onClose);
    model.close().then(onClose, onClose); // a rejection means it was already closed
  });
  const gaveUp = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), graceMs);
  });
  const clean = await Promise.race([closed, gaveUp]);
  clearTimeout(timer);
  model.off('close', onClose);
  if (!clean) destroyConnection(model, `no close-ok within ${graceMs} ms`);
}
