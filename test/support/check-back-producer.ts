/**
 * A fake producer's check endpoint that verifies RMS's signature and answers each check of
 * a message by its producer key and how many times that key was asked.
 */
import { verifyCheckSignature } from '@rms/client-sdk';
import { HttpRecorder } from './http-recorder.js';
import { TEST_APPS } from './rms-server.js';

/** A check-back verdict as a producer sends it. */
export type Verdict = 'COMMIT' | 'ROLLBACK' | 'UNKNOWN';

/**
 * Starts the endpoint (as the `orders` app, whose secret it verifies with).
 * @param answer the verdict for check number `count` (from 1) of the message with producer key `key`.
 */
export async function startCheckBackProducer(answer: (key: string, count: number) => Verdict): Promise<HttpRecorder> {
  const checks = new Map<string, number>();
  return HttpRecorder.start((request) => {
    const verdict = verifyCheckSignature({
      secret: TEST_APPS.orders.secret,
      timestamp: request.headers['x-rms-timestamp'] as string | undefined,
      signature: request.headers['x-rms-signature'] as string | undefined,
      body: request.body,
    });
    if (!verdict.valid) return { status: 401, body: { error: verdict.reason } };
    const key = String(request.json?.messageId);
    const count = (checks.get(key) ?? 0) + 1;
    checks.set(key, count);
    return { status: 200, body: { status: answer(key, count) } };
  });
}
