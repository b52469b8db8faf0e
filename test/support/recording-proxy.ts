/**
 * An HTTP proxy in front of RMS that records every exchange it forwards: the SDK tests use
 * it to see which requests the SDK makes, with which `Prefer`, and what RMS answered.
 */
import { type IncomingMessage, type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request forwarded to RMS and RMS's answer to it. */
export interface ProxiedExchange {
  method: string;
  /** Path and query. */
  path: string;
  /** The request's `Prefer` header, if it had one. */
  prefer: string | undefined;
  /** The request's JSON body, or `null`. */
  request: any;
  /** RMS's status. */
  status: number;
  /** RMS's `Preference-Applied` header, if any. */
  preferenceApplied: string | null;
  /** RMS's JSON answer, or `null`. */
  answer: any;
}

/** How the proxy forwards. */
export interface RecordingProxyOptions {
  /**
   * Forward the `Prefer` header; `false` plays an RMS (or a proxy in between) that ignores
   * it, so RMS answers whole messages.
   * @defaultValue true
   */
  forwardPrefer?: boolean;
}

async function readBody(request: IncomingMessage): Promise<string> {
  let body = '';
  for await (const chunk of request) body += String(chunk);
  return body;
}

function parsed(text: string): any {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/** A recording HTTP proxy in front of RMS. */
export class RecordingProxy {
  /** Every exchange since the last `reset`, in the order the requests arrived (answers fill in as they come). */
  readonly exchanges: ProxiedExchange[] = [];

  private constructor(
    private readonly server: Server,
    readonly url: string,
    /** Every request forwarded since the last `reset`, as `METHOD /path`. */
    readonly requests: string[],
  ) {}

  static async start(target: string, options: RecordingProxyOptions = {}): Promise<RecordingProxy> {
    const forwarded = ['authorization', 'content-type', ...(options.forwardPrefer === false ? [] : ['prefer'])];
    const requests: string[] = [];
    const server = createServer((request, response) => {
      requests.push(`${request.method} ${request.url}`);
      const prefer = request.headers['prefer'];
      void readBody(request)
        .then(async (body) => {
          const headers = new Headers();
          for (const name of forwarded) {
            const value = request.headers[name];
            if (typeof value === 'string') headers.set(name, value);
          }
          const answer = await fetch(`${target}${request.url}`, { method: request.method ?? 'GET', headers, ...(body && { body }) });
          const text = await answer.text();
          const preferenceApplied = answer.headers.get('preference-applied');
          proxy.exchanges.push({
            method: request.method ?? '',
            path: request.url ?? '',
            prefer: typeof prefer === 'string' ? prefer : undefined,
            request: parsed(body),
            status: answer.status,
            preferenceApplied,
            answer: parsed(text),
          });
          response.writeHead(answer.status, {
            'content-type': answer.headers.get('content-type') ?? 'application/json',
            ...(preferenceApplied !== null && { 'preference-applied': preferenceApplied }),
          });
          response.end(text);
        })
        .catch(() => response.destroy());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const proxy = new RecordingProxy(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests);
    return proxy;
  }

  /** The requests seen since the last `reset`, with message ids replaced by `:id`. */
  seen(): string[] {
    return this.requests.map((request) => request.replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi, ':id'));
  }

  reset(): void {
    this.requests.length = 0;
    this.exchanges.length = 0;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
