/**
 * The bench's surroundings: the versions it records, and the clean-up of everything a run
 * creates on the shared services (queues, schemas, Redis lists, ZooKeeper nodes), which
 * must leave nothing behind even when a phase fails.
 */
import { readFileSync } from 'node:fs';
import { connect as connectTcp } from 'node:net';
import { join } from 'node:path';
import amqp from 'amqplib';
import { Redis } from 'ioredis';
import zookeeper from 'node-zookeeper-client';
import pg from 'pg';

/** The version in an installed package's package.json, looked up where npm workspaces put it. */
export function installedVersion(repo: string, name: string): string {
  for (const base of ['', 'services/message-service', 'client-sdk']) {
    try {
      const manifest = JSON.parse(readFileSync(join(repo, base, 'node_modules', name, 'package.json'), 'utf8')) as { version?: string };
      if (manifest.version) return manifest.version;
    } catch {
      // Not installed there; try the next place.
    }
  }
  return 'not installed';
}

/** The servers' own versions, and the PostgreSQL settings that decide commit cost. */
export async function serverVersions(urls: { postgres: string; amqp: string; redis: string; zk: string }): Promise<{
  versions: Record<string, string>;
  postgresSettings: Record<string, string>;
}> {
  const versions: Record<string, string> = {};
  const postgresSettings: Record<string, string> = {};
  const client = new pg.Client({ connectionString: urls.postgres });
  await client.connect();
  try {
    versions['postgresql'] = (await client.query<{ server_version: string }>('SHOW server_version')).rows[0]?.server_version ?? '?';
    for (const name of ['shared_buffers', 'synchronous_commit', 'fsync', 'max_connections']) {
      postgresSettings[name] = (await client.query<Record<string, string>>(`SHOW ${name}`)).rows[0]?.[name] ?? '?';
    }
  } finally {
    await client.end();
  }
  const connection = await amqp.connect(urls.amqp);
  const properties = (connection as unknown as { connection?: { serverProperties?: { version?: string } } }).connection?.serverProperties;
  versions['rabbitmq'] = properties?.version ?? '?';
  await connection.close();
  const redis = new Redis(urls.redis, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect();
  versions['redis'] = /redis_version:(\S+)/.exec(await redis.info('server'))?.[1] ?? '?';
  redis.disconnect();
  versions['zookeeper'] = await zookeeperVersion(urls.zk);
  return { versions, postgresSettings };
}

/** ZooKeeper's version from the `srvr` four-letter command (the one whitelisted by default). */
function zookeeperVersion(connectString: string): Promise<string> {
  const [host = '127.0.0.1', port = '2181'] = (connectString.split(',')[0] ?? '').split(':');
  return new Promise((resolve) => {
    let answer = '';
    const socket = connectTcp({ host, port: Number(port) }, () => socket.end('srvr'));
    socket.setTimeout(2000, () => socket.destroy());
    socket.on('data', (chunk: Buffer) => (answer += chunk.toString('utf8')));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(/Zookeeper version: ([^,\s]+)/.exec(answer)?.[1] ?? 'unknown'));
  });
}

/** What a run created and must remove. */
export interface RunLeftovers {
  queues: string[];
  schemas: string[];
  /** Topics whose fallback lists `rms:fb:<topic>:*` are deleted. */
  redisTopics: string[];
  /** ZooKeeper nodes to remove, children first. */
  zkNodes: string[];
}

/**
 * Removes everything in `leftovers`; every step runs even when an earlier one fails.
 * @returns what could not be removed, for the report.
 */
export async function cleanUp(urls: { postgres: string; amqp: string; redis: string; zk: string }, leftovers: RunLeftovers): Promise<string[]> {
  const problems: string[] = [];
  const attempt = async (what: string, work: () => Promise<void>) => {
    try {
      await work();
    } catch (error) {
      problems.push(`${what}: ${error instanceof Error ? error.message : String(error)}`);
    }
  };
  await attempt('RabbitMQ queues', async () => {
    const connection = await amqp.connect(urls.amqp);
    try {
      for (const queue of leftovers.queues) {
        const channel = await connection.createChannel();
        await channel.deleteQueue(queue);
        await channel.close();
      }
    } finally {
      await connection.close();
    }
  });
  await attempt('PostgreSQL schemas', async () => {
    const client = new pg.Client({ connectionString: urls.postgres });
    await client.connect();
    try {
      for (const schema of leftovers.schemas) await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    } finally {
      await client.end();
    }
  });
  await attempt('Redis fallback lists', async () => {
    const redis = new Redis(urls.redis, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await redis.connect();
    try {
      for (const topic of leftovers.redisTopics) {
        let cursor = '0';
        do {
          const [next, keys] = await redis.scan(cursor, 'MATCH', `rms:fb:${topic}:*`, 'COUNT', 1000);
          if (keys.length > 0) await redis.del(...keys);
          cursor = next;
        } while (cursor !== '0');
      }
    } finally {
      redis.disconnect();
    }
  });
  await attempt('ZooKeeper nodes', () => removeZkNodes(urls.zk, leftovers.zkNodes));
  return problems;
}

/** Removes `paths` in order (children first); a node that is missing or still has children is left. */
function removeZkNodes(connectString: string, paths: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const client = zookeeper.createClient(connectString, { sessionTimeout: 5000, spinDelay: 500, retries: 1 });
    const timer = setTimeout(() => {
      client.close();
      reject(new Error('ZooKeeper did not answer within 10 s'));
    }, 10_000);
    client.once('connected', () => {
      const next = (index: number) => {
        const path = paths[index];
        if (path === undefined) {
          clearTimeout(timer);
          client.close();
          resolve();
          return;
        }
        // NO_NODE (already gone) and NOT_EMPTY (another run's nodes under /rms-bench) are fine.
        client.remove(path, -1, () => next(index + 1));
      };
      next(0);
    });
    client.connect();
  });
}
