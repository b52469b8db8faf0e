/**
 * The failover drill (`npm run drill`) on clustered dependencies: a local 6-node Redis
 * Cluster for the fallback lists and a local 3-server ZooKeeper ensemble for the degrade
 * flag. Orders go through RabbitMQ, then the Redis Cluster while the flag is forced on,
 * then RabbitMQ again; both consumer groups apply every paid order exactly once.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { runFailoverDrill } from '../../scripts/failover-drill-run.js';
import { redisClusterUnavailableReason, RedisCluster } from '../support/redis-cluster.js';
import { ensembleUnavailableReason, ZooKeeperEnsemble } from '../support/zookeeper-ensemble.js';

const skip = redisClusterUnavailableReason() ?? ensembleUnavailableReason();

describe('the failover drill on a Redis Cluster and a ZooKeeper ensemble', { skip: skip ?? false, timeout: 240_000 }, () => {
  let cluster: RedisCluster;
  let ensemble: ZooKeeperEnsemble;

  before(async () => {
    // Both start at once; when one fails, `after` closes the one that started.
    const [started, formed] = await Promise.allSettled([RedisCluster.start(1000), ZooKeeperEnsemble.start(3)]);
    if (started.status === 'fulfilled') cluster = started.value;
    if (formed.status === 'fulfilled') ensemble = formed.value;
    if (started.status === 'rejected') throw started.reason;
    if (formed.status === 'rejected') throw formed.reason;
  });
  after(async () => {
    await cluster?.close();
    await ensemble?.close();
  });

  test('traffic moves RabbitMQ → Redis Cluster → RabbitMQ and the books balance for both groups', async () => {
    const lines: string[] = [];
    const result = await runFailoverDrill({
      perPhase: 30,
      redisUrl: cluster.url,
      zkConnect: ensemble.connectString,
      rmsEnv: { RMS_REDIS_WAIT_REPLICAS: '1' },
      print: (line) => lines.push(line),
    });
    console.log(lines.map((line) => `# ${line}`).join('\n'));
    assert.equal(result.paidOrders, 90);
    assert.equal(result.balanced, true, lines.join('\n'));
    assert.ok((result.byTransport['redis'] ?? 0) >= 30, `the forced-on phase went through the Redis Cluster (${JSON.stringify(result.byTransport)})`);
    assert.ok((result.byTransport['rabbitmq'] ?? 0) >= 60, `the other two phases through RabbitMQ (${JSON.stringify(result.byTransport)})`);
    assert.equal(result.byStatus['COMPLETED'], 90);
  });
});
