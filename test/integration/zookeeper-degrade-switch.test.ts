/**
 * The degrade switch against the real ZooKeeper (DESIGN §7): the node and its JSON, the
 * auto/on/off rules, the watch, compare-and-set, malformed data, and ZooKeeper outages
 * injected by the TCP fault proxy (the server itself is never stopped or reconfigured).
 * Every test works under its own root `/rms-test-<uuid>` and deletes it afterwards.
 *
 * The rules every switch must follow run against the in-memory switch too.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test, type TestContext } from 'node:test';
import zookeeper, { type Client } from 'node-zookeeper-client';
import {
  DegradeSwitchClosedError,
  DegradeSwitchUnavailableError,
  INITIAL_DEGRADE_STATE,
  MemoryDegradeSwitch,
  ZooKeeperDegradeSwitch,
  isDegraded,
  type DegradeMode,
  type DegradeState,
  type DegradeSwitch,
  type SdkLogger,
  type ZooKeeperDegradeSwitchOptions,
} from '@rms/client-sdk';
import { EventLoopLag } from '../support/event-loop-lag.js';
import { FaultProxy } from '../support/fault-proxy.js';
import { waitUntil } from '../support/wait.js';

/** The ZooKeeper the tests use. @defaultValue 127.0.0.1:2181 */
const ZK = process.env['TEST_ZK_CONNECT'] ?? '127.0.0.1:2181';
const [ZK_HOST = '127.0.0.1', ZK_PORT = '2181'] = ZK.split(',')[0]!.split(':');

// Short timeouts so outages play out quickly. The server negotiates the session up to its
// minimum (2 × tickTime); the switch counts its own session timeout regardless.
const SESSION_TIMEOUT_MS = 2000;
/** The request timeout of a switch behind a fault proxy: the outage tests wait it out. */
const REQUEST_TIMEOUT_MS = 1000;
/**
 * The request timeout of a switch talking to ZooKeeper directly, where no test waits one
 * out: on CI's loaded 2-core box a healthy getData once took longer than 1 s, and the
 * concurrent-writers test failed with UNAVAILABLE.
 */
const DIRECT_REQUEST_TIMEOUT_MS = 10_000;

/** A plain ZooKeeper client for the test's own reads, writes and clean-up, as an SRE's zkCli would do them. */
class RawZooKeeper {
  private constructor(private readonly client: Client) {}

  static open(): Promise<RawZooKeeper> {
    const client = zookeeper.createClient(ZK, { sessionTimeout: 10_000 });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        client.close();
        reject(new Error(`the test ZooKeeper at ${ZK} is not reachable`));
      }, 5000);
      client.once('connected', () => {
        clearTimeout(timer);
        resolve(new RawZooKeeper(client));
      });
      client.connect();
    });
  }

  /** The node's data as text and its version, or `null` when it does not exist. */
  get(path: string): Promise<{ text: string; version: number } | null> {
    return new Promise((resolve, reject) =>
      this.client.getData(path, (error, data, stat) => {
        if (error && 'getCode' in error && error.getCode() === zookeeper.Exception.NO_NODE) resolve(null);
        else if (error) reject(error);
        else resolve({ text: data?.toString('utf8') ?? '', version: stat.version });
      }),
    );
  }

  async json(path: string): Promise<Record<string, unknown>> {
    const node = await this.get(path);
    assert.ok(node, `${path} exists`);
    return JSON.parse(node.text) as Record<string, unknown>;
  }

  /** Writes without a version check, as `zkCli.sh set` does. */
  set(path: string, text: string): Promise<number> {
    return new Promise((resolve, reject) =>
      this.client.setData(path, Buffer.from(text), (error, stat) => (error ? reject(error) : resolve(stat.version))),
    );
  }

  /** Creates the node (and its parents) with the data. */
  create(path: string, text: string): Promise<void> {
    const parent = path.slice(0, path.lastIndexOf('/'));
    return new Promise((resolve, reject) =>
      this.client.mkdirp(parent, (mkdirError) => {
        if (mkdirError) return reject(mkdirError);
        this.client.create(path, Buffer.from(text), (error) => (error ? reject(error) : resolve()));
      }),
    );
  }

  /** Deletes the node and everything under it; a missing node is fine. */
  async removeTree(path: string): Promise<void> {
    const children = await new Promise<string[]>((resolve, reject) =>
      this.client.getChildren(path, (error, names) => {
        if (error && 'getCode' in error && error.getCode() === zookeeper.Exception.NO_NODE) resolve([]);
        else if (error) reject(error);
        else resolve(names);
      }),
    );
    for (const child of children) await this.removeTree(`${path}/${child}`);
    await new Promise<void>((resolve, reject) =>
      this.client.remove(path, (error) => {
        if (error && !('getCode' in error && error.getCode() === zookeeper.Exception.NO_NODE)) reject(error);
        else resolve();
      }),
    );
  }

  close(): void {
    this.client.close();
  }
}

