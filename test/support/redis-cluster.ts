/**
 * A local Redis Cluster for tests: 6 `redis-server` processes (3 masters, 3 replicas) from
 * Debian's package on loopback ports, joined with `redis-cli --cluster create`, with a
 * short node timeout so that a master's failover plays out in a few seconds. Nodes are
 * killed by pid and everything is removed at the end; the shared Redis on 6379 is never
 * touched.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { clusterPort } from '../../scripts/loopback-ports.js';

/** A node's cluster bus listens on its port + 10000. */
const CLUSTER_BUS_OFFSET = 10_000;

const run = promisify(execFile);

/** Why a cluster cannot run here, or `null` when it can. */
export function redisClusterUnavailableReason(): string | null {
  if (!existsSync('/usr/bin/redis-server') || !existsSync('/usr/bin/redis-cli')) return 'redis-server and redis-cli are not installed';
  return null;
}

interface Node {
  port: number;
  process: ChildProcess | undefined;
}

/** A running local Redis Cluster. */
export class RedisCluster {
  private constructor(
    private readonly dir: string,
    private readonly nodes: Node[],
    /** The node timeout, in ms: how long a master may be silent before its replica takes over. */
    readonly nodeTimeoutMs: number,
  ) {}

  /** `redis://127.0.0.1:p1,…`: what `REDIS_URL` would hold. */
  get url(): string {
    return this.nodes.map((node) => `redis://127.0.0.1:${node.port}`).join(',');
  }

  /** The ports of all nodes. */
  get ports(): number[] {
    return this.nodes.map((node) => node.port);
  }

  /** Starts 3 masters and 3 replicas and waits until the cluster is `ok` on every node. */
  static async start(nodeTimeoutMs = 1000): Promise<RedisCluster> {
    const dir = await mkdtemp(join(tmpdir(), 'rms-redis-cluster-'));
    const nodes: Node[] = [];
    for (let i = 0; i < 6; i++) nodes.push({ port: await clusterPort([CLUSTER_BUS_OFFSET]), process: undefined });
    const cluster = new RedisCluster(dir, nodes, nodeTimeoutMs);
    try {
      for (const node of nodes) cluster.spawn(node);
      for (const node of nodes) await cluster.waitAnswers(node.port);
      await run('redis-cli', ['--cluster', 'create', ...nodes.map((node) => `127.0.0.1:${node.port}`), '--cluster-replicas', '1', '--cluster-yes'], { timeout: 30_000 });
      await cluster.waitOk(30_000);
      await cluster.waitReplicated(30_000);
      return cluster;
    } catch (error) {
      // Nodes left running would keep the test process alive until its timeout.
      await cluster.close();
      throw error;
    }
  }

  /** Runs a redis-cli command against the node on `port` and returns its output. */
  async cli(port: number, ...args: string[]): Promise<string> {
    const { stdout } = await run('redis-cli', ['-p', String(port), ...args], { timeout: 5000 });
    return stdout;
  }

  /** The port of the master serving `key`'s slot. */
  async masterOf(key: string): Promise<number> {
    const slot = Number((await this.cli(this.livePort(), 'CLUSTER', 'KEYSLOT', key)).trim());
    const slots = await this.cli(this.livePort(), '--json', 'CLUSTER', 'SLOTS').catch(() => '');
    if (slots) {
      for (const [from, to, master] of JSON.parse(slots) as [number, number, [string, number]][]) {
        if (slot >= from && slot <= to) return Number(master[1]);
      }
    }
    throw new Error(`no master found for slot ${slot}`);
  }

  /** SIGKILLs the node on `port`. */
  async kill(port: number): Promise<void> {
    const node = this.nodes.find((one) => one.port === port);
    const child = node?.process;
    if (!node || !child || child.exitCode !== null || child.signalCode !== null) return;
    node.process = undefined;
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited;
  }

  /** Starts the node on `port` again with its cluster state: it rejoins (a failed-over master comes back as a replica). */
  async restart(port: number): Promise<void> {
    const node = this.nodes.find((one) => one.port === port);
    if (!node) throw new Error(`no node on ${port}`);
    if (node.process) throw new Error(`the node on ${port} is running`);
    this.spawn(node);
    await this.waitAnswers(port);
  }

  /** How many replicas the master on `port` has, as it reports them. */
  async replicasOf(port: number): Promise<number> {
    return Number(/connected_slaves:(\d+)/.exec(await this.cli(port, 'INFO', 'replication'))?.[1] ?? 0);
  }

  /** Waits until every live node reports `cluster_state:ok` and agrees on the slots. */
  async waitOk(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const live = this.nodes.filter((node) => node.process);
      const states = await Promise.all(live.map((node) => this.cli(node.port, 'CLUSTER', 'INFO').catch(() => '')));
      if (states.every((info) => info.includes('cluster_state:ok'))) return;
      if (Date.now() >= deadline) throw new Error(`Redis Cluster not ok after ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  /** Waits until every master has a replica linked to it (after `create`, replicas still sync). */
  async waitReplicated(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const live = this.nodes.filter((node) => node.process);
      const infos = await Promise.all(live.map((node) => this.cli(node.port, 'INFO', 'replication').catch(() => '')));
      const masters = infos.filter((info) => info.includes('role:master'));
      if (masters.length === 3 && masters.every((info) => /slave0:[^\n]*state=online/.test(info))) return;
      if (Date.now() >= deadline) throw new Error(`Redis Cluster masters without a linked replica after ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  /** Kills every node and removes their files. */
  async close(): Promise<void> {
    for (const node of this.nodes) await this.kill(node.port);
    await rm(this.dir, { recursive: true, force: true });
  }

  private livePort(): number {
    const live = this.nodes.find((node) => node.process);
    if (!live) throw new Error('no live Redis Cluster node');
    return live.port;
  }

  /** Waits for the node on `port` to answer PING; fails at once, with its log, when it exits. */
  private async waitAnswers(port: number): Promise<void> {
    const deadline = Date.now() + 20_000;
    const child = this.nodes.find((node) => node.port === port)?.process;
    for (;;) {
      if ((await this.cli(port, 'PING').catch(() => '')).includes('PONG')) return;
      const exited = child !== undefined && (child.exitCode !== null || child.signalCode !== null);
      if (exited || Date.now() >= deadline) {
        const log = await readFile(join(this.dir, `redis-${port}.log`), 'utf8').catch(() => '(no log)');
        throw new Error(`redis-server on ${port} ${exited ? `exited (${child.exitCode ?? child.signalCode})` : 'did not answer in 20 s'}; its log ends:\n${log.slice(-1500)}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  private spawn(node: Node): void {
    node.process = spawn(
      'redis-server',
      [
        '--port', String(node.port),
        '--bind', '127.0.0.1',
        '--cluster-enabled', 'yes',
        '--cluster-config-file', join(this.dir, `nodes-${node.port}.conf`),
        '--cluster-node-timeout', String(this.nodeTimeoutMs),
        '--dir', this.dir,
        '--save', '',
        '--appendonly', 'no',
        '--daemonize', 'no',
        '--logfile', join(this.dir, `redis-${node.port}.log`),
      ],
      { stdio: 'ignore' },
    );
  }
}
