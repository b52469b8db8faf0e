import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FailoverTransport, MemoryDegradeSwitch, type OutgoingMessage, type Transport, TransportError, type TransportName } from '@rms/client-sdk';

/** A transport whose health the test controls, counting what it carried. */
class FakeTransport implements Transport {
  healthy = true;
  carried: string[] = [];
  probes = 0;
  constructor(readonly name: TransportName) {}
  async publish(message: OutgoingMessage): Promise<TransportName> {
    if (!this.healthy) throw new TransportError(this.name, 'UNAVAILABLE', `${this.name} down`);
    this.carried.push(message.id);
    return this.name;
  }
  async probe(): Promise<void> {
    this.probes += 1;
    if (!this.healthy) throw new TransportError(this.name, 'UNAVAILABLE', `${this.name} down`);
  }
  async ping(): Promise<void> {}
  async close(): Promise<void> {}
}

let n = 0;
const message = (): OutgoingMessage => ({ id: `m-${++n}`, topic: 't', payload: {}, headers: {}, attempt: 1, producer: 'orders' });

async function setup(threshold = 10, initial?: { mode: 'auto' | 'on' | 'off' }) {
  const primary = new FakeTransport('rabbitmq');
  const fallback = new FakeTransport('redis');
  const degradeSwitch = new MemoryDegradeSwitch(initial ? { initial } : {});
  await degradeSwitch.start();
  const transport = new FailoverTransport({ primary, fallback, degradeSwitch, threshold, probeIntervalMs: 20, instance: 'test' });
  return { primary, fallback, degradeSwitch, transport };
}

const waitFor = async (condition: () => boolean, what: string) => {
  for (let i = 0; i < 200 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.ok(condition(), what);
};

describe('failover transport', () => {
  test('the flag turns on at exactly the threshold of consecutive failures, and that message goes to Redis', async () => {
    const { primary, fallback, degradeSwitch, transport } = await setup(10);
    primary.healthy = false;
    for (let i = 1; i <= 9; i++) {
      await assert.rejects(transport.publish(message()), TransportError);
      assert.equal(degradeSwitch.current().degraded, false, `not yet after ${i}`);
      assert.equal(transport.status().consecutiveFailures, i);
    }
    const tenth = message();
    assert.equal(await transport.publish(tenth), 'redis');
    assert.equal(degradeSwitch.current().degraded, true);
    assert.equal(degradeSwitch.current().changedBy, 'test');
    assert.match(degradeSwitch.current().reason ?? '', /10 consecutive RabbitMQ publish failures/);
    assert.deepEqual(fallback.carried, [tenth.id]);
    assert.equal(await transport.publish(message()), 'redis');
    assert.equal(transport.status().mode, 'redis');
    await transport.close();
  });

  test('a success resets the count', async () => {
    const { primary, degradeSwitch, transport } = await setup(3);
    primary.healthy = false;
    await assert.rejects(transport.publish(message()));
    await assert.rejects(transport.publish(message()));
    primary.healthy = true;
    assert.equal(await transport.publish(message()), 'rabbitmq');
    primary.healthy = false;
    await assert.rejects(transport.publish(message()));
    await assert.rejects(transport.publish(message()));
    assert.equal(degradeSwitch.current().degraded, false);
    await transport.close();
  });

  test('the probe clears the flag once RabbitMQ works again, and publishing returns to it', async () => {
    const { primary, degradeSwitch, transport } = await setup(2);
    primary.healthy = false;
    await assert.rejects(transport.publish(message()));
    assert.equal(await transport.publish(message()), 'redis');
    // Waited on, not slept for: a loaded box can run the 20 ms probe timer late.
    await waitFor(() => primary.probes >= 1, 'probing while degraded');
    assert.equal(degradeSwitch.current().degraded, true, 'still degraded while probes fail');
    primary.healthy = true;
    await waitFor(() => !degradeSwitch.current().degraded, 'the flag is cleared');
    assert.equal(await transport.publish(message()), 'rabbitmq');
    const probes = primary.probes;
    await new Promise((resolve) => setTimeout(resolve, 60));
    assert.equal(primary.probes, probes, 'no probing once healthy');
    await transport.close();
  });

  test('SRE "on" sends traffic to Redis with RabbitMQ healthy; "off" brings it back; automation never overrides a forced mode', async () => {
    const { primary, fallback, degradeSwitch, transport } = await setup(2);
    await degradeSwitch.setMode('on', 'drill', 'sre');
    assert.equal(await transport.publish(message()), 'redis');
    await new Promise((resolve) => setTimeout(resolve, 60));
    assert.equal(primary.probes, 0, 'no probe in a forced mode');
    await degradeSwitch.setMode('off', 'drill over', 'sre');
    assert.equal(await transport.publish(message()), 'rabbitmq');
    primary.healthy = false;
    await assert.rejects(transport.publish(message()));
    await assert.rejects(transport.publish(message()), 'forced off: keeps failing on RabbitMQ instead of flipping');
    assert.equal(degradeSwitch.current().mode, 'off');
    assert.equal(degradeSwitch.current().degraded, false);
    assert.equal(fallback.carried.length, 1);
    await degradeSwitch.setMode('auto', 'back to automation', 'sre');
    assert.equal(await transport.publish(message()), 'redis', 'auto resumes automation: the next failure flips');
    await transport.close();
  });

  test('with ZooKeeper unreachable at the threshold it falls back locally, and recovers locally', async () => {
    const { primary, degradeSwitch, transport } = await setup(2);
    degradeSwitch.setReachable(false);
    primary.healthy = false;
    await assert.rejects(transport.publish(message()));
    assert.equal(await transport.publish(message()), 'redis');
    assert.equal(transport.status().locallyDegraded, true);
    assert.equal(degradeSwitch.current().degraded, false, 'the shared flag could not be written');
    primary.healthy = true;
    await waitFor(() => !transport.status().locallyDegraded, 'local recovery by probe');
    assert.equal(await transport.publish(message()), 'rabbitmq');
    await transport.close();
  });
});