let raw: RawZooKeeper;
before(async () => {
  raw = await RawZooKeeper.open();
});
after(() => raw.close());

/** The switches each test opened, closed before its roots are deleted. */
const switchesOf = new WeakMap<TestContext, ZooKeeperDegradeSwitch[]>();

/** A fresh root for the test, deleted when it ends. */
function newRoot(t: TestContext): string {
  const root = `/rms-test-${randomUUID()}`;
  t.after(async () => {
    // First close the test's switches: one still watching would re-create the deleted node.
    await Promise.all((switchesOf.get(t) ?? []).map((degrade) => degrade.close()));
    await raw.removeTree(root);
  });
  return root;
}

/** A logger that keeps what it was told, to check what the switch reports. */
function recordingLogger(): SdkLogger & { entries: { level: string; msg: string; obj: Record<string, unknown> }[] } {
  const entries: { level: string; msg: string; obj: Record<string, unknown> }[] = [];
  const at = (level: string) => (obj: object, msg?: string) => {
    entries.push({ level, msg: msg ?? '', obj: obj as Record<string, unknown> });
  };
  return { entries, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** A ZooKeeper switch closed when the test ends. */
function newSwitch(t: TestContext, options: Partial<ZooKeeperDegradeSwitchOptions> & { root: string }): ZooKeeperDegradeSwitch {
  const degrade = new ZooKeeperDegradeSwitch({
    connect: ZK,
    sessionTimeoutMs: SESSION_TIMEOUT_MS,
    requestTimeoutMs: options.connect === undefined ? DIRECT_REQUEST_TIMEOUT_MS : REQUEST_TIMEOUT_MS,
    connectTimeoutMs: 3000,
    ...options,
  });
  switchesOf.set(t, [...(switchesOf.get(t) ?? []), degrade]);
  t.after(() => degrade.close());
  return degrade;
}

/** A fault proxy in front of ZooKeeper, closed when the test ends. */
async function newProxy(t: TestContext): Promise<FaultProxy> {
  const proxy = await FaultProxy.start({ targetHost: ZK_HOST, targetPort: Number(ZK_PORT) });
  t.after(() => proxy.close());
  return proxy;
}

/** The session ids the switch reported connecting with, in order. */
function sessionIds(logger: ReturnType<typeof recordingLogger>): unknown[] {
  return logger.entries.filter((entry) => entry.msg.includes('connected to ZooKeeper')).map((entry) => entry.obj['sessionId']);
}

/** The stored fields of a state, without the version, for comparisons. */
function stored(state: DegradeState): Omit<DegradeState, 'version'> {
  const { version: _version, ...rest } = state;
  return rest;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// -------------------------------------------------------------------------------------
// The rules, for every implementation of the port.

const implementations: { name: string; open(t: TestContext): Promise<DegradeSwitch> }[] = [
  {
    name: 'MemoryDegradeSwitch',
    open: async (t) => {
      const degrade = new MemoryDegradeSwitch();
      t.after(() => degrade.close());
      await degrade.start();
      return degrade;
    },
  },
  {
    name: 'ZooKeeperDegradeSwitch',
    open: async (t) => {
      const degrade = newSwitch(t, { root: newRoot(t) });
      await degrade.start();
      return degrade;
    },
  },
];

for (const implementation of implementations) {
  describe(`${implementation.name}: the rules of the flag`, () => {
    test('starts in mode auto, not degraded, at version 0', async (t) => {
      const degrade = await implementation.open(t);
      assert.deepEqual(
        { mode: degrade.current().mode, degraded: degrade.current().degraded, version: degrade.current().version },
        { mode: 'auto', degraded: false, version: 0 },
      );
      assert.equal(degrade.connected, true);
    });

    test('setDegraded writes only in auto mode and never overrides a forced mode', async (t) => {
      const degrade = await implementation.open(t);
      assert.equal(await degrade.setDegraded(true, 'rabbitmq down', 'orders@a'), true);
      assert.equal(await degrade.setDegraded(true, 'rabbitmq down again', 'orders@b'), false, 'already degraded: nothing written');
      assert.equal(degrade.current().reason, 'rabbitmq down');

      await degrade.setMode('off', 'SRE: RabbitMQ is fine, the detector is wrong', 'sre@host');
      const forcedOff = degrade.current();
      assert.equal(await degrade.setDegraded(false, 'probe ok', 'orders@a'), false);
      assert.equal(await degrade.setDegraded(true, 'rabbitmq down', 'orders@a'), false);
      assert.deepEqual(degrade.current(), forcedOff, 'a forced mode is left untouched');

      await degrade.setMode('on', 'SRE: drill', 'sre@host');
      const forcedOn = degrade.current();
      assert.equal(await degrade.setDegraded(false, 'probe ok', 'orders@a'), false);
      assert.deepEqual(degrade.current(), forcedOn);
      assert.equal(isDegraded(degrade.current()), true);
    });

    test('setMode sets on, off and auto, keeps degraded, and the effective state is on, or auto and degraded', async (t) => {
      const degrade = await implementation.open(t);
      const expected: Record<DegradeMode, Record<'true' | 'false', boolean>> = {
        auto: { true: true, false: false },
        on: { true: true, false: true },
        off: { true: false, false: false },
      };
      for (const degraded of [false, true]) {
        await degrade.setMode('auto', 'reset', 'test');
        await degrade.setDegraded(degraded, `automation says ${degraded}`, 'orders@a');
        for (const mode of ['on', 'off', 'auto'] as const) {
          const written = await degrade.setMode(mode, `to ${mode}`, 'sre@host');
          assert.equal(written.mode, mode);
          assert.equal(written.degraded, degraded, `setMode('${mode}') keeps degraded=${degraded}`);
          assert.equal(written.reason, `to ${mode}`);
          assert.equal(written.changedBy, 'sre@host');
          assert.deepEqual(degrade.current(), written);
          assert.equal(isDegraded(written), expected[mode][`${degraded}`], `mode ${mode}, degraded ${degraded}`);
        }
      }
    });

    test('every write bumps the version by one and notifies the listeners with the new state', async (t) => {
      const degrade = await implementation.open(t);
      const seen: DegradeState[] = [];
      const unsubscribe = degrade.onChange((state) => seen.push(state));
      const before = degrade.current().version;
      await degrade.setDegraded(true, 'down', 'orders@a');
      await degrade.setMode('on', 'drill', 'sre@host');
      await waitUntil(() => seen.length >= 2, 'both writes were notified', 2000);
      assert.deepEqual(
        seen.map((state) => state.version),
        [before + 1, before + 2],
      );
      assert.deepEqual(seen.at(-1), degrade.current());
      unsubscribe();
      await degrade.setMode('auto', 'end of drill', 'sre@host');
      await sleep(100);
      assert.equal(seen.length, 2, 'an unsubscribed listener hears nothing more');
    });
  });
}

test('isDegraded: degraded when mode is on, or mode is auto and degraded is true', () => {
  const state = (mode: DegradeMode, degraded: boolean): DegradeState => ({ ...INITIAL_DEGRADE_STATE, mode, degraded });
  assert.equal(isDegraded(state('auto', false)), false);
  assert.equal(isDegraded(state('auto', true)), true);
  assert.equal(isDegraded(state('on', false)), true);
  assert.equal(isDegraded(state('on', true)), true);
  assert.equal(isDegraded(state('off', false)), false);
  assert.equal(isDegraded(state('off', true)), false);
});

// -------------------------------------------------------------------------------------
// ZooKeeper: the node, the watch, compare-and-set.

describe('ZooKeeperDegradeSwitch: the node', () => {
  test('start() creates <root>/degrade, with its parents, holding the initial JSON when it is missing', async (t) => {
    const root = `${newRoot(t)}/nested`;
    assert.equal(await raw.get(`${root}/degrade`), null);
    const degrade = newSwitch(t, { root });
    const announced: DegradeState[] = [];
    degrade.onChange((state) => announced.push(state));
    await degrade.start();

    const node = await raw.get(`${root}/degrade`);
    assert.ok(node);
    const data = JSON.parse(node.text) as Record<string, unknown>;
    assert.deepEqual(Object.keys(data).sort(), ['changedAt', 'changedBy', 'degraded', 'mode', 'reason']);
    assert.equal(data['mode'], 'auto');
    assert.equal(data['degraded'], false);
    assert.equal(data['reason'], null);
    assert.ok(!Number.isNaN(Date.parse(String(data['changedAt']))), 'changedAt is a date');
    assert.equal(typeof data['changedBy'], 'string');
    assert.equal(node.version, 0);
    assert.equal(degrade.path, `${root}/degrade`);
    assert.equal(degrade.connected, true);
    assert.deepEqual(degrade.current(), { ...data, version: 0 });
    assert.deepEqual(announced, [degrade.current()], 'listeners are told the state once on start');
  });

  test('start() reads an existing node as it is, and a second instance does not re-create it', async (t) => {
    const root = newRoot(t);
    const existing = { mode: 'on', degraded: true, reason: 'forced earlier', changedAt: '2024-01-02T03:04:05.000Z', changedBy: 'sre@old' };
    await raw.create(`${root}/degrade`, JSON.stringify(existing));
    const first = newSwitch(t, { root });
    const second = newSwitch(t, { root });
    await Promise.all([first.start(), second.start()]);
    assert.deepEqual(first.current(), { ...existing, version: 0 });
    assert.deepEqual(second.current(), { ...existing, version: 0 });
    assert.deepEqual(await raw.json(`${root}/degrade`), existing);
  });

  test('setMode and setDegraded write the contract JSON to the node', async (t) => {
    const root = newRoot(t);
    const degrade = newSwitch(t, { root });
    await degrade.start();
    await degrade.setDegraded(true, 'RabbitMQ: 10 publishes failed in a row', 'orders@host-1');
    assert.deepEqual(await raw.json(`${root}/degrade`), stored(degrade.current()));
    const written = await degrade.setMode('off', 'SRE override', 'alice@laptop');
    const data = await raw.json(`${root}/degrade`);
    assert.deepEqual(data, { mode: 'off', degraded: true, reason: 'SRE override', changedAt: written.changedAt, changedBy: 'alice@laptop' });
    assert.equal((await raw.get(`${root}/degrade`))?.version, written.version);
  });

  test('a second instance sees every change through its watch within a second, change after change', async (t) => {
    const root = newRoot(t);
    const writer = newSwitch(t, { root });
    const watcher = newSwitch(t, { root });
    await Promise.all([writer.start(), watcher.start()]);
    const seen: DegradeState[] = [];
    watcher.onChange((state) => seen.push(state));

    const changes: (() => Promise<unknown>)[] = [
      () => writer.setDegraded(true, 'down', 'orders@a'),
      () => writer.setMode('on', 'drill', 'sre@host'),
      () => writer.setMode('off', 'override', 'sre@host'),
      () => writer.setMode('auto', 'back', 'sre@host'),
      () => writer.setDegraded(false, 'probe ok', 'orders@a'),
      () => writer.setDegraded(true, 'down again', 'orders@b'),
    ];
    for (const change of changes) {
      await change();
      const expected = writer.current();
      await waitUntil(() => watcher.current().version === expected.version, `the watcher saw version ${expected.version}`, 1000, 10);
      assert.deepEqual(watcher.current(), expected);
    }
    assert.deepEqual(
      seen.map((state) => state.version),
      [1, 2, 3, 4, 5, 6],
      'one notification per change, in order',
    );
  });

  test('a change written by hand (zkCli set, no version check) is seen through the watch', async (t) => {
    const root = newRoot(t);
    const degrade = newSwitch(t, { root });
    await degrade.start();
    const byHand = { mode: 'on', degraded: false, reason: 'zkCli', changedAt: new Date().toISOString(), changedBy: 'sre@shell' };
    const version = await raw.set(`${root}/degrade`, JSON.stringify(byHand));
    await waitUntil(() => degrade.current().version === version, 'the switch saw the hand-written state', 1000, 10);
    assert.deepEqual(degrade.current(), { ...byHand, version });
    assert.equal(isDegraded(degrade.current()), true);
  });

  test('two instances writing at once never lose a write: compare-and-set serialises them', async (t) => {
    const root = newRoot(t);
    const a = newSwitch(t, { root });
    const b = newSwitch(t, { root });
    await Promise.all([a.start(), b.start()]);

    // Both detect the outage at once: exactly one writes, the other finds it already done.
    const before = (await raw.get(`${root}/degrade`))!.version;
    const results = await Promise.all([a.setDegraded(true, 'seen by a', 'orders@a'), b.setDegraded(true, 'seen by b', 'orders@b')]);
    assert.deepEqual(results.filter(Boolean), [true], 'exactly one instance wrote');
    assert.equal((await raw.get(`${root}/degrade`))!.version, before + 1);
    await waitUntil(() => a.current().version === b.current().version, 'both instances agree');
    assert.deepEqual(a.current(), b.current());

    // Automation and an SRE at once, over and over: neither write may clobber the other.
    for (let round = 0; round < 8; round += 1) {
      await a.setMode('auto', 'reset', 'test');
      await a.setDegraded(false, 'reset', 'test');
      const start = (await raw.get(`${root}/degrade`))!.version;
      const [wroteDegraded, forced] = await Promise.all([
        a.setDegraded(true, `automation ${round}`, 'orders@a'),
        b.setMode('on', `sre ${round}`, 'sre@host'),
      ]);
      const data = await raw.json(`${root}/degrade`);
      assert.equal(data['mode'], 'on', `round ${round}: the SRE's mode survived`);
      // Automation either wrote before the SRE (and the SRE's write kept degraded=true), or
      // found mode on and wrote nothing: never a degraded it reported written but got lost.
      assert.equal(data['degraded'], wroteDegraded, `round ${round}: degraded is true exactly when automation wrote it`);
      assert.equal((await raw.get(`${root}/degrade`))!.version, start + 1 + (wroteDegraded ? 1 : 0), `round ${round}: one version per write`);
      assert.equal(forced.mode, 'on');
    }

    // Many writers, many writes: every one applied, each at its own version.
    const writes = await Promise.all(
      Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? a : b).setMode(i % 3 === 0 ? 'on' : 'off', `write ${i}`, `w${i}`)),
    );
    const versions = writes.map((state) => state.version).sort((x, y) => x - y);
    assert.equal(new Set(versions).size, 10, 'no two writes claimed the same version');
    assert.equal((await raw.get(`${root}/degrade`))!.version, versions.at(-1));
  });

  test('malformed data in the node is logged and read as the initial state without a crash; a valid write heals it', async (t) => {
    const root = newRoot(t);
    const logger = recordingLogger();
    const degrade = newSwitch(t, { root, logger });
    await degrade.start();
    await degrade.setMode('on', 'forced', 'sre@host');

    const garbage = [
      'not json {',
      '',
      '[1,2,3]',
      JSON.stringify({ mode: 'sideways', degraded: false }),
      JSON.stringify({ mode: 'on', degraded: 'yes' }),
      JSON.stringify({ mode: 'on', degraded: true, reason: 42 }),
    ];
    for (const text of garbage) {
      const version = await raw.set(`${root}/degrade`, text);
      await waitUntil(() => degrade.current().version === version, `the switch read ${JSON.stringify(text)}`, 1000, 10);
      assert.deepEqual(stored(degrade.current()), stored(INITIAL_DEGRADE_STATE), `${JSON.stringify(text)} reads as the initial state`);
      assert.equal(degrade.connected, true);
    }
    const errors = logger.entries.filter((entry) => entry.level === 'error' && entry.msg.includes('malformed'));
    assert.equal(errors.length, garbage.length, 'each bad version is logged once');

    // Automation's compare-and-set replaces the bad data (it holds the node's version).
    assert.equal(await degrade.setDegraded(true, 'down', 'orders@a'), true);
    assert.deepEqual(await raw.json(`${root}/degrade`), stored(degrade.current()));
    assert.equal(degrade.current().degraded, true);

    // And a good write by hand is taken as it is.
    await raw.set(`${root}/degrade`, 'garbage again');
    await waitUntil(() => degrade.current().degraded === false, 'garbage read as the initial state', 1000, 10);
    const good = { mode: 'off', degraded: false, reason: 'fixed by hand', changedAt: new Date().toISOString(), changedBy: 'sre@shell' };
    const version = await raw.set(`${root}/degrade`, JSON.stringify(good));
    await waitUntil(() => degrade.current().version === version, 'the switch read the repaired node', 1000, 10);
    assert.deepEqual(degrade.current(), { ...good, version });
  });

  test('a deleted node is re-created with the initial state', async (t) => {
    const root = newRoot(t);
    const degrade = newSwitch(t, { root });
    await degrade.start();
    await degrade.setMode('on', 'forced', 'sre@host');
    await raw.removeTree(`${root}/degrade`);
    await waitUntil(async () => (await raw.get(`${root}/degrade`)) !== null, 'the node is back', 2000);
    await waitUntil(() => degrade.current().mode === 'auto', 'the switch reads the re-created node', 2000);
    assert.equal(degrade.current().version, 0);
    assert.equal(await degrade.setDegraded(true, 'down', 'orders@a'), true);
  });

  test('after close() calls reject with DegradeSwitchClosedError and listeners hear nothing more', async (t) => {
    const root = newRoot(t);
    const degrade = newSwitch(t, { root });
    await degrade.start();
    const seen: DegradeState[] = [];
    degrade.onChange((state) => seen.push(state));
    const last = degrade.current();
    await degrade.close();
    await raw.set(`${root}/degrade`, JSON.stringify({ ...stored(last), mode: 'on' }));
    await assert.rejects(degrade.setDegraded(true, 'down', 'orders@a'), DegradeSwitchClosedError);
    await assert.rejects(degrade.setMode('on', 'x', 'y'), DegradeSwitchClosedError);
    await sleep(200);
    assert.deepEqual(seen, []);
    assert.deepEqual(degrade.current(), last, 'the last state is kept');
    assert.equal(degrade.connected, false);
  });
});

// -------------------------------------------------------------------------------------
// ZooKeeper outages, through the fault proxy.

describe('ZooKeeperDegradeSwitch: ZooKeeper outages', () => {
  test('cut for longer than the session timeout: keeps the last state, rejects writes in time, then rebuilds its session and watch', async (t) => {
    const root = newRoot(t);
    const proxy = await newProxy(t);
    const logger = recordingLogger();
    const degrade = newSwitch(t, { root, connect: `${proxy.host}:${proxy.port}`, logger });
    const direct = newSwitch(t, { root });
    await Promise.all([degrade.start(), direct.start()]);
    assert.equal(await degrade.setDegraded(true, 'rabbitmq down', 'orders@a'), true);
    const last = degrade.current();
    const sessionsBefore = sessionIds(logger);

    proxy.cut();
    await waitUntil(() => !degrade.connected, 'connected turned false', 1000, 10);
    await sleep(SESSION_TIMEOUT_MS + 500);
    assert.equal(degrade.connected, false);
    assert.deepEqual(degrade.current(), last, 'the last state seen is kept');
    assert.ok(
      logger.entries.some((entry) => entry.msg.includes('building a new ZooKeeper session')),
      'the session is treated as expired after the session timeout',
    );

    const startedAt = Date.now();
    const lag = EventLoopLag.start();
    await assert.rejects(degrade.setDegraded(false, 'probe ok', 'orders@a'), DegradeSwitchUnavailableError);
    await assert.rejects(degrade.setMode('on', 'x', 'y'), DegradeSwitchUnavailableError);
    const elapsed = Date.now() - startedAt;
    const lagMs = lag.stop();
    // Plus the longest stall of this process: a loaded 2-core box delays timers, not the code.
    assert.ok(elapsed < 2 * REQUEST_TIMEOUT_MS + 400 + lagMs, `two calls rejected within their request timeouts (took ${elapsed} ms, event loop held up ${lagMs} ms at most)`);

    // Meanwhile an SRE forces the flag through a switch that can reach ZooKeeper.
    await direct.setMode('off', 'SRE during the partition', 'sre@host');
    proxy.restore();
    await waitUntil(() => degrade.connected, 'reconnected after restore', 8000);
    await waitUntil(() => degrade.current().mode === 'off', 'the change made during the outage is seen', 2000);
    assert.deepEqual(degrade.current(), direct.current());
    const sessionsAfter = sessionIds(logger);
    assert.ok(sessionsAfter.length > sessionsBefore.length, 'connected again');
    assert.notEqual(sessionsAfter.at(-1), sessionsBefore.at(-1), 'with a new session');

    // The rebuilt session watches again: a later change arrives through the watch.
    await direct.setMode('auto', 'outage over', 'sre@host');
    await waitUntil(() => degrade.current().mode === 'auto', 'the re-armed watch delivered the next change', 1000, 10);
    assert.equal(await degrade.setDegraded(false, 'probe ok', 'orders@a'), true, 'writes work again');
  });

  test('stall: connected turns false, requests time out instead of hanging, and the switch recovers after restore', async (t) => {
    const root = newRoot(t);
    const proxy = await newProxy(t);
    const degrade = newSwitch(t, { root, connect: `${proxy.host}:${proxy.port}` });
    const direct = newSwitch(t, { root });
    await Promise.all([degrade.start(), direct.start()]);
    await degrade.setMode('on', 'drill', 'sre@host');
    const last = degrade.current();
    await sleep(200); // let the watch's re-read of our own write finish: idle from here on

    proxy.stall();
    // Idle, the switch notices by its heartbeat (the client library never checks its pings).
    await waitUntil(() => !degrade.connected, 'an idle switch noticed the stall', SESSION_TIMEOUT_MS, 10);
    assert.deepEqual(degrade.current(), last);
    const startedAt = Date.now();
    const lag = EventLoopLag.start();
    await assert.rejects(degrade.setDegraded(true, 'down', 'orders@a'), DegradeSwitchUnavailableError);
    const elapsed = Date.now() - startedAt;
    const lagMs = lag.stop();
    // Plus the longest stall of this process: a loaded 2-core box delays timers, not the code.
    assert.ok(elapsed >= REQUEST_TIMEOUT_MS - 50 && elapsed < REQUEST_TIMEOUT_MS + 400 + lagMs, `rejected at the request timeout (took ${elapsed} ms, event loop held up ${lagMs} ms at most)`);
    assert.deepEqual(degrade.current(), last);

    // Long enough for the stalled session to be given up and a new one to hang in its handshake.
    await direct.setMode('off', 'SRE during the stall', 'sre@host');
    await sleep(SESSION_TIMEOUT_MS + 500);
    await assert.rejects(degrade.setMode('auto', 'x', 'y'), DegradeSwitchUnavailableError);
    assert.deepEqual(degrade.current(), last);

    proxy.restore();
    await waitUntil(() => degrade.connected, 'reconnected after restore', 8000);
    await waitUntil(() => degrade.current().mode === 'off', 'the change made during the stall is seen', 2000);
    await direct.setMode('auto', 'stall over', 'sre@host');
    await waitUntil(() => degrade.current().mode === 'auto', 'the watch works again', 1000, 10);
  });

  test('a request into a connection that just stalled times out and marks ZooKeeper unreachable', async (t) => {
    const root = newRoot(t);
    const proxy = await newProxy(t);
    const degrade = newSwitch(t, { root, connect: `${proxy.host}:${proxy.port}` });
    await degrade.start();
    proxy.stall();
    assert.equal(degrade.connected, true, 'not noticed yet');
    const startedAt = Date.now();
    const lag = EventLoopLag.start();
    await assert.rejects(degrade.setMode('on', 'drill', 'sre@host'), DegradeSwitchUnavailableError);
    const elapsed = Date.now() - startedAt;
    const lagMs = lag.stop();
    assert.ok(elapsed < REQUEST_TIMEOUT_MS + 400 + lagMs, `rejected within the request timeout (took ${elapsed} ms, event loop held up ${lagMs} ms at most)`);
    assert.equal(degrade.connected, false);
    proxy.restore();
    await waitUntil(() => degrade.connected, 'answers again after restore', 5000);
  });

  test('close() during a write that waits on a stalled connection rejects it with DegradeSwitchClosedError at once', async (t) => {
    const root = newRoot(t);
    const proxy = await newProxy(t);
    const degrade = newSwitch(t, { root, connect: `${proxy.host}:${proxy.port}`, requestTimeoutMs: 5000 });
    await degrade.start();
    proxy.stall();
    const rejectedAt = assert.rejects(degrade.setMode('on', 'drill', 'sre@host'), DegradeSwitchClosedError).then(() => Date.now());
    await sleep(100);
    const startedAt = Date.now();
    const lag = EventLoopLag.start();
    const closing = degrade.close();
    const elapsed = (await rejectedAt) - startedAt;
    const lagMs = lag.stop();
    // Plus the longest stall of this process on a loaded box; the request timeout is 5 s.
    assert.ok(elapsed < 200 + lagMs, `rejected as soon as close() was called (took ${elapsed} ms, event loop held up ${lagMs} ms at most), not at the request timeout`);
    await closing;
  });

  test('start() with ZooKeeper unreachable resolves after connectTimeoutMs with the initial state, then connects when it is back', async (t) => {
    const root = newRoot(t);
    const proxy = await newProxy(t);
    proxy.cut();
    const degrade = newSwitch(t, { root, connect: `${proxy.host}:${proxy.port}`, connectTimeoutMs: 500 });
    const seen: DegradeState[] = [];
    degrade.onChange((state) => seen.push(state));
    const startedAt = Date.now();
    await degrade.start();
    const elapsed = Date.now() - startedAt;
    assert.ok(elapsed >= 450 && elapsed < 1500, `start() gave up waiting at connectTimeoutMs (took ${elapsed} ms)`);
    assert.equal(degrade.connected, false);
    assert.deepEqual(degrade.current(), INITIAL_DEGRADE_STATE);
    assert.deepEqual(seen, [INITIAL_DEGRADE_STATE], 'listeners are told the state once on start, even without ZooKeeper');
    await assert.rejects(degrade.setDegraded(true, 'down', 'orders@a'), DegradeSwitchUnavailableError);

    proxy.restore();
    await waitUntil(() => degrade.connected && degrade.current().version === 0, 'connected and read the node', 8000);
    assert.ok(await raw.get(`${root}/degrade`), 'the node was created once ZooKeeper was reachable');
    assert.equal(await degrade.setDegraded(true, 'down', 'orders@a'), true);
  });

  test('closing a switch whose handshake is still pending does not crash when the answer arrives later', async (t) => {
    // node-zookeeper-client's own close() would send CLOSE_SESSION here and then misread
    // the late handshake answer as its reply, throwing from a socket handler.
    const root = newRoot(t);
    const proxy = await newProxy(t);
    proxy.stall();
    const degrade = newSwitch(t, { root, connect: `${proxy.host}:${proxy.port}`, connectTimeoutMs: 300 });
    await degrade.start();
    assert.equal(degrade.connected, false);
    // The handshake answer arrives while the client is being closed.
    const closing = degrade.close();
    proxy.restore();
    await closing;
    await sleep(500);
    assert.equal(degrade.connected, false);
  });
});
