/**
 * Ports for the servers the tests start later or elsewhere (Redis Cluster and ZooKeeper
 * ensemble nodes, the chaos run's RMS processes, the demo stack's servers through its
 * `freePort`) and for URLs that must be refused.
 *
 * A port the kernel hands out for `listen(0)` comes from the ephemeral range, and it is
 * only free for the moment it is checked: a server that binds it a second later can find
 * it taken by some connection's local port (the cluster's own peers make such
 * connections while the others start), and a Redis Cluster node also needs its port
 * + 10000 for the cluster bus. So cluster ports are drawn from below the ephemeral range,
 * where the kernel never assigns local ports, with every port a node needs checked free.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** The lowest port the kernel uses for outgoing connections' local ports (32768 when unknown). */
function ephemeralRangeStart(): number {
  try {
    const first = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(first) && first > 0 ? first : 32768;
  } catch {
    return 32768;
  }
}

/** Whether `port` can be bound on 127.0.0.1 right now. */
function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

const taken = new Set<number>();

/**
 * A loopback port below the ephemeral range that is free, and whose companions
 * (`port + offset` for each offset, e.g. 10000 for a Redis Cluster bus) are free and below
 * that range too. Ports handed out by this process are not handed out again.
 */
export async function clusterPort(companionOffsets: readonly number[] = []): Promise<number> {
  const highest = ephemeralRangeStart() - 1 - Math.max(0, ...companionOffsets);
  const lowest = 10_000;
  if (highest <= lowest) throw new Error(`no room for cluster ports below the ephemeral range (offsets ${companionOffsets.join(',')})`);
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = lowest + Math.floor(Math.random() * (highest - lowest));
    const needed = [port, ...companionOffsets.map((offset) => port + offset)];
    if (needed.some((one) => taken.has(one))) continue;
    if (!(await Promise.all(needed.map(canBind))).every(Boolean)) continue;
    for (const one of needed) taken.add(one);
    return port;
  }
  throw new Error('no free cluster port found in 200 tries');
}

/**
 * A loopback port nothing listens on, for a URL that must be refused. Not one from the
 * ephemeral range (`listen(0)`, then closed): there, another test's server can be handed
 * the same port a moment later, and a client's own connection can take it as its local
 * port and connect to itself (a TCP self-connect), so the "unreachable" URL answers.
 * Below that range neither happens; the port was free when checked, and no test binds it
 * after (this process does not hand it out again).
 */
export function closedPort(): Promise<number> {
  return clusterPort();
}
