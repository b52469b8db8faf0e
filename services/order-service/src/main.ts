/**
 * Runs the order service on its own: `ORDER_PORT` [3001], `ORDER_DB_URL`
 * [postgres://postgres@127.0.0.1:5432/test], `ORDER_DB_SCHEMA` [orders], `RMS_URL`
 * [http://127.0.0.1:8080], `RMS_TOKEN`, `RMS_CHECK_SECRET` (as registered in RMS_APPS).
 */
import { OrderService } from './order-service.js';

const required = (name: string): string => {
  const value = process.env[name];
  if (!value) {
    process.stderr.write(`order-service: ${name} is required\n`);
    process.exit(2);
  }
  return value;
};

const service = await OrderService.start({
  port: Number(process.env['ORDER_PORT'] ?? 3001),
  databaseUrl: process.env['ORDER_DB_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test',
  schema: process.env['ORDER_DB_SCHEMA'] ?? 'orders',
  rmsUrl: process.env['RMS_URL'] ?? 'http://127.0.0.1:8080',
  rmsToken: required('RMS_TOKEN'),
  checkSecret: required('RMS_CHECK_SECRET'),
});
process.stdout.write(`order-service listening on ${service.port}\n`);
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => void service.stop().then(() => process.exit(0)));
}
