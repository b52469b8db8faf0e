/**
 * The consumer's idempotency helper against the real Redis (REDIS_URL, default
 * 127.0.0.1:6379). Every test uses its own group and deletes its keys afterwards.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { IdempotencyUnavailableError, RedisIdempotency } from '@rms/client-sdk';

const REDIS_URL = process.env['TEST_REDIS_URL'] ?? process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';

describe('RedisIdempotency: a message runs once per consumer group', () => {
  let redis: Redis;
  const groups: string[] = [];
  const group = () => {
    const name = `test-${randomUUID().slice(0, 8)}`;
    groups.push(name);
    return name;
  };
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  before(() => {
    redis = new Redis(REDIS_URL, { lazyConnect: false, maxRetriesPerRequest: 1 });
  });
  after(async () => {
    for (const name of groups) {
      const keys = await redis.keys(`rms:idem:${name}:*`);
      if (keys.length > 0) await redis.del(...keys);
    }
    await redis.quit();
  });

  test('the first begin runs; after complete the key reads done and later deliveries are duplicates', async () => {
    const idem = new RedisIdempotency({ redis, group: group() });
    const id = randomUUID();
    assert.equal(await idem.begin(id), 'run');
    assert.match((await redis.get(idem.key(id))) ?? '', /^in-progress:[0-9a-f-]{36}$/);
    await idem.complete(id);
    assert.equal(await redis.get(idem.key(id)), 'done');
    assert.equal(await idem.begin(id), 'duplicate');
    // A second process of the same group sees the same.
    assert.equal(await new RedisIdempotency({ redis, group: idem.group }).begin(id), 'duplicate');
  });

  test('the keys are rms:idem:<group>:<messageId> with the configured TTLs', async () => {
    const idem = new RedisIdempotency({ redis, group: group(), inProgressTtlMs: 60_000, ttlMs: 3_600_000 });
    const id = randomUUID();
    assert.equal(idem.key(id), `rms:idem:${idem.group}:${id}`);
    await idem.begin(id);
    const claimTtl = await redis.pttl(idem.key(id));
    assert.ok(claimTtl > 50_000 && claimTtl <= 60_000, `in-progress TTL ${claimTtl}`);
    await idem.complete(id);
    const doneTtl = await redis.pttl(idem.key(id));
    assert.ok(doneTtl > 3_500_000 && doneTtl <= 3_600_000, `done TTL ${doneTtl}`);
  });

  test('while one worker runs a message, another worker of the group is told in-progress; another group may run it', async () => {
    const name = group();
    const a = new RedisIdempotency({ redis, group: name });
    const b = new RedisIdempotency({ redis, group: name });
    const other = new RedisIdempotency({ redis, group: group() });
    const id = randomUUID();
    assert.equal(await a.begin(id), 'run');
    assert.equal(await b.begin(id), 'in-progress');
    assert.equal(await a.begin(id), 'in-progress');
    assert.equal(await other.begin(id), 'run');
  });

  test('two concurrent begins of one id: exactly one runs', async () => {
    const name = group();
    for (let round = 0; round < 20; round++) {
      const id = randomUUID();
      const workers = Array.from({ length: 4 }, () => new RedisIdempotency({ redis, group: name }));
      const decisions = await Promise.all([...workers, workers[0]!].map((worker) => worker.begin(id)));
      assert.equal(decisions.filter((decision) => decision === 'run').length, 1, decisions.join(','));
      assert.ok(decisions.every((decision) => decision === 'run' || decision === 'in-progress'), decisions.join(','));
    }
  });

  test('abandon releases the claim so the redelivery runs again', async () => {
    const idem = new RedisIdempotency({ redis, group: group() });
    const id = randomUUID();
    assert.equal(await idem.begin(id), 'run');
    assert.equal(await idem.abandon(id), true);
    assert.equal(await redis.exists(idem.key(id)), 0);
    assert.equal(await new RedisIdempotency({ redis, group: idem.group }).begin(id), 'run');
  });

  test('abandon by a worker whose claim expired does not delete the claim another worker took since', async () => {
    const name = group();
    const slow = new RedisIdempotency({ redis, group: name, inProgressTtlMs: 50 });
    const next = new RedisIdempotency({ redis, group: name });
    const id = randomUUID();
    assert.equal(await slow.begin(id), 'run');
    await sleep(120); // the slow worker's claim expires
    assert.equal(await next.begin(id), 'run');
    assert.equal(await slow.abandon(id), false);
    assert.match((await redis.get(next.key(id))) ?? '', /^in-progress:/);
    assert.equal(await new RedisIdempotency({ redis, group: name }).begin(id), 'in-progress');
    // A worker that never claimed the message cannot release it either.
    assert.equal(await new RedisIdempotency({ redis, group: name }).abandon(id), false);
    assert.equal(await redis.exists(next.key(id)), 1);
  });

  test('extend renews only the own claim', async () => {
    const name = group();
    // A 1 s claim, extended after 0.6 s and looked at 0.6 s later: each step has 0.4 s of
    // slack for a loaded box's stalls (at 200 ms and 120 ms steps it had 80 ms).
    const owner = new RedisIdempotency({ redis, group: name, inProgressTtlMs: 1000 });
    const id = randomUUID();
    assert.equal(await owner.begin(id), 'run');
    await sleep(600);
    assert.equal(await owner.extend(id), true);
    await sleep(600); // 1.2 s after begin: alive only because it was extended
    assert.equal(await new RedisIdempotency({ redis, group: name }).begin(id), 'in-progress');
    assert.equal(await new RedisIdempotency({ redis, group: name }).extend(id), false);
  });

  test('a done message stays done: begin after complete never runs, even for the worker that completed it', async () => {
    const idem = new RedisIdempotency({ redis, group: group() });
    const id = randomUUID();
    await idem.begin(id);
    await idem.complete(id);
    assert.equal(await idem.abandon(id), false);
    assert.equal(await redis.get(idem.key(id)), 'done');
    assert.equal(await idem.begin(id), 'duplicate');
  });

  test('begin fails closed: when Redis cannot answer it throws instead of running the handler', async () => {
    // A port nothing listens on; no offline queue, so commands fail at once.
    const down = new Redis({ host: '127.0.0.1', port: 9, lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null });
    down.on('error', () => undefined);
    try {
      const idem = new RedisIdempotency({ redis: down, group: group() });
      await assert.rejects(idem.begin(randomUUID()), IdempotencyUnavailableError);
    } finally {
      down.disconnect();
    }
  });
});
