/**
 * `rms-admin degrade status|on|off|auto`: reads and forces the degrade switch (DESIGN §7)
 * through the same compare-and-set writes the services use, so a person and the
 * automation never overwrite each other.
 */
import os from 'node:os';
import { DegradeSwitchError, isDegraded, type DegradeMode, type DegradeState } from '../degrade/degrade-switch.js';
import { ZooKeeperDegradeSwitch } from '../degrade/zookeeper-degrade-switch.js';
import { type CliOutput, EXIT, UsageError } from './cli-outcome.js';

/** What `degrade` takes besides the common options. */
export interface DegradeInvocation {
  command: 'status' | DegradeMode;
  reason: string | undefined;
  zk: string;
  root: string;
  by: string;
  timeoutMs: number;
  json: boolean;
}

const MODE_TEXT: Record<DegradeMode, string> = {
  auto: 'auto (automation decides)',
  on: 'on (forced on by an SRE)',
  off: 'off (forced off by an SRE)',
};

const COMMANDS: readonly DegradeInvocation['command'][] = ['status', 'on', 'off', 'auto'];

function defaultAuthor(): string {
  let user = process.env['USER'] ?? process.env['LOGNAME'];
  if (!user) {
    try {
      user = os.userInfo().username;
    } catch {
      user = 'unknown';
    }
  }
  return `${user}@${os.hostname()}`;
}

/** Checks the `degrade` command line. @throws UsageError */
export function parseDegrade(
  args: string[],
  values: { reason?: string | undefined; zk?: string | undefined; root?: string | undefined; by?: string | undefined; json: boolean },
  timeoutMs: number,
): DegradeInvocation {
  const [command, ...extra] = args;
  if (command === undefined) throw new UsageError('missing degrade command: status, on, off or auto');
  if (!COMMANDS.includes(command as DegradeInvocation['command'])) throw new UsageError(`unknown degrade command '${command}'`);
  if (extra.length > 0) throw new UsageError(`unexpected argument '${extra[0]}'`);
  const reason = values.reason?.trim();
  if ((command === 'on' || command === 'off') && !reason) throw new UsageError(`'degrade ${command}' needs --reason "<why>"`);
  if (command === 'status' && values.reason !== undefined) throw new UsageError(`'degrade status' takes no --reason`);
  const zk = values.zk ?? process.env['ZK_CONNECT'] ?? '127.0.0.1:2181';
  if (zk.trim() === '') throw new UsageError('--zk must not be empty');
  const root = values.root ?? process.env['RMS_ZK_ROOT'] ?? '/rms';
  if (!root.startsWith('/')) throw new UsageError(`--root must start with '/', got '${root}'`);
  const by = values.by?.trim() || defaultAuthor();
  return { command: command as DegradeInvocation['command'], reason: reason || undefined, zk, root, by, timeoutMs, json: values.json };
}

function render(state: DegradeState, invocation: DegradeInvocation, path: string, done: string | undefined): string {
  if (invocation.json) {
    return JSON.stringify({
      zk: invocation.zk,
      path,
      mode: state.mode,
      degraded: state.degraded,
      effective: isDegraded(state) ? 'degraded' : 'normal',
      reason: state.reason,
      changedBy: state.changedBy,
      changedAt: state.changedAt,
      version: state.version,
    });
  }
  const lines = [
    ...(done === undefined ? [] : [done]),
    `degrade switch ${path} (ZooKeeper ${invocation.zk})`,
    `  effective:  ${isDegraded(state) ? 'DEGRADED: traffic goes to Redis' : 'normal: RabbitMQ'}`,
    `  mode:       ${MODE_TEXT[state.mode]}`,
    `  degraded:   ${state.degraded} (automation's verdict; decides only in auto mode)`,
    `  reason:     ${state.reason ?? '-'}`,
    `  changed by: ${state.changedBy}`,
    `  changed at: ${state.changedAt}`,
    `  version:    ${state.version}`,
  ];
  return lines.join('\n');
}

/** Runs `degrade`; returns the exit status. */
export async function runDegrade(invocation: DegradeInvocation, output: CliOutput): Promise<number> {
  const degrade = new ZooKeeperDegradeSwitch({
    connect: invocation.zk,
    root: invocation.root,
    connectTimeoutMs: invocation.timeoutMs,
    requestTimeoutMs: invocation.timeoutMs,
  });
  try {
    await degrade.start();
    if (!degrade.connected) {
      output.err(`rms-admin: cannot reach ZooKeeper at ${invocation.zk} within ${invocation.timeoutMs} ms`);
      return EXIT.FAILED;
    }
    let state: DegradeState;
    let done: string | undefined;
    if (invocation.command === 'status') {
      state = await degrade.refresh();
    } else {
      const reason = invocation.reason ?? 'mode set back to auto';
      state = await degrade.setMode(invocation.command, reason, invocation.by);
      done = `mode set to ${invocation.command}.`;
    }
    output.out(render(state, invocation, degrade.path, done));
    return EXIT.OK;
  } catch (error) {
    if (!(error instanceof DegradeSwitchError)) throw error;
    output.err(`rms-admin: ${error.message}`);
    return EXIT.FAILED;
  } finally {
    await degrade.close();
  }
}
