/**
 * Why a publish failed. Every class is a `TransportError`; callers that only need "it did
 * not get through, try again later" catch that, and the failover detector counts them all.
 */

/** Machine-readable reason of a `TransportError`. */
export type TransportErrorCode = 'UNAVAILABLE' | 'NACKED' | 'CONFIRM_TIMEOUT' | 'CHANNEL_CLOSED' | 'BLOCKED' | 'CLOSED';

/** A publish did not get through. */
export class TransportError extends Error {
  /** Why. */
  readonly code: TransportErrorCode;
  /** Which transport failed. */
  readonly transport: string;

  constructor(transport: string, code: TransportErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'TransportError';
    this.transport = transport;
    this.code = code;
  }
}
