/**
 * The load: autocannon (in the runner's process, pinned with it to the load core) or wrk when it is
 * installed; plus the bench's own precise clients for the low-load figures (sequential latency, time
 * to first SSE byte) and the 1,000-open-streams memory test.
 */
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { checkSse, HOLD_MODEL, requestBody } from './payloads.js';
import { LOAD_CORE, PINNED } from './procs.js';

export interface Target {
  /** e.g. http://127.0.0.1:1234 */
  origin: string;
  path: string;
  headers: Record<string, string>;
}

export interface LoadResult {
  rps: number;
  /** Milliseconds. */
  p50: number;
  p99: number;
  requests: number;
  seconds: number;
  non2xx: number;
  errors: number;
  timeouts: number;
}

export interface LoadSettings {
  connections: number;
  seconds: number;
}

export type LoadGen = 'autocannon' | 'wrk';

export function wrkInstalled(): boolean {
  return spawnSync('wrk', ['--version'], { stdio: 'ignore' }).error === undefined;
}

export function wrkVersion(): string {
  const r = spawnSync('wrk', ['--version'], { encoding: 'utf8' });
  return (r.stdout + r.stderr).split('\n')[0]!.trim();
}

/** Percentile (nearest rank) of unsorted samples. */
export function percentile(samples: ArrayLike<number>, p: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = Float64Array.from(samples).sort();
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

/** A growable array of doubles that does not allocate per sample. */
class Samples {
  private buf = new Float64Array(1 << 16);
  length = 0;
  push(v: number): void {
    if (this.length === this.buf.length) {
      const next = new Float64Array(this.buf.length * 2);
      next.set(this.buf);
      this.buf = next;
    }
    this.buf[this.length++] = v;
  }
  view(): Float64Array {
    return this.buf.subarray(0, this.length);
  }
}

/**
 * autocannon's own percentiles are whole milliseconds (its histogram's resolution); the bench records
 * each 2xx response time itself (a float, in ms) and computes p50/p99 from those.
 */
export function runAutocannon(target: Target, stream: boolean, s: LoadSettings): Promise<LoadResult> {
  const latencies = new Samples();
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: target.origin + target.path,
        method: 'POST',
        body: requestBody(stream),
        headers: { 'content-type': 'application/json', ...target.headers },
        connections: s.connections,
        duration: s.seconds,
        pipelining: 1,
        timeout: 10,
      },
      (err, result) => {
        if (err) return reject(err);
        const lat = latencies.view();
        resolve({
          rps: result.requests.total / result.duration,
          p50: percentile(lat, 50),
          p99: percentile(lat, 99),
          requests: result.requests.total,
          seconds: result.duration,
          non2xx: result.non2xx,
          errors: result.errors,
          timeouts: result.timeouts,
        });
      },
    );
    instance.on('response', (_client: unknown, status: number, _bytes: number, ms: number) => {
      if (status >= 200 && status < 300) latencies.push(ms);
    });
  });
}

function luaString(s: string): string {
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

const UNITS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000 };
function wrkMs(value: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(value);
  return m === null ? Number.NaN : Number(m[1]) * UNITS[m[2]!]!;
}

/** Parses `wrk --latency` output. */
export function parseWrk(out: string): LoadResult {
  const num = (re: RegExp) => {
    const m = re.exec(out);
    return m === null ? 0 : Number(m[1]);
  };
  const total = /(\d+) requests in ([\d.]+)(us|ms|s|m),/.exec(out);
  if (total === null) throw new Error(`bench: cannot read wrk's output:\n${out}`);
  const seconds = wrkMs(`${total[2]}${total[3]}`) / 1000;
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  return {
    rps: Number(total[1]) / seconds,
    p50: wrkMs(/^\s+50%\s+(\S+)/m.exec(out)?.[1] ?? ''),
    p99: wrkMs(/^\s+99%\s+(\S+)/m.exec(out)?.[1] ?? ''),
    requests: Number(total[1]),
    seconds,
    non2xx: num(/Non-2xx or 3xx responses: (\d+)/),
    errors: socket === null ? 0 : Number(socket[1]) + Number(socket[2]) + Number(socket[3]),
    timeouts: socket === null ? 0 : Number(socket[4]),
  };
}

/** wrk with one thread, pinned to the load core; the request comes from a Lua script in `tmp`. */
export function runWrk(target: Target, stream: boolean, s: LoadSettings, tmp: string): Promise<LoadResult> {
  const script = join(tmp, `wrk-${stream ? 'sse' : 'json'}.lua`);
  const headers = { 'Content-Type': 'application/json', ...target.headers };
  writeFileSync(
    script,
    [
      'wrk.method = "POST"',
      `wrk.body = ${luaString(requestBody(stream))}`,
      ...Object.entries(headers).map(([k, v]) => `wrk.headers[${luaString(k)}] = ${luaString(v)}`),
      '',
    ].join('\n'),
  );
  const args = [
    '-t1',
    `-c${s.connections}`,
    `-d${s.seconds}s`,
    '--timeout',
    '10s',
    '--latency',
    '-s',
    script,
    target.origin + target.path,
  ];
  const [cmd, argv] = PINNED ? ['taskset', ['-c', String(LOAD_CORE), 'wrk', ...args]] : ['wrk', args];
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    p.stderr.setEncoding('utf8').on('data', (c: string) => (out += c));
    p.once('error', reject);
    p.once('exit', (code) => {
      if (code !== 0) return reject(new Error(`bench: wrk exited ${code}:\n${out}`));
      try {
        resolve(parseWrk(out));
      } catch (err) {
        reject(err as Error);
      }
    });
  });
}

