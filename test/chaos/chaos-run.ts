/**
 * One chaos run: start the stack, stream messages, inject the seeded fault schedule, heal,
 * wait for the system to settle, then check the invariants. `run.ts` (`npm run chaos`)
 * and the short CI run (`chaos.test.ts`) both call {@link runChaos}.
 */
import { mkdirSync } from 'node:fs';
import { recordRmsAnswers, type RecordedAnswer } from './answer-log.js';
import { ChaosStack } from './chaos-stack.js';
import type { ConsumerReport } from './consumer-process.js';
import { type InjectedFault, injectFault } from './fault-injector.js';
import { type FaultKind, STORE_FAULTS, planFaults } from './fault-schedule.js';
import { type FaultWindow, type InvariantRow, allHold, checkInvariants, formatInvariants, formatTable } from './invariants.js';
import { ProducerStream } from './workload.js';

/** What a run does; every field has the default `npm run chaos` uses. */
export interface ChaosOptions {
  /** Seeds the fault schedule and the stream's fates. */
  seed: number;
  /** Fault cycles. */
  cycles: number;
  /** The kinds to draw from. @defaultValue all of them */
  kinds?: readonly FaultKind[];
  /** RMS instances on the one store. @defaultValue 2 */
  instances?: number;
  /** Sends started per second. @defaultValue 20 */
  ratePerSecond?: number;
  /** Longest wait, after the last fault, for every message to reach its end. @defaultValue 120000 */
  settleTimeoutMs?: number;
  /** How long after a store fault heals a 503 still belongs to it. @defaultValue 1000 */
  storeRecoveryMs?: number;
  /** Where the RMS logs go (`rms-<n>.log`). */
  logDir: string;
  /** Keep the schema, queue and lists for inspection. @defaultValue false */
  keepData?: boolean;
  /** Progress lines. @defaultValue none */
  progress?: (line: string) => void;
}

/** What a run found. */
export interface ChaosReport {
  /** Whether every invariant holds. */
  ok: boolean;
  invariants: InvariantRow[];
  faults: InjectedFault[];
  /** The whole report as text: settings, the stream, the faults, the invariants table. */
  text: string;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function countBy<T>(items: Iterable<T>, keyOf: (item: T) => string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const item of items) counts.set(keyOf(item), (counts.get(keyOf(item)) ?? 0) + 1);
  return counts;
}

function tableOf(title: [string, string], counts: ReadonlyMap<string, number>): string {
  const rows = [...counts].sort(([a], [b]) => a.localeCompare(b)).map(([name, count]) => [name, String(count)]);
  return formatTable([title, ...(rows.length > 0 ? rows : [['(none)', '0']])]);
}

/** Runs the whole thing; never throws for a broken invariant (the report says so), only when the stack cannot run. */
export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const progress = options.progress ?? (() => undefined);
  const instances = options.instances ?? 2;
  const storeRecoveryMs = options.storeRecoveryMs ?? 1000;
  const plan = planFaults({ seed: options.seed, cycles: options.cycles, instances, ...(options.kinds && { kinds: options.kinds }) });
  mkdirSync(options.logDir, { recursive: true });

  const answers: RecordedAnswer[] = [];
  const handled = new Map<string, number>();
  const crashed = new Map<string, number>();
  const transports = new Map<string, number>();
  const onConsumerReport = (report: ConsumerReport) => {
    if (report.type === 'answer') answers.push(report.answer);
    if (report.type === 'handled') {
      handled.set(report.key, (handled.get(report.key) ?? 0) + 1);
      transports.set(report.transport, (transports.get(report.transport) ?? 0) + 1);
    }
    if (report.type === 'crashed') crashed.set(report.key, (crashed.get(report.key) ?? 0) + 1);
  };

  const startedAt = Date.now();
  const stack = await ChaosStack.start({ instances, logDir: options.logDir, handlerMs: 2, onConsumerReport });
  const stopRecording = recordRmsAnswers(stack.rmsOrigins, (answer) => answers.push(answer));
  const stream = new ProducerStream({
    topic: stack.topic,
    producers: stack.producers,
    seed: options.seed,
    ledger: stack.ledger,
    ratePerSecond: options.ratePerSecond ?? 20,
    maxInFlight: 64,
  });
  const faults: InjectedFault[] = [];
  const storeFaults: FaultWindow[] = [];
  try {
    stream.start();
    await sleep(1500);
    for (const fault of plan) {
      const injected = await injectFault(stack, fault);
      faults.push(injected);
      if (STORE_FAULTS.has(fault.kind)) storeFaults.push(injected);
      await stack.heal();
      progress(
        `cycle ${fault.cycle}/${plan.length} ${fault.kind} ${injected.endedAt - injected.startedAt} ms${injected.note ? ` (${injected.note})` : ''}` +
          ` — sent ${stream.planned.size}, handled ${handled.size}`,
      );
      await sleep(fault.gapMs);
    }
    progress('faults done; stopping the stream and waiting for every message to settle');
    await stream.stop();
    await stack.heal();
    const settleStart = Date.now();
    const settleTimeoutMs = options.settleTimeoutMs ?? 120_000;
    for (;;) {
      const stored = await stack.storedMessages();
      const open = stored.filter((message) => message.status === 'PENDING' || message.status === 'SENDING').length;
      const undelivered = [...stack.ledger.decisions()].filter(([key, decision]) => decision === 'committed' && !handled.has(key)).length;
      if (open === 0 && undelivered === 0) break;
      if (Date.now() - settleStart > settleTimeoutMs) {
        progress(`not settled after ${settleTimeoutMs} ms: ${open} open, ${undelivered} committed not delivered`);
        break;
      }
      await sleep(500);
    }
    progress(`settled in ${Date.now() - settleStart} ms`);
    await stack.consumer.close();
    stopRecording();

    const stored = await stack.storedMessages();
    const invariants = checkInvariants({
      decisions: stack.ledger.decisions(),
      keysStarted: stream.planned.size,
      handled,
      crashed,
      stored,
      answers,
      storeFaults,
      storeRecoveryMs,
    });
    const faultCounts = countBy(faults, (fault) => fault.kind);
    await stack.stopRms();
    const errorLines = new Map<string, number>();
    for (const instance of stack.instances) {
      for (const [message, count] of instance.logMessages(50)) errorLines.set(message, (errorLines.get(message) ?? 0) + count);
    }
    const text = [
      `seed ${options.seed}, ${options.cycles} cycles, ${instances} RMS instance(s), ${Math.round((Date.now() - startedAt) / 1000)} s` +
        ` (RMS starts: ${stack.instances.map((i) => `${i.name} ${i.starts}`).join(', ')}; consumer starts: ${stack.consumer.starts})`,
      '',
      tableOf(['fault injected', 'times'], faultCounts),
      '',
      tableOf(['the stream: what each send did', 'messages'], stack.ledger.happenings),
      '',
      tableOf(['check-backs answered', 'count'], new Map(Object.entries(stack.checkServer.answered))),
      '',
      tableOf(['handler runs by transport', 'count'], transports),
      '',
      tableOf(['final status in the store', 'messages'], countBy(stored, (message) => message.status)),
      '',
      tableOf(['answers from RMS by status', 'count'], countBy(answers, (answer) => String(answer.status ?? `no answer: ${answer.failure}`))),
      '',
      tableOf(['RMS log lines at error or fatal', 'count'], errorLines),
      '',
      formatInvariants(invariants),
    ].join('\n');
    return { ok: allHold(invariants), invariants, faults, text };
  } finally {
    stopRecording();
    await stream.stop();
    await stack.stop({ keepData: options.keepData ?? false });
  }
}
