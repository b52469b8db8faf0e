/**
 * Small HTTP servers that play the other side in tests: a producer's check endpoint that
 * answers per message and records every call, and a webhook that records notifications.
 */
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A recorded request. */
export interface RecordedRequest {
  method: string;
  /** The request target: path and query. */
  path: string;
  headers: IncomingMessage['headers'];
  body: string;
  json: any;
  at: number;
}

/** Decides how to answer one request: status, extra headers and JSON body, optionally after a delay. */
export type Responder = (request: RecordedRequest) => { status: number; body?: unknown; delayMs?: number; headers?: Record<string, string> };

/** An HTTP server that records requests and answers with `respond`. */
export class HttpRecorder {
  readonly requests: RecordedRequest[] = [];
  private waiters: { predicate: () => boolean; resolve: () => void }[] = [];

  private constructor(
    private readonly server: Server,
    public respond: Responder,
  ) {}

  /** Starts on an ephemeral port. */
  static async start(respond: Responder): Promise<HttpRecorder> {
    const server = createServer((request, response) => void recorder.handle(request, response));
    const recorder = new HttpRecorder(server, respond);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return recorder;
  }

  /** `http://127.0.0.1:<port><path>`. */
  url(path = '/'): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}${path}`;
  }

  /** Resolves when `predicate` holds (checked after every request), or rejects after `timeoutMs`. */
  waitFor(predicate: () => boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
    if (predicate()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
      this.waiters.push({ predicate, resolve: () => (clearTimeout(timer), resolve()) });
    });
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    let body = '';
    for await (const chunk of request) body += String(chunk);
    let json: unknown;
    try {
      json = JSON.parse(body);
    } catch {
      json = null;
    }
    const recorded: RecordedRequest = { method: request.method ?? '', path: request.url ?? '', headers: request.headers, body, json, at: Date.now() };
    this.requests.push(recorded);
    const answer = this.respond(recorded);
    if (answer.delayMs) await new Promise((resolve) => setTimeout(resolve, answer.delayMs));
    if (!response.destroyed) {
      response.writeHead(answer.status, { 'content-type': 'application/json', ...answer.headers });
      response.end(answer.body === undefined ? '' : JSON.stringify(answer.body));
    }
    this.waiters = this.waiters.filter((waiter) => {
      if (!waiter.predicate()) return true;
      waiter.resolve();
      return false;
    });
  }
}
