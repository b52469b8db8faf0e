/**
 * `/healthz` (the process answers) and `/readyz` (every dependency answers).
 */
import { Router } from 'express';

/** One dependency `/readyz` reports on. */
export interface ReadinessCheck {
  /** The name shown in the report: `store`, `rabbitmq`, ... */
  name: string;
  /**
   * Whether RMS is not ready while this is down. RabbitMQ is not required while RMS can
   * deliver through Redis, for instance: it is reported, but does not fail `/readyz`.
   * @defaultValue true
   */
  required?: boolean;
  /** Resolves with details when the dependency works; rejects when it does not. */
  check(): Promise<Record<string, unknown> | void>;
}

/** Options of the health routes. */
export interface HealthRoutesOptions {
  checks: ReadinessCheck[];
  /** A check that takes longer counts as down. @defaultValue 2000 */
  timeoutMs?: number;
}

async function runCheck(check: ReadinessCheck, timeoutMs: number): Promise<Record<string, unknown>> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    const details = await Promise.race([
      check.check(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    return { status: 'up', latencyMs: Math.round(performance.now() - started), ...(details ?? {}) };
  } catch (error) {
    return { status: 'down', error: error instanceof Error ? error.message : String(error) };
  } finally {
    clearTimeout(timer);
  }
}

/** The `/healthz` and `/readyz` routes; no authentication. */
export function healthRoutes({ checks, timeoutMs = 2000 }: HealthRoutesOptions): Router {
  const router = Router();
  router.get('/healthz', (_request, response) => {
    response.json({ status: 'ok' });
  });
  router.get('/readyz', async (_request, response) => {
    const results = await Promise.all(checks.map(async (check) => [check.name, await runCheck(check, timeoutMs), check.required ?? true] as const));
    const ready = results.every(([, result, required]) => !required || result['status'] === 'up');
    response.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'not ready', dependencies: Object.fromEntries(results.map(([name, result]) => [name, result])) });
  });
  return router;
}
