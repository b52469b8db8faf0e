/**
 * `rms-admin messages list|show|history|resend` and `rms-admin stats`: the admin surface of
 * RMS's HTTP API, for a terminal. Text for people by default, one JSON document with
 * `--json` for scripts.
 */
import { RmsError } from '../errors.js';
import { type MessageSearch, RmsHttpClient, type RmsMessage, type RmsMessageEvent, type RmsStats } from '../http/rms-http-client.js';
import { type CliOutput, EXIT, UsageError } from './cli-outcome.js';

/** An `rms-admin` command that talks to RMS. */
export type ApiCommand =
  | { kind: 'list'; search: MessageSearch; limit: number; cursor: string | undefined }
  | { kind: 'show'; id: string }
  | { kind: 'history'; id: string }
  | { kind: 'resend'; id: string }
  | { kind: 'resend-matching'; filter: Omit<MessageSearch, 'status'>; dryRun: boolean; limit: number }
  | { kind: 'stats' };

/** How to reach RMS. */
export interface ApiTarget {
  url: string;
  token: string;
  timeoutMs: number;
  json: boolean;
}

/** The option values `messages` reads. */
export interface MessageOptionValues {
  status?: string | undefined;
  topic?: string | undefined;
  producer?: string | undefined;
  'message-id'?: string | undefined;
  from?: string | undefined;
  to?: string | undefined;
  limit?: string | undefined;
  cursor?: string | undefined;
  dead?: boolean | undefined;
  'dry-run'?: boolean | undefined;
}

const STATUSES = ['PENDING', 'SENDING', 'COMPLETED', 'CANCELLED', 'DEAD'] as const;

function positiveInteger(text: string | undefined, name: string, fallback: number): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) throw new UsageError(`--${name} must be a positive whole number, got '${text}'`);
  return value;
}

function isoTime(text: string | undefined, name: string): string | undefined {
  if (text === undefined) return undefined;
  if (Number.isNaN(Date.parse(text))) throw new UsageError(`--${name} must be an ISO 8601 time such as 2026-12-01T10:00:00Z, got '${text}'`);
  return new Date(text).toISOString();
}

/** The filters given on the command line. */
function searchOf(values: MessageOptionValues): MessageSearch {
  const status = values.status?.toUpperCase();
  if (status !== undefined && !STATUSES.includes(status as (typeof STATUSES)[number])) {
    throw new UsageError(`--status must be one of ${STATUSES.join(', ')}, got '${values.status}'`);
  }
  const from = isoTime(values.from, 'from');
  const to = isoTime(values.to, 'to');
  return {
    ...(status !== undefined && { status: status as (typeof STATUSES)[number] }),
    ...(values.topic !== undefined && { topic: values.topic }),
    ...(values.producer !== undefined && { producer: values.producer }),
    ...(values['message-id'] !== undefined && { messageId: values['message-id'] }),
    ...(from !== undefined && { from }),
    ...(to !== undefined && { to }),
  };
}

/** Checks the `messages` command line. @throws UsageError */
export function parseMessages(args: string[], values: MessageOptionValues): ApiCommand {
  const [verb, id, ...extra] = args;
  if (extra.length > 0) throw new UsageError(`unexpected argument '${extra[0]}'`);
  const needId = (): string => {
    if (id === undefined) throw new UsageError(`'messages ${verb}' needs a message id`);
    return id;
  };
  switch (verb) {
    case 'list':
      if (id !== undefined) throw new UsageError(`unexpected argument '${id}'`);
      return { kind: 'list', search: searchOf(values), limit: positiveInteger(values.limit, 'limit', 20), cursor: values.cursor };
    case 'show':
      return { kind: 'show', id: needId() };
    case 'history':
      return { kind: 'history', id: needId() };
    case 'resend': {
      if (!values.dead) {
        if (values['dry-run']) throw new UsageError("--dry-run goes with 'messages resend --dead [filters]'");
        return { kind: 'resend', id: needId() };
      }
      if (id !== undefined) throw new UsageError("'messages resend --dead' takes filters, not an id");
      const { status, ...filter } = searchOf(values);
      if (status !== undefined) throw new UsageError("'messages resend --dead' resends DEAD messages; drop --status");
      return { kind: 'resend-matching', filter, dryRun: values['dry-run'] === true, limit: positiveInteger(values.limit, 'limit', 1000) };
    }
    case undefined:
      throw new UsageError('missing messages command: list, show, history or resend');
    default:
      throw new UsageError(`unknown messages command '${verb}'`);
  }
}

const line = (message: RmsMessage): string =>
  [message.createdAt, message.id, message.status + (message.deadReason ? `(${message.deadReason})` : ''), message.topic, message.producer, message.messageId ?? '-', message.lastError ?? ''].join('  ');

