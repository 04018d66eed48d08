/**
 * The bench upstream, run as its own process: `node --import tsx bench/upstream.ts <port>`.
 *
 * POST …/responses answers the ~1 KB JSON body (`stream:false`) or the 40-event SSE stream
 * (`stream:true`, one write per event). A request for model `gpt-bench-hold` gets response.created
 * and one delta, then is held open until `POST /__bench/release`, which completes every held stream.
 * `GET /__bench/held` says how many are held. It exits when its stdin closes (the runner is gone).
 */
import http from 'node:http';
import { HOLD_CLOSING, HOLD_MODEL, HOLD_OPENING, JSON_BODY, SSE_FRAMES } from './payloads.js';

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  process.stderr.write('usage: upstream.ts <port>\n');
  process.exit(2);
}

const JSON_HEADERS = { 'content-type': 'application/json', 'content-length': String(JSON_BODY.length) };
const SSE_HEADERS = { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' };
const held = new Set<http.ServerResponse>();

function answer(res: http.ServerResponse, body: string): void {
  // The request is small and fixed; a substring test stands in for parsing it in the hot path.
  const stream = body.includes('"stream":true');
  if (!stream) {
    res.writeHead(200, JSON_HEADERS);
    res.end(JSON_BODY);
    return;
  }
  res.writeHead(200, SSE_HEADERS);
  if (body.includes(`"model":"${HOLD_MODEL}"`)) {
    res.write(HOLD_OPENING);
    held.add(res);
    res.on('close', () => held.delete(res));
    return;
  }
  for (let i = 0; i < SSE_FRAMES.length - 1; i++) res.write(SSE_FRAMES[i]!);
  res.end(SSE_FRAMES[SSE_FRAMES.length - 1]!);
}

const server = http.createServer((req, res) => {
  const url = req.url ?? '/';
  if (url === '/__bench/held') {
    res.end(String(held.size));
    return;
  }
  if (url === '/__bench/release') {
    const n = held.size;
    for (const r of held) r.end(HOLD_CLOSING);
    held.clear();
    res.end(String(n));
    return;
  }
  if (req.method !== 'POST' || !url.endsWith('/responses')) {
    res.writeHead(404).end();
    return;
  }
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (c: string) => (body += c));
  req.on('end', () => answer(res, body));
});
// Proxies keep idle upstream connections for a minute or more (nginx: 60 s): never close first.
server.keepAliveTimeout = 10 * 60_000;
server.headersTimeout = 10 * 60_000 + 1000;
server.requestTimeout = 0;
server.listen(port, '127.0.0.1', () => process.stdout.write(`bench upstream on ${port}\n`));

process.stdin.resume();
process.stdin.on('close', () => process.exit(0));
process.stdin.on('end', () => process.exit(0));
// An orderly exit, so that node --cpu-prof writes its profile.
process.on('SIGTERM', () => process.exit(0));
