/**
 * Failed-login floods against an in-process gateway with its default settings (issue 11, items 7
 * and 8): `node --import tsx bench/auth-flood.ts [seconds]`.
 *
 *  1. wrong client keys from one address, 16 keep-alive connections in a loop;
 *  2. wrong dashboard logins from one address, the same way;
 *  3. 500 connections that each send one request without a key: how many the gateway still holds.
 *
 * Prints, per flood, the attempts per second, the answers by status, and the log lines written.
 */
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import { Writable } from 'node:stream';
import { parseConfig } from '../core/config/config.js';
import type { Gateway } from '../core/gateway.js';
import { createGateway } from '../app/gateway.js';

const SECONDS = Number(process.argv[2] ?? 3);
const KEY = 'sk-bench-client-key-0123456789';
const ADMIN = 'bench-admin-token-0123456789abcdef';

class Lines extends Writable {
  count = 0;
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    for (const b of chunk) if (b === 10) this.count++;
    cb();
  }
}

async function flood(
  url: URL,
  request: () => { path: string; headers: http.OutgoingHttpHeaders; body: string },
): Promise<{ perSecond: number; statuses: Record<number, number> }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16, localAddress: '127.0.0.2' });
  const statuses: Record<number, number> = {};
  let done = 0;
  const end = performance.now() + SECONDS * 1000;
  const loop = async () => {
    while (performance.now() < end) {
      const r = request();
      const status = await new Promise<number>((resolve) => {
        const req = http.request(
          { host: url.hostname, port: url.port, method: 'POST', path: r.path, headers: r.headers, agent },
          (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          },
        );
        req.on('error', () => resolve(0));
        req.end(r.body);
      });
      statuses[status] = (statuses[status] ?? 0) + 1;
      done++;
    }
  };
  await Promise.all(Array.from({ length: 16 }, loop));
  agent.destroy();
  return { perSecond: Math.round(done / SECONDS), statuses };
}

async function heldAfterOneRefusal(url: URL, gw: Gateway, count: number): Promise<number> {
  const sockets: net.Socket[] = [];
  for (let i = 0; i < count; i++) {
    const s = net.connect(Number(url.port), url.hostname);
    s.on('error', () => {});
    await once(s, 'connect');
    s.write(`GET /v1/models HTTP/1.1\r\nhost: ${url.host}\r\n\r\n`);
    await once(s, 'data');
    sockets.push(s);
  }
  await new Promise((r) => setTimeout(r, 200)); // let the closes land
  const held = await new Promise<number>((r) => gw.server.getConnections((_e, n) => r(n)));
  for (const s of sockets) s.destroy();
  return held;
}

async function main(): Promise<void> {
  const upstream = http.createServer((_req, res) => res.end('{}'));
  upstream.listen(0, '127.0.0.1');
  await once(upstream, 'listening');
  const upPort = (upstream.address() as net.AddressInfo).port;
  const yaml = `
server: { host: 127.0.0.1, port: 0 }
auth: { keys: [{ name: bench, key: ${KEY} }] }
upstreams: [{ name: up1, type: openai, baseUrl: "http://127.0.0.1:${upPort}/v1", apiKey: sk-bench-upstream }]
plugins: [responses-routes, request-id, error-codes, { name: dashboard, options: { token: ${ADMIN} } }]
`;
  const lines = new Lines();
  const gw = await createGateway(parseConfig(yaml, 'bench.yaml', {}), { logDestination: lines });
  await gw.listen();
  const url = new URL(gw.url);
  const body = JSON.stringify({ model: 'gpt-bench', input: 'hi' });
  let n = 0;

  let before = lines.count;
  const keys = await flood(url, () => ({
    path: '/v1/responses',
    headers: { authorization: `Bearer sk-wrong-${n++}`, 'content-type': 'application/json' },
    body,
  }));
  await new Promise((r) => setTimeout(r, 1500)); // the access lines are batched
  console.log('wrong client keys', { ...keys, logLines: lines.count - before });

  before = lines.count;
  const logins = await flood(url, () => ({
    path: '/dashboard/login',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: `token=wrong-${n++}`,
  }));
  await new Promise((r) => setTimeout(r, 1500));
  console.log('wrong dashboard logins', { ...logins, logLines: lines.count - before });

  console.log(
    'connections held after one keyless request each (of 500)',
    await heldAfterOneRefusal(url, gw, 500),
  );
  await gw.close(0);
  upstream.close();
}

await main();
