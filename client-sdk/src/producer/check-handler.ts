/**
 * The producer's end of the check-back (design section 5): RMS asks "did the transaction
 * behind this message commit?" and the app's resolver answers. The handler verifies the
 * request's signature and timestamp over the raw body before the resolver sees anything,
 * and turns every resolver failure into `UNKNOWN`, which makes RMS ask again later.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { SIGNATURE_HEADER, TIMESTAMP_HEADER, verifyCheckSignature } from '../check-signature.js';
import { type SdkLogger, silentLogger } from '../logger.js';

/** The producer's answer: committed, rolled back, or not known yet (RMS asks again). */
export type CheckVerdict = 'COMMIT' | 'ROLLBACK' | 'UNKNOWN';

/** What RMS asks about: the check-back request's body. */
export interface CheckQuery {
  /** The producer's idempotency key given at prepare, or RMS's id when none was given. */
  messageId: string;
  /** RMS's id of the message (`message.id` in `send`); `messageId` when RMS did not send one. */
  id: string;
  topic: string;
  headers: Record<string, string>;
  /** When the message was prepared, ISO 8601. */
  createdAt: string;
  /** Which check-back this is, from 1. */
  attempt: number;
}

/**
 * Decides whether the local transaction behind a message committed. Answer `COMMIT` or
 * `ROLLBACK` only when sure; `UNKNOWN` (or throwing) makes RMS ask again later.
 */
export type CheckResolver = (messageId: string, topic: string, query: CheckQuery) => CheckVerdict | Promise<CheckVerdict>;

/** Options of the check-back handler. */
export interface CheckHandlerOptions {
  /** The app's HMAC secret, as registered with RMS. */
  secret: string;
  /** Largest accepted difference between `X-RMS-Timestamp` and this host's clock. @defaultValue 300000 (5 minutes) */
  toleranceMs?: number;
  /** Receives rejected requests and resolver failures. @defaultValue silentLogger */
  logger?: SdkLogger;
}

