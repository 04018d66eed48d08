/**
 * Raw HTTP clients for proxy tests: `http.request` with no agent (so nothing is pooled or retried),
 * keeping the exact bytes received and telling a clean end from a truncated one; a raw TCP client
 * that can stop reading; and a small SSE parser for assertions.
 */
import http from 'node:http';
import net from 'node:net';
import { CLIENT_KEY } from './gateway.js';
import { recordOutput } from './secret-scan.js';

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** Every body byte the client read, in order. */
  body: Buffer;
  /** The body ended cleanly (full content-length, or the terminating chunk). */
  complete: boolean;
  /** The error the response (or request) reported, when it did not end cleanly. */
  error: Error | undefined;
  text(): string;
  json(): Record<string, unknown>;
}

export interface RawRequestOptions {
  method?: string;
  path: string;
  headers?: http.OutgoingHttpHeaders;
  /** Sent in one write, with a content-length (unless `headers` say otherwise). */
  body?: Buffer | string;
  /** Sent as separate writes with no content-length: a chunked upload. */
  chunks?: (Buffer | string)[];
}

/**
 * One request; resolves when the response ends or breaks, never rejects once headers arrived.
 * Rejects only if the request fails before any response (e.g. connection refused).
 */
export function rawRequest(baseUrl: string, opts: RawRequestOptions): Promise<RawResponse> {
  const url = new URL(opts.path, baseUrl);
  const headers: http.OutgoingHttpHeaders = { ...opts.headers };
  if (
    opts.body !== undefined &&
    headers['content-length'] === undefined &&
    headers['transfer-encoding'] === undefined
  ) {
    headers['content-length'] = Buffer.byteLength(opts.body);
  }
  return new Promise((resolve, reject) => {
    const req = http.request({
      method: opts.method ?? 'POST',
      hostname: url.hostname,
      port: url.port,
      path: url.pathname + url.search,
      headers,
      agent: false,
    });
    let settled = false;
    req.on('error', (err) => {
      if (!settled) {
        settled = true;
        reject(err);
      }
    });
    req.on('response', (res) => {
      settled = true;
      const chunks: Buffer[] = [];
      let error: Error | undefined;
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', (err) => (error ??= err));
      res.on('close', () => {
        const body = Buffer.concat(chunks);
        recordOutput(
          'response',
          () => `${res.statusCode} ${JSON.stringify(res.headers)}\n${body.toString('latin1')}`,
        );
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body,
          complete: res.complete,
          error,
          text: () => body.toString('utf8'),
          json: () => JSON.parse(body.toString('utf8')) as Record<string, unknown>,
        });
      });
    });
    if (opts.chunks !== undefined) {
      for (const c of opts.chunks) req.write(c);
      req.end();
    } else {
      req.end(opts.body);
    }
  });
}

/** The usual authenticated JSON POST to the gateway. */
export function postJson(
  baseUrl: string,
  path: string,
  body: unknown,
  headers: http.OutgoingHttpHeaders = {},
): Promise<RawResponse> {
  return rawRequest(baseUrl, {
    path,
    headers: { authorization: `Bearer ${CLIENT_KEY}`, 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body),
  });
}

/** A listening port that nothing listens on any more: connecting to it is refused. */
export async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

export interface SseMessage {
  event: string | undefined;
  data: string;
  json: Record<string, unknown>;
}

/** Parses a whole SSE body (LF line ends). Comment-only frames are skipped; data must be JSON. */
export function parseSse(text: string): SseMessage[] {
  const out: SseMessage[] = [];
  for (const frame of text.split('\n\n')) {
    let event: string | undefined;
    const data: string[] = [];
    for (const line of frame.split('\n')) {
      if (line === '' || line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const name = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (name === 'event') event = value;
      else if (name === 'data') data.push(value);
    }
    if (event === undefined && data.length === 0) continue;
    const joined = data.join('\n');
    out.push({ event, data: joined, json: JSON.parse(joined) as Record<string, unknown> });
  }
  return out;
}

/** A parsed HTTP/1.1 response read off a raw socket. */
export interface ParsedHttpResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  /** The body was complete (all chunks and the terminating one, or the full content-length). */
  complete: boolean;
}

/** Parses the bytes of one HTTP/1.1 response: status, headers, and a chunked or sized body. */
export function parseHttpResponse(bytes: Buffer): ParsedHttpResponse {
  const headEnd = bytes.indexOf('\r\n\r\n');
  if (headEnd < 0) throw new Error('no complete response head');
  const lines = bytes.subarray(0, headEnd).toString('latin1').split('\r\n');
  const status = Number(lines[0]!.split(' ')[1]);
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':');
    headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  let rest = bytes.subarray(headEnd + 4);
  if (headers['transfer-encoding'] === 'chunked') {
    const parts: Buffer[] = [];
    for (;;) {
      const eol = rest.indexOf('\r\n');
      if (eol < 0) return { status, headers, body: Buffer.concat(parts), complete: false };
      const size = parseInt(rest.subarray(0, eol).toString('latin1'), 16);
      if (size === 0) return { status, headers, body: Buffer.concat(parts), complete: true };
      if (rest.length < eol + 2 + size + 2) {
        parts.push(rest.subarray(eol + 2, Math.min(rest.length, eol + 2 + size)));
        return { status, headers, body: Buffer.concat(parts), complete: false };
      }
      parts.push(rest.subarray(eol + 2, eol + 2 + size));
      rest = rest.subarray(eol + 2 + size + 2);
    }
  }
  const length = headers['content-length'] === undefined ? undefined : Number(headers['content-length']);
  return {
    status,
    headers,
    body: length === undefined ? rest : rest.subarray(0, length),
    complete: length === undefined || rest.length >= length,
  };
}

/** Serialises a request for a raw socket. */
export function rawHttpRequest(
  method: string,
  path: string,
  host: string,
  headers: Record<string, string>,
  body: Buffer | string = '',
): Buffer {
  const b = Buffer.from(body);
  let head = `${method} ${path} HTTP/1.1\r\nhost: ${host}\r\n`;
  for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
  if (b.length > 0) head += `content-length: ${b.length}\r\n`;
  return Buffer.concat([Buffer.from(head + '\r\n', 'latin1'), b]);
}

/** Connects a raw TCP socket to a gateway URL. */
export function connectRaw(baseUrl: string): Promise<net.Socket> {
  const url = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(url.port), url.hostname);
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

/** Reads a socket until the peer closes it; resolves with every byte. */
export function readToEnd(socket: net.Socket): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => {});
    socket.on('close', () => {
      const bytes = Buffer.concat(chunks);
      recordOutput('response', () => bytes.toString('latin1'));
      resolve(bytes);
    });
    socket.resume();
  });
}

/** Fails with `what` if `p` has not settled within `ms`: turns a hang into a clear failure. */
export function deadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: still pending after ${ms}ms`)), ms);
  });
  return Promise.race([p, expired]).finally(() => clearTimeout(timer));
}
