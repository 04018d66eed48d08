/**
 * Hostile request bodies against one tapgate process (issue 11, items 1 and 2):
 * `node --import tsx bench/body.ts [case…]`. Never part of `npm test`.
 *
 * tapgate runs as its own process (`node --expose-gc app/bin.js`, one worker, `log.level: warn`)
 * in front of a loopback upstream in this process. Each case sends one body and reports: the time
 * to its answer and status, the longest `GET /v1/models` (answered by the gateway alone, probed
 * every 20 ms on its own connection) while it was in flight, tapgate's peak VmRSS meanwhile, and
 * its heapUsed / RSS after a full GC once the case is over. Cases (default: all):
 *   deep15mb   15 MB of nested arrays inside an object (content-length)
 *   deeptop    a 1e6-deep top-level array
 *   tiny16mb   {"a":[{},{},…]}: 16 MB of empty objects at depth 2
 *   values1m   {"model":…,"a":[{},{},…]}: just under 1,000,000 values (the default server.maxJsonValues)
 *   keys1m     one object of just under 1,000,000 members (JSON.parse's slowest shape per value)
 *   chunks4m   a 4 MB valid body sent as 4M one-byte chunks (24 MB on the wire)
 *   normal     a 16 MB body that is one long string (the cheap shape, for comparison)
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const KEY = 'sk-bench-body-0123456789';
const MB = 1024 * 1024;

interface Case {
  name: string;
  /** The request bytes after the head: a content-length body, or chunked frames. */
  body: () => Buffer;
  chunked?: boolean;
}

const CASES: Case[] = [
  { name: 'deep15mb', body: () => Buffer.from(`{"a":${'['.repeat(7.5 * MB)}${']'.repeat(7.5 * MB)}}`) },
  { name: 'deeptop', body: () => Buffer.from('['.repeat(1e6) + ']'.repeat(1e6)) },
  {
    name: 'tiny16mb',
    body: () => Buffer.from(`{"model":"gpt-bench","a":[${'{},'.repeat(Math.floor((16 * MB - 40) / 3))}{}]}`),
  },
  {
    name: 'values1m',
    body: () => Buffer.from(`{"model":"gpt-bench","a":[${'{},'.repeat(999_990)}{}]}`),
  },
  {
    name: 'keys1m',
    body: () => {
      const keys = Array.from({ length: 999_990 }, (_, i) => `"k${i}":0`).join(',');
      return Buffer.from(`{"model":"gpt-bench","a":{${keys}}}`);
    },
  },
  { name: 'chunks4m', chunked: true, body: () => chunkFrames(4 * 1024 * 1024) },
  {
    name: 'normal',
    body: () => Buffer.from(JSON.stringify({ model: 'gpt-bench', input: 'x'.repeat(16 * MB - 100) })),
  },
];

/** A valid JSON body of `n` bytes as `n` one-byte chunks: `1\r\nX\r\n` each, then the last chunk. */
function chunkFrames(n: number): Buffer {
  const head = '{"model":"gpt-bench","input":"';
  const tail = '"}';
  const text = head + 'x'.repeat(n - head.length - tail.length) + tail;
  const out = Buffer.allocUnsafe(n * 6 + 5);
  for (let i = 0; i < n; i++) out.write(`1\r\n${text[i]!}\r\n`, i * 6, 'latin1');
  out.write('0\r\n\r\n', n * 6, 'latin1');
  return out;
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as net.AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function vmRss(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

function get(port: number, path: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({
      host: '127.0.0.1',
      port,
      path,
      agent: false,
      headers: { authorization: `Bearer ${KEY}` },
    });
    req.on('error', reject);
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
  });
}

