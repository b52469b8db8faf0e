/**
 * The degrade switch on a 3-server ZooKeeper ensemble started here on loopback ports
 * (`ZK_CONNECT` with three servers): the flag flips and is watched; losing one server
 * moves the session to another without losing it; losing a majority keeps the last known
 * state (and RMS's `/readyz` says so) until quorum returns, and then everything recovers.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { DegradeSwitchUnavailableError, ZooKeeperDegradeSwitch, isDegraded, type DegradeState, type SdkLogger } from '@rms/client-sdk';
import { startTestServer, type TestServer } from '../support/rms-server.js';
import { waitUntil } from '../support/wait.js';
import { ensembleUnavailableReason, ZooKeeperEnsemble } from '../support/zookeeper-ensemble.js';

const SESSION_TIMEOUT_MS = 2000;
const REQUEST_TIMEOUT_MS = 1500;

/** A logger that keeps what the switch says about its sessions. */
function recordingLogger(): SdkLogger & { sessions: string[]; rebuilds: number } {
  const record = { sessions: [] as string[], rebuilds: 0 };
  const log = (fields: object, message = '') => {
    const sessionId = (fields as { sessionId?: unknown }).sessionId;
    if (message.includes('connected to ZooKeeper') && typeof sessionId === 'string') record.sessions.push(sessionId);
    if (message.includes('building a new ZooKeeper session')) record.rebuilds++;
  };
  return Object.assign(record, { debug: log, info: log, warn: log, error: log });
}

const skip = ensembleUnavailableReason();

describe('the degrade switch on a 3-server ZooKeeper ensemble', { skip: skip ?? false, timeout: 180_000 }, () => {
  let ensemble: ZooKeeperEnsemble;
  const root = `/rms-ensemble-${randomUUID()}`;
  const writerLog = recordingLogger();
  let writer: ZooKeeperDegradeSwitch;
  let watcher: ZooKeeperDegradeSwitch;
  let rms: TestServer;
  const seen: DegradeState[] = [];

  before(async () => {
    ensemble = await ZooKeeperEnsemble.start(3);
    const options = { connect: ensemble.connectString, root, sessionTimeoutMs: SESSION_TIMEOUT_MS, requestTimeoutMs: REQUEST_TIMEOUT_MS };
    writer = new ZooKeeperDegradeSwitch({ ...options, logger: writerLog });
    watcher = new ZooKeeperDegradeSwitch(options);
    watcher.onChange((state) => seen.push(state));
    await Promise.all([writer.start(), watcher.start()]);
    rms = await startTestServer({ env: { ZK_CONNECT: ensemble.connectString, RMS_ZK_ROOT: root, RMS_ZK_SESSION_TIMEOUT_MS: String(SESSION_TIMEOUT_MS) } });
  });
  after(async () => {
    await rms?.stop();
    await writer?.close();
    await watcher?.close();
    await ensemble?.close();
  });

  /** Writes `mode` through the writer and waits until the watcher (another session) has seen it. */
  async function flipAndWatch(mode: 'on' | 'off' | 'auto', reason: string): Promise<void> {
    const written = await writer.setMode(mode, reason, 'ensemble-test');
    await waitUntil(() => watcher.current().version >= written.version && watcher.current().mode === mode, `the watcher sees mode ${mode}`, 10_000);
  }

  test('the flag flips and the change is watched by another session', async () => {
    assert.equal(writer.connected && watcher.connected, true);
    await flipAndWatch('on', 'forced on over the ensemble');
    assert.equal(isDegraded(watcher.current()), true);
    assert.equal(watcher.current().reason, 'forced on over the ensemble');
    await flipAndWatch('auto', 'back to automation');
    assert.equal(seen.at(-1)?.mode, 'auto');
  });

  test('losing any one server: the session moves to another server (same session id) and flips keep being watched', async () => {
    const sessionsBefore = new Set(writerLog.sessions);
    assert.equal(sessionsBefore.size, 1, 'one session so far');
    const rebuildsBefore = writerLog.rebuilds;
    for (const id of [1, 2, 3]) {
      await ensemble.kill(id);
      await flipAndWatch(id % 2 === 1 ? 'on' : 'off', `server ${id} down`);
      ensemble.restart(id);
      await ensemble.waitServing([1, 2, 3]);
    }
    await flipAndWatch('auto', 'all servers back');
    assert.equal(writerLog.rebuilds, rebuildsBefore, 'no session was rebuilt: the client moved its session');
    assert.deepEqual(new Set(writerLog.sessions), sessionsBefore, `every reconnect kept the session (${writerLog.sessions.join(', ')})`);
  });

  test('losing a majority: the last known state is kept and reported in /readyz, writes fail fast, and all recovers with quorum', async () => {
    await flipAndWatch('on', 'degraded before the quorum loss');
    await ensemble.kill(2);
    await ensemble.kill(3);
    try {
      await waitUntil(() => !writer.connected && !watcher.connected, 'the switches notice the lost quorum', 15_000);
      assert.equal(isDegraded(watcher.current()), true, 'the last known state (degraded) is kept');
      const started = Date.now();
      await assert.rejects(writer.setMode('off', 'cannot be written', 'ensemble-test'), DegradeSwitchUnavailableError);
      assert.ok(Date.now() - started < REQUEST_TIMEOUT_MS + 1000, 'a write without quorum fails within the request timeout');
      const ready = await waitUntil(async () => {
        const answer = await rms.call(null, 'GET', '/readyz');
        return answer.body?.dependencies?.zookeeper?.status === 'down' ? answer : undefined;
      }, 'RMS reports ZooKeeper down', 15_000);
      assert.equal(ready.body.dependencies.transport.degradeFlag.mode, 'on', 'RMS reports the last flag it saw');
      assert.equal(ready.body.dependencies.transport.mode, 'redis', 'and keeps acting on it');
    } finally {
      ensemble.restart(2);
      ensemble.restart(3);
    }
    await ensemble.waitServing([1, 2, 3], 60_000);
    await waitUntil(() => writer.connected && watcher.connected, 'the switches reconnect once quorum returns', 20_000);
    await flipAndWatch('auto', 'quorum is back');
    await waitUntil(async () => (await rms.call(null, 'GET', '/readyz')).body?.dependencies?.zookeeper?.status === 'up', 'RMS reports ZooKeeper up again', 20_000);
    await waitUntil(async () => (await rms.call(null, 'GET', '/readyz')).body?.dependencies?.transport?.degradeFlag?.mode === 'auto', 'RMS sees the flag written after the recovery', 20_000);
  });
});