export function runLoad(
  gen: LoadGen,
  target: Target,
  stream: boolean,
  s: LoadSettings,
  tmp: string,
): Promise<LoadResult> {
  return gen === 'wrk' ? runWrk(target, stream, s, tmp) : runAutocannon(target, stream, s);
}

interface Answer {
  status: number;
  body: string;
  /** ms from sending to the response's first body byte, and to its end. */
  firstByteMs: number;
  totalMs: number;
}

/** One request on the given agent, timed with the monotonic clock. */
export function request(
  agent: http.Agent,
  target: Target,
  body: string,
  opts: { keepBody?: boolean; method?: string; path?: string } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const url = new URL((opts.path ?? target.path) || '/', target.origin);
    const t0 = performance.now();
    let first = 0;
    const req = http.request(
      url,
      {
        agent,
        method: opts.method ?? 'POST',
        headers:
          opts.method === 'GET'
            ? target.headers
            : {
                'content-type': 'application/json',
                'content-length': String(Buffer.byteLength(body)),
                ...target.headers,
              },
      },
      (res) => {
        const chunks: string[] = [];
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          if (first === 0) first = performance.now();
          if (opts.keepBody !== false) chunks.push(c);
        });
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: chunks.join(''),
            firstByteMs: (first || performance.now()) - t0,
            totalMs: performance.now() - t0,
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(opts.method === 'GET' ? undefined : body);
  });
}

/** Checks one JSON and one SSE answer before loading a target: a wrong answer makes its figures void. */
export async function validate(target: Target): Promise<void> {
  const agent = new http.Agent({ keepAlive: false });
  try {
    const json = await request(agent, target, requestBody(false));
    if (json.status !== 200)
      throw new Error(`JSON request: status ${json.status}: ${json.body.slice(0, 300)}`);
    const parsed = JSON.parse(json.body) as { id?: string; status?: string };
    if (parsed.id !== 'resp_bench' || parsed.status !== 'completed')
      throw new Error(`JSON request: unexpected body ${json.body.slice(0, 200)}`);
    const sse = await request(agent, target, requestBody(true));
    if (sse.status !== 200) throw new Error(`SSE request: status ${sse.status}: ${sse.body.slice(0, 300)}`);
    const problem = checkSse(sse.body);
    if (problem !== undefined) throw new Error(`SSE request: ${problem}`);
  } finally {
    agent.destroy();
  }
}

export interface Sequential {
  n: number;
  p50: number;
  p99: number;
}

/**
 * `n` requests one after another on one keep-alive connection, after `warm` unmeasured ones.
 * `firstByte`: time to the first body byte (SSE), else to the end of the response (JSON).
 */
export async function sequential(
  target: Target,
  stream: boolean,
  n: number,
  warm: number,
  firstByte: boolean,
): Promise<Sequential> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const body = requestBody(stream);
  const samples = new Float64Array(n);
  try {
    for (let i = 0; i < warm + n; i++) {
      const a = await request(agent, target, body, { keepBody: false });
      if (a.status !== 200) throw new Error(`sequential request: status ${a.status}`);
      if (i >= warm) samples[i - warm] = firstByte ? a.firstByteMs : a.totalMs;
    }
  } finally {
    agent.destroy();
  }
  return { n, p50: percentile(samples, 50), p99: percentile(samples, 99) };
}

export interface OpenStreams {
  /** Resolves when every stream has received its first body bytes. */
  opened: Promise<void>;
  /** Resolves when every stream has ended; the count of those that ended in response.completed. */
  ended: Promise<number>;
  close(): void;
}

/** Opens `n` held streams at once (model gpt-bench-hold), each on its own connection. */
export function openStreams(target: Target, n: number): OpenStreams {
  const agent = new http.Agent({ keepAlive: true, maxSockets: n + 10 });
  const body = requestBody(true, HOLD_MODEL);
  let open = 0;
  let onOpen!: () => void;
  let onFail!: (err: Error) => void;
  const opened = new Promise<void>((resolve, reject) => {
    onOpen = resolve;
    onFail = reject;
  });
  const ends: Promise<boolean>[] = [];
  for (let i = 0; i < n; i++) {
    ends.push(
      new Promise<boolean>((resolve) => {
        const req = http.request(
          new URL(target.path, target.origin),
          {
            agent,
            method: 'POST',
            headers: {
              'content-type': 'application/json',
              'content-length': String(Buffer.byteLength(body)),
              ...target.headers,
            },
          },
          (res) => {
            if (res.statusCode !== 200) onFail(new Error(`held stream: status ${res.statusCode}`));
            let text = '';
            let first = true;
            res.setEncoding('utf8');
            res.on('data', (c: string) => {
              text += c;
              if (first) {
                first = false;
                if (++open === n) onOpen();
              }
            });
            res.on('end', () => resolve(text.includes('event: response.completed')));
            res.on('error', () => resolve(false));
          },
        );
        req.on('error', (err) => {
          onFail(err);
          resolve(false);
        });
        req.end(body);
      }),
    );
  }
  return {
    opened,
    ended: Promise.all(ends).then((ok) => ok.filter(Boolean).length),
    close: () => agent.destroy(),
  };
}
