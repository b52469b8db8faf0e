/**
 * The `rms-admin` command line, run as a child process exactly as an SRE runs it
 * (`npm run rms-admin -- …`), against the real ZooKeeper. Every test uses its own root
 * `/rms-test-<uuid>` (passed with `--root`) and deletes it afterwards. The `messages` and
 * `stats` commands run against a real RMS started in this process.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test, type TestContext } from 'node:test';
import zookeeper, { type Client } from 'node-zookeeper-client';
import { FaultProxy } from '../support/fault-proxy.js';
import { QueueWatcher } from '../support/rabbitmq.js';
import { TEST_APPS, startTestServer, type TestServer } from '../support/rms-server.js';

/** The ZooKeeper the tests use. @defaultValue 127.0.0.1:2181 */
const ZK = process.env['TEST_ZK_CONNECT'] ?? '127.0.0.1:2181';
const [ZK_HOST = '127.0.0.1', ZK_PORT = '2181'] = ZK.split(',')[0]!.split(':');
const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs `rms-admin <args>` from the repository root, as the root npm script does. */
function rmsAdmin(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const startedAt = Date.now();
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ZK_CONNECT: ZK, USER: 'tester', ...env };
  delete childEnv['RMS_ZK_ROOT'];
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--conditions=rms-source', '--import', 'tsx', 'client-sdk/src/cli/rms-admin.ts', ...args],
      { cwd: REPO_ROOT, env: childEnv, timeout: 20_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : null) : 0;
        resolve({ code, stdout, stderr, ms: Date.now() - startedAt });
      },
    );
  });
}