/** Sends one raw request; resolves with the status line's code when the gateway closes. */
function send(port: number, c: Case, body: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const length = c.chunked === true ? 'transfer-encoding: chunked' : `content-length: ${body.length}`;
    const head =
      `POST /v1/responses HTTP/1.1\r\nhost: x\r\nconnection: close\r\nauthorization: Bearer ${KEY}\r\n` +
      `content-type: application/json\r\n${length}\r\n\r\n`;
    let answer = '';
    socket.on('data', (d: Buffer) => (answer += d.toString('latin1')));
    socket.on('error', () => {});
    socket.on('close', () => {
      const status = Number(answer.split(' ')[1]);
      if (status >= 500) console.log(answer.slice(0, 600));
      if (Number.isFinite(status)) resolve(status);
      else reject(new Error(`no answer: ${answer.slice(0, 200)}`));
    });
    socket.write(head);
    socket.write(body);
  });
}

async function main(): Promise<void> {
  const wanted = process.argv.slice(2);
  const cases = wanted.length === 0 ? CASES : CASES.filter((c) => wanted.includes(c.name));
  const upstream = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"id":"resp_bench","object":"response","status":"completed","output":[]}');
    });
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const upstreamPort = (upstream.address() as net.AddressInfo).port;
  const port = await freePort();
  const tmp = mkdtempSync(join(tmpdir(), 'tapgate-bench-body-'));
  const file = join(tmp, 'tapgate.yaml');
  writeFileSync(
    file,
    `server: { host: 127.0.0.1, port: ${port}, workers: 1 }
auth: { keys: [{ name: bench, key: ${KEY} }] }
log: { level: warn }
upstreams:
  - { name: up, type: openai, baseUrl: "http://127.0.0.1:${upstreamPort}/v1", apiKey: sk-bench-upstream }
plugins: [responses-routes, request-id, error-codes, ${JSON.stringify(join(ROOT, 'bench', 'gc-plugin.mjs'))}]
`,
  );
  const child = spawn(process.execPath, ['--expose-gc', join(ROOT, 'app', 'bin.js'), '--config', file], {
    stdio: ['ignore', 'ignore', 'inherit'],
    cwd: ROOT,
  });
  try {
    for (let i = 0; ; i++) {
      try {
        await get(port, '/v1/models');
        break;
      } catch {
        if (i > 200) throw new Error('tapgate did not start');
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    const gc = async () => JSON.parse((await get(port, '/__bench/gc')).text) as NodeJS.MemoryUsage;
    const base = await gc();
    console.log(
      `baseline: heapUsed ${(base.heapUsed / MB).toFixed(0)} MB, VmRSS ${(vmRss(child.pid!) / MB).toFixed(0)} MB`,
    );
    for (const c of cases) {
      const body = c.body();
      let peak = vmRss(child.pid!);
      let worstProbe = 0;
      let running = true;
      const sampler = setInterval(() => (peak = Math.max(peak, vmRss(child.pid!))), 10);
      const probing = (async () => {
        while (running) {
          const t0 = performance.now();
          await get(port, '/v1/models');
          worstProbe = Math.max(worstProbe, performance.now() - t0);
          await new Promise((r) => setTimeout(r, 20));
        }
      })();
      const t0 = performance.now();
      const status = await send(port, c, body);
      const ms = performance.now() - t0;
      running = false;
      await probing;
      clearInterval(sampler);
      const after = await gc();
      console.log(
        `${c.name.padEnd(9)} ${(body.length / MB).toFixed(1).padStart(5)} MB on the wire: ${status} in ` +
          `${ms.toFixed(0)} ms; worst GET /v1/models meanwhile ${worstProbe.toFixed(0)} ms; peak VmRSS ` +
          `${(peak / MB).toFixed(0)} MB; after GC heapUsed ${(after.heapUsed / MB).toFixed(0)} MB, ` +
          `VmRSS ${(vmRss(child.pid!) / MB).toFixed(0)} MB`,
      );
    }
  } finally {
    child.kill('SIGTERM');
    upstream.close();
    rmSync(tmp, { recursive: true, force: true });
  }
}

await main();
