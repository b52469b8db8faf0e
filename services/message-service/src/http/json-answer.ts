/**
 * Writing a JSON answer on the per-message routes. Express's `res.json` goes through
 * `res.send`, which looks the Content-Type up and re-formats it twice (mime-types,
 * content-type), weighs an ETag and the request's freshness, and sizes the body: work for
 * cacheable pages, not for API answers that are never cached. This writes the same
 * headers (`Content-Type: application/json; charset=utf-8`, `Content-Length`) and the
 * body in one `end`, so node sends headers and body in one socket write.
 */
import type { ServerResponse } from 'node:http';

const JSON_CONTENT_TYPE = 'application/json; charset=utf-8';

/** Answers `status` with `body` as JSON. */
export function sendJson(response: ServerResponse, body: unknown, status = 200): void {
  const text = JSON.stringify(body);
  response.statusCode = status;
  response.setHeader('Content-Type', JSON_CONTENT_TYPE);
  response.setHeader('Content-Length', Buffer.byteLength(text));
  response.end(text);
}
