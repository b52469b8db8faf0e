/**
 * Where the Redis fallback lives, one Redis server or a Redis Cluster, and the client for
 * it. The rest of the fallback (publisher, consumer workers) works the same on both, with
 * two rules that keep it Cluster-safe: every command names one key (the shard keys carry
 * no hash tag, so they spread over the slots and over the masters), and several keys are
 * only ever read with one command each, never with one multi-key command (which a Cluster
 * refuses with CROSSSLOT).
 */
import { Cluster, Redis, type ClusterOptions } from 'ioredis';
import type { RedisClient, RedisConnectionOptions } from '../redis-client.js';

/**
 * A connection of the fallback: a client for one Redis (the caller's, of ioredis 5 or 6,
 * or one the SDK opened), or an ioredis Cluster client the SDK opened.
 */
export type FallbackRedis = RedisClient | Cluster;

/** Where Redis is: one server, or the seed nodes of a Redis Cluster (any reachable node will do). */
export type RedisEndpoint = { kind: 'single'; url: string } | { kind: 'cluster'; nodes: readonly string[] };

/**
 * Reads a Redis location: one URL (one server, unless `cluster` says it is a Cluster seed),
 * or several URLs, comma-separated or as an array (the seed nodes of a Cluster).
 * @throws TypeError when no URL is given.
 */
export function redisEndpoint(url: string | readonly string[], cluster = false): RedisEndpoint {
  const urls = (typeof url === 'string' ? url.split(',') : [...url]).map((one) => one.trim()).filter(Boolean);
  if (urls.length === 0) throw new TypeError('a Redis URL is required');
  if (urls.length === 1 && !cluster) return { kind: 'single', url: urls[0] as string };
  return { kind: 'cluster', nodes: urls };
}

/** Whether `client` talks to a Redis Cluster. */
export function isCluster(client: FallbackRedis): client is Cluster {
  return (client as { isCluster?: unknown }).isCluster === true;
}

/**
 * A new client for `endpoint` with `options` for every connection. For a Cluster, the
 * client-level settings that matter for failing fast are carried over (no offline queue,
 * lazy connect) and a lost master is followed to its promoted replica by ioredis's own
 * slot refresh.
 */
export function createRedisClient(endpoint: RedisEndpoint, options: RedisConnectionOptions): FallbackRedis {
  if (endpoint.kind === 'single') return new Redis(endpoint.url, options);
  const { enableOfflineQueue, lazyConnect, retryStrategy, ...nodeOptions } = options;
  const first = new URL(endpoint.nodes[0] as string);
  const clusterOptions: ClusterOptions = {
    redisOptions: {
      ...nodeOptions,
      ...(first.username && { username: decodeURIComponent(first.username) }),
      ...(first.password && { password: decodeURIComponent(first.password) }),
      ...(first.protocol === 'rediss:' && { tls: {} }),
    },
    ...(enableOfflineQueue !== undefined && { enableOfflineQueue }),
    ...(lazyConnect !== undefined && { lazyConnect }),
    ...(retryStrategy && { clusterRetryStrategy: (times: number) => retryStrategy(times) ?? null }),
    // Commands that hit a master being failed over are retried once the slots are re-read.
    retryDelayOnFailover: 200,
    retryDelayOnClusterDown: 200,
    slotsRefreshTimeout: typeof options.connectTimeout === 'number' ? options.connectTimeout : 2000,
  };
  const nodes = endpoint.nodes.map((node) => {
    const parsed = new URL(node);
    return { host: parsed.hostname, port: Number(parsed.port || 6379) };
  });
  return new Cluster(nodes, clusterOptions);
}
