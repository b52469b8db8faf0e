/**
 * `npm run demo`: starts RMS on PostgreSQL (schema `rms_demo`) and walks a message
 * through its life over the real HTTP API, printing each step: prepare, idempotent
 * re-prepare, confirm, ack, cancel, a refused contradiction, and the admin listing.
 *
 * The orders → inventory demo with the client SDK replaces this walk-through once the
 * SDK exists (issue 4); it is already the same command.
 */
import { RmsServer, createLogger, loadConfig } from '@rms/message-service';

const STORE_URL = process.env['STORE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test?schema=rms_demo';
const APPS = [
  { app: 'orders', token: 'demo-orders-token-000', roles: ['producer'], checkUrl: 'http://127.0.0.1:3001/rms/check', secret: 'demo-orders-secret-000' },
  { app: 'inventory', token: 'demo-inventory-token-000', roles: ['consumer'] },
  { app: 'ops', token: 'demo-ops-token-0000000', roles: ['admin'] },
];
const TOKENS = { orders: APPS[0]!.token, inventory: APPS[1]!.token, ops: APPS[2]!.token };

const config = loadConfig({ ...process.env, STORE_URL, RMS_APPS: JSON.stringify(APPS), PORT: process.env['PORT'] ?? '0', LOG_LEVEL: 'warn' });
const server = await RmsServer.start({ config, logger: createLogger('warn') });
const base = `http://127.0.0.1:${server.port}`;

async function call(as: keyof typeof TOKENS, method: string, path: string, body?: unknown) {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${TOKENS[as]}`, 'content-type': 'application/json' },
    ...(body !== undefined && { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(10_000),
  });
  const json = (await response.json()) as Record<string, unknown> & { error?: { code: string; message: string } };
  const summary = json.error ? `${json.error.code}: ${json.error.message}` : `status ${String(json['status'] ?? '')}`;
  console.log(`  ${as.padEnd(9)} ${method.padEnd(6)} ${path.replace(/[0-9a-f-]{36}/, ':id').padEnd(30)} → ${response.status} ${summary}`);
  return json;
}

let failed: boolean;
try {
  console.log(`RMS is up on ${base} (store: ${STORE_URL.replace(/\?.*/, '')})\n`);
  const orderId = `order-${Date.now()}`;
  console.log('A paid order: prepare, confirm, the consumer acks');
  const paid = await call('orders', 'POST', '/v1/messages', { topic: 'stock.reduce', payload: { orderId, sku: 'A-1', qty: 2 }, messageId: orderId });
  await call('orders', 'POST', '/v1/messages', { topic: 'stock.reduce', payload: { orderId, sku: 'A-1', qty: 2 }, messageId: orderId });
  await call('orders', 'POST', `/v1/messages/${paid['id']}/confirm`);
  await call('inventory', 'POST', `/v1/messages/${paid['id']}/ack`);

  console.log('\nA failed payment: prepare, cancel; a late confirm is refused');
  const failedPayment = await call('orders', 'POST', '/v1/messages', { topic: 'stock.reduce', payload: { orderId: `${orderId}-b` } });
  await call('orders', 'DELETE', `/v1/messages/${failedPayment['id']}`);
  await call('orders', 'POST', `/v1/messages/${failedPayment['id']}/confirm`);

  console.log('\nThe admin view');
  const list = await call('ops', 'GET', '/v1/messages?topic=stock.reduce&limit=5');
  for (const message of list['messages'] as { id: string; status: string; createdAt: string }[]) {
    console.log(`  ${message.createdAt}  ${message.id}  ${message.status}`);
  }
  const completed = (await call('ops', 'GET', `/v1/messages/${paid['id']}`))['status'];
  const cancelled = (await call('ops', 'GET', `/v1/messages/${failedPayment['id']}`))['status'];
  failed = completed !== 'COMPLETED' || cancelled !== 'CANCELLED';
  console.log(`\n${failed ? 'UNEXPECTED' : 'OK'}: the paid order's message is ${completed}, the failed payment's is ${cancelled}.`);
} finally {
  await server.stop();
}
process.exit(failed ? 1 : 0);
