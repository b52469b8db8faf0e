#!/usr/bin/env node
/**
 * rms-admin: the SRE's command line for RMS. `degrade` reads and forces the degrade switch
 * in ZooKeeper (DESIGN §7); `messages` and `stats` use RMS's admin API with an admin token.
 * See docs/operations.md.
 *
 * Exit status: 0 done, 1 RMS or ZooKeeper could not be reached within the timeout (or
 * refused the request), 2 usage error.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { SDK_VERSION } from '../sdk-version.js';
import { type ApiCommand, parseMessages, runApiCommand } from './admin-api-commands.js';
import { type CliOutput, EXIT, UsageError } from './cli-outcome.js';
import { type DegradeInvocation, parseDegrade, runDegrade } from './degrade-command.js';

const USAGE = `Usage: rms-admin degrade <command> [options]
       rms-admin messages <command> [options]
       rms-admin stats [options]

Degrade switch (ZooKeeper):
  degrade status                  show the degrade flag
  degrade on   --reason "<why>"   force the Redis fallback on (mode "on")
  degrade off  --reason "<why>"   forbid the fallback (mode "off")
  degrade auto [--reason "<why>"] hand the decision back to automation (mode "auto")

Messages (RMS admin API; the admin token comes from $RMS_ADMIN_TOKEN or --token-file):
  messages list [filters] [--limit N] [--cursor C]   newest first, one page
  messages show <id>                                 one message, with payload and headers
  messages history <id>                              what happened to it, oldest first
  messages resend <id>                               deliver a DEAD message again
  messages resend --dead [filters] [--dry-run]       resend every DEAD message matching the filters
  stats                                              counts by status and topic, oldest waiting,
                                                     transport and degrade state

Filters: --status S  --topic T  --producer APP  --message-id KEY (the producer's key)
         --from ISO  --to ISO (creation time; from inclusive, to exclusive)

Options:
  --reason <text>     why you change the degrade switch (required for on and off)
  --zk <connect>      ZooKeeper connection string [env ZK_CONNECT, or 127.0.0.1:2181]
  --root <path>       RMS root node; the flag is <root>/degrade [env RMS_ZK_ROOT, or /rms]
  --by <name>         who changes the degrade switch [$USER@hostname]
  --url <url>         RMS's base URL [env RMS_URL, or http://127.0.0.1:8080]
  --token-file <path> a file holding the admin token [env RMS_ADMIN_TOKEN]
  --timeout <ms>      how long to wait for ZooKeeper or RMS [3000]
  --json              print JSON instead of text
  -h, --help          show this help
  --version           print the version

Exit status: 0 done; 1 RMS or ZooKeeper unreachable within the timeout, or the request
failed; 2 usage error.`;

const DEFAULT_TIMEOUT_MS = 3000;

const output: CliOutput = {
  out: (text) => process.stdout.write(`${text}\n`),
  err: (text) => process.stderr.write(`${text}\n`),
};

type Invocation = 'help' | 'version' | { kind: 'degrade'; degrade: DegradeInvocation } | { kind: 'api'; command: ApiCommand; url: string; token: string; timeoutMs: number; json: boolean };

/** The admin token: from --token-file, else $RMS_ADMIN_TOKEN (never a command-line value, which `ps` and shell history would show). */
function adminToken(tokenFile: string | undefined): string {
  let token: string | undefined;
  if (tokenFile !== undefined) {
    try {
      token = readFileSync(tokenFile, 'utf8').trim();
    } catch (error) {
      throw new UsageError(`--token-file ${tokenFile} cannot be read: ${(error as Error).message}`);
    }
  } else {
    token = process.env['RMS_ADMIN_TOKEN']?.trim();
  }
  if (!token) throw new UsageError('an admin token is needed: set RMS_ADMIN_TOKEN or pass --token-file <path>');
  return token;
}

/** @returns what to do; throws {@link UsageError}. */
function parse(argv: string[]): Invocation {
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
        url: { type: 'string' },
        'token-file': { type: 'string' },
        timeout: { type: 'string' },
        status: { type: 'string' },
        topic: { type: 'string' },
        producer: { type: 'string' },
        'message-id': { type: 'string' },
        from: { type: 'string' },
        to: { type: 'string' },
        limit: { type: 'string' },
        cursor: { type: 'string' },
        dead: { type: 'boolean' },
        'dry-run': { type: 'boolean' },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
        version: { type: 'boolean', default: false },
      },
    });
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  const { values, positionals } = parsed;
  if (values.help) return 'help';
  if (values.version) return 'version';
  const timeoutMs = values.timeout === undefined ? DEFAULT_TIMEOUT_MS : Number(values.timeout);
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) throw new UsageError(`--timeout must be a positive number of milliseconds, got '${values.timeout}'`);
  const [group, ...rest] = positionals;
  if (group === undefined) throw new UsageError('missing command');
  if (group === 'degrade') return { kind: 'degrade', degrade: parseDegrade(rest, values, timeoutMs) };
  if (group !== 'messages' && group !== 'stats') throw new UsageError(`unknown command '${group}'`);
  const command: ApiCommand = group === 'stats' ? { kind: 'stats' } : parseMessages(rest, values);
  if (group === 'stats' && rest.length > 0) throw new UsageError(`unexpected argument '${rest[0]}'`);
  const url = values.url ?? process.env['RMS_URL'] ?? 'http://127.0.0.1:8080';
  if (!/^https?:\/\/[^/]/.test(url)) throw new UsageError(`--url must be an http(s) URL, got '${url}'`);
  return { kind: 'api', command, url, token: adminToken(values['token-file']), timeoutMs, json: values.json };
}

async function run(argv: string[]): Promise<number> {
  let invocation: Invocation;
  try {
    invocation = parse(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    output.err(`rms-admin: ${error.message}\n\n${USAGE}`);
    return EXIT.USAGE;
  }
  if (invocation === 'help') {
    output.out(USAGE);
    return EXIT.OK;
  }
  if (invocation === 'version') {
    output.out(`rms-admin ${SDK_VERSION}`);
    return EXIT.OK;
  }
  if (invocation.kind === 'degrade') return runDegrade(invocation.degrade, output);
  return runApiCommand(invocation.command, invocation, output);
}

let code: number;
try {
  code = await run(process.argv.slice(2));
} catch (error) {
  process.stderr.write(`rms-admin: ${error instanceof Error ? error.message : String(error)}\n`);
  code = EXIT.FAILED;
}
// A command line exits when it is done, whatever sockets the ZooKeeper client still holds.
process.exit(code);