/** A check-back request as any framework can supply it: the headers and the raw body, exactly as received. */
export interface RawCheckRequest {
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** The answer to send back: an HTTP status and a JSON body. */
export interface CheckResponse {
  status: number;
  body: unknown;
}

/** A request handler for express (`app.post(path, handler)`) or plain `node:http` (`createServer(handler)`). */
export type CheckMiddleware = (req: IncomingMessage & { body?: unknown }, res: ServerResponse, next?: (error?: unknown) => void) => void;

/** Check-back bodies are a few hundred bytes; anything far larger is not from RMS. */
const MAX_BODY_BYTES = 1024 * 1024;

const VERDICTS: ReadonlySet<unknown> = new Set<CheckVerdict>(['COMMIT', 'ROLLBACK', 'UNKNOWN']);

const PARSED_BODY_MESSAGE =
  'the RMS check handler needs the raw request body to verify its signature, but a body parser already parsed it: ' +
  "mount the check handler before express.json() (or any parser), or give its route express.raw({ type: '*/*' })";

/**
 * Answers one check-back request, framework-free: 401 `{error}` when the signature or the
 * timestamp window fails (the resolver is not called), 400 `{error}` when the body is not
 * a check-back query, otherwise 200 `{status: verdict}`. A resolver that throws or returns
 * anything but a verdict gives 200 `{status: 'UNKNOWN'}` and a log entry, never a 5xx: RMS
 * treats UNKNOWN as "ask again later", which is what a passing failure needs.
 *
 * @param request - the headers (any case) and the raw body exactly as received; a body
 *   re-serialised from parsed JSON will not match the signature.
 */
export async function handleCheckRequest(request: RawCheckRequest, resolve: CheckResolver, options: CheckHandlerOptions): Promise<CheckResponse> {
  const logger = options.logger ?? silentLogger;
  const signature = verifyCheckSignature({
    secret: options.secret,
    timestamp: header(request.headers, TIMESTAMP_HEADER),
    signature: header(request.headers, SIGNATURE_HEADER),
    body: request.body,
    ...(options.toleranceMs !== undefined && { toleranceMs: options.toleranceMs }),
  });
  if (!signature.valid) {
    logger.warn({ reason: signature.reason }, 'RMS check-back rejected: bad signature');
    return { status: 401, body: { error: `invalid check-back signature: ${signature.reason}` } };
  }

  const query = parseQuery(request.body);
  if (typeof query === 'string') {
    logger.warn({ reason: query }, 'RMS check-back rejected: malformed body');
    return { status: 400, body: { error: `malformed check-back body: ${query}` } };
  }

  let verdict: unknown;
  try {
    verdict = await resolve(query.messageId, query.topic, query);
  } catch (error) {
    logger.error({ messageId: query.messageId, topic: query.topic, err: error }, 'RMS check-back resolver threw; answering UNKNOWN');
    return { status: 200, body: { status: 'UNKNOWN' } };
  }
  if (!VERDICTS.has(verdict)) {
    logger.error(
      { messageId: query.messageId, topic: query.topic, verdict },
      'RMS check-back resolver returned no verdict (COMMIT, ROLLBACK or UNKNOWN); answering UNKNOWN',
    );
    return { status: 200, body: { status: 'UNKNOWN' } };
  }
  return { status: 200, body: { status: verdict } };
}

/**
 * The check-back endpoint as a request handler, for express or plain `node:http`.
 *
 * It needs the raw body to verify the signature. It reads the request stream itself, so
 * mount it before any body parser; behind `express.raw()` or `express.text()` it uses the
 * `Buffer` or string they left in `req.body`. Behind `express.json()` the raw body is gone,
 * so it answers 500 with a message saying how to mount it. Non-POST requests get 405.
 * `next` receives only failures to read the request (a client that aborted); without
 * `next` the handler answers 500 itself.
 */
export function checkHandler(resolve: CheckResolver, options: CheckHandlerOptions): CheckMiddleware {
  const logger = options.logger ?? silentLogger;
  return (req, res, next) => {
    void (async () => {
      if (req.method !== 'POST') {
        res.setHeader('allow', 'POST');
        return sendJson(res, { status: 405, body: { error: 'the RMS check handler answers POST only' } });
      }
      const body = await rawBody(req);
      if (body === TOO_LARGE) return sendJson(res, { status: 413, body: { error: `check-back body larger than ${MAX_BODY_BYTES} bytes` } });
      if (body === ALREADY_PARSED) {
        logger.error({}, PARSED_BODY_MESSAGE);
        return sendJson(res, { status: 500, body: { error: PARSED_BODY_MESSAGE } });
      }
      sendJson(res, await handleCheckRequest({ headers: req.headers, body }, resolve, options));
    })().catch((error: unknown) => {
      if (next) return next(error);
      logger.error({ err: error }, 'RMS check handler failed');
      if (!res.headersSent && !res.destroyed) sendJson(res, { status: 500, body: { error: 'check handler failed' } });
    });
  };
}

const TOO_LARGE = Symbol('too large');
const ALREADY_PARSED = Symbol('already parsed');

/** The raw body: from a raw or text parser's `req.body`, else from the stream. */
async function rawBody(req: IncomingMessage & { body?: unknown }): Promise<string | typeof TOO_LARGE | typeof ALREADY_PARSED> {
  const given = req.body;
  if (Buffer.isBuffer(given)) return given.toString('utf8');
  if (typeof given === 'string') return given;
  // Express 4's parsers leave `{}` on requests they skipped without reading the stream;
  // only a body that was actually read (`_body`, or a drained stream) is lost to us.
  if (given !== undefined && given !== null && ((req as { _body?: unknown })._body === true || req.readableEnded)) return ALREADY_PARSED;

  const chunks: Buffer[] = [];
  let size = 0;
  let tooLarge = false;
  for await (const chunk of req as AsyncIterable<Buffer | string>) {
    const buffer = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    size += buffer.length;
    // Keep draining, so the answer can still be written on this connection.
    if (size > MAX_BODY_BYTES) tooLarge = true;
    else chunks.push(buffer);
  }
  return tooLarge ? TOO_LARGE : Buffer.concat(chunks).toString('utf8');
}

function sendJson(res: ServerResponse, answer: CheckResponse): void {
  const text = JSON.stringify(answer.body);
  res.statusCode = answer.status;
  res.setHeader('content-type', 'application/json; charset=utf-8');
  res.setHeader('content-length', Buffer.byteLength(text));
  res.end(text);
}

/** One header, looked up in any case; a repeated header counts as missing. */
function header(headers: RawCheckRequest['headers'], name: string): string | undefined {
  let value = headers[name];
  if (value === undefined) {
    const key = Object.keys(headers).find((candidate) => candidate.toLowerCase() === name);
    value = key === undefined ? undefined : headers[key];
  }
  if (Array.isArray(value)) return value.length === 1 ? value[0] : undefined;
  return value;
}

/** The check-back query, or why the body is not one. */
function parseQuery(body: string): CheckQuery | string {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    return 'not JSON';
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return 'not a JSON object';
  const fields = json as Record<string, unknown>;
  const { messageId, id, topic, headers, createdAt, attempt } = fields;
  if (typeof messageId !== 'string' || messageId === '') return '"messageId" must be a non-empty string';
  if (id !== undefined && (typeof id !== 'string' || id === '')) return '"id" must be a non-empty string';
  if (typeof topic !== 'string' || topic === '') return '"topic" must be a non-empty string';
  if (typeof headers !== 'object' || headers === null || Array.isArray(headers) || !Object.values(headers).every((v) => typeof v === 'string')) {
    return '"headers" must be an object of strings';
  }
  if (typeof createdAt !== 'string') return '"createdAt" must be a string';
  if (typeof attempt !== 'number' || !Number.isInteger(attempt) || attempt < 1) return '"attempt" must be a positive integer';
  return { messageId, id: id ?? messageId, topic, headers: headers as Record<string, string>, createdAt, attempt };
}
