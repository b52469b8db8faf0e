/**
 * Reading a request body as JSON, per route: only routes that take a body read one, each
 * with its own size limit, and only after authentication and the role check have passed,
 * so an anonymous or unauthorised caller never makes RMS parse a large body.
 */
import express, { type RequestHandler } from 'express';

/** Room in a request body for the topic, headers and key around the payload. */
export const ENVELOPE_ALLOWANCE_BYTES = 64 * 1024;

/**
 * Largest body of a batch prepare (`POST /v1/messages/batch`); each of its messages is
 * still held to the payload limit. The SDK keeps its batches under 1 MiB of payload.
 */
export const BATCH_BODY_LIMIT_BYTES = 4 * 1024 * 1024;

/** Largest body of a request that carries ids only (`/v1/confirms`, `/v1/acks`): 1,000 UUIDs fit with room. */
export const ID_LIST_BODY_LIMIT_BYTES = 128 * 1024;

/** Largest body of a request with a few small options (heartbeat, topic resend). */
export const SMALL_BODY_LIMIT_BYTES = 4 * 1024;

/**
 * Middleware: parses the body as JSON, whatever its Content-Type (`curl -d` sends a form
 * type by default), refusing a body over `limitBytes` with 413.
 */
export function jsonBody(limitBytes: number): RequestHandler {
  return express.json({ limit: limitBytes, type: () => true, strict: false });
}
