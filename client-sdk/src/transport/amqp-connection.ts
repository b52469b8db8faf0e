/**
 * Connection handling shared by the RabbitMQ publisher and consumer: the heartbeat in the
 * URL, the nodes of a cluster tried in turn, and closing a connection without trusting
 * amqplib 2.3.1's `close()` to settle on a stalled or dying socket.
 */
import type { Socket } from 'node:net';
import amqp, { type ChannelModel } from 'amqplib';

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
 * The broker URLs of `url`: one URL, a comma-separated list of the nodes of a cluster
 * (`amqp://u:p@rabbit-1:5672,amqp://u:p@rabbit-2:5672`), or an array; each with the
 * heartbeat asked for.
 */
export function brokerUrls(url: string | readonly string[], heartbeatSeconds: number): string[] {
  const urls = (typeof url === 'string' ? url.split(',') : [...url]).map((one) => one.trim()).filter(Boolean);
  if (urls.length === 0) throw new TypeError('a RabbitMQ URL is required');
  return urls.map((one) => withHeartbeat(one, heartbeatSeconds));
}

/**
 * The nodes of a RabbitMQ cluster (or one broker), connected to in turn: a connection
 * starts with the node that worked last and moves on to the next when one refuses or
 * times out, so a lost node costs one failed attempt, not an outage. amqplib connects to
 * one URL only; this is the loop around it.
 */
export class BrokerEndpoints {
  readonly #urls: readonly string[];
  #preferred = 0;

  constructor(urls: readonly string[]) {
    this.#urls = urls;
  }

  /** The URL connected to last (or first in line), without credentials: for logs. */
  get current(): string {
    return redactUrl(this.#urls[this.#preferred] as string);
  }

  /** Connects to the first node that accepts, starting with the one that worked last. @throws the last node's error when none does. */
  async connect(socketOptions: object): Promise<ChannelModel> {
    let lastError: unknown;
    for (let tried = 0; tried < this.#urls.length; tried++) {
      const index = (this.#preferred + tried) % this.#urls.length;
      try {
        const model = await amqp.connect(this.#urls[index] as string, socketOptions);
        this.#preferred = index;
        return model;
      } catch (error) {
        lastError = error;
      }
    }
    throw lastError;
  }
}

/** `amqp://user:secret@host:5672/vhost` → `amqp://user:***@host:5672/vhost`. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
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
