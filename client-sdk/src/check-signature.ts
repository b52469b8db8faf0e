/**
 * Signing and verifying check-back requests (design section 5): RMS signs
 * `"<timestamp>.<body>"` with the producer's secret (HMAC-SHA256) and sends
 * `X-RMS-Timestamp` and `X-RMS-Signature: sha256=<hex>`; the producer verifies both the
 * signature and that the timestamp is recent, so a captured request cannot be replayed later.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

/** Header carrying the signing time, in milliseconds since the epoch. */
export const TIMESTAMP_HEADER = 'x-rms-timestamp';
/** Header carrying `sha256=<hex>`. */
export const SIGNATURE_HEADER = 'x-rms-signature';

/** How far a check-back's timestamp may be from the verifier's clock. @defaultValue 300000 (5 minutes) */
export const DEFAULT_SIGNATURE_TOLERANCE_MS = 5 * 60 * 1000;

/** `sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`. */
export function signCheckRequest(secret: string, timestamp: number | string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/** What `verifyCheckSignature` needs. */
export interface SignatureCheck {
  secret: string;
  /** The `X-RMS-Timestamp` header as received. */
  timestamp: string | undefined;
  /** The `X-RMS-Signature` header as received. */
  signature: string | undefined;
  /** The raw request body, exactly as received. */
  body: string;
  /** The verifier's clock. @defaultValue Date.now() */
  now?: number;
  /** Largest accepted clock difference. @defaultValue DEFAULT_SIGNATURE_TOLERANCE_MS */
  toleranceMs?: number;
}

/** The verdict, with the reason when it fails. */
export type SignatureVerdict = { valid: true } | { valid: false; reason: string };

/** Verifies a check-back request's signature and timestamp window, in constant time. */
export function verifyCheckSignature(check: SignatureCheck): SignatureVerdict {
  const { timestamp, signature } = check;
  if (!timestamp || !/^\d{1,16}$/.test(timestamp)) return { valid: false, reason: 'missing or malformed X-RMS-Timestamp' };
  if (!signature || !/^sha256=[0-9a-f]{64}$/.test(signature)) return { valid: false, reason: 'missing or malformed X-RMS-Signature' };
  const skew = Math.abs((check.now ?? Date.now()) - Number(timestamp));
  if (skew > (check.toleranceMs ?? DEFAULT_SIGNATURE_TOLERANCE_MS)) {
    return { valid: false, reason: `timestamp outside the accepted window (${skew} ms off)` };
  }
  const expected = Buffer.from(signCheckRequest(check.secret, timestamp, check.body));
  const given = Buffer.from(signature);
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) return { valid: false, reason: 'signature mismatch' };
  return { valid: true };
}
