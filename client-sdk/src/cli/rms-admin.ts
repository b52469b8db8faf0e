#!/usr/bin/env node
/**
 * rms-admin: the SRE's command line for RMS. Today it reads and forces the degrade switch
 * (DESIGN §7) through the same compare-and-set writes the services use, so a person and
 * the automation never overwrite each other. See docs/operations.md.
 *
 * Exit status: 0 done, 1 ZooKeeper could not be reached within the timeout (or refused
 * the change), 2 usage error.
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
import { DegradeSwitchError, isDegraded, type DegradeMode, type DegradeState } from '../degrade/degrade-switch.js';
import { ZooKeeperDegradeSwitch } from '../degrade/zookeeper-degrade-switch.js';

const USAGE = `Usage: rms-admin degrade <command> [options]

Commands:
  degrade status                  show the degrade flag
  degrade on   --reason "<why>"   force the Redis fallback on (mode "on")
  degrade off  --reason "<why>"   forbid the fallback (mode "off")
  degrade auto [--reason "<why>"] hand the decision back to automation (mode "auto")

Options:
  --reason <text>   why you change it (required for on and off)
  --zk <connect>    ZooKeeper connection string [env ZK_CONNECT, or 127.0.0.1:2181]
  --root <path>     RMS root node; the flag is <root>/degrade [env RMS_ZK_ROOT, or /rms]
  --by <name>       who changes it [$USER@hostname]
  --timeout <ms>    how long to wait for ZooKeeper [3000]
  --json            print JSON instead of text
  -h, --help        show this help

Exit status: 0 done; 1 ZooKeeper unreachable within the timeout, or the change failed;
2 usage error.`;

const EXIT_OK = 0;
const EXIT_UNAVAILABLE = 1;
const EXIT_USAGE = 2;

const DEFAULT_TIMEOUT_MS = 3000;

const MODE_TEXT: Record<DegradeMode, string> = {
  auto: 'auto (automation decides)',
  on: 'on (forced on by an SRE)',
  off: 'off (forced off by an SRE)',
};

type Command = 'status' | DegradeMode;
const COMMANDS: readonly Command[] = ['status', 'on', 'off', 'auto'];

/** A mistake in the command line: printed with the usage, exit 2. */
class UsageError extends Error {}

interface Invocation {
  command: Command;
  reason: string | undefined;
  zk: string;
  root: string;
  by: string;
  timeoutMs: number;
  json: boolean;
}

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

/** @returns what to do, or `'help'`; throws {@link UsageError}. */
function parse(argv: string[]): Invocation | 'help' {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        reason: { type: 'string' },
        zk: { type: 'string' },
        root: { type: 'string' },
        by: { type: 'string' },
        timeout: { type: 'string' },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  const { values, positionals } = parsed;
  if (values.help) return 'help';
  const [group, command, ...extra] = positionals;
  if (group === undefined) throw new UsageError('missing command');
  if (group !== 'degrade') throw new UsageError(`unknown command '${group}'`);
  if (command === undefined) throw new UsageError('missing degrade command: status, on, off or auto');
  if (!COMMANDS.includes(command as Command)) throw new UsageError(`unknown degrade command '${command}'`);
  if (extra.length > 0) throw new UsageError(`unexpected argument '${extra[0]}'`);

  const reason = values.reason?.trim();
  if ((command === 'on' || command === 'off') && !reason) throw new UsageError(`'degrade ${command}' needs --reason "<why>"`);
  if (command === 'status' && values.reason !== undefined) throw new UsageError(`'degrade status' takes no --reason`);

  const timeoutMs = values.timeout === undefined ? DEFAULT_TIMEOUT_MS : Number(values.timeout);
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) throw new UsageError(`--timeout must be a positive number of milliseconds, got '${values.timeout}'`);

  const zk = values.zk ?? process.env['ZK_CONNECT'] ?? '127.0.0.1:2181';
  if (zk.trim() === '') throw new UsageError('--zk must not be empty');
  const root = values.root ?? process.env['RMS_ZK_ROOT'] ?? '/rms';
  if (!root.startsWith('/')) throw new UsageError(`--root must start with '/', got '${root}'`);
  const by = values.by?.trim() || defaultAuthor();

  return { command: command as Command, reason: reason || undefined, zk, root, by, timeoutMs, json: values.json };
}

function render(state: DegradeState, invocation: Invocation, path: string, done: string | undefined): string {
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

async function run(argv: string[]): Promise<number> {
  let invocation: Invocation | 'help';
  try {
    invocation = parse(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`rms-admin: ${error.message}\n\n${USAGE}\n`);
    return EXIT_USAGE;
  }
  if (invocation === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return EXIT_OK;
  }

  const degrade = new ZooKeeperDegradeSwitch({
    connect: invocation.zk,
    root: invocation.root,
    connectTimeoutMs: invocation.timeoutMs,
    requestTimeoutMs: invocation.timeoutMs,
  });
  try {
    await degrade.start();
    if (!degrade.connected) {
      process.stderr.write(`rms-admin: cannot reach ZooKeeper at ${invocation.zk} within ${invocation.timeoutMs} ms\n`);
      return EXIT_UNAVAILABLE;
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
    process.stdout.write(`${render(state, invocation, degrade.path, done)}\n`);
    return EXIT_OK;
  } catch (error) {
    if (!(error instanceof DegradeSwitchError)) throw error;
    process.stderr.write(`rms-admin: ${error.message}\n`);
    return EXIT_UNAVAILABLE;
  } finally {
    await degrade.close();
  }
}

let code: number;
try {
  code = await run(process.argv.slice(2));
} catch (error) {
  process.stderr.write(`rms-admin: ${error instanceof Error ? error.message : String(error)}\n`);
  code = EXIT_UNAVAILABLE;
}
// A command line exits when it is done, whatever sockets the ZooKeeper client still holds.
process.exit(code);
