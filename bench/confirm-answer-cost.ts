/**
 * What a batch confirm's answer costs per message, whole against receipts (`Prefer:
 * return=minimal`): RMS's side (the view of each message and the JSON of the answer) and
 * the SDK's side (parsing it), the work the SDK's `send` stops asking for. The reliable
 * flow's CPU per message moves by ±10 % between runs on a shared box, more than this
 * saving; here both kinds of answer are built in the same process, in alternating rounds,
 * so what the box does meanwhile falls on both alike.
 *
 * Run: `node --conditions=rms-source --import tsx bench/confirm-answer-cost.ts`
 * (BENCH_ANSWER_ROUNDS, 400; a round is one batch of 1,000 confirmed messages each way).
 */
import { cpuUsage } from 'node:process';
import { randomUUID } from 'node:crypto';
import type { Message } from '@rms/message-service';
import { toMessageReceipt, toMessageView } from '../services/message-service/src/http/message-view.js';
import { benchMessage } from './workload.js';

const BATCH = 1000;
const ROUNDS = Number(process.env['BENCH_ANSWER_ROUNDS'] ?? 400);

/** A message as the store returns it after a confirm, with the bench's payload and one group's delivery. */
const confirmedMessage = (): Message => benchMessage('SENDING', { id: randomUUID(), producerMessageId: randomUUID(), topic: 'bench.confirm-answer' });

/** CPU microseconds (user + system) spent by `work`. */
function cpuMicros(work: () => void): number {
  const before = cpuUsage();
  work();
  const spent = cpuUsage(before);
  return spent.user + spent.system;
}

const messages = Array.from({ length: BATCH }, confirmedMessage);
const answer = (view: (message: Message) => unknown) => JSON.stringify({ results: messages.map((message) => ({ status: 200, body: view(message) })) });
const totals = { whole: { rms: 0, sdk: 0, bytes: 0 }, receipt: { rms: 0, sdk: 0, bytes: 0 } };
let sink = 0;

for (let round = -20; round < ROUNDS; round++) {
  // Alternate which goes first, so neither always runs right after a garbage collection.
  const order = round % 2 === 0 ? (['whole', 'receipt'] as const) : (['receipt', 'whole'] as const);
  for (const kind of order) {
    let text = '';
    const rms = cpuMicros(() => (text = answer(kind === 'whole' ? toMessageView : toMessageReceipt)));
    const sdk = cpuMicros(() => (sink += (JSON.parse(text) as { results: unknown[] }).results.length));
    if (round < 0) continue; // warm-up
    totals[kind].rms += rms;
    totals[kind].sdk += sdk;
    totals[kind].bytes += text.length;
  }
}

const perMessage = (micros: number) => (micros / (ROUNDS * BATCH)).toFixed(2);
console.log(`confirm answers, ${ROUNDS} rounds of ${BATCH} (${sink} elements parsed), CPU µs per message:`);
for (const kind of ['whole', 'receipt'] as const) {
  const { rms, sdk, bytes } = totals[kind];
  console.log(`  ${kind.padEnd(7)}  RMS (view + JSON) ${perMessage(rms)}  SDK (parse) ${perMessage(sdk)}  bytes ${(bytes / (ROUNDS * BATCH)).toFixed(0)}`);
}
