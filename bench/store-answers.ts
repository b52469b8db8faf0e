/**
 * What a write's answer costs RMS: the same conditional writes through `transitionMany`
 * (the whole row sent back and parsed, `RETURNING *`) and through `moveMany` (`RETURNING
 * id, version`), alternating, in batches as the coalescing store makes them, on a schema of
 * their own. Reports this process's CPU (user + system) per write for each, which is where
 * the answer is parsed; the database's side is not included.
 *
 * Usage: `node --conditions=rms-source --import tsx bench/store-answers.ts [messages] [batch]`
 * (10000 messages in batches of 50). Setting: BENCH_POSTGRES_URL (or TEST_POSTGRES_URL).
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { v7 as uuidv7 } from 'uuid';
import { type Message, type NewMessage, PostgresMessageStore, type Transition } from '@rms/message-service';

const postgresUrl = process.env['BENCH_POSTGRES_URL'] ?? process.env['TEST_POSTGRES_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const total = Number(process.argv[2] ?? 10_000);
const batch = Number(process.argv[3] ?? 50);
const schema = `bench_answers_${randomBytes(3).toString('hex')}`;

/** A message as an RMS prepare makes it: a small order payload, a header, a trace context. */
function newMessage(i: number): NewMessage {
  const createdAt = new Date();
  return {
    id: uuidv7(),
    producer: 'orders',
    producerMessageId: `order-${i}`,
    topic: 'orders.paid',
    payload: { orderId: i, customer: `c-${i % 97}`, lines: [{ sku: 'A-1', qty: 2 }, { sku: 'B-7', qty: 1 }], total: 41.5 },
    headers: { 'content-kind': 'order' },
    createdAt,
    nextAttemptAt: new Date(createdAt.getTime() + 60_000),
    traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
  };
}

/** The confirm's write as the service makes it: one delivery, round 1 recorded, under the read version. */
function confirmOf(message: Message): Transition {
  const at = new Date();
  const deadline = new Date(at.getTime() + 241_000);
  return {
    id: message.id,
    from: { status: 'PENDING', deadReason: null },
    to: 'SENDING',
    deadReason: null,
    at,
    version: message.version,
    set: {
      confirmedAt: at,
      nextAttemptAt: deadline,
      lastError: null,
      deliveries: [{ group: 'default', status: 'SENDING', attempts: 1, nextAttemptAt: deadline, lastTransport: 'rabbitmq', lastError: null, ackedAt: null }],
      deliveryAttempts: 1,
      lastTransport: 'rabbitmq',
      lastPublishedAt: at,
    },
  };
}

function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

async function main(): Promise<void> {
  const url = new URL(postgresUrl);
  url.searchParams.set('schema', schema);
  const store = new PostgresMessageStore({ url: url.toString() });
  await store.init();
  try {
    const messages: Message[] = [];
    for (let i = 0; i < total; i += 500) {
      const inserted = await store.insertMany(Array.from({ length: Math.min(500, total - i) }, (_, j) => newMessage(i + j)));
      for (const outcome of inserted) if (outcome.status === 'fulfilled') messages.push(outcome.value.message);
    }
    const spent = { transition: 0, move: 0 };
    const written = { transition: 0, move: 0 };
    for (let i = 0; i < messages.length; i += batch) {
      const kind = (i / batch) % 2 === 0 ? 'transition' : 'move';
      const changes = messages.slice(i, i + batch).map(confirmOf);
      const before = cpuMs();
      const outcomes = kind === 'transition' ? await store.transitionMany(changes) : await store.moveMany(changes);
      spent[kind] += cpuMs() - before;
      written[kind] += outcomes.filter((outcome) => outcome.status === 'fulfilled' && outcome.value !== null).length;
    }
    const per = (kind: 'transition' | 'move') => Math.round((spent[kind] / written[kind]) * 1000) / 1000;
    console.log(JSON.stringify({ messages: total, batch, cpuMsPerWrite: { transitionMany: per('transition'), moveMany: per('move') }, written }, null, 2));
  } finally {
    await store.close();
    const client = new pg.Client({ connectionString: postgresUrl });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await client.end();
  }
}

await main();
