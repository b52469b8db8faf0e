/**
 * The producer side of a chaos run: a stream of messages with known keys and a planned
 * fate each (confirmed, cancelled, or left pending for the check-back to COMMIT or
 * ROLLBACK), the ledger of what each key's local transaction did, and the check-back
 * endpoint that answers RMS from that ledger, as a real producer answers from its database.
 */
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type CheckVerdict, type RmsProducer, checkHandler } from '@rms/client-sdk';
import { SeededRandom } from './seeded-random.js';

/** What the stream plans for one key. */
export type PlannedFate =
  /** `send`: prepare, commit, confirm. */
  | 'confirm'
  /** `send` whose local transaction fails: prepare, roll back, cancel. */
  | 'cancel'
  /** prepare, commit, then "crash" before the confirm: the check-back must COMMIT it. */
  | 'commit-unconfirmed'
  /** prepare, then "crash" before the transaction: the check-back must ROLLBACK it. */
  | 'rollback-unconfirmed';

/** The share of each fate in the stream. */
const FATE_MIX: readonly [PlannedFate, number][] = [
  ['confirm', 0.6],
  ['cancel', 0.15],
  ['commit-unconfirmed', 0.125],
  ['rollback-unconfirmed', 0.125],
];

/** A local transaction that fails on purpose (the `cancel` fate). */
class PlannedRollback extends Error {
  override name = 'PlannedRollback';
}

/**
 * What each key's local transaction did: `committed` (the message must be delivered) or
 * `rolled-back` (it must never be); a key in neither is still being decided.
 */
export class Ledger {
  readonly #decided = new Map<string, 'committed' | 'rolled-back'>();
  /** How each send went, counted by what happened (e.g. `confirmed`, `prepare failed`). */
  readonly happenings = new Map<string, number>();

  /** Records that `key`'s local transaction committed: the message must be delivered. */
  commit(key: string): void {
    this.#decided.set(key, 'committed');
  }

  /** Records that `key`'s transaction rolled back or never ran (unless it already committed): the message must never be delivered. */
  rollBack(key: string): void {
    if (!this.#decided.has(key)) this.#decided.set(key, 'rolled-back');
  }

  /** The decision for `key`, if made. */
  decision(key: string): 'committed' | 'rolled-back' | undefined {
    return this.#decided.get(key);
  }

  /** Every decided key with its decision. */
  decisions(): ReadonlyMap<string, 'committed' | 'rolled-back'> {
    return this.#decided;
  }

  /** The check-back answer: COMMIT or ROLLBACK once decided, UNKNOWN while the send is running. */
  verdict(key: string): CheckVerdict {
    const decision = this.#decided.get(key);
    if (decision === 'committed') return 'COMMIT';
    if (decision === 'rolled-back') return 'ROLLBACK';
    return 'UNKNOWN';
  }

  /** Counts one thing a send did, for the report. */
  note(happening: string): void {
    this.happenings.set(happening, (this.happenings.get(happening) ?? 0) + 1);
  }
}

/** The producer's check-back endpoint, answering from the ledger. */
export interface CheckServer {
  /** The URL to register as the producer's `checkUrl`. */
  url: string;
  /** Check-backs answered, by verdict. */
  answered: Record<CheckVerdict, number>;
  close(): Promise<void>;
}

/** Starts the check-back endpoint on an ephemeral port. */
export async function startCheckServer(ledger: Ledger, secret: string): Promise<CheckServer> {
  const answered: Record<CheckVerdict, number> = { COMMIT: 0, ROLLBACK: 0, UNKNOWN: 0 };
  const handle = checkHandler(
    (messageId) => {
      const verdict = ledger.verdict(messageId);
      answered[verdict] += 1;
      return verdict;
    },
    { secret },
  );
  const server: Server = createServer((request, response) => handle(request, response));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/rms/check`,
    answered,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** What {@link ProducerStream} needs. */
export interface ProducerStreamOptions {
  topic: string;
  /** One producer per RMS instance; key `i` goes through producer `i % length`. */
  producers: readonly RmsProducer[];
  /** Seeds the fates, so a seed repeats the stream. */
  seed: number;
  ledger: Ledger;
  /** Sends started per second. */
  ratePerSecond: number;
  /** Sends in flight at most; while RMS is unreachable the stream slows down rather than piling up. */
  maxInFlight: number;
}

/**
 * Sends keyed messages (`m-0`, `m-1`, …) at a steady rate, each with its planned fate,
 * recording every local decision in the ledger.
 */
export class ProducerStream {
  readonly #options: ProducerStreamOptions;
  readonly #random: SeededRandom;
  readonly #inFlight = new Set<Promise<void>>();
  /** The planned fate of every key started so far. */
  readonly planned = new Map<string, PlannedFate>();
  #stopped = false;
  #loop: Promise<void> | undefined;

  constructor(options: ProducerStreamOptions) {
    this.#options = options;
    // A stream of its own: the fates do not depend on how many faults were drawn.
    this.#random = new SeededRandom(options.seed ^ 0x5eed5eed);
  }

  /** Starts sending. */
  start(): void {
    this.#loop = this.#run();
  }

  /** Stops starting sends and waits for those in flight to finish. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#loop;
    await Promise.all(this.#inFlight);
  }

  async #run(): Promise<void> {
    const intervalMs = 1000 / this.#options.ratePerSecond;
    let due = Date.now();
    for (let i = 0; !this.#stopped; ) {
      if (this.#inFlight.size < this.#options.maxInFlight) {
        const sending = this.#send(i++);
        this.#inFlight.add(sending);
        void sending.finally(() => this.#inFlight.delete(sending));
      }
      due = Math.max(due + intervalMs, Date.now() - intervalMs);
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, due - Date.now())));
    }
  }

  #fate(): PlannedFate {
    let roll = this.#random.next();
    for (const [fate, share] of FATE_MIX) {
      if (roll < share) return fate;
      roll -= share;
    }
    return 'confirm';
  }

  async #send(i: number): Promise<void> {
    const { topic, producers, ledger } = this.#options;
    const key = `m-${i}`;
    const fate = this.#fate();
    this.planned.set(key, fate);
    const producer = producers[i % producers.length] as RmsProducer;
    const payload = { key, fate };
    try {
      switch (fate) {
        case 'confirm': {
          const sent = await producer.send(topic, payload, async () => ledger.commit(key), { messageId: key });
          ledger.note(sent.confirmed ? 'confirmed' : 'committed, confirm failed (check-back must COMMIT)');
          return;
        }
        case 'cancel':
          await producer.send(topic, payload, async () => {
            ledger.rollBack(key);
            throw new PlannedRollback(key);
          }, { messageId: key });
          return;
        case 'commit-unconfirmed':
          await producer.prepare(topic, payload, { messageId: key });
          ledger.commit(key);
          ledger.note('committed, left pending (check-back must COMMIT)');
          return;
        case 'rollback-unconfirmed':
          await producer.prepare(topic, payload, { messageId: key });
          ledger.rollBack(key);
          ledger.note('left pending, never committed (check-back must ROLLBACK)');
          return;
      }
    } catch (error) {
      if (error instanceof PlannedRollback) {
        ledger.note('rolled back, cancelled');
        return;
      }
      if (ledger.decision(key) === 'committed') {
        ledger.note(`committed, then the send threw ${(error as Error).name}`);
        return;
      }
      // The prepare failed for good (RMS unreachable through the retries): the local
      // transaction never ran. If the prepare did reach RMS, the check-back rolls it back.
      ledger.rollBack(key);
      ledger.note(`prepare failed: ${(error as Error).name}`);
    }
  }
}
