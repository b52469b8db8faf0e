/**
 * The Redis side of the MQ-outage fallback (design section 7), as data: which list a
 * message goes to, `rms:fb:<topic>:<NN>`, and what the entry in it looks like, a JSON
 * envelope `{id, topic, payload, headers, attempt, producer, messageId?}`.
 *
 * Publishers and consumers of different SDK versions, and RMS itself, meet in these lists
 * during an outage, so everything here is a wire contract: the key format, the hash, and
 * the envelope fields. Keys carry no hash tag (`{...}`), so a Redis Cluster spreads one
 * topic's shards over its nodes.
 */
import type { OutgoingMessage } from './transport.js';

/** Default number of shard lists per topic (`RMS_FALLBACK_SHARDS`). */
export const DEFAULT_FALLBACK_SHARDS = 100;

/** Prefix of every fallback list key. */
const KEY_PREFIX = 'rms:fb:';

// FNV-1a, 32 bit: offset basis and prime from the published specification.
const FNV_OFFSET_BASIS = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

const utf8 = new TextEncoder();

function checkShards(shards: number): void {
  if (!Number.isInteger(shards) || shards < 1) throw new RangeError(`shards must be a whole number of at least 1, got ${shards}`);
}

/**
 * The shard of a message: FNV-1a (32 bit) of the id's UTF-8 bytes, modulo `shards`.
 *
 * This function must never change. A producer and a consumer running different SDK
 * versions, or a producer restarted with a new version in the middle of an outage, must
 * agree on where a message lives; the shard also fixes the order of the messages in a list.
 * The unit tests pin known id → shard pairs so that any change fails them. (Consumers pop
 * every shard of their topic, so a disagreement would not lose messages, but it would
 * silently change ordering and any per-shard tooling.)
 *
 * @param id - the message id (RMS's id).
 * @param shards - the number of shard lists of the topic. @defaultValue `100`
 * @returns a shard number from `0` to `shards - 1`.
 */
export function fallbackShardOf(id: string, shards: number = DEFAULT_FALLBACK_SHARDS): number {
  checkShards(shards);
  let hash = FNV_OFFSET_BASIS;
  for (const byte of utf8.encode(id)) {
    hash ^= byte;
    hash = Math.imul(hash, FNV_PRIME) >>> 0;
  }
  return hash % shards;
}

/**
 * The list key of one shard of a topic: `rms:fb:<topic>:<NN>`, the shard zero-padded to
 * the width of `shards - 1`, at least two digits (`00`..`99` for 100 shards, `000`..`999`
 * for 1000).
 *
 * @param topic - the topic, e.g. `'orders.paid'`.
 * @param shard - the shard, from `0` to `shards - 1`.
 * @param shards - the number of shard lists of the topic. @defaultValue `100`
 * @returns e.g. `rms:fb:orders.paid:07`.
 */
export function fallbackKey(topic: string, shard: number, shards: number = DEFAULT_FALLBACK_SHARDS): string {
  checkShards(shards);
  if (!Number.isInteger(shard) || shard < 0 || shard >= shards) {
    throw new RangeError(`shard must be a whole number from 0 to ${shards - 1}, got ${shard}`);
  }
  const width = Math.max(2, String(shards - 1).length);
  return `${KEY_PREFIX}${topic}:${String(shard).padStart(width, '0')}`;
}

/**
 * Every shard list key of a topic, in shard order.
 * @param topic - the topic.
 * @param shards - the number of shard lists. @defaultValue `100`
 */
export function fallbackKeys(topic: string, shards: number = DEFAULT_FALLBACK_SHARDS): string[] {
  checkShards(shards);
  return Array.from({ length: shards }, (_, shard) => fallbackKey(topic, shard, shards));
}

/** One entry of a fallback list: exactly the fields of an {@link OutgoingMessage}. */
export type FallbackEnvelope = OutgoingMessage;

/**
 * The JSON text of a message's fallback entry. Only the envelope's fields are written; an
 * `undefined` payload becomes `null` (as on RabbitMQ, whose body is the payload's JSON).
 * @throws TypeError when the payload cannot be serialised (a cycle, a BigInt): the caller's
 * bug, not an outage.
 */
export function encodeEnvelope(message: OutgoingMessage): string {
  const envelope: FallbackEnvelope = {
    id: message.id,
    topic: message.topic,
    payload: message.payload ?? null,
    headers: message.headers,
    attempt: message.attempt,
    producer: message.producer,
    ...(message.messageId !== undefined && { messageId: message.messageId }),
  };
  return JSON.stringify(envelope);
}

/**
 * Reads a fallback entry back, or says why it is not one. Strict about what identifies
 * the message (a JSON object with a non-empty string `id`, a string `topic` and a
 * `payload`), lenient about the rest so entries from older or newer producers still get
 * through: a missing or bad `attempt` reads as 1, a missing `producer` as `''`, a missing
 * or empty `messageId` as none, header
 * values that are numbers or booleans are stringified and others dropped.
 */
export function decodeEnvelope(text: string): FallbackEnvelope | { invalid: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { invalid: 'it is not JSON' };
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return { invalid: 'it is not a JSON object' };
  const raw = parsed as Record<string, unknown>;
  const { id, topic, attempt, producer, messageId } = raw;
  if (typeof id !== 'string' || id === '') return { invalid: 'it has no id' };
  if (typeof topic !== 'string' || topic === '') return { invalid: 'it has no topic' };
  if (!('payload' in raw)) return { invalid: 'it has no payload' };
  const headers: Record<string, string> = {};
  if (typeof raw['headers'] === 'object' && raw['headers'] !== null && !Array.isArray(raw['headers'])) {
    for (const [name, value] of Object.entries(raw['headers'] as Record<string, unknown>)) {
      if (typeof value === 'string') headers[name] = value;
      else if (typeof value === 'number' || typeof value === 'boolean') headers[name] = String(value);
    }
  }
  return {
    id,
    topic,
    payload: raw['payload'],
    headers,
    attempt: typeof attempt === 'number' && Number.isInteger(attempt) && attempt > 0 ? attempt : 1,
    producer: typeof producer === 'string' ? producer : '',
    ...(typeof messageId === 'string' && messageId !== '' && { messageId }),
  };
}
