/**
 * What a chaos run must guarantee, checked from what was recorded: the producer's ledger
 * (what each key's local transaction did), the consumer's handler runs, the store's final
 * rows and every answer RMS gave. Each invariant either must hold (a count that must be 0)
 * or is only counted (duplicates are allowed: delivery is at-least-once).
 */
import type { RecordedAnswer } from './answer-log.js';
import type { StoredMessage } from './chaos-stack.js';

/** A stretch of time when the store was faulted. */
export interface FaultWindow {
  startedAt: number;
  endedAt: number;
}

/** Everything the invariants are computed from. */
export interface RunFacts {
  /** Each key's local decision (the producer's ledger). */
  decisions: ReadonlyMap<string, 'committed' | 'rolled-back'>;
  /** Keys the stream started, decided or not. */
  keysStarted: number;
  /** Finished handler runs per key. */
  handled: ReadonlyMap<string, number>;
  /** Handler runs per key that crashed before finishing. */
  crashed: ReadonlyMap<string, number>;
  /** The run's messages in the store after settling. */
  stored: readonly StoredMessage[];
  /** Every answer RMS gave the producers and the consumer. */
  answers: readonly RecordedAnswer[];
  /** When the store was faulted. */
  storeFaults: readonly FaultWindow[];
  /** How long after a store fault heals a 503 still counts as part of it. */
  storeRecoveryMs: number;
}

/** One line of the invariants table. */
export interface InvariantRow {
  name: string;
  value: string;
  /** `true`/`false`: a rule that holds or fails; `null`: counted only. */
  holds: boolean | null;
  rule: string;
}

const during = (answer: RecordedAnswer, windows: readonly FaultWindow[], recoveryMs: number): boolean =>
  windows.some((window) => answer.sentAt <= window.endedAt + recoveryMs && answer.endedAt >= window.startedAt);

/** An answer RMS must not give: a 5xx outside a store fault, or a 5xx other than 503 during one. */
export function isUnexpected5xx(answer: RecordedAnswer, windows: readonly FaultWindow[], recoveryMs: number): boolean {
  if (answer.status === null || answer.status < 500) return false;
  return answer.status !== 503 || !during(answer, windows, recoveryMs);
}

function mustBeZero(name: string, count: number, rule: string, examples: readonly string[] = []): InvariantRow {
  const shown = examples.length > 0 ? ` (e.g. ${examples.slice(0, 3).join(', ')})` : '';
  return { name, value: `${count}${count > 0 ? shown : ''}`, holds: count === 0, rule };
}

/** Computes every invariant of the run. */
export function checkInvariants(facts: RunFacts): InvariantRow[] {
  const committed = [...facts.decisions].filter(([, decision]) => decision === 'committed').map(([key]) => key);
  const rolledBack = [...facts.decisions].filter(([, decision]) => decision === 'rolled-back').map(([key]) => key);
  const stored = new Map(facts.stored.map((message) => [message.key, message]));

  const lost = committed.filter((key) => (facts.handled.get(key) ?? 0) === 0);
  const deliveredRolledBack = rolledBack.filter((key) => (facts.handled.get(key) ?? 0) + (facts.crashed.get(key) ?? 0) > 0);
  const stuck = facts.stored.filter((message) => message.status === 'PENDING' || message.status === 'SENDING');
  const dead = facts.stored.filter((message) => message.status === 'DEAD');
  const contradicting = [
    ...committed.filter((key) => stored.get(key)?.status !== 'COMPLETED'),
    ...rolledBack.filter((key) => stored.has(key) && stored.get(key)?.status !== 'CANCELLED'),
  ];
  const undecided = facts.keysStarted - facts.decisions.size;
  const duplicates = [...facts.handled.values()].reduce((sum, runs) => sum + Math.max(0, runs - 1), 0);
  const unexpected = facts.answers.filter((answer) => isUnexpected5xx(answer, facts.storeFaults, facts.storeRecoveryMs));
  const expected503 = facts.answers.filter((answer) => answer.status === 503).length - unexpected.filter((a) => a.status === 503).length;
  const unanswered = facts.answers.filter((answer) => answer.status === null);
  const answered = facts.answers.filter((answer) => answer.status !== null);
  const slowest = answered.reduce<RecordedAnswer | undefined>(
    (worst, answer) => (worst === undefined || answer.endedAt - answer.sentAt > worst.endedAt - worst.sentAt ? answer : worst),
    undefined,
  );
  const durations = answered.map((answer) => answer.endedAt - answer.sentAt).sort((a, b) => a - b);
  const p99 = durations[Math.min(durations.length - 1, Math.floor(durations.length * 0.99))] ?? 0;

  return [
    mustBeZero('confirmed or committed, never delivered (lost)', lost.length, 'must be 0', lost),
    mustBeZero('cancelled or rolled back, delivered', deliveredRolledBack.length, 'must be 0', deliveredRolledBack),
    mustBeZero('stuck non-terminal (PENDING or SENDING)', stuck.length, 'must be 0', stuck.map((m) => `${m.key} ${m.status}`)),
    mustBeZero('DEAD (a schedule exhausted)', dead.length, 'must be 0: the run cannot exhaust its schedules', dead.map((m) => m.key)),
    mustBeZero('store status contradicts the decision', contradicting.length, 'must be 0: committed → COMPLETED, rolled back → CANCELLED or never stored', contradicting.map((key) => `${key} ${stored.get(key)?.status ?? 'missing'}`)),
    mustBeZero('keys never decided', undecided, 'must be 0: every send finished'),
    { name: 'duplicates (extra handler runs)', value: String(duplicates), holds: null, rule: 'counted; at-least-once allows them' },
    mustBeZero('5xx answers, unexpected', unexpected.length, 'must be 0: only 503, and only during a store fault', unexpected.map((a) => `${a.status} ${a.route}`)),
    { name: '503 answers during store faults', value: String(expected503), holds: null, rule: 'allowed' },
    { name: 'no answer (refused, reset, timed out)', value: String(unanswered.length), holds: null, rule: 'counted; RMS was down or frozen' },
    {
      name: 'slowest answer',
      value: slowest ? `${slowest.endedAt - slowest.sentAt} ms (${slowest.route} → ${slowest.status}), p99 ${p99} ms` : 'none',
      holds: null,
      rule: `counted; of ${answered.length} answers`,
    },
  ];
}

/** Whether every rule of the table holds. */
export function allHold(rows: readonly InvariantRow[]): boolean {
  return rows.every((row) => row.holds !== false);
}

/** A plain-text table (Markdown-compatible) of rows of cells; the first row is the header. */
export function formatTable(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]?.map((_, column) => Math.max(...rows.map((row) => (row[column] ?? '').length))) ?? [];
  const line = (row: readonly string[]) => `| ${row.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join(' | ')} |`;
  const [header, ...body] = rows;
  if (!header) return '';
  return [line(header), `| ${widths.map((width) => '-'.repeat(width)).join(' | ')} |`, ...body.map(line)].join('\n');
}

/** The invariants as a table: invariant, value, verdict, rule. */
export function formatInvariants(rows: readonly InvariantRow[]): string {
  return formatTable([
    ['invariant', 'value', 'verdict', 'rule'],
    ...rows.map((row) => [row.name, row.value, row.holds === null ? 'counted' : row.holds ? 'ok' : 'FAILED', row.rule]),
  ]);
}
