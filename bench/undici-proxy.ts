/**
 * The stretch baseline: a minimal pass-through on undici, run as its own process:
 * `node --import tsx bench/undici-proxy.ts <port> <upstream origin>`. It forwards the method, path,
 * headers (minus hop-by-hop ones) and body through one undici Agent (keep-alive, pipelining 1) and
 * streams the answer back. No routing, no auth, no parsing, no logs. It exits when its stdin closes.
 *
 * It uses `Agent.dispatch` with a handler: the primitive undici's request()/stream() are built on,
 * so per request it costs one handler object and the header arrays, with no promise, no Readable
 * and no factory callback; the client's request is the body stream, and backpressure is the
 * controller's pause/resume against `res.write`.
 */
import http from 'node:http';
import { Agent, type Dispatcher } from 'undici';
import { HOP_BY_HOP } from '../core/proxy/headers.js';
import { heapRoute } from './heap-sampler.mjs';

const port = Number(process.argv[2]);
const origin = process.argv[3];
if (!Number.isInteger(port) || port <= 0 || origin === undefined) {
  process.stderr.write('usage: undici-proxy.ts <port> <upstream origin>\n');
  process.exit(2);
}

// Keep-alive as bare-proxy.ts's agent (10 s), unlimited connections, one request per connection at a time.
const agent = new Agent({ pipelining: 1, keepAliveTimeout: 10_000 });

/** The client's raw header pairs without hop-by-hop ones, as the flat array undici takes. */
function requestHeaders(raw: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    if (!HOP_BY_HOP.has(raw[i]!.toLowerCase())) out.push(raw[i]!, raw[i + 1]!);
  }
  return out;
}

function responseHeaders(headers: http.IncomingHttpHeaders): http.OutgoingHttpHeaders {
  for (const name of HOP_BY_HOP) delete headers[name];
  return headers;
}

function forward(req: http.IncomingMessage, res: http.ServerResponse): void {
  const method = req.method ?? 'GET';
  const hasBody = method !== 'GET' && method !== 'HEAD';
  let controller: Dispatcher.DispatchController | undefined;
  const handler: Dispatcher.DispatchHandler = {
    onRequestStart(c) {
      controller = c;
    },
    onResponseStart(c, statusCode, headers) {
      res.writeHead(statusCode, responseHeaders(headers));
      res.on('drain', () => c.resume());
    },
    onResponseData(c, chunk) {
      if (!res.write(chunk)) c.pause();
    },
    onResponseEnd() {
      res.end();
    },
    onResponseError(_c, _err) {
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    },
  };
  // A client that goes away stops the upstream request.
  res.on('close', () => {
    if (!res.writableFinished && controller !== undefined && !controller.aborted)
      controller.abort(new Error('client closed'));
  });
  agent.dispatch(
    {
      origin,
      path: req.url ?? '/',
      method: method as Dispatcher.HttpMethod,
      headers: requestHeaders(req.rawHeaders),
      body: hasBody ? req : null,
    },
    handler,
  );
}

const server = http.createServer((req, res) => {
  if (!heapRoute(req, res)) forward(req, res);
});
server.keepAliveTimeout = 65_000; // tapgate's default, as bare-proxy.ts
server.listen(port, '127.0.0.1', () => process.stdout.write(`undici pass-through on ${port}\n`));

process.stdin.resume();
process.stdin.on('close', () => process.exit(0));
process.stdin.on('end', () => process.exit(0));
// An orderly exit, so that node --cpu-prof writes its profile.
process.on('SIGTERM', () => process.exit(0));