function describeMessage(message: RmsMessage): string {
  const rows: [string, unknown][] = [
    ['id', message.id],
    ['messageId', message.messageId],
    ['producer', message.producer],
    ['topic', message.topic],
    ['status', message.deadReason ? `${message.status} (${message.deadReason})` : message.status],
    ['created', message.createdAt],
    ['confirmed', message.confirmedAt],
    ['completed', message.completedAt],
    ['cancelled', message.cancelledAt],
    ['check-backs', message.checkAttempts],
    ['deliveries', message.deliveryAttempts],
    ['next attempt', message.nextAttemptAt],
    ['last transport', message.lastTransport],
    ['last error', message.lastError],
    ['headers', JSON.stringify(message.headers)],
    ['payload', JSON.stringify(message.payload)],
  ];
  return rows.map(([name, value]) => `${`${name}:`.padEnd(16)}${value ?? '-'}`).join('\n');
}

function describeEvent(event: RmsMessageEvent): string {
  const who = event.app ? `${event.actor} ${event.app}` : event.actor;
  const parts = [
    event.at,
    event.type.padEnd(16),
    who,
    event.attempt === null ? '' : `attempt ${event.attempt}`,
    event.transport ?? '',
    event.outcome ?? '',
    event.durationMs === null ? '' : `${event.durationMs} ms`,
    event.reason === null ? '' : `reason: ${event.reason}`,
    event.nextAttemptAt === null ? '' : `next due ${event.nextAttemptAt}`,
  ];
  return parts.filter((part) => part !== '').join('  ');
}

function describeStats(stats: RmsStats): string {
  const lines = [`messages (counted ${stats.at}):`, ...Object.entries(stats.totals).map(([status, count]) => `  ${status.padEnd(10)} ${count}`)];
  const topics = [...new Set(stats.counts.map((count) => count.topic))];
  if (topics.length > 0) {
    lines.push('by topic:');
    for (const topic of topics) {
      const counts = stats.counts.filter((count) => count.topic === topic).map((count) => `${count.status} ${count.count}`);
      lines.push(`  ${topic}: ${counts.join(', ')}`);
    }
  }
  lines.push('oldest waiting:');
  if (stats.oldestWaiting.length === 0) lines.push('  none');
  for (const message of stats.oldestWaiting) lines.push(`  ${message.waitingSeconds}s  ${message.id}  ${message.status}  ${message.topic}  ${message.lastError ?? ''}`.trimEnd());
  if (stats.failover) lines.push(`transport: ${String(stats.failover['mode'])} (consecutive failures ${String(stats.failover['consecutiveFailures'])})`);
  if (stats.degrade) lines.push(`degrade switch: ${String(stats.degrade['effective'])}, mode ${String(stats.degrade['mode'])}`);
  return lines.join('\n');
}

/** Runs a command against RMS; returns the exit status. */
export async function runApiCommand(command: ApiCommand, target: ApiTarget, output: CliOutput): Promise<number> {
  // One attempt per call: a person at a terminal would rather see the failure than wait out retries.
  const client = new RmsHttpClient({ url: target.url, token: target.token, timeoutMs: target.timeoutMs, retry: { retries: 0 } });
  const print = (json: unknown, text: () => string) => output.out(target.json ? JSON.stringify(json) : text());
  try {
    switch (command.kind) {
      case 'list': {
        const page = await client.listMessages({ ...command.search, limit: command.limit, ...(command.cursor !== undefined && { cursor: command.cursor }) });
        print(page, () => {
          const rows = page.messages.length === 0 ? ['no messages match'] : page.messages.map(line);
          return [...rows, ...(page.nextCursor ? [`more: --cursor ${page.nextCursor}`] : [])].join('\n');
        });
        break;
      }
      case 'show': {
        const message = await client.get(command.id);
        print(message, () => describeMessage(message));
        break;
      }
      case 'history': {
        const history = await client.history(command.id);
        print(history, () => [`history of ${history.id} (now ${history.status}):`, ...history.events.map(describeEvent)].join('\n'));
        break;
      }
      case 'resend': {
        const message = await client.resend(command.id);
        print(message, () => `resent ${message.id}: ${message.status}, a new delivery round has started`);
        break;
      }
      case 'resend-matching': {
        const result = await client.resendMatching(command.filter, { dryRun: command.dryRun, limit: command.limit });
        print(result, () =>
          command.dryRun
            ? `dry run: ${result.matched} DEAD message(s) match, ${result.resendable} can be resent (run again without --dry-run to resend them)`
            : `resent ${result.resent.length} of ${result.matched} matching DEAD message(s)${result.resent.length > 0 ? `:\n${result.resent.join('\n')}` : ''}`,
        );
        break;
      }
      case 'stats': {
        const stats = await client.stats();
        print(stats, () => describeStats(stats));
        break;
      }
    }
    return EXIT.OK;
  } catch (error) {
    if (!(error instanceof RmsError)) throw error;
    output.err(`rms-admin: ${error.message} (${error.code}${error.status ? `, HTTP ${error.status}` : ''})`);
    return EXIT.FAILED;
  } finally {
    await client.close();
  }
}
