/**
 * A local ZooKeeper ensemble for tests: N servers from Debian's zookeeper package
 * (`/usr/share/java/zookeeper.jar`, installed by scripts/infra-up.sh), each a JVM started
 * here on loopback ports with a data folder of its own, stopped (SIGKILL, by pid) and
 * restarted on command, and all removed at the end. The shared server on 2181 is never
 * touched.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clusterPort } from '../../scripts/loopback-ports.js';

/** Where Debian's zookeeper package puts the server. */
export const ZOOKEEPER_JAR = '/usr/share/java/zookeeper.jar';
const ZOOKEEPER_CONF_DIR = '/etc/zookeeper/conf';

/** Why an ensemble cannot run here, or `null` when it can. */
export function ensembleUnavailableReason(): string | null {
  if (!existsSync(ZOOKEEPER_JAR)) return `${ZOOKEEPER_JAR} is missing: run scripts/infra-up.sh (it installs Debian's zookeeperd)`;
  if (!existsSync('/usr/bin/java')) return '/usr/bin/java is missing (comes with zookeeperd)';
  return null;
}

interface Member {
  id: number;
  clientPort: number;
  peerPort: number;
  electionPort: number;
  dir: string;
  process: ChildProcess | undefined;
  log: string;
}

/** Sends a four-letter word and returns the answer ('' when the server does not answer). */
async function fourLetterWord(port: number, word: string, timeoutMs = 1000): Promise<string> {
  return new Promise((resolve) => {
    let answer = '';
    const socket = connect({ host: '127.0.0.1', port });
    const timer = setTimeout(() => socket.destroy(), timeoutMs);
    socket.on('connect', () => socket.write(word));
    socket.on('data', (chunk) => (answer += chunk.toString()));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(answer);
    });
  });
}

/** A running local ensemble. */
export class ZooKeeperEnsemble {
  private constructor(
    private readonly root: string,
    private readonly members: Member[],
  ) {}

  /** `127.0.0.1:p1,127.0.0.1:p2,…`: what `ZK_CONNECT` would hold. */
  get connectString(): string {
    return this.members.map((member) => `127.0.0.1:${member.clientPort}`).join(',');
  }

  /** How many servers there are. */
  get size(): number {
    return this.members.length;
  }

  /** Starts `size` servers and waits until they have elected a leader and serve. */
  static async start(size = 3): Promise<ZooKeeperEnsemble> {
    const root = await mkdtemp(join(tmpdir(), 'rms-zk-ensemble-'));
    const members: Member[] = [];
    for (let id = 1; id <= size; id++) {
      members.push({ id, clientPort: await clusterPort(), peerPort: await clusterPort(), electionPort: await clusterPort(), dir: join(root, `server-${id}`), process: undefined, log: '' });
    }
    const servers = members.map((member) => `server.${member.id}=127.0.0.1:${member.peerPort}:${member.electionPort}`).join('\n');
    for (const member of members) {
      await mkdir(join(member.dir, 'data'), { recursive: true });
      await writeFile(join(member.dir, 'data', 'myid'), `${member.id}\n`);
      // Short ticks so that elections and session expiry play out in test time; the admin
      // server (HTTP on 8080 by default) is off so that nothing collides with RMS's port.
      await writeFile(
        join(member.dir, 'zoo.cfg'),
        [
          'tickTime=250',
          'initLimit=20',
          'syncLimit=8',
          `dataDir=${join(member.dir, 'data')}`,
          `clientPort=${member.clientPort}`,
          'clientPortAddress=127.0.0.1',
          'admin.enableServer=false',
          '4lw.commands.whitelist=srvr,ruok,stat',
          'minSessionTimeout=500',
          servers,
          '',
        ].join('\n'),
      );
    }
    const ensemble = new ZooKeeperEnsemble(root, members);
    try {
      for (const member of members) ensemble.spawn(member);
      await ensemble.waitServing(members.map((member) => member.id), 60_000);
      return ensemble;
    } catch (error) {
      // Servers left running would keep the test process alive until its timeout.
      await ensemble.close();
      throw error;
    }
  }

  /** Kills server `id` (1-based) with SIGKILL and waits for it to be gone. */
  async kill(id: number): Promise<void> {
    const member = this.member(id);
    const child = member.process;
    member.process = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited;
  }

  /** Starts server `id` again (same data) without waiting for it to serve. */
  restart(id: number): void {
    const member = this.member(id);
    if (member.process) throw new Error(`ZooKeeper server ${id} is running`);
    this.spawn(member);
  }

  /** Waits until every server named serves (answers `srvr` as leader or follower). */
  async waitServing(ids: number[], timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const modes = await Promise.all(ids.map(async (id) => /Mode: (leader|follower)/.exec(await fourLetterWord(this.member(id).clientPort, 'srvr'))?.[1]));
      if (modes.every(Boolean)) return;
      if (Date.now() >= deadline) {
        const logs = ids.map((id) => `--- server ${id} ---\n${this.member(id).log.slice(-1500)}`).join('\n');
        throw new Error(`ZooKeeper ensemble servers ${ids.join(',')} not serving after ${timeoutMs} ms (modes ${JSON.stringify(modes)})\n${logs}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  /** The mode each server reports (`leader`, `follower`, or `down`). */
  async modes(): Promise<string[]> {
    return Promise.all(this.members.map(async (member) => /Mode: (\w+)/.exec(await fourLetterWord(member.clientPort, 'srvr'))?.[1] ?? 'down'));
  }

  /** Kills every server and removes their data. */
  async close(): Promise<void> {
    for (const member of this.members) await this.kill(member.id);
    await rm(this.root, { recursive: true, force: true });
  }

  private member(id: number): Member {
    const member = this.members[id - 1];
    if (!member) throw new RangeError(`no ZooKeeper server ${id} in an ensemble of ${this.members.length}`);
    return member;
  }

  private spawn(member: Member): void {
    member.log = '';
    const child = spawn(
      '/usr/bin/java',
      [
        '-Xmx96m',
        '-XX:+UseSerialGC',
        '-XX:TieredStopAtLevel=1',
        `-Dzookeeper.log.dir=${member.dir}`,
        '-cp',
        `${ZOOKEEPER_CONF_DIR}:${ZOOKEEPER_JAR}`,
        'org.apache.zookeeper.server.quorum.QuorumPeerMain',
        join(member.dir, 'zoo.cfg'),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const keep = (chunk: Buffer) => {
      member.log = (member.log + chunk.toString()).slice(-20_000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    member.process = child;
  }
}
