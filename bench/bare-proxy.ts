/**
 * The baseline: a bare http-proxy-3 pass-through, run as its own process:
 * `node --import tsx bench/bare-proxy.ts <port> <upstream origin>`. No routing, no auth, no parsing,
 * no logs; the same keep-alive agent settings and server timeouts as tapgate's, so the comparison is
 * about what tapgate does per request. It exits when its stdin closes.
 */
import http from 'node:http';
import { createProxyServer } from 'http-proxy-3';
import { heapRoute } from './heap-sampler.mjs';

const port = Number(process.argv[2]);
const target = process.argv[3];
if (!Number.isInteger(port) || port <= 0 || target === undefined) {
  process.stderr.write('usage: bare-proxy.ts <port> <upstream origin>\n');
  process.exit(2);
}

// As core/pool/upstream.ts: without a keep-alive agent http-proxy-3 sends `connection: close`.
const agent = new http.Agent({
  keepAlive: true,
  keepAliveMsecs: 10_000,
  maxFreeSockets: 256,
  scheduling: 'lifo',
});
const proxy = createProxyServer({ target, agent, xfwd: false });
proxy.on('error', (_err, _req, res) => {
  if (res instanceof http.ServerResponse && !res.headersSent) res.writeHead(502).end();
  else res.destroy();
});

// heapRoute: GET /__bench/heap/{start,stop}, the bench's allocation probe (bench/heap-sampler.mjs).
const server = http.createServer((req, res) => {
  if (!heapRoute(req, res)) proxy.web(req, res);
});
server.keepAliveTimeout = 65_000; // tapgate's default
server.listen(port, '127.0.0.1', () => process.stdout.write(`bare http-proxy-3 on ${port}\n`));

process.stdin.resume();
process.stdin.on('close', () => process.exit(0));
process.stdin.on('end', () => process.exit(0));
// An orderly exit, so that node --cpu-prof writes its profile.
process.on('SIGTERM', () => process.exit(0));
