/**
 * Runs the inventory service on its own: `INVENTORY_PORT` [3002], `INVENTORY_DB_URL`
 * [postgres://postgres@127.0.0.1:5432/test], `INVENTORY_DB_SCHEMA` [inventory], `RMS_URL`
 * [http://127.0.0.1:8080], `RMS_TOKEN` (a consumer app's), `RABBITMQ_URL`
 * [amqp://guest:guest@127.0.0.1:5672], `ZK_CONNECT` [127.0.0.1:2181], `RMS_ZK_ROOT` [/rms],
 * `REDIS_URL` [redis://127.0.0.1:6379] (the MQ-outage fallback).
 */
import { InventoryService } from './inventory-service.js';

const token = process.env['RMS_TOKEN'];
if (!token) {
  process.stderr.write('inventory-service: RMS_TOKEN is required\n');
  process.exit(2);
}
const service = await InventoryService.start({
  port: Number(process.env['INVENTORY_PORT'] ?? 3002),
  databaseUrl: process.env['INVENTORY_DB_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test',
  schema: process.env['INVENTORY_DB_SCHEMA'] ?? 'inventory',
  rmsUrl: process.env['RMS_URL'] ?? 'http://127.0.0.1:8080',
  rmsToken: token,
  amqpUrl: process.env['RABBITMQ_URL'] ?? 'amqp://guest:guest@127.0.0.1:5672',
  // Pop the Redis fallback lists while RMS's degrade flag is on.
  fallback: {
    zkConnect: process.env['ZK_CONNECT'] ?? '127.0.0.1:2181',
    zkRoot: process.env['RMS_ZK_ROOT'] ?? '/rms',
    redisUrl: process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379',
  },
});
process.stdout.write(`inventory-service listening on ${service.port}\n`);
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => void service.stop().then(() => process.exit(0)));
}