/** A plain ZooKeeper client to set up and inspect the node, and to clean up. */
let client: Client;
before(async () => {
  client = zookeeper.createClient(ZK, { sessionTimeout: 10_000 });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the test ZooKeeper at ${ZK} is not reachable`)), 5000);
    client.once('connected', () => {
      clearTimeout(timer);
      resolve();
    });
    client.connect();
  });
});
after(() => client.close());

function isNoNode(error: unknown): boolean {
  return typeof error === 'object' && error !== null && 'getCode' in error && (error as { getCode(): number }).getCode() === zookeeper.Exception.NO_NODE;
}

/** The node's JSON and version, or `null` when it does not exist. */
function readNode(path: string): Promise<{ data: Record<string, unknown>; version: number } | null> {
  return new Promise((resolve, reject) =>
    client.getData(path, (error, data, stat) => {
      if (isNoNode(error)) resolve(null);
      else if (error) reject(error);
      else resolve({ data: JSON.parse(data.toString('utf8')) as Record<string, unknown>, version: stat.version });
    }),
  );
}

function writeNode(path: string, data: object): Promise<void> {
  return new Promise((resolve, reject) =>
    client.mkdirp(path.slice(0, path.lastIndexOf('/')), (mkdirError) => {
      if (mkdirError) return reject(mkdirError);
      client.create(path, Buffer.from(JSON.stringify(data)), (error) => (error ? reject(error) : resolve()));
    }),
  );
}

async function removeTree(path: string): Promise<void> {
  const children = await new Promise<string[]>((resolve, reject) =>
    client.getChildren(path, (error, names) => (isNoNode(error) ? resolve([]) : error ? reject(error) : resolve(names))),
  );
  for (const child of children) await removeTree(`${path}/${child}`);
  await new Promise<void>((resolve, reject) => client.remove(path, (error) => (error && !isNoNode(error) ? reject(error) : resolve())));
}

/** A fresh root for the test, deleted when it ends. */
function newRoot(t: TestContext): string {
  const root = `/rms-test-${randomUUID()}`;
  t.after(() => removeTree(root));
  return root;
}

/** The value printed after `label:` in the text output. */
function field(stdout: string, label: string): string | undefined {
  const line = stdout.split('\n').find((text) => text.trimStart().startsWith(`${label}:`));
  return line?.slice(line.indexOf(':') + 1).trim();
}

test('degrade status prints mode, degraded, the effective state, reason, author and time, and exits 0', async (t) => {
  const root = newRoot(t);
  const forced = { mode: 'auto', degraded: true, reason: 'RabbitMQ: 10 publishes failed in a row', changedAt: '2024-05-01T10:00:00.000Z', changedBy: 'orders@host-1' };
  await writeNode(`${root}/degrade`, forced);

  const run = await rmsAdmin(['degrade', 'status', '--root', root]);
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, new RegExp(`${root}/degrade`));
  assert.equal(field(run.stdout, 'effective'), 'DEGRADED: traffic goes to Redis');
  assert.match(field(run.stdout, 'mode') ?? '', /^auto\b/);
  assert.match(field(run.stdout, 'degraded') ?? '', /^true\b/);
  assert.equal(field(run.stdout, 'reason'), forced.reason);
  assert.equal(field(run.stdout, 'changed by'), 'orders@host-1');
  assert.equal(field(run.stdout, 'changed at'), '2024-05-01T10:00:00.000Z');
  assert.equal((await readNode(`${root}/degrade`))?.version, 0, 'status writes nothing');
});

test('degrade status on a missing node creates it with the initial state and shows normal: RabbitMQ', async (t) => {
  const root = newRoot(t);
  const run = await rmsAdmin(['degrade', 'status', '--root', root]);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(field(run.stdout, 'effective'), 'normal: RabbitMQ');
  assert.match(field(run.stdout, 'mode') ?? '', /^auto\b/);
  assert.match(field(run.stdout, 'degraded') ?? '', /^false\b/);
  const node = await readNode(`${root}/degrade`);
  assert.equal(node?.data['mode'], 'auto');
  assert.equal(node?.data['degraded'], false);
});

test('degrade on --reason forces the fallback and records the reason and the author ($USER@hostname by default)', async (t) => {
  const root = newRoot(t);
  const run = await rmsAdmin(['degrade', 'on', '--reason', 'failover drill', '--root', root]);
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /mode set to on/);
  assert.equal(field(run.stdout, 'effective'), 'DEGRADED: traffic goes to Redis');
  assert.equal(field(run.stdout, 'reason'), 'failover drill');
  assert.equal(field(run.stdout, 'changed by'), `tester@${os.hostname()}`);
  const node = await readNode(`${root}/degrade`);
  assert.deepEqual(
    { mode: node?.data['mode'], degraded: node?.data['degraded'], reason: node?.data['reason'], changedBy: node?.data['changedBy'] },
    { mode: 'on', degraded: false, reason: 'failover drill', changedBy: `tester@${os.hostname()}` },
  );
  assert.equal(field(run.stdout, 'changed at'), node?.data['changedAt']);
});

test('degrade off --reason forbids the fallback even while automation says degraded, and keeps its verdict', async (t) => {
  const root = newRoot(t);
  await writeNode(`${root}/degrade`, { mode: 'auto', degraded: true, reason: 'detector', changedAt: '2024-05-01T10:00:00.000Z', changedBy: 'orders@a' });
  const run = await rmsAdmin(['degrade', 'off', '--reason', 'the detector is wrong', '--by', 'alice', '--root', root]);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(field(run.stdout, 'effective'), 'normal: RabbitMQ');
  assert.match(field(run.stdout, 'mode') ?? '', /^off\b/);
  const node = await readNode(`${root}/degrade`);
  assert.equal(node?.data['mode'], 'off');
  assert.equal(node?.data['degraded'], true, "automation's verdict is kept");
  assert.equal(node?.data['changedBy'], 'alice');
  assert.equal(node?.version, 1);
});

test('degrade auto hands the decision back to automation, with or without --reason', async (t) => {
  const root = newRoot(t);
  await writeNode(`${root}/degrade`, { mode: 'on', degraded: true, reason: 'drill', changedAt: '2024-05-01T10:00:00.000Z', changedBy: 'sre' });
  const run = await rmsAdmin(['degrade', 'auto', '--root', root]);
  assert.equal(run.code, 0, run.stderr);
  assert.match(field(run.stdout, 'mode') ?? '', /^auto\b/);
  assert.equal(field(run.stdout, 'effective'), 'DEGRADED: traffic goes to Redis', 'automation still says degraded');
  assert.equal((await readNode(`${root}/degrade`))?.data['mode'], 'auto');

  const withReason = await rmsAdmin(['degrade', 'auto', '--reason', 'drill over', '--root', root]);
  assert.equal(withReason.code, 0, withReason.stderr);
  assert.equal((await readNode(`${root}/degrade`))?.data['reason'], 'drill over');
});

test('--json prints the state as one JSON object', async (t) => {
  const root = newRoot(t);
  const run = await rmsAdmin(['degrade', 'on', '--reason', 'drill', '--by', 'bob@ops', '--json', '--root', root]);
  assert.equal(run.code, 0, run.stderr);
  const printed = JSON.parse(run.stdout) as Record<string, unknown>;
  const node = await readNode(`${root}/degrade`);
  assert.deepEqual(printed, {
    zk: ZK,
    path: `${root}/degrade`,
    mode: 'on',
    degraded: false,
    effective: 'degraded',
    reason: 'drill',
    changedBy: 'bob@ops',
    changedAt: node?.data['changedAt'],
    version: node?.version,
  });
});

test('on or off without --reason is a usage error: exit 2 with the usage text, and nothing is written', async (t) => {
  const root = newRoot(t);
  for (const command of ['on', 'off']) {
    for (const reason of [[], ['--reason', '   ']]) {
      const run = await rmsAdmin(['degrade', command, ...reason, '--root', root]);
      assert.equal(run.code, 2, `degrade ${command} ${reason.join(' ')}`);
      assert.match(run.stderr, /--reason/);
      assert.match(run.stderr, /Usage: rms-admin degrade/);
    }
  }
  assert.equal(await readNode(`${root}/degrade`), null, 'ZooKeeper was not touched');
});

test('unknown commands and options are usage errors (exit 2); --help prints the usage and exits 0', async () => {
  for (const args of [[], ['degrade'], ['degrade', 'sideways'], ['frobnicate', 'status'], ['degrade', 'status', '--bogus'], ['degrade', 'status', 'extra'], ['degrade', 'on', '--reason']]) {
    const run = await rmsAdmin(args);
    assert.equal(run.code, 2, `rms-admin ${args.join(' ')}: ${run.stderr}`);
    assert.match(run.stderr, /Usage: rms-admin degrade/);
  }
  const help = await rmsAdmin(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Usage: rms-admin degrade/);
});

test('an unreachable ZooKeeper exits 1 within a few seconds', async () => {
  const run = await rmsAdmin(['degrade', 'status', '--zk', '127.0.0.1:1']);
  assert.equal(run.code, 1, run.stderr);
  assert.match(run.stderr, /cannot reach ZooKeeper at 127\.0\.0\.1:1/);
  assert.ok(run.ms < 7000, `exited after ${run.ms} ms`);
  assert.equal(run.stdout, '');
});

test('a ZooKeeper that accepts the connection but never answers exits 1 at --timeout, rather than hanging', async (t) => {
  const proxy = await FaultProxy.start({ targetHost: ZK_HOST, targetPort: Number(ZK_PORT) });
  t.after(() => proxy.close());
  proxy.stall();
  const root = newRoot(t);
  const run = await rmsAdmin(['degrade', 'on', '--reason', 'drill', '--timeout', '1000', '--zk', `${proxy.host}:${proxy.port}`, '--root', root]);
  assert.equal(run.code, 1, run.stderr);
  assert.match(run.stderr, /within 1000 ms/);
  assert.ok(run.ms < 5000, `exited after ${run.ms} ms`);
  proxy.restore();
  assert.equal(await readNode(`${root}/degrade`), null, 'nothing was written');
});

test('--version prints the version and exits 0; --help lists the messages and stats commands', async () => {
  const run = await rmsAdmin(['--version']);
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /^rms-admin \d+\.\d+\.\d+\n$/);
  const help = await rmsAdmin(['--help']);
  for (const command of ['messages list', 'messages show', 'messages history', 'messages resend', 'stats']) assert.match(help.stdout, new RegExp(command));
});

describe('rms-admin messages and stats, against a real RMS', { timeout: 60_000 }, () => {
  let rms: TestServer;
  let watcher: QueueWatcher;
  const topic = `rms-admin.${randomUUID().slice(0, 8)}`;
  const key = `order-${randomUUID().slice(0, 8)}`;
  let deadId: string;
  const asAdmin = (args: string[], env: Record<string, string> = {}) => rmsAdmin([...args, '--url', rms.baseUrl], { RMS_ADMIN_TOKEN: TEST_APPS.ops.token, ...env });

  before(async () => {
    rms = await startTestServer({ env: { RMS_RETRY_MAX: '1', RMS_ACK_TIMEOUT_MS: '60000', RMS_CHECK_DELAY_MS: '3600000' } });
    watcher = await QueueWatcher.open();
    // Confirmed, then failed by the consumer on its only round: DEAD at once.
    const prepared = await rms.call('orders', 'POST', '/v1/messages', { topic, payload: { sku: 'A-1' }, messageId: key });
    deadId = prepared.body.id;
    await rms.call('orders', 'POST', `/v1/messages/${deadId}/confirm`);
    const nack = await rms.call('inventory', 'POST', `/v1/messages/${deadId}/nack`, { reason: 'KeyError: warehouse', attempt: 1 });
    assert.equal(nack.body.status, 'DEAD');
  });
  after(async () => {
    await rms?.stop();
    await watcher?.deleteQueues([topic]);
    await watcher?.close();
  });

  test('messages list finds the message by the producer’s key; --json prints the page', async () => {
    const run = await asAdmin(['messages', 'list', '--message-id', key, '--status', 'dead']);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, new RegExp(`${deadId}  DEAD\\(DELIVERY_EXHAUSTED\\)  ${topic.replaceAll('.', '\\.')}  orders  ${key}  consumer inventory: KeyError: warehouse`));
    const json = await asAdmin(['messages', 'list', '--topic', topic, '--json']);
    assert.deepEqual(JSON.parse(json.stdout).messages.map((m: { id: string }) => m.id), [deadId]);
  });

  test('messages show and history say why it died', async () => {
    const show = await asAdmin(['messages', 'show', deadId]);
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, /status:\s+DEAD \(DELIVERY_EXHAUSTED\)/);
    assert.match(show.stdout, /payload:\s+\{"sku":"A-1"\}/);
    const history = await asAdmin(['messages', 'history', deadId]);
    assert.equal(history.code, 0, history.stderr);
    assert.match(history.stdout, /consumer-failure\s+consumer inventory\s{2}attempt 1\s{2}reason: KeyError: warehouse/);
    assert.match(history.stdout, /dead\s+consumer inventory\s{2}attempt 1\s{2}DELIVERY_EXHAUSTED/);
    const json = JSON.parse((await asAdmin(['messages', 'history', deadId, '--json'])).stdout);
    assert.deepEqual(json.events.map((e: { type: string }) => e.type), ['prepared', 'confirmed', 'delivery', 'consumer-failure', 'dead']);
  });

  test('stats prints counts by status and topic; --json prints the document', async () => {
    const run = await asAdmin(['stats']);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, new RegExp(`${topic.replaceAll('.', '\\.')}: DEAD 1`));
    assert.match(run.stdout, /transport: rabbitmq/);
    assert.equal(JSON.parse((await asAdmin(['stats', '--json'])).stdout).totals.DEAD >= 1, true);
  });

  test('messages resend --dead --dry-run counts without resending; messages resend <id> resends it', async () => {
    const dry = await asAdmin(['messages', 'resend', '--dead', '--topic', topic, '--dry-run']);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /dry run: 1 DEAD message\(s\) match, 1 can be resent/);
    assert.equal((await rms.call('ops', 'GET', `/v1/messages/${deadId}`)).body.status, 'DEAD');
    const resend = await asAdmin(['messages', 'resend', deadId]);
    assert.equal(resend.code, 0, resend.stderr);
    assert.match(resend.stdout, new RegExp(`resent ${deadId}: SENDING`));
    const again = await asAdmin(['messages', 'resend', deadId]);
    assert.equal(again.code, 0, 'a repeated resend of a message already on its way succeeds');
  });

  test('failures: a token that is not an admin’s, an unknown id, a missing token and a bad filter', async () => {
    const notAdmin = await asAdmin(['stats'], { RMS_ADMIN_TOKEN: TEST_APPS.orders.token });
    assert.equal(notAdmin.code, 1);
    assert.match(notAdmin.stderr, /lacks the admin role \(FORBIDDEN, HTTP 403\)/);
    const unknown = await asAdmin(['messages', 'show', randomUUID()]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /NOT_FOUND, HTTP 404/);
    const badId = await asAdmin(['messages', 'history', 'nope']);
    assert.equal(badId.code, 1);
    assert.match(badId.stderr, /must be a UUID/);
    const noToken = await rmsAdmin(['stats', '--url', rms.baseUrl]);
    assert.equal(noToken.code, 2);
    assert.match(noToken.stderr, /RMS_ADMIN_TOKEN/);
    for (const args of [['messages'], ['messages', 'show'], ['messages', 'list', '--status', 'LOST'], ['messages', 'list', '--from', 'yesterday'], ['messages', 'resend', '--dead', '--status', 'DEAD'], ['stats', 'extra']]) {
      const run = await asAdmin(args);
      assert.equal(run.code, 2, `rms-admin ${args.join(' ')}: ${run.stderr}`);
      assert.match(run.stderr, /Usage: rms-admin/);
    }
    const unreachable = await rmsAdmin(['stats', '--url', 'http://127.0.0.1:1', '--timeout', '1000'], { RMS_ADMIN_TOKEN: TEST_APPS.ops.token });
    assert.equal(unreachable.code, 1);
    assert.match(unreachable.stderr, /unreachable/);
  });
});
